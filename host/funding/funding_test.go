package funding_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/bank"
	"github.com/jifu-open/jifu/host/bank/banksim"
	"github.com/jifu-open/jifu/host/bank/banktest"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/funding"
	"github.com/jifu-open/jifu/host/ledger"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

type env struct {
	bank *banktest.Bank
	svc  *funding.Service
	l    *ledger.Ledger
}

func newEnv(t *testing.T, o banktest.Options) *env { return newEnvTB(t, o) }

func newEnvTB(t testing.TB, o banktest.Options) *env {
	t.Helper()
	pool := dbtest.Pool(t)
	b := banktest.Start(t, pool, o)
	l := ledger.New(pool)
	svc, err := funding.New(funding.Config{Pool: pool, Ledger: l, Bank: b.Client, BankName: b.Merchant, Grace: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return &env{bank: b, svc: svc, l: l}
}

// user returns a fresh user bound to a bank account holding balance fen.
func (e *env) user(t *testing.T, name string, balance int64) (user, account string) {
	t.Helper()
	user = fmt.Sprintf("%s-%s", e.bank.Merchant, name)
	account = e.bank.Account(t, balance)
	if err := e.svc.BindAccount(context.Background(), user, account); err != nil {
		t.Fatal(err)
	}
	return user, account
}

func (e *env) wallet(t *testing.T, user string) funding.Wallet {
	t.Helper()
	w, err := e.svc.Wallet(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func checkBooks(t *testing.T, l *ledger.Ledger) {
	t.Helper()
	v, err := l.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(v) > 0 {
		t.Fatalf("ledger check: %v", v)
	}
}

func TestTopUpAndWithdraw(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, banktest.Options{})
	u, acct := e.user(t, "alice", 500_00)

	r, err := e.svc.TopUp(ctx, u, "t1", 200_00)
	if err != nil || r.State != funding.StateSucceeded || r.BankRef == "" {
		t.Fatalf("top-up: %+v, %v", r, err)
	}
	if w := e.wallet(t, u); w.Available != 200_00 || w.Held != 0 {
		t.Fatalf("wallet after top-up: %+v", w)
	}
	if got := e.bank.Balance(t, acct); got != 300_00 {
		t.Fatalf("bank account after top-up: %d", got)
	}
	r, err = e.svc.Withdraw(ctx, u, "w1", 50_00)
	if err != nil || r.State != funding.StateSucceeded {
		t.Fatalf("withdraw: %+v, %v", r, err)
	}
	if w := e.wallet(t, u); w.Available != 150_00 || w.Held != 0 {
		t.Fatalf("wallet after withdrawal: %+v", w)
	}
	if got := e.bank.Balance(t, acct); got != 350_00 {
		t.Fatalf("bank account after withdrawal: %d", got)
	}
	// A replay returns the stored request and moves nothing.
	again, err := e.svc.Withdraw(ctx, u, "w1", 50_00)
	if err != nil || !again.Replayed || again.ID != r.ID || again.State != funding.StateSucceeded {
		t.Fatalf("replay: %+v, %v", again, err)
	}
	if w := e.wallet(t, u); w.Available != 150_00 {
		t.Fatalf("wallet after replay: %+v", w)
	}
	if r.Account != bank.Mask(acct) || r.Account == acct {
		t.Fatalf("request shows account %q", r.Account)
	}
	h, err := e.svc.History(ctx, u, 0)
	if err != nil || len(h) != 2 || h[0].Kind != funding.Withdraw || h[1].Kind != funding.TopUp {
		t.Fatalf("history: %+v, %v", h, err)
	}
	checkBooks(t, e.l)
}

func TestBankRefusals(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, banktest.Options{})
	tests := []struct {
		name    string
		kind    funding.Kind
		setup   func(t *testing.T, u, acct string)
		faults  banksim.Faults
		reason  string
		balance int64 // the user's bank balance before
	}{
		{name: "top-up beyond the bank balance", kind: funding.TopUp, balance: 10_00, reason: bank.ReasonInsufficientFunds},
		{name: "top-up from a frozen account", kind: funding.TopUp, balance: 500_00, reason: bank.ReasonAccountFrozen,
			setup: func(t *testing.T, u, acct string) { freeze(t, e, acct) }},
		{name: "withdrawal to a frozen account", kind: funding.Withdraw, balance: 500_00, reason: bank.ReasonAccountFrozen,
			setup: func(t *testing.T, u, acct string) { freeze(t, e, acct) }},
		{name: "withdrawal to an account the bank does not have", kind: funding.Withdraw, balance: 500_00, reason: bank.ReasonNoAccount,
			setup: func(t *testing.T, u, acct string) {
				if err := e.svc.BindAccount(ctx, u, e.bank.Unopened()); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "withdrawal declined (injected)", kind: funding.Withdraw, balance: 500_00, reason: bank.ReasonDeclined,
			faults: banksim.Faults{FailRate: 1}},
		{name: "top-up declined (injected)", kind: funding.TopUp, balance: 500_00, reason: bank.ReasonDeclined,
			faults: banksim.Faults{FailRate: 1}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, acct := e.user(t, fmt.Sprintf("r%d", i), tc.balance)
			if _, err := e.svc.TopUp(ctx, u, "seed", min(tc.balance, 100_00)); err != nil {
				t.Fatal(err)
			}
			before, bankBefore := e.wallet(t, u), e.bank.Balance(t, acct)
			if tc.setup != nil {
				tc.setup(t, u, acct)
			}
			e.bank.Sim.SetFaults(tc.faults)
			defer e.bank.Sim.SetFaults(banksim.Faults{})
			var r funding.Request
			var err error
			if tc.kind == funding.TopUp {
				r, err = e.svc.TopUp(ctx, u, "k", 60_00)
			} else {
				r, err = e.svc.Withdraw(ctx, u, "k", 60_00)
			}
			if err != nil || r.State != funding.StateFailed || r.Reason != tc.reason {
				t.Fatalf("got %+v, %v; want failed with %s", r, err, tc.reason)
			}
			if after := e.wallet(t, u); after != before {
				t.Fatalf("wallet changed: %+v -> %+v (the hold must be released)", before, after)
			}
			if got := e.bank.Balance(t, acct); got != bankBefore {
				t.Fatalf("bank balance changed: %d -> %d", bankBefore, got)
			}
		})
	}
	checkBooks(t, e.l)
}

func freeze(t *testing.T, e *env, acct string) {
	t.Helper()
	if err := e.bank.Sim.Freeze(context.Background(), acct, true); err != nil {
		t.Fatal(err)
	}
}

func TestBadRequestsChangeNothing(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, banktest.Options{})
	u, _ := e.user(t, "bob", 500_00)
	if _, err := e.svc.TopUp(ctx, u, "seed", 100_00); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		do     func() (funding.Request, error)
		code   string
		reason ledger.Reason
	}{
		{"empty key", func() (funding.Request, error) { return e.svc.TopUp(ctx, u, "", 100) }, jifu.CodeInvalid, ""},
		{"key with spaces", func() (funding.Request, error) { return e.svc.TopUp(ctx, u, "a b", 100) }, jifu.CodeInvalid, ""},
		{"zero amount", func() (funding.Request, error) { return e.svc.Withdraw(ctx, u, "z", 0) }, jifu.CodeInvalid, ""},
		{"negative amount", func() (funding.Request, error) { return e.svc.TopUp(ctx, u, "n", -5) }, jifu.CodeInvalid, ""},
		{"over the maximum", func() (funding.Request, error) { return e.svc.TopUp(ctx, u, "big", 5_000_001) }, jifu.CodeInvalid, ""},
		{"no user", func() (funding.Request, error) { return e.svc.TopUp(ctx, "", "x", 100) }, jifu.CodeInvalid, ""},
		{"no bound account", func() (funding.Request, error) { return e.svc.TopUp(ctx, u+"-nobody", "x", 100) }, jifu.CodeNotFound, ""},
		{"withdrawal beyond the wallet", func() (funding.Request, error) { return e.svc.Withdraw(ctx, u, "much", 100_01) },
			jifu.CodeConflict, ledger.ErrInsufficientFunds},
		{"key reused for another amount", func() (funding.Request, error) { return e.svc.TopUp(ctx, u, "seed", 99) }, jifu.CodeConflict, ""},
		{"key reused for a withdrawal", func() (funding.Request, error) { return e.svc.Withdraw(ctx, u, "seed", 100_00) }, jifu.CodeConflict, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.do()
			if jifu.ErrorCode(err) != tc.code || (tc.reason != "" && ledger.ReasonOf(err) != tc.reason) {
				t.Fatalf("err %v; want code %s reason %q", err, tc.code, tc.reason)
			}
			h, _ := e.svc.History(ctx, u, 0)
			if len(h) != 1 {
				t.Fatalf("history has %d requests; want only the seed", len(h))
			}
			if w := e.wallet(t, u); w.Available != 100_00 || w.Held != 0 {
				t.Fatalf("wallet %+v", w)
			}
		})
	}
	if err := e.svc.BindAccount(ctx, u, "12ab"); jifu.ErrorCode(err) != jifu.CodeInvalid {
		t.Fatalf("bind malformed: %v", err)
	}
}

