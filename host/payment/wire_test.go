package payment_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/payment"
)

func TestDecodeCreate(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		code     string
	}{
		{"ok", `{"amount": 12850, "description": "电费 E1001", "key": "o-1"}`, ""},
		{"ok with payee", `{"amount": 1, "description": "d", "key": "k", "payee": "state-grid"}`, ""},
		{"fraction", `{"amount": 12.5, "description": "d", "key": "k"}`, jifu.CodeInvalid},
		{"string amount", `{"amount": "100", "description": "d", "key": "k"}`, jifu.CodeInvalid},
		{"overflow", `{"amount": 99999999999999999999, "description": "d", "key": "k"}`, jifu.CodeInvalid},
		{"unknown field", `{"amount": 1, "description": "d", "key": "k", "user": "someone-else"}`, jifu.CodeInvalid},
		{"trailing", `{"amount": 1, "description": "d", "key": "k"} {}`, jifu.CodeInvalid},
		{"not an object", `[1]`, jifu.CodeInvalid},
		{"empty", ``, jifu.CodeInvalid},
		{"missing key", `{"amount": 1, "description": "d"}`, jifu.CodeInvalid},
		{"too large", `{"amount": 1, "key": "k", "description": "` + strings.Repeat("x", payment.MaxRequestBytes) + `"}`, jifu.CodeTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := payment.DecodeCreate([]byte(tc.in), "app", "u1")
			if jifu.ErrorCode(err) != tc.code {
				t.Fatalf("got %v, want %q", err, tc.code)
			}
			if err == nil && (r.App != "app" || r.User != "u1") {
				t.Fatalf("app and user must come from the host: %+v", r)
			}
		})
	}
}

func TestDecodeRefundAndGet(t *testing.T) {
	if r, err := payment.DecodeRefund([]byte(`{"intent_id":"pi_1","key":"r1","amount":5}`)); err != nil || r.Amount != 5 || r.IntentID != "pi_1" {
		t.Fatalf("%+v %v", r, err)
	}
	for _, in := range []string{`{"intent_id":"pi_1","key":"r1","amount":0}`, `{"intent_id":"","key":"r1","amount":1}`,
		`{"intent_id":"pi_1","key":"r1","amount":-1}`, `{"intent_id":"pi_1","amount":1}`, `null`} {
		if _, err := payment.DecodeRefund([]byte(in)); jifu.ErrorCode(err) != jifu.CodeInvalid {
			t.Errorf("%s: %v", in, err)
		}
	}
	if id, err := payment.DecodeGet([]byte(`{"id":"pi_1"}`)); err != nil || id != "pi_1" {
		t.Fatalf("%q %v", id, err)
	}
	if _, err := payment.DecodeGet([]byte(`{"id":""}`)); jifu.ErrorCode(err) != jifu.CodeInvalid {
		t.Fatalf("empty id: %v", err)
	}
}

// The decoders read what apps send: any input either decodes into a valid
// request or fails with a stable code, never panics.
func FuzzDecodeCreate(f *testing.F) {
	f.Add([]byte(`{"amount": 12850, "description": "电费", "key": "o-1"}`))
	f.Add([]byte(`{"amount": 1e3, "description": "d", "key": "k", "payee": "p"}`))
	f.Add([]byte(`{"amount": -1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := payment.DecodeCreate(b, "app", "u1")
		if err != nil {
			if c := jifu.ErrorCode(err); c != jifu.CodeInvalid && c != jifu.CodeTooLarge {
				t.Fatalf("code %q: %v", c, err)
			}
			return
		}
		if r.Validate() != nil || r.Amount <= 0 || r.Amount > payment.MaxAmount || r.App != "app" || r.User != "u1" {
			t.Fatalf("accepted an invalid request %+v", r)
		}
		if _, err := json.Marshal(payment.CreateArgs{Amount: r.Amount, Payee: r.Payee, Description: r.Description, Key: r.Key}); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzDecodeRefund(f *testing.F) {
	f.Add([]byte(`{"intent_id":"pi_1","key":"r1","amount":5}`))
	f.Add([]byte(`{"intent_id":"pi_1","key":"r1","amount":5.0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := payment.DecodeRefund(b)
		if err != nil {
			if c := jifu.ErrorCode(err); c != jifu.CodeInvalid && c != jifu.CodeTooLarge {
				t.Fatalf("code %q: %v", c, err)
			}
			return
		}
		if r.Validate() != nil || r.Amount <= 0 {
			t.Fatalf("accepted an invalid request %+v", r)
		}
	})
}

func FuzzDecodeGet(f *testing.F) {
	f.Add([]byte(`{"id":"pi_1"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := payment.DecodeGet(b)
		if err != nil {
			if c := jifu.ErrorCode(err); c != jifu.CodeInvalid && c != jifu.CodeTooLarge {
				t.Fatalf("code %q: %v", c, err)
			}
			return
		}
		if id == "" || len(id) > 64 {
			t.Fatalf("accepted id %q", id)
		}
	})
}
