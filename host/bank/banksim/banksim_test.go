package banksim_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/bank"
	"github.com/jifu-open/jifu/host/bank/banksim"
	"github.com/jifu-open/jifu/host/bank/banktest"
	"github.com/jifu-open/jifu/host/database/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func TestOrders(t *testing.T) {
	ctx := context.Background()
	b := banktest.Start(t, dbtest.Pool(t), banktest.Options{Float: 100_00})
	acct := b.Account(t, 50_00)

	// Debit, replayed: one effect, the same answer.
	o := bank.Order{ID: "d1", Account: acct, Amount: 20_00}
	first, err := b.Client.Debit(ctx, o)
	if err != nil || first.Status != bank.Succeeded || first.BankRef == "" {
		t.Fatalf("debit: %+v, %v", first, err)
	}
	again, err := b.Client.Debit(ctx, o)
	if err != nil || again.BankRef != first.BankRef || again.Status != bank.Succeeded {
		t.Fatalf("replay: %+v, %v", again, err)
	}
	if b.Balance(t, acct) != 30_00 || b.Balance(t, b.Settlement) != 120_00 {
		t.Fatalf("balances %d, %d", b.Balance(t, acct), b.Balance(t, b.Settlement))
	}
	// The same id for other content is a conflict: the outcome stays unknown to the caller.
	if res, err := b.Client.Debit(ctx, bank.Order{ID: "d1", Account: acct, Amount: 1}); res.Status != bank.Unknown || err == nil {
		t.Fatalf("id reuse: %+v, %v", res, err)
	}
	tests := []struct {
		name   string
		order  bank.Order
		credit bool
		reason string
	}{
		{"overdraft of the customer", bank.Order{ID: "d2", Account: acct, Amount: 30_01}, false, bank.ReasonInsufficientFunds},
		{"overdraft of the merchant", bank.Order{ID: "c1", Account: acct, Amount: 120_01}, true, bank.ReasonInsufficientFunds},
		{"no such account", bank.Order{ID: "d3", Account: b.Unopened(), Amount: 1}, false, bank.ReasonNoAccount},
		{"the merchant's own account", bank.Order{ID: "d4", Account: b.Settlement, Amount: 1}, false, bank.ReasonNoAccount},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			call := b.Client.Debit
			if tc.credit {
				call = b.Client.Credit
			}
			res, err := call(ctx, tc.order)
			if err != nil || res.Status != bank.Failed || res.Reason != tc.reason {
				t.Fatalf("got %+v, %v; want %s", res, err, tc.reason)
			}
			if b.Balance(t, acct) != 30_00 || b.Balance(t, b.Settlement) != 120_00 {
				t.Fatal("a refusal moved money")
			}
		})
	}
	// Status: known ids answer their outcome; an unknown id is closed.
	if res, err := b.Client.Status(ctx, "d1"); err != nil || res.Status != bank.Succeeded || res.BankRef != first.BankRef {
		t.Fatalf("status d1: %+v, %v", res, err)
	}
	if res, err := b.Client.Status(ctx, "never"); err != nil || res.Status != bank.Failed || res.Reason != bank.ReasonNotReceived {
		t.Fatalf("status never: %+v, %v", res, err)
	}
	if res, err := b.Client.Credit(ctx, bank.Order{ID: "never", Account: acct, Amount: 1}); err != nil || res.Reason != bank.ReasonNotReceived {
		t.Fatalf("late order of a closed id: %+v, %v", res, err)
	}
	st, err := b.Client.Statement(ctx, time.Now())
	if err != nil || len(st.Lines) != 1 || st.Debits != 20_00 || st.Credits != 0 || st.Merchant != b.Merchant {
		t.Fatalf("statement: %+v, %v", st, err)
	}
}

func TestConcurrentSameOrder(t *testing.T) {
	ctx := context.Background()
	b := banktest.Start(t, dbtest.Pool(t), banktest.Options{})
	acct := b.Account(t, 100_00)
	var wg sync.WaitGroup
	refs := make([]string, 30)
	for i := range refs {
		wg.Go(func() {
			res, err := b.Client.Debit(ctx, bank.Order{ID: "same", Account: acct, Amount: 7_00})
			if err != nil {
				t.Error(err)
			}
			refs[i] = res.BankRef
		})
	}
	wg.Wait()
	for _, r := range refs {
		if r != refs[0] {
			t.Fatalf("refs differ: %v", refs)
		}
	}
	if got := b.Balance(t, acct); got != 93_00 {
		t.Fatalf("balance %d; want one debit", got)
	}
}

