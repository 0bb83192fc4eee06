package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/ledger"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// books is a test's own set of accounts: a bank (no flags), wallets that
// refuse overdrafts, a credit-limited account and a closed one.
type books struct {
	l                *ledger.Ledger
	caller           string // the test's own idempotency key space
	bank, a, b, cap_ ledger.Account
	closed           ledger.Account
}

var ownerSeq atomic.Int64

// newBooks creates fresh accounts under owner ids unique to the test.
func newBooks(t testing.TB, l *ledger.Ledger) *books {
	t.Helper()
	ctx := context.Background()
	p := fmt.Sprintf("%s-%d", t.Name(), ownerSeq.Add(1))
	mk := func(typ ledger.OwnerType, name string, f ledger.Flags) ledger.Account {
		a, err := l.CreateAccount(ctx, ledger.AccountSpec{Owner: ledger.Owner{Type: typ, ID: p}, Name: name, Flags: f})
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		return a
	}
	bk := &books{l: l, caller: p,
		bank:   mk(ledger.OwnerBank, "settlement", 0),
		a:      mk(ledger.OwnerUser, "wallet-a", ledger.DebitsMustNotExceedCredits),
		b:      mk(ledger.OwnerUser, "wallet-b", ledger.DebitsMustNotExceedCredits),
		cap_:   mk(ledger.OwnerPlatform, "limit", ledger.CreditsMustNotExceedDebits),
		closed: mk(ledger.OwnerMerchant, "closed", 0),
	}
	if err := l.CloseAccount(ctx, bk.closed.ID); err != nil {
		t.Fatal(err)
	}
	return bk
}

func (bk *books) balance(t testing.TB, id int64) ledger.Balance {
	t.Helper()
	b, err := bk.l.Balance(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (bk *books) fund(t testing.TB, acct ledger.Account, amount int64) {
	t.Helper()
	_, err := bk.l.Transfer(context.Background(), bk.caller, ledger.Transfer{
		ID: fmt.Sprintf("fund-%d-%d", acct.ID, ownerSeq.Add(1)), Debit: bk.bank.ID, Credit: acct.ID, Amount: amount, Code: "topup"})
	if err != nil {
		t.Fatal(err)
	}
}

// mustCheck fails the test when any invariant is broken.
func mustCheck(t testing.TB, l *ledger.Ledger) {
	t.Helper()
	vs, err := l.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Errorf("invariant broken: %s", v)
	}
}

func TestCreateAccount(t *testing.T) {
	ctx := context.Background()
	l := ledger.New(dbtest.Pool(t))
	owner := ledger.Owner{Type: ledger.OwnerUser, ID: t.Name()}
	spec := ledger.AccountSpec{Owner: owner, Name: "wallet", Flags: ledger.DebitsMustNotExceedCredits}
	a, err := l.CreateAccount(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID <= 0 || a.Currency != "CNY" || a.Owner != owner || a.Flags != ledger.DebitsMustNotExceedCredits {
		t.Fatalf("created %+v", a)
	}
	again, err := l.CreateAccount(ctx, spec)
	if err != nil || again.ID != a.ID {
		t.Fatalf("second create: %+v, %v; want the same account", again, err)
	}
	found, err := l.FindAccount(ctx, owner, "wallet")
	if err != nil || found.ID != a.ID {
		t.Fatalf("find: %+v, %v", found, err)
	}
	got, err := l.Account(ctx, a.ID)
	if err != nil || got != found {
		t.Fatalf("account: %+v, %v; want %+v", got, err, found)
	}

	bad := []struct {
		name string
		spec ledger.AccountSpec
		want ledger.Reason
	}{
		{"unknown owner type", ledger.AccountSpec{Owner: ledger.Owner{Type: "alien", ID: "x"}, Name: "w"}, ledger.ErrInvalid},
		{"empty owner id", ledger.AccountSpec{Owner: ledger.Owner{Type: ledger.OwnerUser}, Name: "w"}, ledger.ErrInvalid},
		{"empty name", ledger.AccountSpec{Owner: owner}, ledger.ErrInvalid},
		{"long name", ledger.AccountSpec{Owner: owner, Name: string(make([]byte, 65))}, ledger.ErrInvalid},
		{"both balance flags", ledger.AccountSpec{Owner: owner, Name: "x", Flags: 3}, ledger.ErrInvalid},
		{"unknown flag", ledger.AccountSpec{Owner: owner, Name: "x", Flags: 64}, ledger.ErrInvalid},
		{"other currency", ledger.AccountSpec{Owner: owner, Name: "x", Currency: "USD"}, ledger.ErrInvalid},
		{"same name, other flags", ledger.AccountSpec{Owner: owner, Name: "wallet"}, ledger.ErrAccountConflict},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.CreateAccount(ctx, tc.spec)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %s", err, tc.want)
			}
		})
	}
	if _, err := l.Account(ctx, 1<<60); !errors.Is(err, ledger.ErrNotFound) || jifu.ErrorCode(err) != jifu.CodeNotFound {
		t.Fatalf("missing account: %v", err)
	}
	if _, err := l.Balance(ctx, 1<<60); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("missing balance: %v", err)
	}
	if err := l.CloseAccount(ctx, 1<<60); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("close missing: %v", err)
	}
}

