// Package track parses magnetic stripe track 2 and track 3 data (ISO/IEC
// 7813 and 4909) as the readers send it: digits with '=' or 'D' as the field
// separator, optional start and end sentinels.
//
// Track data is never stored or logged (PCI DSS 3.3.1). A parsed Track2
// keeps the raw track only to pass it on to the acquirer in field 35; its
// String, GoString and LogValue redact everything but the masked PAN, and
// Wipe clears it when the payment is done.
//
//	t2, err := track.ParseTrack2(raw)
//	card := t2.Card() // PAN, expiry, service code
//	defer t2.Wipe()
package track

import (
	"log/slog"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay/pan"
)

// Track lengths (characters, sentinels excluded).
const (
	MaxTrack2 = 37
	MaxTrack3 = 104
)

// Card is what a payment keeps from a track: the PAN (for field 2 and the
// PIN block; stored only masked), expiry and service code.
type Card struct {
	PAN         string
	Expiry      string // YYMM
	ServiceCode string // 3 digits
}

// LogValue shows the masked PAN only.
func (c Card) LogValue() slog.Value {
	return slog.GroupValue(slog.String("pan", pan.Mask(c.PAN)), slog.String("expiry", c.Expiry), slog.String("service_code", c.ServiceCode))
}

// String shows the masked PAN only.
func (c Card) String() string { return "card " + pan.Mask(c.PAN) }

// Expired reports whether the card's expiry month is before now's month.
func (c Card) Expired(now time.Time) bool {
	if len(c.Expiry) != 4 {
		return true
	}
	yy := int(c.Expiry[0]-'0')*10 + int(c.Expiry[1]-'0')
	mm := int(c.Expiry[2]-'0')*10 + int(c.Expiry[3]-'0')
	y, m, _ := now.UTC().Date()
	exp := 2000 + yy
	return exp < y || exp == y && mm < int(m)
}

// ServiceCode digits (ISO/IEC 7813): the first is interchange and technology
// (2 or 6: chip card, use the chip), the third is PIN and allowed services.
func (c Card) ChipCard() bool {
	return len(c.ServiceCode) == 3 && (c.ServiceCode[0] == '2' || c.ServiceCode[0] == '6')
}

// Track2 is a parsed track 2. Keep it only for the duration of one payment.
type Track2 struct {
	raw  []byte // digits and 'D' separator, the field 35 form
	card Card
}

// ParseTrack2 parses track 2: [;]PAN(12..19)=YYMM SVC discretionary[?],
// with '=' or 'D' (either case) as separator. Errors never show the data.
func ParseTrack2(s string) (*Track2, error) {
	if len(s) > 0 && s[0] == ';' {
		s = s[1:]
	}
	if len(s) > 0 && s[len(s)-1] == '?' {
		s = s[:len(s)-1]
	}
	if len(s) == 0 || len(s) > MaxTrack2 {
		return nil, jifu.Errorf(jifu.CodeInvalid, "track: track 2 must have 1 to %d characters", MaxTrack2)
	}
	raw := make([]byte, len(s))
	sep := -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			raw[i] = c
		case c == '=' || c == 'D' || c == 'd':
			if sep >= 0 {
				return nil, jifu.Errorf(jifu.CodeInvalid, "track: track 2 has more than one separator")
			}
			sep = i
			raw[i] = 'D'
		default:
			return nil, jifu.Errorf(jifu.CodeInvalid, "track: track 2 holds a character other than digits and the separator")
		}
	}
	if sep < pan.MinLen || sep > pan.MaxLen {
		return nil, jifu.Errorf(jifu.CodeInvalid, "track: track 2 PAN must have %d to %d digits", pan.MinLen, pan.MaxLen)
	}
	if len(s)-sep-1 < 7 {
		return nil, jifu.Errorf(jifu.CodeInvalid, "track: track 2 lacks expiry and service code")
	}
	exp := string(raw[sep+1 : sep+5])
	if mm := (exp[2]-'0')*10 + exp[3] - '0'; mm < 1 || mm > 12 {
		return nil, jifu.Errorf(jifu.CodeInvalid, "track: track 2 expiry month is not 01..12")
	}
	return &Track2{raw: raw, card: Card{PAN: string(raw[:sep]), Expiry: exp, ServiceCode: string(raw[sep+5 : sep+8])}}, nil
}

// Card is the PAN, expiry and service code.
func (t *Track2) Card() Card { return t.card }

// Field35 returns the track in the form ISO 8583 field 35 carries (digits,
// 'D' separator). Do not keep or log it.
func (t *Track2) Field35() string { return string(t.raw) }

// Wipe clears the raw track.
func (t *Track2) Wipe() {
	for i := range t.raw {
		t.raw[i] = 0
	}
	t.raw = nil
}

// String redacts the track.
func (t *Track2) String() string { return "track2(" + pan.Mask(t.card.PAN) + ", <redacted>)" }

// GoString redacts the track.
func (t *Track2) GoString() string { return t.String() }

// LogValue redacts the track.
func (t *Track2) LogValue() slog.Value { return slog.StringValue(t.String()) }

// Track3 is a parsed track 3 (ISO 4909, financial institution track).
type Track3 struct {
	raw []byte
	PAN string
}

// ParseTrack3 parses track 3: [;]format code (2 digits) PAN = ... [?], up to
// 104 characters of digits and separators. Only the PAN is interpreted.
func ParseTrack3(s string) (*Track3, error) {
	if len(s) > 0 && s[0] == ';' {
		s = s[1:]
	}
	if len(s) > 0 && s[len(s)-1] == '?' {
		s = s[:len(s)-1]
	}
	if len(s) < 2+pan.MinLen+1 || len(s) > MaxTrack3 {
		return nil, jifu.Errorf(jifu.CodeInvalid, "track: track 3 must have %d to %d characters", 2+pan.MinLen+1, MaxTrack3)
	}
	raw := make([]byte, len(s))
	sep := -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			raw[i] = c
		case c == '=' || c == 'D' || c == 'd':
			if sep < 0 {
				sep = i
			}
			raw[i] = 'D'
		default:
			return nil, jifu.Errorf(jifu.CodeInvalid, "track: track 3 holds a character other than digits and separators")
		}
	}
	if sep < 2+pan.MinLen || sep > 2+pan.MaxLen {
		return nil, jifu.Errorf(jifu.CodeInvalid, "track: track 3 PAN must have %d to %d digits", pan.MinLen, pan.MaxLen)
	}
	return &Track3{raw: raw, PAN: string(raw[2:sep])}, nil
}

// Field36 returns the track in the form ISO 8583 field 36 carries.
func (t *Track3) Field36() string { return string(t.raw) }

// Wipe clears the raw track.
func (t *Track3) Wipe() {
	for i := range t.raw {
		t.raw[i] = 0
	}
	t.raw = nil
}

// String redacts the track.
func (t *Track3) String() string { return "track3(" + pan.Mask(t.PAN) + ", <redacted>)" }

// GoString redacts the track.
func (t *Track3) GoString() string { return t.String() }

// LogValue redacts the track.
func (t *Track3) LogValue() slog.Value { return slog.StringValue(t.String()) }