// TestRejectedRequests: requests the bank must refuse without doing
// anything, with the status and code it answers.
func TestRejectedRequests(t *testing.T) {
	b := banktest.Start(t, dbtest.Pool(t), banktest.Options{})
	acct := b.Account(t, 100_00)
	body := `{"request_id":"r1","kind":"debit","account":"` + acct + `","amount":100}`
	send := func(merchant, secret, idem, body string, ts time.Time, tamper bool) int {
		req, _ := http.NewRequest("POST", b.URL+"/v1/orders", strings.NewReader(body))
		req.Header.Set(bank.HeaderMerchant, merchant)
		req.Header.Set(bank.HeaderIdemKey, idem)
		bank.SetSignature(req.Header, []byte(secret), ts, "POST", "/v1/orders", []byte(body))
		if tamper {
			req.Body = nopCloser{bytes.NewReader([]byte(strings.Replace(body, "100", "900", 1)))}
			req.ContentLength = int64(len(body))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	sec := string(b.Secret)
	tests := []struct {
		name string
		code int
		do   func() int
	}{
		{"unknown merchant", 401, func() int { return send("nobody", sec, "r1", body, time.Now(), false) }},
		{"wrong secret", 401, func() int { return send(b.Merchant, "not the secret at all", "r1", body, time.Now(), false) }},
		{"stale", 401, func() int { return send(b.Merchant, sec, "r1", body, time.Now().Add(-time.Hour), false) }},
		{"tampered amount", 401, func() int { return send(b.Merchant, sec, "r1", body, time.Now(), true) }},
		{"idempotency key differs", 400, func() int { return send(b.Merchant, sec, "r2", body, time.Now(), false) }},
		{"malformed JSON", 400, func() int { return send(b.Merchant, sec, "r1", "{", time.Now(), false) }},
		{"invalid order", 400, func() int {
			return send(b.Merchant, sec, "r1", strings.Replace(body, "100", "-1", 1), time.Now(), false)
		}},
		{"too large", 413, func() int {
			return send(b.Merchant, sec, "r1", body[:len(body)-1]+`,"memo":"`+strings.Repeat("x", 20<<10)+`"}`, time.Now(), false)
		}},
	}
	for _, tc := range tests {
		if got := tc.do(); got != tc.code {
			t.Errorf("%s: HTTP %d; want %d", tc.name, got, tc.code)
		}
	}
	if got := b.Balance(t, acct); got != 100_00 {
		t.Fatalf("a rejected request moved money: %d", got)
	}
	if st, _ := b.Client.Statement(context.Background(), time.Now()); len(st.Lines) != 0 {
		t.Fatalf("statement lists rejected requests: %+v", st)
	}
	if got := send(b.Merchant, sec, "r1", body, time.Now(), false); got != 200 {
		t.Fatalf("the well-formed request: HTTP %d", got)
	}
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func TestNewAndAdmin(t *testing.T) {
	pool := dbtest.Pool(t)
	bad := []banksim.Config{
		{},
		{Pool: pool},
		{Pool: pool, Merchants: []banksim.Merchant{{ID: "m", Secret: []byte("short"), Account: "9558800000000001"}}},
		{Pool: pool, Merchants: []banksim.Merchant{{ID: "m", Secret: []byte("0123456789abcdef"), Account: "x"}}},
	}
	for i, cfg := range bad {
		if _, err := banksim.New(cfg); jifu.ErrorCode(err) != jifu.CodeInvalid {
			t.Errorf("config %d: %v", i, err)
		}
	}
	b := banktest.Start(t, pool, banktest.Options{})
	ctx := context.Background()
	if err := b.Sim.OpenAccount(ctx, "12", "x", 0); jifu.ErrorCode(err) != jifu.CodeInvalid {
		t.Errorf("open malformed: %v", err)
	}
	if _, err := b.Sim.Balance(ctx, b.Unopened()); jifu.ErrorCode(err) != jifu.CodeNotFound {
		t.Errorf("balance of nothing: %v", err)
	}
	if err := b.Sim.Freeze(ctx, b.Unopened(), true); jifu.ErrorCode(err) != jifu.CodeNotFound {
		t.Errorf("freeze nothing: %v", err)
	}
}
