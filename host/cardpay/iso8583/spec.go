// Package iso8583 is the acquirer wire format: China UnionPay-style binary
// ISO 8583 (MTI n4 BCD, one 8-byte binary bitmap, BCD numerics, LLVAR
// lengths as BCD), packed and unpacked with github.com/moov-io/iso8583,
// with the UnionPay POS ECB MAC in field 64 and 2-byte big-endian length
// framing on TCP.
//
//	b, err := iso8583.Pack(msg, mak)         // field 64 computed when msg.MAC is set to true
//	msg, err := iso8583.Unpack(b)            // strict: canonical encoding only
//	err = iso8583.VerifyMAC(b, mak)
//	err = iso8583.WriteFrame(conn, b); b, err = iso8583.ReadFrame(conn)
//
// The fields (see docs/CARDPAY.md for the table): 2 n..19 LLVAR, 3 n6, 4
// n12, 11 n6, 14 n4, 22 n3 (left-aligned), 23 n3, 25 n2, 26 n2, 35 z..37
// LLVAR, 36 z..104 LLLVAR, 37 an12, 38 an6, 39 an2, 41 ans8, 42 ans15, 49
// an3, 52 b8, 53 n16, 55 b..999 LLLVAR, 60 n..999 LLLVAR, 62 b..999 LLLVAR
// (sign-on working keys), 64 b8.
package iso8583

import (
	"encoding/hex"
	"fmt"
	"strings"

	moov "github.com/moov-io/iso8583"
	"github.com/moov-io/iso8583/encoding"
	"github.com/moov-io/iso8583/field"
	"github.com/moov-io/iso8583/prefix"
)

// nibbles encodes digit strings with 'D' separators as packed nibbles,
// left-aligned, an odd length padded with one 'F' nibble: the form of PAN
// (field 2) and tracks (35, 36).
type nibbles struct{}

func (nibbles) Encode(src []byte) ([]byte, error) {
	s := make([]byte, 0, len(src)+1)
	for _, c := range src {
		switch {
		case c >= '0' && c <= '9', c == 'D':
			s = append(s, c)
		case c == '=':
			s = append(s, 'D')
		default:
			return nil, fmt.Errorf("character outside 0-9 and D")
		}
	}
	if len(s)%2 == 1 {
		s = append(s, 'F')
	}
	out := make([]byte, len(s)/2)
	if _, err := hex.Decode(out, s); err != nil {
		return nil, fmt.Errorf("not packable")
	}
	return out, nil
}

func (nibbles) Decode(src []byte, length int) ([]byte, int, error) {
	if length < 0 {
		return nil, 0, fmt.Errorf("negative length")
	}
	n := (length + 1) / 2
	if len(src) < n {
		return nil, 0, fmt.Errorf("not enough data: want %d bytes, have %d", n, len(src))
	}
	s := []byte(strings.ToUpper(hex.EncodeToString(src[:n])))
	if length%2 == 1 && s[length] != 'F' {
		return nil, 0, fmt.Errorf("odd-length value not padded with F")
	}
	for _, c := range s[:length] {
		if !(c >= '0' && c <= '9' || c == 'D') {
			return nil, 0, fmt.Errorf("nibble outside 0-9 and D")
		}
	}
	return s[:length], n, nil
}

func bcdFixed(n int, desc string) field.Field {
	return field.NewString(&field.Spec{Length: n, Description: desc, Enc: bcd{}, Pref: bcdFixedLen{}})
}

func asciiFixed(n int, desc string) field.Field {
	return field.NewString(&field.Spec{Length: n, Description: desc, Enc: encoding.ASCII, Pref: prefix.ASCII.Fixed})
}

// Spec is the message specification. It is read-only after init.
var Spec = &moov.MessageSpec{
	Name: "Jifu acquirer (CUP-style binary ISO 8583)",
	Fields: map[int]field.Field{
		0:  bcdFixed(4, "Message Type Indicator"),
		1:  field.NewBitmap(&field.Spec{Length: 8, Description: "Bitmap", Enc: encoding.Binary, Pref: prefix.Binary.Fixed, DisableAutoExpand: true}),
		2:  field.NewString(&field.Spec{Length: 19, Description: "Primary Account Number", Enc: nibbles{}, Pref: bcdLen{2}}),
		3:  bcdFixed(6, "Processing Code"),
		4:  bcdFixed(12, "Amount, Transaction"),
		11: bcdFixed(6, "System Trace Audit Number"),
		14: bcdFixed(4, "Date, Expiration"),
		22: field.NewString(&field.Spec{Length: 3, Description: "POS Entry Mode", Enc: bcd{left: true}, Pref: bcdFixedLen{}}),
		23: bcdFixed(3, "Card Sequence Number"),
		25: bcdFixed(2, "POS Condition Code"),
		26: bcdFixed(2, "POS PIN Capture Code"),
		35: field.NewString(&field.Spec{Length: 37, Description: "Track 2 Data", Enc: nibbles{}, Pref: bcdLen{2}}),
		36: field.NewString(&field.Spec{Length: 104, Description: "Track 3 Data", Enc: nibbles{}, Pref: bcdLen{3}}),
		37: asciiFixed(12, "Retrieval Reference Number"),
		38: asciiFixed(6, "Authorization Identification Response"),
		39: asciiFixed(2, "Response Code"),
		41: asciiFixed(8, "Card Acceptor Terminal Identification"),
		42: asciiFixed(15, "Card Acceptor Identification Code"),
		49: asciiFixed(3, "Currency Code, Transaction"),
		52: field.NewBinary(&field.Spec{Length: 8, Description: "PIN Data", Enc: encoding.Binary, Pref: prefix.Binary.Fixed}),
		53: bcdFixed(16, "Security Related Control Information"),
		55: field.NewBinary(&field.Spec{Length: 999, Description: "ICC Data", Enc: encoding.Binary, Pref: bcdLen{3}}),
		60: field.NewString(&field.Spec{Length: 999, Description: "Reserved Private (message type, batch)", Enc: bcd{left: true}, Pref: bcdLen{3}}),
		62: field.NewBinary(&field.Spec{Length: 999, Description: "Reserved Private (working keys)", Enc: encoding.Binary, Pref: bcdLen{3}}),
		64: field.NewBinary(&field.Spec{Length: 8, Description: "Message Authentication Code", Enc: encoding.Binary, Pref: prefix.Binary.Fixed}),
	},
}
