package books

import (
	"context"
	"sync"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/ledger"
)

// Payment postings are committed in groups. Every posting debits the same
// clearing account, so the ledger books them one at a time on that row's
// lock, and each costs a round trip and a commit of its own. So while one
// booking of payment postings is in flight, further PostPayment calls wait
// and the next booking carries all of them as one ledger Submit (at most
// ledger.MaxBatch): one statement, one commit, the clearing row locked once.
// At low load a posting is a Transfer of its own, as before.
//
// Submit is atomic and its idempotency digest covers the whole batch, so:
//   - when a batch fails for any reason, each of its postings is booked
//     alone (Transfer): one bad posting cannot fail the others;
//   - a posting booked inside a batch and later sent again alone (the
//     service's RetryPostings after a lost answer) gets
//     ErrIdempotencyConflict from the ledger; it is a success when the
//     transfer booked under its key has the same debit, credit, amount and
//     code (ledger.Lookup). Anything else stays an error.
const (
	// maxGroup bounds the postings of one Submit.
	maxGroup = ledger.MaxBatch
	// groupTimeout bounds a group's booking, which runs for several callers
	// and so under none of their contexts: a caller whose own context ends
	// stops waiting (CodeTimeout) and the booking completes for the others.
	groupTimeout = 10 * time.Second
)

// waiter is one posting waiting for the next group.
type waiter struct {
	t    ledger.Transfer
	done chan struct{}
	err  error
}

// group coalesces payment postings (see maxGroup).
type group struct {
	mu      sync.Mutex
	busy    bool      // a booking is in flight
	pending []*waiter // waiting for the next booking, in arrival order
}

// post books t: alone when no booking is in flight, else in the next group.
func (b *Books) post(ctx context.Context, t ledger.Transfer) error {
	g := &b.group
	g.mu.Lock()
	if !g.busy {
		g.busy = true
		g.mu.Unlock()
		err := b.transferOne(ctx, t)
		b.finish()
		return err
	}
	w := &waiter{t: t, done: make(chan struct{})}
	g.pending = append(g.pending, w)
	g.mu.Unlock()
	select {
	case <-w.done:
		return w.err
	case <-ctx.Done():
		// The posting stays in its group and may be booked: postings are
		// idempotent, and the service posts again until it succeeds.
		return jifu.Errorf(jifu.CodeTimeout, "books: posting %s: %w", t.ID, ctx.Err())
	}
}

// finish ends a booking: it frees the slot, or hands it to the waiting
// postings, which a goroutine books as one group.
func (b *Books) finish() {
	g := &b.group
	g.mu.Lock()
	if len(g.pending) == 0 {
		g.busy = false
		g.mu.Unlock()
		return
	}
	n := min(len(g.pending), maxGroup)
	batch := make([]*waiter, n)
	copy(batch, g.pending)
	g.pending = g.pending[n:]
	if len(g.pending) == 0 {
		g.pending = nil // let the backing array go
	}
	g.mu.Unlock()
	go func() {
		defer b.finish()
		ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
		defer cancel()
		ts := make([]ledger.Transfer, len(batch))
		for i, w := range batch {
			ts[i] = w.t
		}
		errs := b.book(ctx, ts)
		for i, w := range batch {
			w.err = errs[i]
			close(w.done)
		}
	}()
}

// book books ts as one Submit and returns each transfer's outcome; when the
// Submit fails, each transfer is booked alone.
func (b *Books) book(ctx context.Context, ts []ledger.Transfer) []error {
	errs := make([]error, len(ts))
	if len(ts) > 1 {
		if _, err := b.l.Submit(ctx, Caller, ts); err == nil {
			b.groups.Add(1)
			return errs
		}
	}
	for i, t := range ts {
		errs[i] = b.transferOne(ctx, t)
	}
	return errs
}

// transferOne books t alone. A key already used by a group (the digest of a
// group covers all of it) is a success when the transfer booked under it
// moved the same money: same debit, credit, amount and code.
func (b *Books) transferOne(ctx context.Context, t ledger.Transfer) error {
	_, err := b.l.Transfer(ctx, Caller, t)
	if ledger.ReasonOf(err) != ledger.ErrIdempotencyConflict {
		return err
	}
	r, lerr := b.l.Lookup(ctx, Caller, t.ID)
	if lerr == nil && r.Kind == ledger.KindPosted && r.Debit == t.Debit && r.Credit == t.Credit &&
		r.Amount == t.Amount && r.Code == t.Code {
		return nil
	}
	return err
}
