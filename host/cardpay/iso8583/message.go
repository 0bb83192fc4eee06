package iso8583

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"

	moov "github.com/moov-io/iso8583"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay/mac"
	"github.com/jifu-open/jifu/host/cardpay/pan"
)

// MTIs this channel speaks.
const (
	MTISignOn        = "0800"
	MTISignOnResp    = "0810"
	MTIFinancial     = "0200" // purchase and void
	MTIFinancialResp = "0210"
	MTIAdvice        = "0220" // refund
	MTIAdviceResp    = "0230"
	MTIReversal      = "0400"
	MTIReversalResp  = "0410"
	ProcPurchase     = "000000"
	ProcVoidRefund   = "200000"
	TypePurchase     = "22" // field 60.1
	TypeVoid         = "23"
	TypeRefund       = "25"
	TypeSignOn       = "00"
	CurrencyCNY      = "156"
	ResponseApproved = "00"
	MaxMessage       = 4096 // bytes, framing excluded
	frameHeader      = 2
)

var knownMTI = map[string]bool{
	MTISignOn: true, MTISignOnResp: true, MTIFinancial: true, MTIFinancialResp: true,
	MTIAdvice: true, MTIAdviceResp: true, MTIReversal: true, MTIReversalResp: true,
}

// Message is one ISO 8583 message with the fields this channel uses. Empty
// strings, nil slices and a zero Amount mean "field absent".
type Message struct {
	MTI            string
	PAN            string // 2
	ProcessingCode string // 3
	Amount         int64  // 4, fen; 0 = absent
	STAN           string // 11, 6 digits
	Expiry         string // 14, YYMM
	EntryMode      string // 22, e.g. "021" swiped with PIN, "051" chip with PIN
	CardSeq        string // 23
	Condition      string // 25, "00" normal
	PINCapture     string // 26, "12" = 12-digit max PIN
	Track2         string // 35, digits with D
	Track3         string // 36
	RRN            string // 37
	AuthCode       string // 38
	ResponseCode   string // 39
	TerminalID     string // 41, 8
	MerchantID     string // 42, 15
	Currency       string // 49
	PINBlock       []byte // 52
	Security       string // 53
	ICData         []byte // 55
	Field60        string // 60: 60.1 type (2) + 60.2 batch (6) [+ 60.3 (3)]
	Keys           []byte // 62
	MAC            []byte // 64: set to any non-nil value to have Pack compute it
}

// String redacts card data: PAN masked, tracks and PIN block omitted.
func (m *Message) String() string {
	return fmt.Sprintf("iso8583 %s proc=%s amount=%d stan=%s pan=%s rc=%s tid=%s mid=%s",
		m.MTI, m.ProcessingCode, m.Amount, m.STAN, pan.Mask(m.PAN), m.ResponseCode, m.TerminalID, m.MerchantID)
}

// LogValue redacts card data.
func (m *Message) LogValue() slog.Value { return slog.StringValue(m.String()) }

