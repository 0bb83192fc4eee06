package books_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/cardpay/books"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/ledger"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func posting(test string, i int, amount int64) cardpay.Posting {
	return cardpay.Posting{Key: fmt.Sprintf("cardpay:payment:%s-%d", test, i), PaymentID: int64(i), OrgID: "ORG1",
		MerchantID: fmt.Sprintf("%s-M%d", test, i%4), OrderID: fmt.Sprintf("o-%d", i), Amount: amount, RRN: fmt.Sprintf("%012d", i)}
}

// transfers counts the ledger transfers booked under key prefix.
func transfers(t *testing.T, prefix string) int {
	t.Helper()
	var n int
	if err := dbtest.Pool(t).QueryRow(context.Background(),
		`SELECT count(*) FROM ledger_transfers WHERE caller = $1 AND key LIKE $2 || '%'`, books.Caller, prefix).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func check(t *testing.T, l *ledger.Ledger) {
	t.Helper()
	vs, err := l.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) > 0 {
		t.Fatalf("ledger check: %v", vs)
	}
}

// receivables sums the receivables of test's merchants.
func receivables(t *testing.T, b *books.Books, test string) int64 {
	t.Helper()
	var sum int64
	for m := range 4 {
		r, err := b.Receivable(context.Background(), "ORG1", fmt.Sprintf("%s-M%d", test, m))
		if err != nil {
			t.Fatal(err)
		}
		sum += r
	}
	return sum
}

func TestConcurrentPostings(t *testing.T) {
	ctx := context.Background()
	l := ledger.New(dbtest.Pool(t))
	b := books.New(l)
	const n = 200
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.PostPayment(ctx, posting("conc", i, int64(100+i)))
		}()
	}
	wg.Wait()
	var want int64
	for i, err := range errs {
		if err != nil {
			t.Fatalf("posting %d: %v", i, err)
		}
		want += int64(100 + i)
	}
	if got := transfers(t, "cardpay:payment:conc-"); got != n {
		t.Fatalf("%d transfers, want %d", got, n)
	}
	if got := receivables(t, b, "conc"); got != want {
		t.Fatalf("receivables %d, want %d", got, want)
	}
	t.Logf("%d postings in %d groups (and lone transfers)", n, books.Groups(b))
	// Each posting again: every one succeeds (replayed alone or matched to
	// its group's transfer) and nothing more is booked.
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.PostPayment(ctx, posting("conc", i, int64(100+i)))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("posting %d again: %v", i, err)
		}
	}
	if got := transfers(t, "cardpay:payment:conc-"); got != n {
		t.Fatalf("%d transfers after retries, want %d", got, n)
	}
	if got := receivables(t, b, "conc"); got != want {
		t.Fatalf("receivables %d after retries, want %d", got, want)
	}
	check(t, l)
}

func TestGroupFallback(t *testing.T) {
	ctx := context.Background()
	l := ledger.New(dbtest.Pool(t))
	b := books.New(l)
	ps := []cardpay.Posting{posting("fb", 0, 100), posting("fb", 1, 200), posting("fb", 2, 300), posting("fb", 3, 400)}
	// Posting 1 was booked alone before; posting 2 is invalid (amount 0).
	if err := b.PostPayment(ctx, ps[1]); err != nil {
		t.Fatal(err)
	}
	ps[2].Amount = 0
	errs := books.BookGroup(ctx, b, ps)
	for i, err := range errs {
		wantCode := ""
		if i == 2 {
			wantCode = jifu.CodeInvalid
		}
		if jifu.ErrorCode(err) != wantCode {
			t.Fatalf("posting %d: %v, want code %q", i, err, wantCode)
		}
	}
	if books.Groups(b) != 0 {
		t.Fatalf("the failed group counted as booked")
	}
	if got := transfers(t, "cardpay:payment:fb-"); got != 3 {
		t.Fatalf("%d transfers, want 3", got)
	}
	if got := receivables(t, b, "fb"); got != 700 {
		t.Fatalf("receivables %d, want 700", got)
	}
	check(t, l)
}

func TestGroupRetry(t *testing.T) {
	ctx := context.Background()
	l := ledger.New(dbtest.Pool(t))
	b := books.New(l)
	ps := []cardpay.Posting{posting("rt", 0, 100), posting("rt", 1, 200), posting("rt", 2, 300)}
	for i, err := range books.BookGroup(ctx, b, ps) {
		if err != nil {
			t.Fatalf("posting %d: %v", i, err)
		}
	}
	if books.Groups(b) != 1 {
		t.Fatalf("%d groups, want 1", books.Groups(b))
	}
	first, err := l.Lookup(ctx, books.Caller, ps[1].Key)
	if err != nil {
		t.Fatal(err)
	}

	// A retry alone of a posting booked in the group: success, no second
	// transfer (other metadata, such as the RRN, does not matter).
	again := ps[1]
	again.RRN = "999999999999"
	if err := b.PostPayment(ctx, again); err != nil {
		t.Fatalf("retry: %v", err)
	}
	// The identical group again replays.
	for i, err := range books.BookGroup(ctx, b, ps) {
		if err != nil {
			t.Fatalf("group again, posting %d: %v", i, err)
		}
	}
	// A group of the other order: the Submit conflicts, each is matched.
	for i, err := range books.BookGroup(ctx, b, []cardpay.Posting{ps[2], ps[0]}) {
		if err != nil {
			t.Fatalf("regrouped, posting %d: %v", i, err)
		}
	}
	if got := transfers(t, "cardpay:payment:rt-"); got != 3 {
		t.Fatalf("%d transfers, want 3", got)
	}
	if r, err := l.Lookup(ctx, books.Caller, ps[1].Key); err != nil || r.ID != first.ID {
		t.Fatalf("lookup %+v, %v; want id %d", r, err, first.ID)
	}

	// Retries that do not match what was booked stay errors.
	for _, c := range []struct {
		name string
		edit func(*cardpay.Posting)
	}{
		{"other amount", func(p *cardpay.Posting) { p.Amount = 201 }},
		{"other merchant", func(p *cardpay.Posting) { p.MerchantID = "rt-M3" }},
	} {
		p := ps[1]
		c.edit(&p)
		if err := b.PostPayment(ctx, p); jifu.ErrorCode(err) != jifu.CodeConflict || ledger.ReasonOf(err) != ledger.ErrIdempotencyConflict {
			t.Fatalf("%s: %v, want idempotency conflict", c.name, err)
		}
	}
	if got := transfers(t, "cardpay:payment:rt-"); got != 3 {
		t.Fatalf("%d transfers after mismatching retries, want 3", got)
	}
	if got := receivables(t, b, "rt"); got != 600 {
		t.Fatalf("receivables %d, want 600", got)
	}
	check(t, l)
}
