package request

import (
	"log/slog"
	"strconv"
	"time"
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

// Canonical is the string that sign covers.
func (r *Refund) Canonical() string { return canonical(r.fields()) }

// ComputeSign is HMAC-SHA256(paySecret, Canonical()) in lower-case hex.
func (r *Refund) ComputeSign(paySecret string) string { return computeSign(paySecret, r.fields()) }

// Verify checks sign in constant time; CodeDenied when it does not match.
func (r *Refund) Verify(paySecret string) error { return verify(paySecret, r.fields(), r.Sign) }

// Time is the request's timestamp (Unix seconds).
func (r *Refund) Time() time.Time { return unixTime(r.Timestamp) }

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
	var r Refund
	if err := decodeStrict(body, &r, "refund"); err != nil {
		return nil, err
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
func (r *Refund) Encode() []byte { return encode(r.fields(), r.Sign) }
