// Package request decodes, checks and signs the card-reader SDK's payment
// request (seed 有卡支付SDK流程, fields 1.1, 1.2 and 1.3).
//
// On the wire a request is one JSON object whose values are all strings:
//
//	{"org_id":"ORG1","merchant_id":"M100","order_id":"A-1","pay_method":"card",
//	 "amount":"12345","product_name":"咖啡","timestamp":"1764720000","encoding":"UTF-8",
//	 "params":"x=1","en_tracks":"9A0C…","ic_data":"9F2608…","card_password":"1B9C…",
//	 "translog_no":"000001","ksn":"FFFF9876543210E00001","sign":"3c5e…"}
//
// sign is HMAC-SHA256, in lower-case hex, keyed with the merchant's
// pay_secret (its UTF-8 bytes), over the canonical string: every other field
// whose value is not empty, sorted by name in ASCII order, written as
// name=value joined with '&', values exactly as sent (no escaping):
//
//	amount=12345&card_password=1B9C…&en_tracks=9A0C…&encoding=UTF-8&…&translog_no=000001
//
//	req, err := request.Decode(body)      // shape and syntax, coded errors
//	err = req.Verify(paySecret)           // the sign, constant time
package request

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay/tlv"
)

// Limits and fixed values.
const (
	MaxBody        = 8 << 10
	MaxAmount      = 999999999999
	MaxParams      = 1024
	MaxProductName = 128
	MaxTracks      = 160 // bytes of ciphertext
	MaxICData      = 999 // bytes
	PayMethodCard  = "card"
	AESKSNBytes    = 12 // an AES DUKPT KSN; a TDES one has 10
	EncodingUTF8   = "UTF-8"
)

// Request is a decoded reader request. Amount is parsed; every other field
// keeps the text that was signed.
type Request struct {
	OrgID        string `json:"org_id"`
	MerchantID   string `json:"merchant_id"`
	OrderID      string `json:"order_id"`
	PayMethod    string `json:"pay_method"`
	AmountText   string `json:"amount"`
	ProductName  string `json:"product_name"`
	Timestamp    string `json:"timestamp"`
	Encoding     string `json:"encoding"`
	Params       string `json:"params"`
	EnTracks     string `json:"en_tracks"`
	ICData       string `json:"ic_data"`
	CardPassword string `json:"card_password"`
	TranslogNo   string `json:"translog_no"`
	KSN          string `json:"ksn"`
	Sign         string `json:"sign"`

	Amount int64 `json:"-"` // fen, from AmountText
}

// fields lists name and value of every signed field.
func (r *Request) fields() [][2]string {
	return [][2]string{
		{"amount", r.AmountText}, {"card_password", r.CardPassword}, {"en_tracks", r.EnTracks},
		{"encoding", r.Encoding}, {"ic_data", r.ICData}, {"ksn", r.KSN}, {"merchant_id", r.MerchantID},
		{"order_id", r.OrderID}, {"org_id", r.OrgID}, {"params", r.Params}, {"pay_method", r.PayMethod},
		{"product_name", r.ProductName}, {"timestamp", r.Timestamp}, {"translog_no", r.TranslogNo},
	}
}

// Canonical is the string that sign covers.
func (r *Request) Canonical() string { return canonical(r.fields()) }

// ComputeSign is HMAC-SHA256(paySecret, Canonical()) in lower-case hex.
func (r *Request) ComputeSign(paySecret string) string { return computeSign(paySecret, r.fields()) }

// Verify checks sign in constant time; CodeDenied when it does not match.
func (r *Request) Verify(paySecret string) error { return verify(paySecret, r.fields(), r.Sign) }

// Time is the request's timestamp (Unix seconds).
func (r *Request) Time() time.Time { return unixTime(r.Timestamp) }

// String hides the card data and the sign.
func (r *Request) String() string {
	return "request{org_id=" + r.OrgID + " merchant_id=" + r.MerchantID + " order_id=" + r.OrderID +
		" amount=" + r.AmountText + " ksn=" + r.KSN + " translog_no=" + r.TranslogNo + "}"
}

// LogValue hides the card data and the sign.
func (r *Request) LogValue() slog.Value { return slog.StringValue(r.String()) }

// GoString hides the card data and the sign.
func (r *Request) GoString() string { return r.String() }

// Decode parses body strictly: one JSON object of string values with known
// names only, then checks each field's syntax. The sign is checked by Verify.
func Decode(body []byte) (*Request, error) {
	var r Request
	if err := decodeStrict(body, &r, "request"); err != nil {
		return nil, err
	}
	if err := r.Check(); err != nil {
		return nil, err
	}
	return &r, nil
}

