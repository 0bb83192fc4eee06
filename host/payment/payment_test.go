package payment_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/ledger"
	"github.com/jifu-open/jifu/host/payment"
)

func TestCreateIsIdempotent(t *testing.T) {
	e := newEnv(t)
	u := e.user()
	in := e.create(u, 1500, "k1")
	if in.State != payment.StateCreated || in.Amount != 1500 || in.User != u || in.App != e.app || in.Replayed {
		t.Fatalf("created %+v", in)
	}
	if !in.ExpiresAt.Equal(in.CreatedAt.Add(payment.DefaultIntentTTL)) {
		t.Fatalf("expires %v, created %v", in.ExpiresAt, in.CreatedAt)
	}
	again := e.create(u, 1500, "k1")
	if again.ID != in.ID || !again.Replayed {
		t.Fatalf("replay %+v", again)
	}
	_, err := e.svc.Create(e.ctx, payment.CreateRequest{App: e.app, User: u, Amount: 1600, Description: "test k1", Key: "k1"})
	if jifu.ErrorCode(err) != jifu.CodeConflict {
		t.Fatalf("same key, other amount: %v", err)
	}
	// Another app may use the same key.
	other, err := e.svc.Create(e.ctx, payment.CreateRequest{App: e.app + "-b", User: u, Amount: 1600, Description: "x", Key: "k1"})
	if err != nil || other.ID == in.ID {
		t.Fatalf("other app: %+v %v", other, err)
	}
	if _, err := e.svc.Get(e.ctx, e.app+"-b", in.ID); jifu.ErrorCode(err) != jifu.CodeNotFound {
		t.Fatalf("another app's intent: %v", err)
	}

	for _, tc := range []struct {
		name string
		req  payment.CreateRequest
		code string
	}{
		{"zero amount", payment.CreateRequest{App: e.app, User: u, Amount: 0, Description: "d", Key: "z"}, jifu.CodeInvalid},
		{"negative amount", payment.CreateRequest{App: e.app, User: u, Amount: -5, Description: "d", Key: "z"}, jifu.CodeInvalid},
		{"huge amount", payment.CreateRequest{App: e.app, User: u, Amount: payment.MaxAmount + 1, Description: "d", Key: "z"}, jifu.CodeInvalid},
		{"no description", payment.CreateRequest{App: e.app, User: u, Amount: 5, Key: "z"}, jifu.CodeInvalid},
		{"no key", payment.CreateRequest{App: e.app, User: u, Amount: 5, Description: "d"}, jifu.CodeInvalid},
		{"control char", payment.CreateRequest{App: e.app, User: u, Amount: 5, Description: "a\nb", Key: "z"}, jifu.CodeInvalid},
		{"no user", payment.CreateRequest{App: e.app, Amount: 5, Description: "d", Key: "z"}, jifu.CodeDenied},
		{"unknown payee", payment.CreateRequest{App: e.app, User: u, Payee: "nobody", Amount: 5, Description: "d", Key: "z"}, jifu.CodeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.svc.Create(e.ctx, tc.req); jifu.ErrorCode(err) != tc.code {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
		})
	}
}

