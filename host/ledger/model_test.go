package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/ledger"
)

// model is the ledger as a few maps: the four totals per account and the
// open holds. Effects are sums, so folding in each acknowledged request in
// any order gives the books the database must have.
type model struct {
	mu    sync.Mutex
	bal   map[int64]*ledger.Balance
	holds map[int64]ledger.Result // open holds by id
	done  []request               // acknowledged requests, for replays
}

// request is an acknowledged request: what was asked and what came back.
type request struct {
	batch  []ledger.Transfer // a transfer or a batch
	post   *resolveReq
	result []ledger.Result
}

type resolveReq struct {
	key     string
	pending int64
	amount  int64
	void    bool
}

func (m *model) b(id int64) *ledger.Balance {
	if m.bal[id] == nil {
		m.bal[id] = &ledger.Balance{AccountID: id}
	}
	return m.bal[id]
}

// apply folds in a booked result.
func (m *model) apply(r ledger.Result) {
	d, c := m.b(r.Debit), m.b(r.Credit)
	switch r.Kind {
	case ledger.KindPosted:
		d.DebitsPosted += r.Amount
		c.CreditsPosted += r.Amount
	case ledger.KindPending:
		d.DebitsPending += r.Amount
		c.CreditsPending += r.Amount
		m.holds[r.ID] = r
	case ledger.KindPost, ledger.KindVoid, ledger.KindExpire:
		h := m.holds[r.PendingID]
		delete(m.holds, r.PendingID)
		d.DebitsPending -= h.Amount
		c.CreditsPending -= h.Amount
		if r.Kind == ledger.KindPost {
			d.DebitsPosted += r.Amount
			c.CreditsPosted += r.Amount
		}
	}
}

func (m *model) openHolds() []ledger.Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]ledger.Result, 0, len(m.holds))
	for _, h := range m.holds {
		out = append(out, h)
	}
	return out
}

// TestModelConcurrent runs rounds of random transfers, holds, posts, voids,
// batches and replays from many goroutines against PostgreSQL, folds every
// acknowledged result into the model, and after each round checks that the
// database's balances equal the model's, every invariant holds and no
// deadlock happened.
func TestModelConcurrent(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	l := ledger.New(dbtest.Pool(t), ledger.WithClock(clk.Now))
	bk := newBooks(t, l)
	m := &model{bal: map[int64]*ledger.Balance{}, holds: map[int64]ledger.Result{}}

	// Six wallets that refuse overdrafts, funded, and the bank.
	wallets := []int64{bk.a.ID, bk.b.ID}
	for i := range 4 {
		a, err := l.CreateAccount(ctx, ledger.AccountSpec{Owner: ledger.Owner{Type: ledger.OwnerUser, ID: bk.caller}, Name: fmt.Sprintf("w%d", i),
			Flags: ledger.DebitsMustNotExceedCredits})
		if err != nil {
			t.Fatal(err)
		}
		wallets = append(wallets, a.ID)
	}
	accounts := append([]int64{bk.bank.ID}, wallets...)
	for _, w := range wallets {
		r, err := l.Transfer(ctx, bk.caller, ledger.Transfer{ID: fmt.Sprintf("seed-%d", w), Debit: bk.bank.ID, Credit: w, Amount: 5_000, Code: "topup"})
		if err != nil {
			t.Fatal(err)
		}
		m.apply(r)
	}

	const (
		rounds     = 3
		workers    = 8
		opsPerWork = 40
	)
	for round := range rounds {
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(round), uint64(w)))
				for op := range opsPerWork {
					if err := randomOp(ctx, l, m, bk.caller, rng, accounts, fmt.Sprintf("r%d-w%d-o%d", round, w, op)); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}

		// Expire what is due: the model voids the same holds.
		clk.Add(time.Minute)
		due := 0
		for id, h := range m.holds {
			if !clk.Now().Before(h.TimeoutAt) {
				m.apply(ledger.Result{Kind: ledger.KindExpire, PendingID: id, Debit: h.Debit, Credit: h.Credit, Amount: h.Amount})
				due++
			}
		}
		n, err := l.ExpireHolds(ctx, clk.Now())
		if err != nil || n != due {
			t.Fatalf("round %d: expired %d, %v; the model says %d", round, n, err, due)
		}

		for _, id := range accounts {
			got := bk.balance(t, id)
			if want := *m.b(id); got != want {
				t.Errorf("round %d: account %d: database %+v, model %+v", round, id, got, want)
			}
		}
		mustCheck(t, l)
		if t.Failed() {
			t.FailNow()
		}
	}
	if s := l.Stats(); s.Deadlocks != 0 {
		t.Errorf("%d deadlocks (retried %d times): locks are not taken in one order", s.Deadlocks, s.Retries)
	}
	t.Logf("%d requests acknowledged, %d retries", len(m.done), l.Stats().Retries)
}