// jsonReason keeps encoding/json's reason without echoing values.
func jsonReason(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		return "field " + te.Field + " must be a string"
	case errors.As(err, &se):
		return "syntax error at offset " + strconv.FormatInt(se.Offset, 10)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	return "malformed JSON"
}

func bad(field, why string) error {
	return jifu.Errorf(jifu.CodeInvalid, "request: %s %s", field, why)
}

func ident(field, v string, max int, required bool) error {
	if v == "" {
		if required {
			return bad(field, "is required")
		}
		return nil
	}
	if len(v) > max {
		return bad(field, "is longer than "+strconv.Itoa(max))
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return bad(field, "may hold only letters, digits, '_' and '-'")
		}
	}
	return nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// Check validates every field's syntax and sets Amount.
func (r *Request) Check() error {
	for _, c := range []struct {
		f, v     string
		max      int
		required bool
	}{
		{"org_id", r.OrgID, 32, true}, {"merchant_id", r.MerchantID, 32, true}, {"order_id", r.OrderID, 64, true},
	} {
		if err := ident(c.f, c.v, c.max, c.required); err != nil {
			return err
		}
	}
	if r.PayMethod != PayMethodCard {
		return bad("pay_method", "must be \""+PayMethodCard+"\"")
	}
	if !digits(r.AmountText) || r.AmountText[0] == '0' || len(r.AmountText) > 12 {
		return bad("amount", "must be a whole number of fen from 1 to 999999999999, without leading zeros")
	}
	r.Amount, _ = strconv.ParseInt(r.AmountText, 10, 64)
	if r.ProductName == "" || !utf8.ValidString(r.ProductName) || utf8.RuneCountInString(r.ProductName) > MaxProductName {
		return bad("product_name", "must be 1 to 128 characters of UTF-8")
	}
	if !digits(r.Timestamp) || len(r.Timestamp) > 12 {
		return bad("timestamp", "must be Unix seconds")
	}
	if r.Encoding != "" && !strings.EqualFold(r.Encoding, EncodingUTF8) {
		return bad("encoding", "must be UTF-8")
	}
	if len(r.Params) > MaxParams || !utf8.ValidString(r.Params) {
		return bad("params", "must be at most 1024 bytes of UTF-8")
	}
	// An AES DUKPT reader (24-digit KSN) encrypts with AES: 16-byte blocks
	// for the tracks and an ISO 9564 format 4 PIN block of 16 bytes; a TDES
	// one uses 8-byte blocks and format 0 (or 3). ISO 9564-1 ties format 4 to
	// AES: an 8-byte block under an AES key is refused, not guessed at.
	aes := len(r.KSN) == 2*AESKSNBytes
	if aes {
		if len(r.EnTracks) == 0 || len(r.EnTracks)%32 != 0 || len(r.EnTracks) > 2*MaxTracks || !isHex(r.EnTracks) {
			return bad("en_tracks", "must be hex AES-CBC ciphertext, a multiple of 16 bytes, at most 160 bytes (AES KSN)")
		}
	} else if r.EnTracks == "" || len(r.EnTracks)%16 != 0 || len(r.EnTracks) > 2*MaxTracks || !isHex(r.EnTracks) {
		return bad("en_tracks", "must be hex TDES-CBC ciphertext, a multiple of 8 bytes, at most 160 bytes")
	}
	if r.ICData != "" {
		if len(r.ICData)%2 != 0 || len(r.ICData) > 2*MaxICData || !isHex(r.ICData) {
			return bad("ic_data", "must be hex, at most 999 bytes")
		}
		b, _ := hex.DecodeString(r.ICData)
		if _, err := tlv.Parse(b); err != nil {
			return jifu.Errorf(jifu.CodeInvalid, "request: ic_data: %s", jifu.ErrorMessage(err))
		}
	}
	switch {
	case r.CardPassword == "":
	case aes && (len(r.CardPassword) != 32 || !isHex(r.CardPassword)):
		return bad("card_password", "must be a 16-byte ISO 9564 format 4 PIN block in hex (AES KSN)")
	case !aes && (len(r.CardPassword) != 16 || !isHex(r.CardPassword)):
		return bad("card_password", "must be an 8-byte ISO 9564 format 0 PIN block in hex (TDES KSN)")
	}
	if len(r.TranslogNo) != 6 || !digits(r.TranslogNo) {
		return bad("translog_no", "must be 6 digits")
	}
	if (len(r.KSN) != 20 && len(r.KSN) != 24) || !isHex(r.KSN) {
		return bad("ksn", "must be 20 (TDES) or 24 (AES) hex digits")
	}
	if len(r.Sign) != 64 || !isHex(r.Sign) {
		return bad("sign", "must be 64 hex digits")
	}
	return nil
}

// Encode writes r as the wire JSON object (empty fields omitted).
func (r *Request) Encode() []byte { return encode(r.fields(), r.Sign) }