func TestTransfer(t *testing.T) {
	ctx := context.Background()
	l := ledger.New(dbtest.Pool(t))
	bk := newBooks(t, l)
	bk.fund(t, bk.a, 10_000)

	res, err := l.Transfer(ctx, bk.caller, ledger.Transfer{ID: "pay-1", Debit: bk.a.ID, Credit: bk.b.ID, Amount: 2_500,
		Code: "payment", Metadata: map[string]string{"order": "o-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.ID <= 0 || res.Kind != ledger.KindPosted || res.Amount != 2_500 || res.Replayed || res.CreatedAt.IsZero() {
		t.Fatalf("result %+v", res)
	}
	if got := bk.balance(t, bk.a.ID); got.Available() != 7_500 || got.DebitsPosted != 2_500 || got.CreditsPosted != 10_000 {
		t.Fatalf("a: %+v", got)
	}
	if got := bk.balance(t, bk.b.ID); got.Available() != 2_500 {
		t.Fatalf("b: %+v", got)
	}
	mustCheck(t, l)
}

func TestTransferRefusals(t *testing.T) {
	ctx := context.Background()
	l := ledger.New(dbtest.Pool(t))
	bk := newBooks(t, l)
	bk.fund(t, bk.a, 1_000)
	if _, err := l.Transfer(ctx, bk.caller, ledger.Transfer{ID: "used", Debit: bk.a.ID, Credit: bk.b.ID, Amount: 1, Code: "payment"}); err != nil {
		t.Fatal(err)
	}
	ok := ledger.Transfer{ID: "x", Debit: bk.a.ID, Credit: bk.b.ID, Amount: 100, Code: "payment"}
	with := func(f func(*ledger.Transfer)) ledger.Transfer { t := ok; f(&t); return t }
	cases := []struct {
		name   string
		caller string
		tr     ledger.Transfer
		want   ledger.Reason
		code   string
	}{
		{"empty key", bk.caller, with(func(t *ledger.Transfer) { t.ID = "" }), ledger.ErrInvalid, jifu.CodeInvalid},
		{"long key", bk.caller, with(func(t *ledger.Transfer) { t.ID = string(make([]byte, 129)) }), ledger.ErrInvalid, jifu.CodeInvalid},
		{"zero amount", bk.caller, with(func(t *ledger.Transfer) { t.Amount = 0 }), ledger.ErrInvalid, jifu.CodeInvalid},
		{"negative amount", bk.caller, with(func(t *ledger.Transfer) { t.Amount = -5 }), ledger.ErrInvalid, jifu.CodeInvalid},
		{"same account", bk.caller, with(func(t *ledger.Transfer) { t.Credit = t.Debit }), ledger.ErrInvalid, jifu.CodeInvalid},
		{"bad code", bk.caller, with(func(t *ledger.Transfer) { t.Code = "Pay Ment" }), ledger.ErrInvalid, jifu.CodeInvalid},
		{"empty code", bk.caller, with(func(t *ledger.Transfer) { t.Code = "" }), ledger.ErrInvalid, jifu.CodeInvalid},
		{"timeout without hold", bk.caller, with(func(t *ledger.Transfer) { t.Timeout = time.Second }), ledger.ErrInvalid, jifu.CodeInvalid},
		{"hold without timeout", bk.caller, with(func(t *ledger.Transfer) { t.Pending = true }), ledger.ErrInvalid, jifu.CodeInvalid},
		{"reserved caller", ledger.SystemCaller, ok, ledger.ErrInvalid, jifu.CodeInvalid},
		{"empty caller", "", ok, ledger.ErrInvalid, jifu.CodeInvalid},
		{"NUL in metadata", bk.caller, with(func(t *ledger.Transfer) { t.Metadata = map[string]string{"k": "a\x00b"} }), ledger.ErrInvalid, jifu.CodeInvalid},
		{"missing debit", bk.caller, with(func(t *ledger.Transfer) { t.Debit = 1 << 60 }), ledger.ErrNotFound, jifu.CodeNotFound},
		{"missing credit", bk.caller, with(func(t *ledger.Transfer) { t.Credit = 1 << 60 }), ledger.ErrNotFound, jifu.CodeNotFound},
		{"overdraft", bk.caller, with(func(t *ledger.Transfer) { t.Amount = 1_000 }), ledger.ErrInsufficientFunds, jifu.CodeConflict},
		{"hold over funds", bk.caller, with(func(t *ledger.Transfer) { t.Amount = 1_000; t.Pending = true; t.Timeout = time.Minute }), ledger.ErrInsufficientFunds, jifu.CodeConflict},
		{"credit limit", bk.caller, with(func(t *ledger.Transfer) { t.Debit = bk.bank.ID; t.Credit = bk.cap_.ID }), ledger.ErrExceedsCredits, jifu.CodeConflict},
		{"closed credit", bk.caller, with(func(t *ledger.Transfer) { t.Credit = bk.closed.ID }), ledger.ErrAccountClosed, jifu.CodeConflict},
		{"closed debit", bk.caller, with(func(t *ledger.Transfer) { t.Debit = bk.closed.ID }), ledger.ErrAccountClosed, jifu.CodeConflict},
		{"key reused", bk.caller, with(func(t *ledger.Transfer) { t.ID = "used" }), ledger.ErrIdempotencyConflict, jifu.CodeConflict},
	}
	before := []ledger.Balance{bk.balance(t, bk.a.ID), bk.balance(t, bk.b.ID), bk.balance(t, bk.bank.ID), bk.balance(t, bk.cap_.ID)}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.Transfer(ctx, tc.caller, tc.tr)
			if !errors.Is(err, tc.want) || jifu.ErrorCode(err) != tc.code {
				t.Fatalf("err = %v (code %s), want %s (%s)", err, jifu.ErrorCode(err), tc.want, tc.code)
			}
		})
	}
	after := []ledger.Balance{bk.balance(t, bk.a.ID), bk.balance(t, bk.b.ID), bk.balance(t, bk.bank.ID), bk.balance(t, bk.cap_.ID)}
	for i := range before {
		if before[i] != after[i] {
			t.Errorf("refused transfers changed a balance: %+v -> %+v", before[i], after[i])
		}
	}
	// A refused key leaves no trace: it can be used once funds are there.
	bk.fund(t, bk.a, 1_000)
	if _, err := l.Transfer(ctx, bk.caller, with(func(t *ledger.Transfer) { t.Amount = 1_000 })); err != nil {
		t.Fatalf("retry of a refused key after funding: %v", err)
	}
	mustCheck(t, l)
}