// randomOp issues one random request and folds its result into the model.
// Refusals the concurrency makes legitimate (insufficient funds, a hold
// another worker resolved first) are accepted; anything else is an error.
func randomOp(ctx context.Context, l *ledger.Ledger, m *model, caller string, rng *rand.Rand, accounts []int64, key string) error {
	pick := func() (int64, int64) {
		d := accounts[rng.IntN(len(accounts))]
		for {
			c := accounts[rng.IntN(len(accounts))]
			if c != d {
				return d, c
			}
		}
	}
	newTransfer := func(key string) ledger.Transfer {
		d, c := pick()
		t := ledger.Transfer{ID: key, Debit: d, Credit: c, Amount: 1 + rng.Int64N(2_000), Code: "payment"}
		if rng.IntN(3) == 0 {
			t.Pending, t.Code = true, "freeze"
			t.Timeout = time.Duration(1+rng.IntN(3)) * time.Minute
		}
		return t
	}
	refused := func(err error, ok ...ledger.Reason) error {
		for _, r := range ok {
			if errors.Is(err, r) {
				return nil
			}
		}
		return fmt.Errorf("%s: %w", key, err)
	}
	record := func(req request) {
		m.mu.Lock()
		for _, r := range req.result {
			if !r.Replayed {
				m.apply(r)
			}
		}
		m.done = append(m.done, req)
		m.mu.Unlock()
	}

	switch op := rng.IntN(10); {
	case op < 4: // a transfer or a hold
		t := newTransfer(key)
		r, err := l.Transfer(ctx, caller, t)
		if err != nil {
			return refused(err, ledger.ErrInsufficientFunds)
		}
		if r.Replayed || r.Amount != t.Amount {
			return fmt.Errorf("%s: result %+v", key, r)
		}
		record(request{batch: []ledger.Transfer{t}, result: []ledger.Result{r}})
	case op < 6: // post or void a hold
		holds := m.openHolds()
		if len(holds) == 0 {
			return nil
		}
		h := holds[rng.IntN(len(holds))]
		req := resolveReq{key: key, pending: h.ID, void: rng.IntN(2) == 0}
		var r ledger.Result
		var err error
		if req.void {
			r, err = l.VoidPending(ctx, caller, key, h.ID)
		} else {
			req.amount = rng.Int64N(h.Amount + 1)
			r, err = l.PostPending(ctx, caller, key, h.ID, req.amount)
		}
		if err != nil {
			return refused(err, ledger.ErrHoldResolved)
		}
		record(request{post: &req, result: []ledger.Result{r}})
	case op < 8: // a batch
		ts := make([]ledger.Transfer, 2+rng.IntN(4))
		for i := range ts {
			ts[i] = newTransfer(fmt.Sprintf("%s-%d", key, i))
		}
		rs, err := l.Submit(ctx, caller, ts)
		if err != nil {
			return refused(err, ledger.ErrInsufficientFunds)
		}
		record(request{batch: ts, result: rs})
	case op < 9: // replay an acknowledged request: same ids, no effect
		m.mu.Lock()
		if len(m.done) == 0 {
			m.mu.Unlock()
			return nil
		}
		req := m.done[rng.IntN(len(m.done))]
		m.mu.Unlock()
		var got []ledger.Result
		var err error
		switch {
		case req.post != nil && req.post.void:
			var r ledger.Result
			r, err = l.VoidPending(ctx, caller, req.post.key, req.post.pending)
			got = []ledger.Result{r}
		case req.post != nil:
			var r ledger.Result
			r, err = l.PostPending(ctx, caller, req.post.key, req.post.pending, req.post.amount)
			got = []ledger.Result{r}
		case len(req.batch) == 1:
			var r ledger.Result
			r, err = l.Transfer(ctx, caller, req.batch[0])
			got = []ledger.Result{r}
		default:
			got, err = l.Submit(ctx, caller, req.batch)
		}
		if err != nil {
			return fmt.Errorf("replay of %s: %w", req.result[0].Key, err)
		}
		for i := range got {
			if !got[i].Replayed || got[i].ID != req.result[i].ID || got[i].Amount != req.result[i].Amount {
				return fmt.Errorf("replay of %s: %+v, first %+v", req.result[i].Key, got[i], req.result[i])
			}
		}
	default: // reuse an acknowledged key for other content: refused
		m.mu.Lock()
		if len(m.done) == 0 {
			m.mu.Unlock()
			return nil
		}
		req := m.done[rng.IntN(len(m.done))]
		m.mu.Unlock()
		if req.post != nil {
			return nil
		}
		t := req.batch[0]
		t.Amount++
		if _, err := l.Transfer(ctx, caller, t); !errors.Is(err, ledger.ErrIdempotencyConflict) {
			return fmt.Errorf("reused key %s: %v, want idempotency_conflict", t.ID, err)
		}
	}
	return nil
}