func TestPayWithBalance(t *testing.T) {
	e := newEnv(t)
	u := e.user()
	e.fund(u, 10_000)
	in := e.create(u, 2_500, "order-1")

	// Nothing moves before the user confirms.
	if w := e.wallet(u); w.Available() != 10_000 || w.DebitsPending != 0 {
		t.Fatalf("wallet before confirmation: %+v", w)
	}
	// Only the intent's user may confirm.
	if _, err := e.svc.Confirm(e.ctx, in.ID, e.user(), balanceOnly(u, 2_500)); jifu.ErrorCode(err) != jifu.CodeDenied {
		t.Fatalf("another user confirms: %v", err)
	}
	for _, bad := range [][]payment.Split{
		nil,
		{{Method: payment.MethodBalance, Amount: 2_000}},
		{{Method: "card", Amount: 2_500}},
		{{Method: payment.MethodBalance, Amount: 1_250}, {Method: payment.MethodBalance, Amount: 1_250}},
		{{Method: payment.MethodBalance, Amount: 3_000}, {Method: payment.MethodCredit, Amount: -500}},
	} {
		if _, err := e.svc.Confirm(e.ctx, in.ID, u, bad); jifu.ErrorCode(err) != jifu.CodeInvalid {
			t.Fatalf("split %+v: %v", bad, err)
		}
	}
	if got, _ := e.svc.Get(e.ctx, e.app, in.ID); got.State != payment.StateCreated || len(got.Parts) != 0 {
		t.Fatalf("refused confirmations changed the intent: %+v", got)
	}
	if w := e.wallet(u); w.Available() != 10_000 {
		t.Fatalf("refused confirmations moved money: %+v", w)
	}

	done, err := e.svc.Confirm(e.ctx, in.ID, u, balanceOnly(u, 2_500))
	if err != nil {
		t.Fatal(err)
	}
	if done.State != payment.StateSucceeded || done.Method != payment.MethodBalance || len(done.Parts) != 1 ||
		done.Parts[0].State != "captured" || done.ConfirmedAt.IsZero() {
		t.Fatalf("paid %+v", done)
	}
	if w := e.wallet(u); w.Available() != 7_500 || w.DebitsPending != 0 {
		t.Fatalf("wallet after: %+v", w)
	}
	if p := e.payee(); p.Available() != 2_500 {
		t.Fatalf("payee after: %+v", p)
	}
	if got := e.events(in.ID); !slices.Equal(got, []string{payment.EventSucceeded}) {
		t.Fatalf("events %v", got)
	}
	body := e.eventBodies(in.ID, payment.EventSucceeded)[0]
	if body.Intent.State != payment.StateSucceeded || body.Intent.Amount != 2_500 || body.Intent.Key != "order-1" {
		t.Fatalf("event body %+v", body)
	}
	if _, err := e.svc.Confirm(e.ctx, in.ID, u, balanceOnly(u, 2_500)); jifu.ErrorCode(err) != jifu.CodeConflict {
		t.Fatalf("second confirmation: %v", err)
	}
	if w := e.wallet(u); w.Available() != 7_500 {
		t.Fatalf("second confirmation moved money: %+v", w)
	}
	e.check()
}

func TestInsufficientBalanceFails(t *testing.T) {
	e := newEnv(t)
	u := e.user()
	e.fund(u, 1_000)
	in := e.create(u, 1_001, "too-much")
	got, err := e.svc.Confirm(e.ctx, in.ID, u, balanceOnly(u, 1_001))
	if err != nil {
		t.Fatal(err)
	}
	if got.State != payment.StateFailed || got.Failure == "" || got.Parts[0].State != "failed" {
		t.Fatalf("intent %+v", got)
	}
	if w := e.wallet(u); w.Available() != 1_000 || w.DebitsPending != 0 {
		t.Fatalf("wallet %+v", w)
	}
	// A user without a wallet: refused the same way, and no wallet appears.
	v := e.user()
	in2 := e.create(v, 100, "no-wallet")
	if got, err := e.svc.Confirm(e.ctx, in2.ID, v, balanceOnly(v, 100)); err != nil || got.State != payment.StateFailed {
		t.Fatalf("no wallet: %+v %v", got, err)
	}
	if _, err := e.l.FindAccount(e.ctx, ledger.Owner{Type: ledger.OwnerUser, ID: v}, "wallet"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("a wallet was created: %v", err)
	}
	if got := e.events(in.ID); !slices.Equal(got, []string{payment.EventFailed}) {
		t.Fatalf("events %v", got)
	}
}