// Pack encodes m. When m.MAC is non-nil, field 64 is the UnionPay ECB MAC
// under mak over everything before it (MTI, bitmap with bit 64 set, fields).
func Pack(m *Message, mak []byte) ([]byte, error) {
	if !knownMTI[m.MTI] {
		return nil, jifu.Errorf(jifu.CodeInvalid, "iso8583: unknown MTI %q", m.MTI)
	}
	msg := moov.NewMessage(Spec)
	msg.MTI(m.MTI)
	set := func(id int, v string) error {
		if v == "" {
			return nil
		}
		return msg.Field(id, v)
	}
	setb := func(id int, v []byte) error {
		if v == nil {
			return nil
		}
		return msg.BinaryField(id, v)
	}
	amount := ""
	if m.Amount < 0 {
		return nil, jifu.Errorf(jifu.CodeInvalid, "iso8583: negative amount")
	}
	if m.Amount > 0 {
		if m.Amount > 999999999999 {
			return nil, jifu.Errorf(jifu.CodeInvalid, "iso8583: amount %d over 12 digits", m.Amount)
		}
		amount = fmt.Sprintf("%012d", m.Amount)
	}
	var err error
	for _, f := range []struct {
		id int
		v  string
	}{
		{2, m.PAN}, {3, m.ProcessingCode}, {4, amount}, {11, m.STAN}, {14, m.Expiry}, {22, m.EntryMode},
		{23, m.CardSeq}, {25, m.Condition}, {26, m.PINCapture}, {35, m.Track2}, {36, m.Track3},
		{37, m.RRN}, {38, m.AuthCode}, {39, m.ResponseCode}, {41, pad(m.TerminalID, 8)},
		{42, pad(m.MerchantID, 15)}, {49, m.Currency}, {53, m.Security}, {60, m.Field60},
	} {
		if err = set(f.id, f.v); err != nil {
			return nil, jifu.Errorf(jifu.CodeInvalid, "iso8583: field %d: %v", f.id, err)
		}
	}
	for _, f := range []struct {
		id int
		v  []byte
	}{{52, m.PINBlock}, {55, m.ICData}, {62, m.Keys}} {
		if err = setb(f.id, f.v); err != nil {
			return nil, jifu.Errorf(jifu.CodeInvalid, "iso8583: field %d: %v", f.id, err)
		}
	}
	if m.MAC != nil {
		if err := msg.BinaryField(64, make([]byte, 8)); err != nil {
			return nil, jifu.Errorf(jifu.CodeInternal, "iso8583: field 64: %v", err)
		}
	}
	b, err := msg.Pack()
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeInvalid, "iso8583: pack %s: %v", m.MTI, err)
	}
	if len(b) > MaxMessage {
		return nil, jifu.Errorf(jifu.CodeTooLarge, "iso8583: message of %d bytes over %d", len(b), MaxMessage)
	}
	if m.MAC != nil {
		code, err := mac.UnionPayECB(mak, b[:len(b)-8])
		if err != nil {
			return nil, err
		}
		copy(b[len(b)-8:], code[:])
	}
	return b, nil
}

func pad(s string, n int) string {
	if s == "" || len(s) >= n {
		return s
	}
	return s + strings.Repeat(" ", n-len(s))
}

