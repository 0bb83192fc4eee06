package cardpay_test

import (
	"context"
	"testing"
	"time"

	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/cardpay/books"
	"github.com/jifu-open/jifu/host/database/dbtest"
)

// tamperPoster is the books with a fault: the posting of one order moves
// one fen more than the payment, and the posting of another is lost (the
// card core is told it succeeded).
type tamperPoster struct {
	*books.Books
	more, lose string // order IDs
}

func (p tamperPoster) PostPayment(ctx context.Context, x cardpay.Posting) error {
	switch x.OrderID {
	case p.more:
		x.Amount++
	case p.lose:
		return nil
	}
	return p.Books.PostPayment(ctx, x)
}

// TestLedgerDifferencesRecorded: the books' reconciliation records each
// ledger difference as one ledger_mismatch case tied to its payment, however
// often the day is reconciled; the case is in the desk's queue but does not
// count against the card.
func TestLedgerDifferencesRecorded(t *testing.T) {
	var tp tamperPoster
	be := newBooksEnv(t, cardpay.Options{Poster: &tp}, "")
	tp.Books, tp.more, tp.lose = be.books, "lm-1", "lm-2"
	ctx := be.ctx
	paid := map[string]cardpay.Result{}
	card := freshPAN(t) // a card no other test's case touches
	for i, order := range []string{"lm-0", "lm-1", "lm-2"} {
		res, err := be.svc.Authorize(ctx, build(t, be.reader, payCard(order, int64(10_000+i), card, false)))
		if err != nil || !res.Approved() {
			t.Fatalf("%s: %+v %v", order, res, err)
		}
		paid[order] = res
	}
	today := time.Now()
	file, recs := be.fileAndRecords(t, today)
	desk := be.svc.Desk()
	for run := range 2 {
		diffs, err := be.books.ReconcileDay(ctx, desk, today, recs, file)
		if err != nil || len(diffs) != 2 {
			t.Fatalf("run %d: %+v %v", run, diffs, err)
		}
	}
	page, err := desk.ListErrors(ctx, cardpay.ErrorFilter{Kind: cardpay.ErrorLedgerMismatch, OrgID: be.org, MerchantID: be.mid})
	if err != nil || page.Total != 2 {
		t.Fatalf("cases %+v %v", page, err)
	}
	want := map[string]int64{"lm-1": 1, "lm-2": 10_002} // at issue: the extra fen; the whole lost posting
	for _, c := range page.Cases {
		res, ok := paid[c.OrderID]
		if !ok || c.PaymentID != res.PaymentID || c.RRN != res.RRN || c.Amount != want[c.OrderID] || c.Status != cardpay.ErrorOpen ||
			c.OpenedBy != cardpay.ActorSystem || c.Counts() || c.CardToken == "" {
			t.Fatalf("case %+v", c)
		}
		// Closing it does not make it count either (the platform's error).
		closed, err := desk.ResolveError(ctx, c.ID, cardpay.Resolution{Status: cardpay.ErrorResolved, Actor: "risk#1", Note: "posting corrected"})
		if err != nil || closed.Counts() {
			t.Fatalf("closed %+v %v", closed, err)
		}
	}
	// The card's clean days are untouched by these cases.
	var lastErr *time.Time
	if err := dbtest.Pool(t).QueryRow(ctx, `SELECT last_error_at FROM card_cards c JOIN card_payments p ON p.card_token = c.card_token
		WHERE p.id = $1`, paid["lm-1"].PaymentID).Scan(&lastErr); err != nil || lastErr != nil {
		t.Fatalf("card last error %v %v", lastErr, err)
	}
	// The plain comparison records nothing.
	if _, err := be.books.Reconcile(ctx, append(recs, cardpay.Record{Key: "cardpay:payment:999999999", Kind: "payment", RRN: "888888888888", Amount: 7}), file); err != nil {
		t.Fatal(err)
	}
	if page, err := desk.ListErrors(ctx, cardpay.ErrorFilter{Kind: cardpay.ErrorLedgerMismatch}); err != nil || page.Total != 2 {
		t.Fatalf("cases %+v %v", page, err)
	}
}