func TestCreditLine(t *testing.T) {
	e := newEnv(t)
	u := e.user()
	if c, err := e.svc.CreditLine(e.ctx, u); err != nil || c != (payment.CreditLine{User: u}) {
		t.Fatalf("no line: %+v %v", c, err)
	}
	if _, err := e.l.FindAccount(e.ctx, ledger.Owner{Type: ledger.OwnerUser, ID: u}, "credit_line"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("reading a line created it: %v", err)
	}
	c, err := e.svc.SetCreditLimit(e.ctx, u, 5_000)
	if err != nil || c.Limit != 5_000 || c.Available != 5_000 || c.Used != 0 {
		t.Fatalf("line %+v %v", c, err)
	}
	in := e.create(u, 3_000, "credit-1")
	got, err := e.svc.Confirm(e.ctx, in.ID, u, []payment.Split{{Method: payment.MethodCredit, Amount: 3_000}})
	if err != nil || got.State != payment.StateSucceeded || got.Method != payment.MethodCredit {
		t.Fatalf("credit payment %+v %v", got, err)
	}
	if c, _ := e.svc.CreditLine(e.ctx, u); c.Used != 3_000 || c.Available != 2_000 {
		t.Fatalf("line after payment %+v", c)
	}
	if p := e.payee(); p.Available() != 3_000 {
		t.Fatalf("payee %+v", p)
	}
	// The limit cannot drop below what is used.
	if _, err := e.svc.SetCreditLimit(e.ctx, u, 2_000); !errors.Is(err, ledger.ErrExceedsCredits) {
		t.Fatalf("limit below use: %v", err)
	}
	if c, err := e.svc.SetCreditLimit(e.ctx, u, 4_000); err != nil || c.Available != 1_000 || c.Used != 3_000 {
		t.Fatalf("lower limit %+v %v", c, err)
	}
	// Over the line: refused, nothing reserved.
	in2 := e.create(u, 1_001, "credit-2")
	got, err = e.svc.Confirm(e.ctx, in2.ID, u, []payment.Split{{Method: payment.MethodCredit, Amount: 1_001}})
	if err != nil || got.State != payment.StateFailed {
		t.Fatalf("over the line %+v %v", got, err)
	}
	if c, _ := e.svc.CreditLine(e.ctx, u); c.Available != 1_000 {
		t.Fatalf("line after refusal %+v", c)
	}
	// A refund restores the line.
	if _, err := e.svc.Refund(e.ctx, e.app, payment.RefundRequest{IntentID: in.ID, Key: "r1", Amount: 1_000}); err != nil {
		t.Fatal(err)
	}
	if c, _ := e.svc.CreditLine(e.ctx, u); c.Available != 2_000 || c.Used != 2_000 {
		t.Fatalf("line after refund %+v", c)
	}
	e.check()
}

func TestCombinedPayment(t *testing.T) {
	e := newEnv(t)
	u := e.user()
	e.fund(u, 3_000)
	if _, err := e.svc.SetCreditLimit(e.ctx, u, 2_000); err != nil {
		t.Fatal(err)
	}
	av, err := e.svc.Available(e.ctx, u)
	if err != nil || av[payment.MethodBalance] != 3_000 || av[payment.MethodCredit] != 2_000 {
		t.Fatalf("available %v %v", av, err)
	}

	// 4,000 = 3,000 from the wallet + 1,000 on credit.
	in := e.create(u, 4_000, "combined-ok")
	got, err := e.svc.Confirm(e.ctx, in.ID, u, []payment.Split{{Method: payment.MethodBalance, Amount: 3_000}, {Method: payment.MethodCredit, Amount: 1_000}})
	if err != nil || got.State != payment.StateSucceeded || got.Method != payment.MethodCombined || len(got.Parts) != 2 {
		t.Fatalf("combined %+v %v", got, err)
	}
	if w := e.wallet(u); w.Available() != 0 {
		t.Fatalf("wallet %+v", w)
	}
	if p := e.payee(); p.Available() != 4_000 {
		t.Fatalf("payee %+v", p)
	}

	// Atomicity: the wallet part is authorized first, then the credit part
	// is refused; the wallet's hold is voided and nothing moves.
	e.fund(u, 2_000)
	in2 := e.create(u, 3_500, "combined-refused")
	got, err = e.svc.Confirm(e.ctx, in2.ID, u, []payment.Split{{Method: payment.MethodBalance, Amount: 2_000}, {Method: payment.MethodCredit, Amount: 1_500}})
	if err != nil {
		t.Fatal(err)
	}
	if got.State != payment.StateFailed || got.Parts[0].State != "voided" || got.Parts[1].State != "failed" {
		t.Fatalf("refused combined %+v", got)
	}
	if w := e.wallet(u); w.Available() != 2_000 || w.DebitsPending != 0 {
		t.Fatalf("wallet after refused combined %+v", w)
	}
	if c, _ := e.svc.CreditLine(e.ctx, u); c.Available != 1_000 {
		t.Fatalf("line after refused combined %+v", c)
	}
	if p := e.payee(); p.Available() != 4_000 || p.CreditsPending != 0 {
		t.Fatalf("payee after refused combined %+v", p)
	}
	if got := e.events(in2.ID); !slices.Equal(got, []string{payment.EventFailed}) {
		t.Fatalf("events %v", got)
	}
	e.check()
}