// TestTimeoutReconciled: the bank's answer is lost (the client times out),
// the request is unknown with its money held, and Reconcile settles it the
// way the bank went.
func TestTimeoutReconciled(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, banktest.Options{ClientTimeout: 300 * time.Millisecond})
	tests := []struct {
		kind     funding.Kind
		executed bool
	}{{funding.TopUp, true}, {funding.TopUp, false}, {funding.Withdraw, true}, {funding.Withdraw, false}}
	for i, tc := range tests {
		t.Run(fmt.Sprintf("%s executed=%v", tc.kind, tc.executed), func(t *testing.T) {
			u, acct := e.user(t, fmt.Sprintf("t%d", i), 500_00)
			if _, err := e.svc.TopUp(ctx, u, "seed", 100_00); err != nil {
				t.Fatal(err)
			}
			bankBefore := e.bank.Balance(t, acct)
			exec := 0.0
			if tc.executed {
				exec = 1
			}
			e.bank.Sim.SetFaults(banksim.Faults{TimeoutRate: 1, ExecuteLost: exec})
			var r funding.Request
			var err error
			if tc.kind == funding.TopUp {
				r, err = e.svc.TopUp(ctx, u, "k", 40_00)
			} else {
				r, err = e.svc.Withdraw(ctx, u, "k", 40_00)
			}
			e.bank.Sim.SetFaults(banksim.Faults{})
			if err != nil || r.State != funding.StateUnknown {
				t.Fatalf("got %+v, %v; want unknown", r, err)
			}
			w := e.wallet(t, u)
			if tc.kind == funding.Withdraw && (w.Held != 40_00 || w.Available != 60_00) {
				t.Fatalf("unknown withdrawal must stay held: %+v", w)
			}
			if tc.kind == funding.TopUp && (w.Available != 100_00 || w.Held != 0) {
				t.Fatalf("unknown top-up must not credit: %+v", w)
			}
			if tc.executed {
				diff, err := e.svc.CompareStatement(ctx, time.Now())
				if err != nil || len(diff) != 1 || diff[0].ID != r.ID || diff[0].OurState != funding.StateUnknown || diff[0].BankAmount != 40_00 {
					t.Fatalf("differences before reconciliation: %+v, %v", diff, err)
				}
			}
			rr, err := e.svc.Reconcile(ctx, 0)
			if err != nil || rr.Settled < 1 || rr.Unresolved != 0 {
				t.Fatalf("reconcile: %+v, %v", rr, err)
			}
			got, err := e.svc.Request(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			wantWallet, wantBank, wantState := int64(100_00), bankBefore, funding.StateFailed
			if tc.executed {
				wantState = funding.StateSucceeded
				if tc.kind == funding.TopUp {
					wantWallet, wantBank = 140_00, bankBefore-40_00
				} else {
					wantWallet, wantBank = 60_00, bankBefore+40_00
				}
			}
			if got.State != wantState {
				t.Fatalf("state %s (%s); want %s", got.State, got.Reason, wantState)
			}
			if !tc.executed && got.Reason != bank.ReasonNotReceived {
				t.Fatalf("reason %q; want %s", got.Reason, bank.ReasonNotReceived)
			}
			if w := e.wallet(t, u); w.Available != wantWallet || w.Held != 0 {
				t.Fatalf("wallet %+v; want %d available, nothing held", w, wantWallet)
			}
			if b := e.bank.Balance(t, acct); b != wantBank {
				t.Fatalf("bank balance %d; want %d", b, wantBank)
			}
			// The same key now replays the settled request; a late retry of
			// the order at the bank cannot execute a closed id.
			again, err := e.svc.TopUp(ctx, u, "k", 40_00)
			if tc.kind == funding.Withdraw {
				again, err = e.svc.Withdraw(ctx, u, "k", 40_00)
			}
			if err != nil || !again.Replayed || again.State != wantState {
				t.Fatalf("replay after reconcile: %+v, %v", again, err)
			}
			late, err := e.bank.Client.Debit(ctx, bank.Order{ID: r.ID, Account: acct, Amount: 40_00, Memo: "Jifu top-up"})
			if tc.kind == funding.TopUp && !tc.executed && (err != nil || late.Status != bank.Failed || late.Reason != bank.ReasonNotReceived) {
				t.Fatalf("late order of a closed id: %+v, %v", late, err)
			}
		})
	}
	checkBooks(t, e.l)
}

