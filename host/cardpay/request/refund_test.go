package request

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/jifu-open/jifu"
)

func sampleRefund() *Refund {
	r := &Refund{OrgID: "ORG1", MerchantID: "M100", OrderID: "A-1", RefundID: "R-1", AmountText: "5000", Timestamp: "1764720000"}
	r.Sign = r.ComputeSign("pay-secret-123")
	return r
}

func TestRefundSign(t *testing.T) {
	r := sampleRefund()
	const want = "amount=5000&merchant_id=M100&order_id=A-1&org_id=ORG1&refund_id=R-1&timestamp=1764720000"
	if r.Canonical() != want {
		t.Fatalf("canonical %q", r.Canonical())
	}
	// Recomputed here from the documented rule with the standard library,
	// and the docs' vector (computed with Python's hmac).
	m := hmac.New(sha256.New, []byte("pay-secret-123"))
	m.Write([]byte(want))
	if r.Sign != hex.EncodeToString(m.Sum(nil)) || r.Sign != "2329806feb24696fc90b3420fbab2f7fdac85d69e92cf2479c3755fe699d7f45" {
		t.Fatal("sign is not HMAC-SHA256 of the canonical string")
	}
	got, err := DecodeRefund(r.Encode())
	if err != nil || got.Amount != 5000 || got.Verify("pay-secret-123") != nil {
		t.Fatalf("round trip %+v %v", got, err)
	}
	got.AmountText = "5001"
	if jifu.ErrorCode(got.Verify("pay-secret-123")) != jifu.CodeDenied {
		t.Fatal("altered amount verified")
	}
	if strings.Contains(r.String(), r.Sign) {
		t.Fatal("String shows the sign")
	}
}

func TestDecodeRefundRefuses(t *testing.T) {
	body := sampleRefund().Encode()
	mod := func(f func(m map[string]any)) []byte {
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	for _, tt := range []struct {
		name string
		body []byte
		code string
	}{
		{"valid", body, ""},
		{"not json", []byte("amount=1"), jifu.CodeInvalid},
		{"number amount", mod(func(m map[string]any) { m["amount"] = 5000 }), jifu.CodeInvalid},
		{"unknown field", mod(func(m map[string]any) { m["ksn"] = "x" }), jifu.CodeInvalid},
		{"zero amount", mod(func(m map[string]any) { m["amount"] = "0" }), jifu.CodeInvalid},
		{"no refund_id", mod(func(m map[string]any) { delete(m, "refund_id") }), jifu.CodeInvalid},
		{"bad refund_id", mod(func(m map[string]any) { m["refund_id"] = "r 1" }), jifu.CodeInvalid},
		{"no order", mod(func(m map[string]any) { delete(m, "order_id") }), jifu.CodeInvalid},
		{"timestamp", mod(func(m map[string]any) { m["timestamp"] = "soon" }), jifu.CodeInvalid},
		{"sign", mod(func(m map[string]any) { m["sign"] = "00" }), jifu.CodeInvalid},
		{"trailing", append(append([]byte{}, body...), '{', '}'), jifu.CodeInvalid},
		{"too large", append([]byte(`{"order_id":"`), make([]byte, MaxBody)...), jifu.CodeTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeRefund(tt.body); jifu.ErrorCode(err) != tt.code {
				t.Fatalf("err = %v, want %q", err, tt.code)
			}
		})
	}
}

func FuzzDecodeRefund(f *testing.F) {
	f.Add(sampleRefund().Encode())
	f.Add([]byte(`{"amount":"1"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRefund(b)
		if err != nil {
			if c := jifu.ErrorCode(err); c != jifu.CodeInvalid && c != jifu.CodeTooLarge {
				t.Fatalf("code %v", err)
			}
			return
		}
		if r.Amount <= 0 || r.RefundID == "" {
			t.Fatal("accepted a refund without amount or id")
		}
		again, err := DecodeRefund(r.Encode())
		if err != nil || again.Canonical() != r.Canonical() {
			t.Fatalf("re-encoding changed the request: %v", err)
		}
	})
}
