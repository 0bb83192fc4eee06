package cardpay_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/cardpay/acquirer"
	"github.com/jifu-open/jifu/host/cardpay/acquirersim"
	"github.com/jifu-open/jifu/host/cardpay/books"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/ledger"
)

// TestReconcileRecordsErrors: each difference against the acquirer's file
// is an erroneous transaction tied to its payment, recorded once however
// often the day is reconciled.
func TestReconcileRecordsErrors(t *testing.T) {
	e := setup(t)
	r := e.merchant(t, cardpay.TerminalMPOS, 1)[0]
	card := freshPAN(t)
	var paid []cardpay.Result
	var merchant string
	for i, amt := range []int64{3100, 3200} {
		req := build(t, r, payCard("rec-"+string(rune('a'+i)), amt, card, false))
		merchant = req.MerchantID
		res, err := e.svc.Authorize(e.ctx, req)
		if err != nil || !res.Approved() {
			t.Fatal(res, err)
		}
		paid = append(paid, res)
	}
	today := time.Now()
	var file bytes.Buffer
	if err := e.sim.WriteSettlement(e.ctx, today, &file); err != nil {
		t.Fatal(err)
	}
	lines, err := acquirersim.ParseSettlement(&file)
	if err != nil {
		t.Fatal(err)
	}
	// The acquirer's file, changed: the first payment missing (短款), the
	// second for one fen more, and a line we never made (长款).
	var acq []cardpay.AcquirerLine
	for _, l := range lines {
		switch l.RRN {
		case paid[0].RRN:
			continue
		case paid[1].RRN:
			l.Amount++
		}
		acq = append(acq, cardpay.AcquirerLine{RRN: l.RRN, Kind: l.Kind, Amount: l.Amount})
	}
	const stranger = "777700000001"
	acq = append(acq, cardpay.AcquirerLine{RRN: stranger, Kind: "purchase", Amount: 999})
	before := count(t, `SELECT count(*) FROM card_errors`)
	for run := 0; run < 2; run++ {
		if _, err := e.svc.Reconcile(e.ctx, today, acq); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, `SELECT count(*) FROM card_errors`) - before; n != 3 {
		t.Fatalf("%d cases recorded by two runs, want 3", n)
	}
	desk := e.svc.Desk()
	want := []struct {
		kind               string
		rrn                string
		payment            int64
		platform, acquirer int64
	}{
		{cardpay.ErrorShort, paid[0].RRN, paid[0].PaymentID, 3100, 0},
		{cardpay.ErrorAmountMismatch, paid[1].RRN, paid[1].PaymentID, 3200, 3201},
		{cardpay.ErrorLong, stranger, 0, 0, 999},
	}
	for _, w := range want {
		t.Run(w.kind, func(t *testing.T) {
			p, err := desk.ListErrors(e.ctx, cardpay.ErrorFilter{Kind: w.kind, From: today, To: today, Limit: 500})
			if err != nil {
				t.Fatal(err)
			}
			var got *cardpay.ErrorCase
			for i := range p.Cases {
				if p.Cases[i].RRN == w.rrn {
					got = &p.Cases[i]
				}
			}
			if got == nil {
				t.Fatalf("no %s case for %s in %+v", w.kind, w.rrn, p.Cases)
			}
			if got.PaymentID != w.payment || got.PlatformAmount != w.platform || got.AcquirerAmount != w.acquirer ||
				got.Status != cardpay.ErrorOpen || got.OpenedBy != cardpay.ActorSystem {
				t.Fatalf("%+v", got)
			}
			if w.payment != 0 && (got.CardToken == "" || got.MerchantID != merchant || got.PANMasked != paid[0].PANMasked) {
				t.Fatalf("not tied to the card and merchant: %+v", got)
			}
			if w.payment == 0 && (got.CardToken != "" || got.MerchantID != "") {
				t.Fatalf("长款 of an unknown RRN tied to someone: %+v", got)
			}
		})
	}
	// Open reconciliation cases count against the card.
	var token string
	if err := dbtest.Pool(t).QueryRow(e.ctx, `SELECT card_token FROM card_payments WHERE id = $1`, paid[0].PaymentID).Scan(&token); err != nil {
		t.Fatal(err)
	}
	if lastError(t, token) == nil {
		t.Fatal("the card's last_error_at was not set")
	}
}

// TestUnansweredReversalRecorded: a reversal the acquirer does not
// acknowledge on retry is an erroneous transaction, once; when the
// acknowledgement comes it is closed as not at fault and stops counting.
func TestUnansweredReversalRecorded(t *testing.T) {
	e := setup(t)
	px := newProxy(t, e.sim.Addr())
	px.refuseReversals.Store(true)
	acq, err := acquirer.New(acquirer.Config{Addr: px.ln.Addr().String(), TMK: testTMK, TerminalID: "JIFU0003",
		MerchantID: "898310048990001", Timeout: 2500 * time.Millisecond, Reversals: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer acq.Close()
	svc, err := cardpay.New(dbtest.Pool(t), e.master, acq, cardpay.Options{Poster: books.New(ledger.New(dbtest.Pool(t)))})
	if err != nil {
		t.Fatal(err)
	}
	r := e.merchant(t, cardpay.TerminalAudio, 1)[0]
	card := freshPAN(t)
	req := build(t, r, payCard("rev-case", 8888, card, false))
	res, err := svc.Authorize(e.ctx, req) // approved, then the connection drops
	var re *acquirer.ReversalError
	if !errors.As(err, &re) || res.Status != cardpay.StatusReversalPending {
		t.Fatalf("%+v %v", res, err)
	}
	list := func() []cardpay.ErrorCase {
		p, err := svc.Desk().ListErrors(e.ctx, cardpay.ErrorFilter{PaymentID: res.PaymentID, Kind: cardpay.ErrorReversalUnanswered})
		if err != nil {
			t.Fatal(err)
		}
		return p.Cases
	}
	if len(list()) != 0 {
		t.Fatal("a case before any retry")
	}
	for i := 0; i < 2; i++ { // still unreachable, twice: one case
		if n, err := svc.RetryReversals(e.ctx); err != nil || n != 0 {
			t.Fatalf("retry: %d %v", n, err)
		}
	}
	cs := list()
	if len(cs) != 1 || cs[0].Status != cardpay.ErrorOpen || cs[0].Amount != 8888 || cs[0].CardToken == "" ||
		cs[0].MerchantID != req.MerchantID || cs[0].OpenedBy != cardpay.ActorSystem {
		t.Fatalf("%+v", cs)
	}
	if le := lastError(t, cs[0].CardToken); le == nil {
		t.Fatal("an open unanswered reversal does not count against the card")
	}
	px.refuseReversals.Store(false)
	if n, err := svc.RetryReversals(e.ctx); err != nil || n < 1 {
		t.Fatalf("retry: %d %v", n, err)
	}
	cs = list()
	if len(cs) != 1 || cs[0].Status != cardpay.ErrorResolved || !cs[0].NotAtFault || cs[0].ResolvedBy != cardpay.ActorSystem {
		t.Fatalf("%+v", cs)
	}
	if le := lastError(t, cs[0].CardToken); le != nil {
		t.Fatalf("an acknowledged reversal still counts: %v", le)
	}
}