// flaky is the balance method with failures injected at capture: what a
// process dying between authorization and capture leaves behind.
type flaky struct {
	payment.Balance
	failCapture   atomic.Bool
	failAuthorize atomic.Bool
	failIntent    atomic.Value // string: capture fails for this intent only
}

func (f *flaky) Authorize(ctx context.Context, l *ledger.Ledger, r payment.Ref, timeout time.Duration) ([]int64, error) {
	if f.failAuthorize.Load() {
		return nil, jifu.Errorf(jifu.CodeUnavailable, "injected: the process died")
	}
	return f.Balance.Authorize(ctx, l, r, timeout)
}

func (f *flaky) Capture(ctx context.Context, l *ledger.Ledger, r payment.Ref, holds []int64) error {
	if id, _ := f.failIntent.Load().(string); f.failCapture.Load() || id == r.IntentID {
		return jifu.Errorf(jifu.CodeUnavailable, "injected: the process died")
	}
	return f.Balance.Capture(ctx, l, r, holds)
}

func TestResume(t *testing.T) {
	fl := &flaky{}
	e := newEnv(t, func(c *payment.Config) {
		c.Methods = []payment.Method{fl, payment.Credit{}}
		c.Lease = time.Minute
		c.HoldTimeout = 10 * time.Minute
	})
	u := e.user()
	e.fund(u, 5_000)

	fl.failCapture.Store(true)
	in := e.create(u, 1_000, "resume-1")
	if _, err := e.svc.Confirm(e.ctx, in.ID, u, balanceOnly(u, 1_000)); jifu.ErrorCode(err) != jifu.CodeUnavailable {
		t.Fatalf("confirm with a dying capture: %v", err)
	}
	in2 := e.create(u, 2_000, "resume-2")
	if _, err := e.svc.Confirm(e.ctx, in2.ID, u, balanceOnly(u, 2_000)); jifu.ErrorCode(err) != jifu.CodeUnavailable {
		t.Fatalf("confirm with a dying capture: %v", err)
	}
	if got, _ := e.svc.Intent(e.ctx, in.ID); got.State != payment.StateAuthorized {
		t.Fatalf("after the crash %+v", got)
	}
	if w := e.wallet(u); w.DebitsPending != 3_000 {
		t.Fatalf("held %+v", w)
	}
	fl.failCapture.Store(false)

	// Within the lease Resume leaves them to their process.
	if n, err := e.svc.Resume(e.ctx); err != nil || n != 0 {
		t.Fatalf("resume within the lease: %d %v", n, err)
	}
	// After the lease the first is completed...
	e.clk.Add(2 * time.Minute)
	n, err := e.svc.Resume(e.ctx)
	if err != nil || n != 2 {
		t.Fatalf("resume: %d %v", n, err)
	}
	if got, _ := e.svc.Intent(e.ctx, in.ID); got.State != payment.StateSucceeded {
		t.Fatalf("resumed %+v", got)
	}
	if w := e.wallet(u); w.Available() != 2_000 || w.DebitsPending != 0 {
		t.Fatalf("wallet after resume %+v", w)
	}
	if got := e.events(in.ID); !slices.Equal(got, []string{payment.EventSucceeded}) {
		t.Fatalf("events %v", got)
	}

	// ...and one whose holds expired before anyone came back is voided.
	fl.failCapture.Store(true)
	in3 := e.create(u, 1_500, "resume-3")
	if _, err := e.svc.Confirm(e.ctx, in3.ID, u, balanceOnly(u, 1_500)); err == nil {
		t.Fatal("capture did not fail")
	}
	fl.failCapture.Store(false)
	e.clk.Add(11 * time.Minute)
	if _, err := e.l.ExpireHolds(e.ctx, e.clk.Now()); err != nil {
		t.Fatal(err)
	}
	if n, err := e.svc.Resume(e.ctx); err != nil || n != 1 {
		t.Fatalf("resume: %d %v", n, err)
	}
	got, _ := e.svc.Intent(e.ctx, in3.ID)
	if got.State != payment.StateFailed || got.Parts[0].State != "voided" {
		t.Fatalf("expired holds: %+v", got)
	}
	if w := e.wallet(u); w.Available() != 2_000 || w.DebitsPending != 0 {
		t.Fatalf("wallet after expired holds %+v", w)
	}

	// Died right after the confirmation was recorded, before any hold:
	// Resume authorizes and captures.
	fl.failAuthorize.Store(true)
	in4 := e.create(u, 700, "resume-4")
	if _, err := e.svc.Confirm(e.ctx, in4.ID, u, balanceOnly(u, 700)); jifu.ErrorCode(err) != jifu.CodeUnavailable {
		t.Fatalf("confirm with a dying authorization: %v", err)
	}
	if got, _ := e.svc.Intent(e.ctx, in4.ID); got.State != payment.StateConfirmed || got.Parts[0].State != "pending" {
		t.Fatalf("after the crash %+v", got)
	}
	fl.failAuthorize.Store(false)
	e.clk.Add(2 * time.Minute)
	if n, err := e.svc.Resume(e.ctx); err != nil || n != 1 {
		t.Fatalf("resume: %d %v", n, err)
	}
	if got, _ := e.svc.Intent(e.ctx, in4.ID); got.State != payment.StateSucceeded {
		t.Fatalf("resumed %+v", got)
	}
	if w := e.wallet(u); w.Available() != 1_300 || w.DebitsPending != 0 {
		t.Fatalf("wallet %+v", w)
	}

	// One intent that still cannot finish does not hold up another.
	fl.failCapture.Store(true)
	stuck := e.create(u, 100, "resume-stuck")
	fine := e.create(u, 200, "resume-fine")
	for _, in := range []payment.Intent{stuck, fine} {
		if _, err := e.svc.Confirm(e.ctx, in.ID, u, balanceOnly(u, in.Amount)); err == nil {
			t.Fatal("capture did not fail")
		}
	}
	fl.failCapture.Store(false)
	fl.failIntent.Store(stuck.ID)
	e.clk.Add(2 * time.Minute)
	if n, err := e.svc.Resume(e.ctx); n != 2 || jifu.ErrorCode(err) != jifu.CodeUnavailable {
		t.Fatalf("resume with one stuck intent: %d %v", n, err)
	}
	if got, _ := e.svc.Intent(e.ctx, fine.ID); got.State != payment.StateSucceeded {
		t.Fatalf("the other intent %+v", got)
	}
	if got, _ := e.svc.Intent(e.ctx, stuck.ID); got.State != payment.StateAuthorized {
		t.Fatalf("the stuck intent %+v", got)
	}
	fl.failIntent.Store("")
	e.clk.Add(2 * time.Minute)
	if n, err := e.svc.Resume(e.ctx); n != 1 || err != nil {
		t.Fatalf("resume once it can: %d %v", n, err)
	}
	if w := e.wallet(u); w.Available() != 1_000 || w.DebitsPending != 0 {
		t.Fatalf("wallet %+v", w)
	}
	e.check()
}

