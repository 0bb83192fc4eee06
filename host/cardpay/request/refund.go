package request

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jifu-open/jifu"
)

// Refund is the signed body of POST /refund and POST /void: give back all
// or part of the approved payment order_id. refund_id is the merchant's id
// of this refund or void (one namespace per merchant): the same id again
// returns the first result. Signed exactly as the payment request: sign is
// HMAC-SHA256 in lower-case hex, keyed with the merchant's pay_secret, over
// every other non-empty field sorted by name, name=value joined with '&':
//
//	amount=5000&merchant_id=M100&order_id=A-1&org_id=ORG1&refund_id=R-1&timestamp=1764720000
type Refund struct {
	OrgID      string `json:"org_id"`
	MerchantID string `json:"merchant_id"`
	OrderID    string `json:"order_id"`
	RefundID   string `json:"refund_id"`
	AmountText string `json:"amount"`
	Timestamp  string `json:"timestamp"`
	Sign       string `json:"sign"`

	Amount int64 `json:"-"` // fen, from AmountText
}

func (r *Refund) fields() [][2]string {
	return [][2]string{
		{"amount", r.AmountText}, {"merchant_id", r.MerchantID}, {"order_id", r.OrderID},
		{"org_id", r.OrgID}, {"refund_id", r.RefundID}, {"timestamp", r.Timestamp},
	}
}

// canonical writes the fields that sign covers: non-empty ones, sorted by
// name in ASCII order, name=value joined with '&'.
func canonical(f [][2]string) string {
	sort.Slice(f, func(i, j int) bool { return f[i][0] < f[j][0] })
	var b strings.Builder
	for _, kv := range f {
		if kv[1] == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(kv[0])
		b.WriteByte('=')
		b.WriteString(kv[1])
	}
	return b.String()
}

// Canonical is the string that sign covers.
func (r *Refund) Canonical() string { return canonical(r.fields()) }

// ComputeSign is HMAC-SHA256(paySecret, Canonical()) in lower-case hex.
func (r *Refund) ComputeSign(paySecret string) string {
	m := hmac.New(sha256.New, []byte(paySecret))
	m.Write([]byte(r.Canonical()))
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks sign in constant time; CodeDenied when it does not match.
func (r *Refund) Verify(paySecret string) error {
	if !hmac.Equal([]byte(r.ComputeSign(paySecret)), []byte(r.Sign)) {
		return jifu.Errorf(jifu.CodeDenied, "request: sign does not match")
	}
	return nil
}

// Time is the request's timestamp (Unix seconds).
func (r *Refund) Time() time.Time {
	s, _ := strconv.ParseInt(r.Timestamp, 10, 64)
	return time.Unix(s, 0)
}

// String hides the sign.
func (r *Refund) String() string {
	return "refund{org_id=" + r.OrgID + " merchant_id=" + r.MerchantID + " order_id=" + r.OrderID +
		" refund_id=" + r.RefundID + " amount=" + r.AmountText + "}"
}

// LogValue hides the sign.
func (r *Refund) LogValue() slog.Value { return slog.StringValue(r.String()) }

// DecodeRefund parses a refund or void body strictly (one JSON object of
// string values with known names only) and checks each field's syntax.
func DecodeRefund(body []byte) (*Refund, error) {
	if len(body) > MaxBody {
		return nil, jifu.Errorf(jifu.CodeTooLarge, "request: body of %d bytes over %d", len(body), MaxBody)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var r Refund
	if err := dec.Decode(&r); err != nil {
		return nil, jifu.Errorf(jifu.CodeInvalid, "request: not a JSON object of the refund's string fields: %s", jsonReason(err))
	}
	if dec.More() {
		return nil, jifu.Errorf(jifu.CodeInvalid, "request: trailing data after the JSON object")
	}
	if err := r.Check(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Check validates every field's syntax and sets Amount.
func (r *Refund) Check() error {
	for _, c := range []struct {
		f, v string
		max  int
	}{
		{"org_id", r.OrgID, 32}, {"merchant_id", r.MerchantID, 32}, {"order_id", r.OrderID, 64}, {"refund_id", r.RefundID, 64},
	} {
		if err := ident(c.f, c.v, c.max, true); err != nil {
			return err
		}
	}
	if !digits(r.AmountText) || r.AmountText[0] == '0' || len(r.AmountText) > 12 {
		return bad("amount", "must be a whole number of fen from 1 to 999999999999, without leading zeros")
	}
	r.Amount, _ = strconv.ParseInt(r.AmountText, 10, 64)
	if !digits(r.Timestamp) || len(r.Timestamp) > 12 {
		return bad("timestamp", "must be Unix seconds")
	}
	if len(r.Sign) != 64 || !isHex(r.Sign) {
		return bad("sign", "must be 64 hex digits")
	}
	return nil
}

// Encode writes r as the wire JSON object (empty fields omitted).
func (r *Refund) Encode() []byte {
	m := make(map[string]string, 7)
	for _, kv := range r.fields() {
		if kv[1] != "" {
			m[kv[0]] = kv[1]
		}
	}
	if r.Sign != "" {
		m["sign"] = r.Sign
	}
	b, _ := json.Marshal(m)
	return b
}