// Unpack decodes b strictly: a known MTI, a primary bitmap only, fields this
// spec defines, every byte consumed, and canonical encodings (b must be
// exactly what Pack would write for the result). Errors name the field
// but never show its data.
func Unpack(b []byte) (*Message, error) {
	if len(b) < 10 {
		return nil, jifu.Errorf(jifu.CodeInvalid, "iso8583: message of %d bytes is too short", len(b))
	}
	if len(b) > MaxMessage {
		return nil, jifu.Errorf(jifu.CodeTooLarge, "iso8583: message of %d bytes over %d", len(b), MaxMessage)
	}
	if b[2]&0x80 != 0 {
		return nil, jifu.Errorf(jifu.CodeInvalid, "iso8583: secondary bitmap is not used on this channel")
	}
	for i := 1; i <= 64; i++ {
		if b[2+(i-1)/8]&(0x80>>((i-1)%8)) != 0 {
			if _, ok := Spec.Fields[i]; !ok || i == 1 {
				return nil, jifu.Errorf(jifu.CodeInvalid, "iso8583: field %d is not defined on this channel", i)
			}
		}
	}
	msg := moov.NewMessage(Spec)
	if err := msg.Unpack(b); err != nil {
		return nil, jifu.Errorf(jifu.CodeInvalid, "iso8583: unpack: field %s malformed", unpackField(err))
	}
	m := &Message{}
	get := func(id int) string {
		if msg.GetField(id) == nil || !msg.Bitmap().IsSet(id) {
			return ""
		}
		s, _ := msg.GetString(id)
		return s
	}
	getb := func(id int) []byte {
		if !msg.Bitmap().IsSet(id) {
			return nil
		}
		v, _ := msg.GetBytes(id)
		return append([]byte{}, v...)
	}
	m.MTI, _ = msg.GetMTI()
	if !knownMTI[m.MTI] {
		return nil, jifu.Errorf(jifu.CodeInvalid, "iso8583: unknown MTI %q", m.MTI)
	}
	m.PAN, m.ProcessingCode, m.STAN, m.Expiry = get(2), get(3), get(11), get(14)
	if a := get(4); a != "" {
		v, err := strconv.ParseInt(a, 10, 64)
		if err != nil || v == 0 {
			return nil, jifu.Errorf(jifu.CodeInvalid, "iso8583: field 4 is not a number")
		}
		m.Amount = v
	}
	m.EntryMode, m.CardSeq, m.Condition, m.PINCapture = get(22), get(23), get(25), get(26)
	m.Track2, m.Track3, m.RRN, m.AuthCode, m.ResponseCode = get(35), get(36), get(37), get(38), get(39)
	m.TerminalID, m.MerchantID = strings.TrimRight(get(41), " "), strings.TrimRight(get(42), " ")
	m.Currency, m.Security, m.Field60 = get(49), get(53), get(60)
	m.PINBlock, m.ICData, m.Keys, m.MAC = getb(52), getb(55), getb(62), getb(64)
	for _, c := range m.PAN {
		if c < '0' || c > '9' {
			return nil, jifu.Errorf(jifu.CodeInvalid, "iso8583: field 2 holds a non-digit")
		}
	}
	var mak []byte
	if m.MAC != nil {
		mak = make([]byte, 8) // any key: only the length of the result matters here
	}
	again, err := Pack(m, mak)
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeInvalid, "iso8583: message does not re-encode: %v", jifu.ErrorMessage(err))
	}
	n := len(b)
	if m.MAC != nil {
		n -= 8
	}
	if len(again) != len(b) || !bytes.Equal(again[:n], b[:n]) {
		return nil, jifu.Errorf(jifu.CodeInvalid, "iso8583: message is not in canonical form (trailing bytes or non-standard padding)")
	}
	return m, nil
}

func unpackField(err error) string {
	type fielder interface{ FieldIDs() []string }
	if f, ok := err.(fielder); ok {
		return strings.Join(f.FieldIDs(), ".")
	}
	return "?"
}

// VerifyMAC checks field 64 of the packed message b under mak.
func VerifyMAC(b, mak []byte) error {
	if len(b) < 10 || b[2+7]&0x01 == 0 {
		return jifu.Errorf(jifu.CodeDenied, "iso8583: message has no MAC")
	}
	want, err := mac.UnionPayECB(mak, b[:len(b)-8])
	if err != nil {
		return err
	}
	if !mac.Equal(want[:], b[len(b)-8:]) {
		return jifu.Errorf(jifu.CodeDenied, "iso8583: MAC mismatch")
	}
	return nil
}

// WriteFrame writes b prefixed with its length in 2 bytes big-endian.
func WriteFrame(w io.Writer, b []byte) error {
	if len(b) > MaxMessage {
		return jifu.Errorf(jifu.CodeTooLarge, "iso8583: message of %d bytes over %d", len(b), MaxMessage)
	}
	buf := make([]byte, frameHeader+len(b))
	binary.BigEndian.PutUint16(buf, uint16(len(b)))
	copy(buf[frameHeader:], b)
	if _, err := w.Write(buf); err != nil {
		return jifu.Errorf(jifu.CodeUnavailable, "iso8583: write: %w", err)
	}
	return nil
}

// ReadFrame reads one length-prefixed message.
func ReadFrame(r io.Reader) ([]byte, error) {
	var h [frameHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, jifu.Errorf(jifu.CodeUnavailable, "iso8583: read: %w", err)
	}
	n := int(binary.BigEndian.Uint16(h[:]))
	if n == 0 || n > MaxMessage {
		return nil, jifu.Errorf(jifu.CodeInvalid, "iso8583: frame length %d outside 1..%d", n, MaxMessage)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, jifu.Errorf(jifu.CodeUnavailable, "iso8583: read: %w", err)
	}
	return b, nil
}