func TestConcurrentConfirmations(t *testing.T) {
	e := newEnv(t)
	u := e.user()
	e.fund(u, 1_000)
	in := e.create(u, 600, "double-click")
	const n = 10
	var wg sync.WaitGroup
	var ok, conflict atomic.Int64
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := e.svc.Confirm(e.ctx, in.ID, u, balanceOnly(u, 600))
			switch {
			case err == nil && got.State == payment.StateSucceeded:
				ok.Add(1)
			case jifu.ErrorCode(err) == jifu.CodeConflict:
				conflict.Add(1)
			default:
				t.Errorf("confirm: %+v %v", got.State, err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 || conflict.Load() != n-1 {
		t.Fatalf("%d confirmations went through, %d refused", ok.Load(), conflict.Load())
	}
	if w := e.wallet(u); w.Available() != 400 {
		t.Fatalf("wallet %+v", w)
	}
	if got := e.events(in.ID); len(got) != 1 {
		t.Fatalf("events %v", got)
	}
}

func TestExpiry(t *testing.T) {
	e := newEnv(t)
	u := e.user()
	e.fund(u, 1_000)
	in := e.create(u, 500, "exp-1")
	in2 := e.create(u, 500, "exp-2")
	if n, err := e.svc.ExpireIntents(e.ctx); err != nil || n != 0 {
		t.Fatalf("early sweep %d %v", n, err)
	}
	e.clk.Add(payment.DefaultIntentTTL)
	n, err := e.svc.ExpireIntents(e.ctx)
	if err != nil || n < 2 {
		t.Fatalf("sweep %d %v", n, err)
	}
	got, _ := e.svc.Intent(e.ctx, in.ID)
	if got.State != payment.StateExpired {
		t.Fatalf("%+v", got)
	}
	if _, err := e.svc.Confirm(e.ctx, in.ID, u, balanceOnly(u, 500)); jifu.ErrorCode(err) != jifu.CodeConflict {
		t.Fatalf("confirm expired: %v", err)
	}
	if got := e.events(in2.ID); !slices.Equal(got, []string{payment.EventExpired}) {
		t.Fatalf("events %v", got)
	}
	// A confirmation arriving after the expiry but before the sweep also
	// finds it expired.
	in3 := e.create(u, 500, "exp-3")
	e.clk.Add(payment.DefaultIntentTTL + time.Second)
	if _, err := e.svc.Confirm(e.ctx, in3.ID, u, balanceOnly(u, 500)); jifu.ErrorCode(err) != jifu.CodeConflict {
		t.Fatalf("confirm past expiry: %v", err)
	}
	if got, _ := e.svc.Intent(e.ctx, in3.ID); got.State != payment.StateExpired {
		t.Fatalf("%+v", got)
	}
	if w := e.wallet(u); w.Available() != 1_000 {
		t.Fatalf("wallet %+v", w)
	}
}

func paidIntent(t *testing.T, e *env, amount int64, key string) (string, payment.Intent) {
	t.Helper()
	u := e.user()
	e.fund(u, amount)
	in := e.create(u, amount, key)
	got, err := e.svc.Confirm(e.ctx, in.ID, u, balanceOnly(u, amount))
	if err != nil || got.State != payment.StateSucceeded {
		t.Fatalf("pay: %+v %v", got, err)
	}
	return u, got
}

func TestRefunds(t *testing.T) {
	e := newEnv(t)
	u, in := paidIntent(t, e, 1_000, "refund-1")
	refund := func(key string, amount int64) (payment.Refund, error) {
		return e.svc.Refund(e.ctx, e.app, payment.RefundRequest{IntentID: in.ID, Key: key, Amount: amount})
	}
	r, err := refund("r1", 300)
	if err != nil || r.State != payment.RefundSucceeded || r.Refunded != 300 || r.Replayed {
		t.Fatalf("refund %+v %v", r, err)
	}
	if got, _ := e.svc.Intent(e.ctx, in.ID); got.State != payment.StatePartiallyRefunded || got.Refunded != 300 {
		t.Fatalf("intent %+v", got)
	}
	again, err := refund("r1", 300)
	if err != nil || !again.Replayed || again.ID != r.ID {
		t.Fatalf("replay %+v %v", again, err)
	}
	for _, tc := range []struct {
		name   string
		key    string
		amount int64
		code   string
	}{
		{"key reused with another amount", "r1", 200, jifu.CodeConflict},
		{"over what remains", "r2", 701, jifu.CodeConflict},
		{"zero", "r3", 0, jifu.CodeInvalid},
		{"no key", "", 5, jifu.CodeInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := refund(tc.key, tc.amount); jifu.ErrorCode(err) != tc.code {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
		})
	}
	if _, err := e.svc.Refund(e.ctx, e.app+"-other", payment.RefundRequest{IntentID: in.ID, Key: "x", Amount: 1}); jifu.ErrorCode(err) != jifu.CodeNotFound {
		t.Fatalf("another app refunds: %v", err)
	}
	if r, err := refund("r4", 700); err != nil || r.Refunded != 700 {
		t.Fatalf("rest %+v %v", r, err)
	}
	if got, _ := e.svc.Intent(e.ctx, in.ID); got.State != payment.StateRefunded || got.Refunded != 1_000 {
		t.Fatalf("intent %+v", got)
	}
	if _, err := refund("r5", 1); jifu.ErrorCode(err) != jifu.CodeConflict {
		t.Fatalf("refund past full: %v", err)
	}
	if w := e.wallet(u); w.Available() != 1_000 {
		t.Fatalf("wallet %+v", w)
	}
	if got := e.events(in.ID); !slices.Equal(got, []string{payment.EventSucceeded, payment.EventRefunded, payment.EventRefunded}) {
		t.Fatalf("events %v", got)
	}
	rs, err := e.svc.Refunds(e.ctx, e.app, in.ID)
	if err != nil || len(rs) != 2 {
		t.Fatalf("refunds %+v %v", rs, err)
	}

	// Not paid: nothing to refund.
	v := e.user()
	open := e.create(v, 100, "unpaid")
	if _, err := e.svc.Refund(e.ctx, e.app, payment.RefundRequest{IntentID: open.ID, Key: "u1", Amount: 100}); jifu.ErrorCode(err) != jifu.CodeConflict {
		t.Fatalf("refund unpaid: %v", err)
	}
	e.check()
}

func TestConcurrentRefunds(t *testing.T) {
	e := newEnv(t)
	const workers = 20

	// The same key 20 times at once: one refund.
	u, in := paidIntent(t, e, 1_000, "conc-same")
	var wg sync.WaitGroup
	ids := make([]string, workers)
	errs := make([]error, workers)
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := e.svc.Refund(e.ctx, e.app, payment.RefundRequest{IntentID: in.ID, Key: "same", Amount: 400})
			ids[i], errs[i] = r.ID, err
		}()
	}
	wg.Wait()
	for i := range workers {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Fatalf("worker %d: %q %v (first %q)", i, ids[i], errs[i], ids[0])
		}
	}
	if w := e.wallet(u); w.Available() != 400 {
		t.Fatalf("wallet after 20 identical refunds %+v", w)
	}

	// 20 different keys of 100 each against 1,000: exactly 10 succeed.
	u2, in2 := paidIntent(t, e, 1_000, "conc-diff")
	var ok, refused atomic.Int64
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.svc.Refund(e.ctx, e.app, payment.RefundRequest{IntentID: in2.ID, Key: "k" + itoa(i), Amount: 100})
			switch jifu.ErrorCode(err) {
			case "":
				ok.Add(1)
			case jifu.CodeConflict:
				refused.Add(1)
			default:
				t.Errorf("refund %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 10 || refused.Load() != 10 {
		t.Fatalf("%d refunds went through, %d refused", ok.Load(), refused.Load())
	}
	if got, _ := e.svc.Intent(e.ctx, in2.ID); got.State != payment.StateRefunded || got.Refunded != 1_000 {
		t.Fatalf("intent %+v", got)
	}
	if w := e.wallet(u2); w.Available() != 1_000 {
		t.Fatalf("wallet %+v", w)
	}
	e.check()
}