func TestIdempotentReplay(t *testing.T) {
	ctx := context.Background()
	l := ledger.New(dbtest.Pool(t))
	bk := newBooks(t, l)
	bk.fund(t, bk.a, 1_000)
	tr := ledger.Transfer{ID: "k1", Debit: bk.a.ID, Credit: bk.b.ID, Amount: 300, Code: "payment", Metadata: map[string]string{"a": "1", "b": "2"}}
	first, err := l.Transfer(ctx, bk.caller, tr)
	if err != nil {
		t.Fatal(err)
	}
	again, err := l.Transfer(ctx, bk.caller, tr)
	if err != nil || !again.Replayed || again.ID != first.ID || !again.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("replay: %+v, %v; first %+v", again, err, first)
	}
	// Another caller's key space is its own.
	other, err := l.Transfer(ctx, "other", tr)
	if err != nil || other.Replayed || other.ID == first.ID {
		t.Fatalf("other caller: %+v, %v", other, err)
	}
	for name, mod := range map[string]func(*ledger.Transfer){
		"amount":   func(t *ledger.Transfer) { t.Amount = 301 },
		"credit":   func(t *ledger.Transfer) { t.Credit = bk.bank.ID },
		"code":     func(t *ledger.Transfer) { t.Code = "refund" },
		"metadata": func(t *ledger.Transfer) { t.Metadata = map[string]string{"a": "1"} },
		"pending":  func(t *ledger.Transfer) { t.Pending, t.Timeout = true, time.Minute },
	} {
		c := tr
		mod(&c)
		if _, err := l.Transfer(ctx, bk.caller, c); !errors.Is(err, ledger.ErrIdempotencyConflict) {
			t.Errorf("changed %s: err = %v, want idempotency_conflict", name, err)
		}
	}
	if got := bk.balance(t, bk.a.ID).Available(); got != 400 {
		t.Fatalf("available %d, want 400 (two transfers of 300)", got)
	}
	got, err := l.Lookup(ctx, bk.caller, "k1")
	if err != nil || got.ID != first.ID || got.Kind != ledger.KindPosted || got.Amount != 300 || got.Metadata["b"] != "2" ||
		!got.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("lookup: %+v, %v; booked %+v", got, err, first)
	}
	if _, err := l.Lookup(ctx, bk.caller, "never"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("lookup of an unknown key: %v", err)
	}
	mustCheck(t, l)
}