// TestConcurrentDuplicates: the same request sent twenty times at once has
// one effect, at the bank and in the ledger.
func TestConcurrentDuplicates(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, banktest.Options{Faults: banksim.Faults{Delay: 20 * time.Millisecond}})
	for _, kind := range []funding.Kind{funding.TopUp, funding.Withdraw} {
		t.Run(string(kind), func(t *testing.T) {
			u, acct := e.user(t, "dup-"+string(kind), 500_00)
			if _, err := e.svc.TopUp(ctx, u, "seed", 100_00); err != nil {
				t.Fatal(err)
			}
			bankBefore := e.bank.Balance(t, acct)
			const n = 20
			ids := make([]string, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					var r funding.Request
					if kind == funding.TopUp {
						r, errs[i] = e.svc.TopUp(ctx, u, "same", 30_00)
					} else {
						r, errs[i] = e.svc.Withdraw(ctx, u, "same", 30_00)
					}
					ids[i] = r.ID
				})
			}
			wg.Wait()
			for i := range n {
				if errs[i] != nil || ids[i] != ids[0] {
					t.Fatalf("request %d: id %s err %v; want id %s", i, ids[i], errs[i], ids[0])
				}
			}
			if _, err := e.svc.Reconcile(ctx, 0); err != nil { // nothing should be left open
				t.Fatal(err)
			}
			want, wantBank := int64(130_00), bankBefore-30_00
			if kind == funding.Withdraw {
				want, wantBank = 70_00, bankBefore+30_00
			}
			if w := e.wallet(t, u); w.Available != want || w.Held != 0 {
				t.Fatalf("wallet %+v; want %d", w, want)
			}
			if b := e.bank.Balance(t, acct); b != wantBank {
				t.Fatalf("bank %d; want %d", b, wantBank)
			}
		})
	}
	checkBooks(t, e.l)
}