func TestPartlyRefusedRefund(t *testing.T) {
	e := newEnv(t)
	u := e.user()
	e.fund(u, 600)
	if _, err := e.svc.SetCreditLimit(e.ctx, u, 1_000); err != nil {
		t.Fatal(err)
	}
	in := e.create(u, 1_000, "partly")
	if got, err := e.svc.Confirm(e.ctx, in.ID, u, []payment.Split{{Method: payment.MethodBalance, Amount: 600},
		{Method: payment.MethodCredit, Amount: 400}}); err != nil || got.State != payment.StateSucceeded {
		t.Fatalf("pay %+v %v", got, err)
	}
	// The app spends what it received but 700: the refund's balance part
	// (600) goes back, its credit part (400) cannot.
	payee, err := e.l.FindAccount(e.ctx, ledger.Owner{Type: ledger.OwnerApp, ID: e.app}, "receivable")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.Transfer(e.ctx, "test", ledger.Transfer{ID: "payout-" + e.app, Debit: payee.ID, Credit: e.bank.ID, Amount: 300, Code: "payout"}); err != nil {
		t.Fatal(err)
	}
	r, err := e.svc.Refund(e.ctx, e.app, payment.RefundRequest{IntentID: in.ID, Key: "all", Amount: 1_000})
	if err != nil || r.State != payment.RefundPartial || r.Refunded != 600 || r.Failure == "" {
		t.Fatalf("refund %+v %v", r, err)
	}
	got, _ := e.svc.Intent(e.ctx, in.ID)
	if got.State != payment.StatePartiallyRefunded || got.Refunded != 600 || got.Parts[0].Refunded != 600 || got.Parts[1].Refunded != 0 {
		t.Fatalf("intent %+v", got)
	}
	if w := e.wallet(u); w.Available() != 600 {
		t.Fatalf("wallet %+v", w)
	}
	if c, _ := e.svc.CreditLine(e.ctx, u); c.Used != 400 {
		t.Fatalf("line %+v", c)
	}
	// The key is spent: a replay answers the same partial refund.
	if again, err := e.svc.Refund(e.ctx, e.app, payment.RefundRequest{IntentID: in.ID, Key: "all", Amount: 1_000}); err != nil || again.ID != r.ID || again.Refunded != 600 {
		t.Fatalf("replay %+v %v", again, err)
	}
	// Nothing left to take: a new refund fails, changing nothing.
	r2, err := e.svc.Refund(e.ctx, e.app, payment.RefundRequest{IntentID: in.ID, Key: "rest", Amount: 400})
	if err != nil || r2.State != payment.RefundFailed || r2.Refunded != 0 {
		t.Fatalf("refund of the rest %+v %v", r2, err)
	}
	if got, _ := e.svc.Intent(e.ctx, in.ID); got.Refunded != 600 {
		t.Fatalf("intent %+v", got)
	}
	bodies := e.eventBodies(in.ID, payment.EventRefundFailed)
	if len(bodies) != 1 || bodies[0].Refund == nil || bodies[0].Refund.State != payment.RefundFailed {
		t.Fatalf("refund_failed events %+v", bodies)
	}
	e.check()
}