// TestConcurrentReplays sends the same request 100 times at once: one
// effect, one original result, 99 replays of it.
func TestConcurrentReplays(t *testing.T) {
	ctx := context.Background()
	l := ledger.New(dbtest.Pool(t))
	bk := newBooks(t, l)
	bk.fund(t, bk.a, 10_000)
	drain := newBooks(t, l) // wallets a and b hold exactly what the drains take
	drain.fund(t, drain.a, 1_000)
	drain.fund(t, drain.b, 1_000)
	hold, err := l.Transfer(ctx, bk.caller, ledger.Transfer{ID: "hold", Debit: bk.a.ID, Credit: bk.b.ID, Amount: 1_000,
		Code: "freeze", Pending: true, Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	requests := map[string]func() ([]ledger.Result, error){
		"transfer": func() ([]ledger.Result, error) {
			r, err := l.Transfer(ctx, bk.caller, ledger.Transfer{ID: "once", Debit: bk.a.ID, Credit: bk.b.ID, Amount: 7, Code: "payment"})
			return []ledger.Result{r}, err
		},
		"batch": func() ([]ledger.Result, error) {
			return l.Submit(ctx, bk.caller, []ledger.Transfer{
				{ID: "once-b1", Debit: bk.a.ID, Credit: bk.b.ID, Amount: 11, Code: "payment"},
				{ID: "once-b2", Debit: bk.b.ID, Credit: bk.a.ID, Amount: 5, Code: "refund"},
			})
		},
		// The whole balance: the losers of the race must not see
		// insufficient funds, but the winner's result.
		"drain": func() ([]ledger.Result, error) {
			r, err := l.Transfer(ctx, bk.caller, ledger.Transfer{ID: "once-all", Debit: drain.a.ID, Credit: drain.bank.ID, Amount: 1_000, Code: "withdraw"})
			return []ledger.Result{r}, err
		},
		"drain-batch": func() ([]ledger.Result, error) {
			return l.Submit(ctx, bk.caller, []ledger.Transfer{
				{ID: "once-all-b1", Debit: drain.b.ID, Credit: drain.bank.ID, Amount: 500, Code: "withdraw"},
				{ID: "once-all-b2", Debit: drain.b.ID, Credit: drain.bank.ID, Amount: 500, Code: "withdraw"},
			})
		},
		"post": func() ([]ledger.Result, error) {
			r, err := l.PostPending(ctx, bk.caller, "once-post", hold.ID, 400)
			return []ledger.Result{r}, err
		},
	}
	for _, name := range []string{"transfer", "batch", "drain", "drain-batch", "post"} {
		do := requests[name]
		t.Run(name, func(t *testing.T) {
			results := make([][]ledger.Result, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					results[i], errs[i] = do()
				}()
			}
			close(start)
			wg.Wait()
			originals := 0
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("request %d: %v", i, errs[i])
				}
				if results[i][0].ID != results[0][0].ID {
					t.Fatalf("request %d booked transfer %d, request 0 %d", i, results[i][0].ID, results[0][0].ID)
				}
				if !results[i][0].Replayed {
					originals++
				}
			}
			if originals != 1 {
				t.Fatalf("%d original results, want 1", originals)
			}
		})
	}
	// One effect each: 7, then 11 - 5, then the post of 400; the drains once.
	if a := bk.balance(t, bk.a.ID); a.DebitsPosted != 7+11+400 || a.CreditsPosted != 10_000+5 || a.DebitsPending != 0 {
		t.Fatalf("a %+v", a)
	}
	for _, w := range []ledger.Account{drain.a, drain.b} {
		if b := drain.balance(t, w.ID); b.DebitsPosted != 1_000 || b.Available() != 0 {
			t.Fatalf("drained wallet %+v", b)
		}
	}
	mustCheck(t, l)
}