// TestFaultSoak runs a small, bounded mix of top-ups and withdrawals
// against a bank that declines, delays and loses answers; after
// reconciliation every request is final, the wallet and the bank agree to
// the fen with what succeeded, the bank's statement lists exactly the
// succeeded requests, and the ledger checks clean.
func TestFaultSoak(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, banktest.Options{ClientTimeout: 250 * time.Millisecond, Seed: 7,
		Faults: banksim.Faults{FailRate: 0.15, TimeoutRate: 0.15, ExecuteLost: 0.5, Delay: time.Millisecond, Jitter: 5 * time.Millisecond}})
	const users, perUser = 4, 12
	accts := make([]string, users)
	names := make([]string, users)
	for i := range users {
		names[i], accts[i] = e.user(t, fmt.Sprintf("soak%d", i), 1_000_00)
	}
	var wg sync.WaitGroup
	errs := make(chan error, users*perUser)
	for i := range users {
		wg.Go(func() {
			for j := range perUser {
				key := fmt.Sprintf("s%d", j)
				var err error
				if j%3 == 2 {
					_, err = e.svc.Withdraw(ctx, names[i], key, int64(10_00+j))
					if ledger.ReasonOf(err) == ledger.ErrInsufficientFunds {
						err = nil // top-ups failed before it: refused, nothing recorded
					}
				} else {
					_, err = e.svc.TopUp(ctx, names[i], key, int64(20_00+j))
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	e.bank.Sim.SetFaults(banksim.Faults{})
	if _, err := e.svc.Reconcile(ctx, 0); err != nil {
		t.Fatal(err)
	}
	var wantDebits, wantCredits int64
	succeeded := map[string]int64{}
	states := map[funding.State]int{}
	for i, u := range names {
		h, err := e.svc.History(ctx, u, 100)
		if err != nil {
			t.Fatal(err)
		}
		var in, out int64
		for _, r := range h {
			states[r.State]++
			switch {
			case r.State != funding.StateSucceeded && r.State != funding.StateFailed:
				t.Fatalf("request %s still %s after reconciliation", r.ID, r.State)
			case r.State == funding.StateFailed:
			case r.Kind == funding.TopUp:
				in += r.Amount
				succeeded[r.ID] = r.Amount
			default:
				out += r.Amount
				succeeded[r.ID] = r.Amount
			}
		}
		wantDebits += in
		wantCredits += out
		if w := e.wallet(t, u); w.Available != in-out || w.Held != 0 {
			t.Fatalf("%s: wallet %+v; want %d", u, w, in-out)
		}
		if b := e.bank.Balance(t, accts[i]); b != 1_000_00-in+out {
			t.Fatalf("%s: bank %d; want %d", u, b, 1_000_00-in+out)
		}
	}
	t.Logf("outcomes: %v", states)
	if states[funding.StateFailed] == 0 || states[funding.StateSucceeded] == 0 {
		t.Fatalf("soak exercised too little: %v", states)
	}
	st, err := e.bank.Client.Statement(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st.Debits != wantDebits || st.Credits != wantCredits || len(st.Lines) != len(succeeded) {
		t.Fatalf("statement: %d debits %d credits %d lines; want %d, %d, %d", st.Debits, st.Credits, len(st.Lines), wantDebits, wantCredits, len(succeeded))
	}
	for _, line := range st.Lines {
		if succeeded[line.ID] != line.Amount {
			t.Fatalf("statement line %+v not a succeeded request", line)
		}
	}
	if diff, err := e.svc.CompareStatement(ctx, time.Now()); err != nil || len(diff) != 0 {
		t.Fatalf("statement differences after reconciliation: %+v, %v", diff, err)
	}
	checkBooks(t, e.l)
}

// neverSends stands for a process that recorded a withdrawal and its hold
// and died before the bank heard of it.
type neverSends struct{ bank.Gateway }

func (neverSends) Credit(ctx context.Context, o bank.Order) (bank.Result, error) {
	<-ctx.Done()
	return bank.Result{ID: o.ID, Status: bank.Unknown}, ctx.Err()
}

// TestCrashBeforeTheBank: a pending withdrawal whose order never reached
// the bank is closed by Reconcile's status query and its hold released.
func TestCrashBeforeTheBank(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, banktest.Options{})
	u, acct := e.user(t, "crash", 500_00)
	if _, err := e.svc.TopUp(ctx, u, "seed", 100_00); err != nil {
		t.Fatal(err)
	}
	bankBefore := e.bank.Balance(t, acct)
	dying, err := funding.New(funding.Config{Pool: dbtest.Pool(t), Ledger: e.l, Bank: neverSends{e.bank.Client}, BankName: e.bank.Merchant})
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = dying.Withdraw(cctx, u, "w", 70_00)
	cancel()
	if err == nil {
		t.Fatal("the dying withdrawal returned no error")
	}
	h, _ := e.svc.History(ctx, u, 0)
	if len(h) != 2 || h[0].State != funding.StatePending {
		t.Fatalf("history %+v; want the withdrawal pending", h)
	}
	if w := e.wallet(t, u); w.Held != 70_00 {
		t.Fatalf("wallet %+v; want 70.00 held", w)
	}
	time.Sleep(5 * time.Millisecond) // past Grace
	if rr, err := e.svc.Reconcile(ctx, 0); err != nil || rr.Settled != 1 {
		t.Fatalf("reconcile: %+v, %v", rr, err)
	}
	got, _ := e.svc.Request(ctx, h[0].ID)
	if got.State != funding.StateFailed || got.Reason != bank.ReasonNotReceived {
		t.Fatalf("after reconcile: %+v", got)
	}
	if w := e.wallet(t, u); w.Held != 0 || w.Available != 100_00 {
		t.Fatalf("wallet %+v; want the hold released", w)
	}
	// The order arriving late cannot pay out.
	late, err := e.bank.Client.Credit(ctx, bank.Order{ID: got.ID, Account: acct, Amount: 70_00, Memo: "Jifu withdrawal"})
	if err != nil || late.Status != bank.Failed || e.bank.Balance(t, acct) != bankBefore {
		t.Fatalf("late order: %+v, %v", late, err)
	}
	checkBooks(t, e.l)
}
