package bank_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/bank"
)

var secret = []byte("0123456789abcdef0123")

func TestMask(t *testing.T) {
	tests := []struct{ in, want string }{
		{"6222020200112233445", "622202*********3445"},
		{"62220202001122", "622202****1122"},
		{"12345678", "****5678"},
		{"1234567", "****"},
		{"6222-0202", "****"},
		{"", "****"},
	}
	for _, tc := range tests {
		if got := bank.Mask(tc.in); got != tc.want {
			t.Errorf("Mask(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

func TestOrderValidate(t *testing.T) {
	ok := bank.Order{ID: "jf0a1", Kind: bank.Debit, Account: "6222020200112233445", Amount: 1}
	tests := []struct {
		name string
		edit func(*bank.Order)
		bad  bool
	}{
		{"valid", func(*bank.Order) {}, false},
		{"empty id", func(o *bank.Order) { o.ID = "" }, true},
		{"id with a slash", func(o *bank.Order) { o.ID = "a/b" }, true},
		{"id starting with a dot", func(o *bank.Order) { o.ID = ".." }, true},
		{"id too long", func(o *bank.Order) { o.ID = strings.Repeat("a", 65) }, true},
		{"kind", func(o *bank.Order) { o.Kind = "refund" }, true},
		{"account letters", func(o *bank.Order) { o.Account = "62220202001122334x" }, true},
		{"account short", func(o *bank.Order) { o.Account = "1234567" }, true},
		{"zero amount", func(o *bank.Order) { o.Amount = 0 }, true},
		{"long memo", func(o *bank.Order) { o.Memo = strings.Repeat("m", 129) }, true},
	}
	for _, tc := range tests {
		o := ok
		tc.edit(&o)
		if err := o.Validate(); (err != nil) != tc.bad || (err != nil && jifu.ErrorCode(err) != jifu.CodeInvalid) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"a":1}`)
	good := http.Header{}
	bank.SetSignature(good, secret, now, "POST", "/v1/orders", body)
	tests := []struct {
		name   string
		h      http.Header
		secret []byte
		now    time.Time
		path   string
		body   []byte
		ok     bool
	}{
		{"good", good, secret, now, "/v1/orders", body, true},
		{"clock within skew", good, secret, now.Add(4 * time.Minute), "/v1/orders", body, true},
		{"stale", good, secret, now.Add(6 * time.Minute), "/v1/orders", body, false},
		{"from the future", good, secret, now.Add(-6 * time.Minute), "/v1/orders", body, false},
		{"other secret", good, []byte("another secret of ours"), now, "/v1/orders", body, false},
		{"other path", good, secret, now, "/v1/orders/x", body, false},
		{"other body", good, secret, now, "/v1/orders", []byte(`{"a":2}`), false},
		{"no headers", http.Header{}, secret, now, "/v1/orders", body, false},
	}
	for _, tc := range tests {
		err := bank.Verify(tc.h, tc.secret, tc.now, "POST", tc.path, tc.body)
		if (err == nil) != tc.ok || (err != nil && jifu.ErrorCode(err) != jifu.CodeDenied) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// TestClientOutcomes: what the client makes of each kind of answer from a
// (misbehaving) peer.
func TestClientOutcomes(t *testing.T) {
	signed := func(w http.ResponseWriter, r *http.Request, v any) {
		b, _ := json.Marshal(v)
		bank.SetSignature(w.Header(), secret, time.Now(), "RESPONSE", r.URL.Path, b)
		_, _ = w.Write(b)
	}
	tests := []struct {
		name    string
		handler http.HandlerFunc
		status  bank.Status
		code    string
	}{
		{"succeeded", func(w http.ResponseWriter, r *http.Request) {
			signed(w, r, bank.Result{ID: "o1", Status: bank.Succeeded, BankRef: "B1"})
		}, bank.Succeeded, ""},
		{"refused", func(w http.ResponseWriter, r *http.Request) {
			signed(w, r, bank.Result{ID: "o1", Status: bank.Failed, Reason: bank.ReasonInsufficientFunds})
		}, bank.Failed, ""},
		{"unsigned answer", func(w http.ResponseWriter, r *http.Request) {
			_ = json.NewEncoder(w).Encode(bank.Result{ID: "o1", Status: bank.Succeeded})
		}, bank.Unknown, jifu.CodeUnavailable},
		{"answer about another order", func(w http.ResponseWriter, r *http.Request) {
			signed(w, r, bank.Result{ID: "o2", Status: bank.Succeeded})
		}, bank.Unknown, jifu.CodeUnavailable},
		{"answer without an outcome", func(w http.ResponseWriter, r *http.Request) {
			signed(w, r, bank.Result{ID: "o1", Status: "maybe"})
		}, bank.Unknown, jifu.CodeUnavailable},
		{"server error", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(502) }, bank.Unknown, jifu.CodeUnavailable},
		{"conflict", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(409) }, bank.Unknown, jifu.CodeUnavailable},
		{"rejected", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(401)
			_, _ = w.Write([]byte(`{"error":{"code":"denied","message":"bad signature"}}`))
		}, bank.Failed, jifu.CodeDenied},
		{"timeout", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.ReadAll(r.Body) // so that the server notices the client leave
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, bank.Unknown, jifu.CodeTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			c, err := bank.NewClient(bank.ClientConfig{URL: srv.URL, Merchant: "m", Secret: secret, Timeout: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.Credit(context.Background(), bank.Order{ID: "o1", Account: "6222020200112233445", Amount: 5})
			if res.Status != tc.status || jifu.ErrorCode(err) != tc.code {
				t.Fatalf("got %+v, %v; want %s with code %q", res, err, tc.status, tc.code)
			}
		})
	}
	c, _ := bank.NewClient(bank.ClientConfig{URL: "http://127.0.0.1:1", Merchant: "m", Secret: secret})
	if res, err := c.Debit(context.Background(), bank.Order{ID: "o1", Account: "bad", Amount: 5}); res.Status != bank.Failed || jifu.ErrorCode(err) != jifu.CodeInvalid {
		t.Fatalf("invalid order: %+v, %v", res, err)
	}
	if res, err := c.Debit(context.Background(), bank.Order{ID: "o1", Account: "6222020200112233445", Amount: 5}); res.Status != bank.Unknown || err == nil {
		t.Fatalf("unreachable bank: %+v, %v", res, err)
	}
	for _, cfg := range []bank.ClientConfig{{URL: "ftp://x", Merchant: "m", Secret: secret}, {URL: "http://x", Secret: secret}, {URL: "http://x", Merchant: "m", Secret: []byte("short")}} {
		if _, err := bank.NewClient(cfg); jifu.ErrorCode(err) != jifu.CodeInvalid {
			t.Errorf("NewClient(%+v): %v", cfg, err)
		}
	}
}

func FuzzVerify(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	f.Add("1800000000", "00", []byte("{}"))
	f.Add("", "", []byte(nil))
	f.Add("-1", strings.Repeat("a", 64), []byte("x"))
	f.Fuzz(func(t *testing.T, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set(bank.HeaderTime, ts)
		h.Set(bank.HeaderSig, sig)
		err := bank.Verify(h, secret, now, "POST", "/v1/orders", body)
		if err == nil && sig != bank.Sign(secret, mustInt(ts), "POST", "/v1/orders", body) {
			t.Fatalf("accepted a wrong signature %q", sig)
		}
	})
}

func mustInt(s string) int64 {
	var n int64
	_ = json.Unmarshal([]byte(s), &n)
	return n
}

func FuzzOrder(f *testing.F) {
	f.Add([]byte(`{"request_id":"a1","kind":"debit","account":"6222020200112233445","amount":100}`))
	f.Add([]byte(`{"request_id":"","kind":"credit","account":"x","amount":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var o bank.Order
		if json.Unmarshal(b, &o) != nil {
			return
		}
		if err := o.Validate(); err == nil {
			if o.Amount <= 0 || !bank.ValidID(o.ID) || !bank.ValidAccount(o.Account) {
				t.Fatalf("accepted %+v", o)
			}
			if m := bank.Mask(o.Account); strings.Count(m, "*") < len(o.Account)-10 || len(m) != len(o.Account) {
				t.Fatalf("mask %q of %d digits shows too much", m, len(o.Account))
			}
		}
	})
}
