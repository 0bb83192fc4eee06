package ledger_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/ledger"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 12, 3, 2, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestHolds(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	l := ledger.New(dbtest.Pool(t), ledger.WithClock(clk.Now))
	bk := newBooks(t, l)
	bk.fund(t, bk.a, 1_000)
	hold := func(key string, amount int64) (ledger.Result, error) {
		return l.Transfer(ctx, bk.caller, ledger.Transfer{ID: key, Debit: bk.a.ID, Credit: bk.b.ID, Amount: amount,
			Code: "freeze", Pending: true, Timeout: time.Minute})
	}

	h1, err := hold("h1", 600)
	if err != nil {
		t.Fatal(err)
	}
	if h1.Kind != ledger.KindPending || !h1.TimeoutAt.Equal(clk.Now().Add(time.Minute)) {
		t.Fatalf("hold %+v", h1)
	}
	a := bk.balance(t, bk.a.ID)
	if a.DebitsPending != 600 || a.Available() != 400 {
		t.Fatalf("a after hold: %+v", a)
	}
	if b := bk.balance(t, bk.b.ID); b.CreditsPending != 600 || b.Available() != 0 {
		t.Fatalf("b after hold: %+v (a held credit is not spendable)", b)
	}
	if _, err := hold("h2", 500); !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("second hold over what is left: %v", err)
	}

	// Partial post: 250 move, 350 return.
	if _, err := l.PostPending(ctx, bk.caller, "p1", h1.ID, 700); !errors.Is(err, ledger.ErrExceedsHold) {
		t.Fatalf("post over the hold: %v", err)
	}
	p1, err := l.PostPending(ctx, bk.caller, "p1", h1.ID, 250)
	if err != nil {
		t.Fatal(err)
	}
	if p1.Kind != ledger.KindPost || p1.Amount != 250 || p1.PendingID != h1.ID || p1.Code != "freeze" || p1.Debit != bk.a.ID {
		t.Fatalf("post %+v", p1)
	}
	if a := bk.balance(t, bk.a.ID); a.DebitsPending != 0 || a.DebitsPosted != 250 || a.Available() != 750 {
		t.Fatalf("a after post: %+v", a)
	}
	if b := bk.balance(t, bk.b.ID); b.CreditsPending != 0 || b.Available() != 250 {
		t.Fatalf("b after post: %+v", b)
	}
	if got, err := l.Lookup(ctx, bk.caller, "p1"); err != nil || got.Kind != ledger.KindPost || got.PendingID != h1.ID || got.Amount != 250 {
		t.Fatalf("lookup of the post: %+v, %v", got, err)
	}
	if got, err := l.Lookup(ctx, bk.caller, "h1"); err != nil || got.Kind != ledger.KindPending || !got.TimeoutAt.Equal(h1.TimeoutAt) {
		t.Fatalf("lookup of the hold: %+v, %v", got, err)
	}
	again, err := l.PostPending(ctx, bk.caller, "p1", h1.ID, 250)
	if err != nil || !again.Replayed || again.ID != p1.ID {
		t.Fatalf("replayed post: %+v, %v", again, err)
	}
	if _, err := l.PostPending(ctx, bk.caller, "p1", h1.ID, 200); !errors.Is(err, ledger.ErrIdempotencyConflict) {
		t.Fatalf("post key reused with another amount: %v", err)
	}
	if _, err := l.PostPending(ctx, bk.caller, "p1b", h1.ID, 0); !errors.Is(err, ledger.ErrHoldResolved) {
		t.Fatalf("second post: %v", err)
	}
	if _, err := l.VoidPending(ctx, bk.caller, "v1", h1.ID); !errors.Is(err, ledger.ErrHoldResolved) {
		t.Fatalf("void after post: %v", err)
	}

	// Void: all returns.
	h2, err := hold("h2", 500)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := l.VoidPending(ctx, bk.caller, "v2", h2.ID)
	if err != nil || v2.Kind != ledger.KindVoid || v2.Amount != 500 {
		t.Fatalf("void: %+v, %v", v2, err)
	}
	if a := bk.balance(t, bk.a.ID); a.DebitsPending != 0 || a.Available() != 750 {
		t.Fatalf("a after void: %+v", a)
	}

	// Not holds.
	if _, err := l.PostPending(ctx, bk.caller, "p9", p1.ID, 0); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("post of a post: %v", err)
	}
	if _, err := l.PostPending(ctx, bk.caller, "p9", 1<<60, 0); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("post of nothing: %v", err)
	}
	if _, err := l.PostPending(ctx, bk.caller, "p9", h2.ID, -1); !errors.Is(err, ledger.ErrInvalid) {
		t.Fatalf("negative post: %v", err)
	}

	// Expiry: refused at the timeout even before the sweep; the sweep voids.
	h3, err := hold("h3", 300)
	if err != nil {
		t.Fatal(err)
	}
	h4, err := hold("h4", 100)
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute)
	if _, err := l.PostPending(ctx, bk.caller, "p3", h3.ID, 0); !errors.Is(err, ledger.ErrHoldExpired) {
		t.Fatalf("post at the timeout: %v", err)
	}
	if _, err := l.VoidPending(ctx, bk.caller, "v4", h4.ID); err != nil {
		t.Fatalf("void of an expired hold before the sweep: %v", err)
	}
	n, err := l.ExpireHolds(ctx, clk.Now())
	if err != nil || n != 1 {
		t.Fatalf("expire: %d, %v; want 1", n, err)
	}
	if n, err := l.ExpireHolds(ctx, clk.Now()); err != nil || n != 0 {
		t.Fatalf("second sweep: %d, %v; want 0", n, err)
	}
	if _, err := l.VoidPending(ctx, bk.caller, "v3", h3.ID); !errors.Is(err, ledger.ErrHoldResolved) {
		t.Fatalf("void after expiry: %v", err)
	}
	if a := bk.balance(t, bk.a.ID); a.DebitsPending != 0 || a.Available() != 750 {
		t.Fatalf("a after expiry: %+v", a)
	}

	// A closed account takes no posts, but its holds can be voided.
	h5, err := hold("h5", 100)
	if err != nil {
		t.Fatal(err)
	}
	h6, err := hold("h6", 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.CloseAccount(ctx, bk.b.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := l.PostPending(ctx, bk.caller, "p5", h5.ID, 0); !errors.Is(err, ledger.ErrAccountClosed) {
		t.Fatalf("post to a closed account: %v", err)
	}
	if _, err := l.VoidPending(ctx, bk.caller, "v5", h5.ID); err != nil {
		t.Fatalf("void on a closed account: %v", err)
	}
	clk.Add(2 * time.Minute)
	if n, err := l.ExpireHolds(ctx, clk.Now()); err != nil || n != 1 {
		t.Fatalf("expire on a closed account: %d, %v", n, err)
	}
	_ = h6
	mustCheck(t, l)
}

func TestExpireManyHolds(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	l := ledger.New(dbtest.Pool(t), ledger.WithClock(clk.Now))
	bk := newBooks(t, l)
	bk.fund(t, bk.a, 1_000_000)
	// More holds than one sweep statement takes, in two batches.
	var ts []ledger.Transfer
	for i := range 1_500 {
		ts = append(ts, ledger.Transfer{ID: "h" + itoa(i), Debit: bk.a.ID, Credit: bk.b.ID, Amount: 1, Code: "freeze",
			Pending: true, Timeout: time.Second})
	}
	if _, err := l.Submit(ctx, bk.caller, ts[:1000]); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Submit(ctx, bk.caller, ts[1000:]); err != nil {
		t.Fatal(err)
	}
	if a := bk.balance(t, bk.a.ID); a.DebitsPending != 1_500 {
		t.Fatalf("pending %+v", a)
	}
	if n, err := l.ExpireHolds(ctx, clk.Now()); err != nil || n != 0 {
		t.Fatalf("nothing due yet: %d, %v", n, err)
	}
	clk.Add(time.Second)
	if n, err := l.ExpireHolds(ctx, clk.Now()); err != nil || n != 1_500 {
		t.Fatalf("expired %d, %v; want 1500", n, err)
	}
	if a := bk.balance(t, bk.a.ID); a.DebitsPending != 0 || a.Available() != 1_000_000 {
		t.Fatalf("after expiry %+v", a)
	}
	mustCheck(t, l)
}