func TestWithTx(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Pool(t)
	l := ledger.New(pool)
	bk := newBooks(t, l)
	bk.fund(t, bk.a, 1_000)

	// Rolled back: the transfer and its key vanish with the caller's writes.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.WithTx(tx).Transfer(ctx, bk.caller, ledger.Transfer{ID: "tx-1", Debit: bk.a.ID, Credit: bk.b.ID, Amount: 400, Code: "payment"}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := bk.balance(t, bk.a.ID).Available(); got != 1_000 {
		t.Fatalf("after rollback available %d, want 1000", got)
	}

	// Committed, with a refusal in the middle that leaves the transaction usable.
	tx, err = pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	lt := l.WithTx(tx)
	if _, err := lt.Transfer(ctx, bk.caller, ledger.Transfer{ID: "tx-2", Debit: bk.a.ID, Credit: bk.b.ID, Amount: 5_000, Code: "payment"}); !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("overdraft in tx: %v", err)
	}
	if _, err := lt.Transfer(ctx, bk.caller, ledger.Transfer{ID: "tx-1", Debit: bk.a.ID, Credit: bk.b.ID, Amount: 400, Code: "payment"}); err != nil {
		t.Fatalf("after a refusal the transaction still works: %v", err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := bk.balance(t, bk.a.ID).Available(); got != 600 {
		t.Fatalf("after commit available %d, want 600", got)
	}
	// The committed key replays outside the transaction.
	r, err := l.Transfer(ctx, bk.caller, ledger.Transfer{ID: "tx-1", Debit: bk.a.ID, Credit: bk.b.ID, Amount: 400, Code: "payment"})
	if err != nil || !r.Replayed {
		t.Fatalf("replay after commit: %+v, %v", r, err)
	}
	mustCheck(t, l)
}
