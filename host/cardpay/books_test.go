package cardpay_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/cardpay/acquirer"
	"github.com/jifu-open/jifu/host/cardpay/acquirersim"
	"github.com/jifu-open/jifu/host/cardpay/books"
	"github.com/jifu-open/jifu/host/cardpay/dukpt"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/ledger"
	"github.com/jifu-open/jifu/sdk/cardreader"
)

// booksEnv is a second card service on the shared simulator whose Poster
// is the real ledger (books), with its own merchant.
type booksEnv struct {
	*env
	svc    *cardpay.Service
	books  *books.Books
	ledger *ledger.Ledger
	reader *cardreader.Reader
	org    string
	mid    string
	acqMID string
	secret string
}

func newBooksEnv(t *testing.T, opt cardpay.Options, notifyURL string) *booksEnv {
	t.Helper()
	e := setup(t)
	acq, err := acquirer.New(acquirer.Config{Addr: e.sim.Addr(), TMK: testTMK, TerminalID: "JIFU0002",
		MerchantID: "898310048990001", PoolSize: 4, Timeout: 2500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(acq.Close)
	l := ledger.New(dbtest.Pool(t))
	b := books.New(l)
	if opt.Poster == nil {
		opt.Poster = b
	}
	svc, err := cardpay.New(dbtest.Pool(t), e.master, acq, opt)
	if err != nil {
		t.Fatal(err)
	}
	id := e.nextID.Add(1)
	be := &booksEnv{env: e, svc: svc, books: b, ledger: l, org: "ORG2", mid: fmt.Sprintf("B%05d", id), acqMID: fmt.Sprintf("8983200%08d", id)}
	secret := fmt.Sprintf("pay-secret-%016d", id)
	be.secret = secret
	if err := svc.RegisterMerchant(e.ctx, cardpay.Merchant{OrgID: be.org, MerchantID: be.mid, Name: "账本商户",
		PaySecret: secret, AcquirerMID: be.acqMID, FeeRate: "0.006", NotifyURL: notifyURL}); err != nil {
		t.Fatal(err)
	}
	ksn, _ := dukpt.ParseKSN(fmt.Sprintf("FFFF%08X%02X000000", id, 0))
	if err := svc.RegisterTerminal(e.ctx, cardpay.Terminal{KSN: ksn.String(), OrgID: be.org, MerchantID: be.mid, Type: cardpay.TerminalMPOS,
		BDKID: "bdk-test", AcquirerTID: fmt.Sprintf("B%07d", id)}); err != nil {
		t.Fatal(err)
	}
	be.reader, err = cardreader.New(cardreader.Config{OrgID: be.org, MerchantID: be.mid, PaySecret: secret, IPEK: dukpt.IPEK(testBDK, ksn), KSN: ksn})
	if err != nil {
		t.Fatal(err)
	}
	return be
}

func (be *booksEnv) pay(t *testing.T, order string, amount int64) cardpay.Result {
	t.Helper()
	res, err := be.svc.Authorize(be.ctx, build(t, be.reader, pay(order, amount)))
	if err != nil {
		t.Fatalf("%s: %v", order, err)
	}
	return res
}

func (be *booksEnv) receivable(t *testing.T) int64 {
	t.Helper()
	n, err := be.books.Receivable(be.ctx, be.org, be.mid)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (be *booksEnv) check(t *testing.T) {
	t.Helper()
	vs, err := be.ledger.Check(be.ctx)
	if err != nil || len(vs) != 0 {
		t.Fatalf("ledger check: %v %v", vs, err)
	}
}

// fileOf returns the acquirer's settlement file of today for this merchant
// and its own records.
func (be *booksEnv) fileAndRecords(t *testing.T, day time.Time) ([]cardpay.AcquirerLine, []cardpay.Record) {
	t.Helper()
	var buf bytes.Buffer
	if err := be.sim.WriteSettlement(be.ctx, day, &buf); err != nil {
		t.Fatal(err)
	}
	lines, err := acquirersim.ParseSettlement(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var file []cardpay.AcquirerLine
	for _, l := range lines {
		if l.MID == be.acqMID {
			file = append(file, cardpay.AcquirerLine{RRN: l.RRN, Kind: l.Kind, Amount: l.Amount})
		}
	}
	all, err := be.svc.Records(be.ctx, day)
	if err != nil {
		t.Fatal(err)
	}
	var recs []cardpay.Record
	for _, r := range all {
		if r.OrgID == be.org && r.MerchantID == be.mid {
			recs = append(recs, r)
		}
	}
	return file, recs
}

// TestBooksLedger runs payments, a decline, a void, a partial refund and a
// T1 settlement through the card core with the ledger as its Poster, then
// checks the balances, the ledger's invariants, idempotent re-posting, and
// the reconciliation of the ledger against the acquirer's file.
func TestBooksLedger(t *testing.T) {
	be := newBooksEnv(t, cardpay.Options{}, "")
	ctx := be.ctx
	for i, amt := range []int64{10000, 25050, 4444, 3000, 20000} {
		be.pay(t, fmt.Sprintf("bk-%d", i), amt)
	}
	if _, err := be.svc.Refund(ctx, cardpay.RefundRequest{OrgID: be.org, MerchantID: be.mid, OrderID: "bk-3", RefundID: "void-3", Amount: 3000}); err != nil {
		t.Fatal(err)
	}
	if res, err := be.svc.Refund(ctx, cardpay.RefundRequest{OrgID: be.org, MerchantID: be.mid, OrderID: "bk-4", RefundID: "ref-4", Amount: 5000}); err != nil || res.Kind != "refund" {
		t.Fatal(res, err)
	}
	// 10000 + 25050 + 3000 − 3000 (void) + 20000 − 5000 (refund); 4444 was declined.
	if got := be.receivable(t); got != 50050 {
		t.Fatalf("receivable %d, want 50050", got)
	}
	be.check(t)

	// Posting again (RetryPostings after a lost answer) changes nothing.
	var pid int64
	if err := dbtest.Pool(t).QueryRow(ctx, `SELECT id FROM card_payments WHERE org_id = $1 AND merchant_id = $2 AND order_id = 'bk-0'`,
		be.org, be.mid).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	again := cardpay.Posting{Key: fmt.Sprintf("cardpay:payment:%d", pid), PaymentID: pid, OrgID: be.org, MerchantID: be.mid, OrderID: "bk-0", Amount: 10000}
	tr, err := be.ledger.Lookup(ctx, books.Caller, again.Key)
	if err != nil {
		t.Fatal(err)
	}
	again.RRN = tr.Metadata["rrn"]
	if err := be.books.PostPayment(ctx, again); err != nil {
		t.Fatal(err)
	}
	if got := be.receivable(t); got != 50050 {
		t.Fatalf("re-posting moved money: %d", got)
	}
	again.Amount = 9999
	if err := be.books.PostPayment(ctx, again); jifu.ErrorCode(err) != jifu.CodeConflict {
		t.Fatalf("same key, other amount: %v", err)
	}

	// T1 settlement: the approved payments (gross 55050) less the refund
	// (5000); fee 50050 × 0.006 = 300.3 → 300 (half up, per batch).
	today := time.Now()
	batches, err := be.svc.Settle(ctx, today, cardpay.T1)
	if err != nil {
		t.Fatal(err)
	}
	var mine *cardpay.Batch
	for i := range batches {
		if batches[i].MerchantID == be.mid && batches[i].OrgID == be.org {
			mine = &batches[i]
		}
	}
	if mine == nil || mine.Gross != 55050 || mine.Refunds != 5000 || mine.Fee != 300 || mine.Net != 49750 {
		t.Fatalf("batch %+v", mine)
	}
	fee, err := be.ledger.Lookup(ctx, books.Caller, mine.Key+"/fee")
	if err != nil || fee.Amount != 300 || fee.Code != books.CodeFee {
		t.Fatalf("fee transfer %+v %v", fee, err)
	}
	net, err := be.ledger.Lookup(ctx, books.Caller, mine.Key+"/net")
	if err != nil || net.Amount != 49750 || net.Code != books.CodeSettlement {
		t.Fatalf("payout transfer %+v %v", net, err)
	}
	// The batch paid what the receivable showed: it is back to zero.
	if got := be.receivable(t); got != 0 {
		t.Fatalf("receivable after settlement %d, want 0", got)
	}
	// Settling again, or posting the batch again, adds nothing.
	if again, err := be.svc.Settle(ctx, today, cardpay.T1); err != nil || len(again) != 0 {
		t.Fatalf("second settlement %+v %v", again, err)
	}
	if err := be.books.PostSettlement(ctx, *mine); err != nil {
		t.Fatal(err)
	}
	if got := be.receivable(t); got != 0 {
		t.Fatalf("re-posting the batch moved money: %d", got)
	}
	be.check(t)

	// Reconciliation: the ledger, the records and the acquirer's file agree.
	file, recs := be.fileAndRecords(t, today)
	if len(recs) != 6 || len(file) != 4 { // 4 approved payments (one voided), the void, the refund; file: 3 purchases, the refund
		t.Fatalf("records %+v file %+v", recs, file)
	}
	diffs, err := be.books.Reconcile(ctx, recs, file)
	if err != nil || len(diffs) != 0 {
		t.Fatalf("differences %+v %v", diffs, err)
	}
	t.Run("differences", func(t *testing.T) {
		for _, c := range []struct {
			name string
			edit func(f []cardpay.AcquirerLine, r []cardpay.Record) ([]cardpay.AcquirerLine, []cardpay.Record)
			kind string
		}{
			{"line missing at the acquirer", func(f []cardpay.AcquirerLine, r []cardpay.Record) ([]cardpay.AcquirerLine, []cardpay.Record) {
				return f[1:], r
			}, "missing_at_acquirer"},
			{"line unknown to the platform", func(f []cardpay.AcquirerLine, r []cardpay.Record) ([]cardpay.AcquirerLine, []cardpay.Record) {
				return append(f, cardpay.AcquirerLine{RRN: "999999999999", Kind: "purchase", Amount: 5}), r
			}, "missing_on_platform"},
			{"amount differs", func(f []cardpay.AcquirerLine, r []cardpay.Record) ([]cardpay.AcquirerLine, []cardpay.Record) {
				f[0].Amount++
				return f, r
			}, "amount_mismatch"},
			{"record never posted", func(f []cardpay.AcquirerLine, r []cardpay.Record) ([]cardpay.AcquirerLine, []cardpay.Record) {
				return f, append(r, cardpay.Record{Key: "cardpay:payment:999999999", Kind: "payment", RRN: "888888888888", Amount: 7})
			}, books.MissingInLedger},
			{"ledger amount differs from the record", func(f []cardpay.AcquirerLine, r []cardpay.Record) ([]cardpay.AcquirerLine, []cardpay.Record) {
				r[0].Amount++
				return f, r
			}, books.LedgerAmountMismatch},
		} {
			t.Run(c.name, func(t *testing.T) {
				f, r := c.edit(append([]cardpay.AcquirerLine(nil), file...), append([]cardpay.Record(nil), recs...))
				diffs, err := be.books.Reconcile(ctx, r, f)
				if err != nil || len(diffs) != 1 || diffs[0].Kind != c.kind {
					t.Fatalf("got %+v %v, want one %s", diffs, err, c.kind)
				}
			})
		}
	})

	t.Run("inconsistent batch refused, nothing written", func(t *testing.T) {
		bad := cardpay.Batch{Key: "cardpay:settlement:bad", OrgID: be.org, MerchantID: be.mid, Gross: 100, Refunds: 10, Fee: 10, Net: 90}
		if err := be.books.PostSettlement(ctx, bad); jifu.ErrorCode(err) != jifu.CodeInvalid {
			t.Fatalf("err %v", err)
		}
		if _, err := be.ledger.Lookup(ctx, books.Caller, bad.Key+"/net"); jifu.ErrorCode(err) != jifu.CodeNotFound {
			t.Fatalf("lookup %v", err)
		}
	})
	be.check(t)
}

// flakyPoster fails every posting while down is set.
type flakyPoster struct {
	cardpay.Poster
	down *atomic.Bool
}

var errPosterDown = errors.New("ledger unreachable")

func (f flakyPoster) PostPayment(ctx context.Context, p cardpay.Posting) error {
	if f.down.Load() {
		return errPosterDown
	}
	return f.Poster.PostPayment(ctx, p)
}

func (f flakyPoster) PostSettlement(ctx context.Context, b cardpay.Batch) error {
	if f.down.Load() {
		return errPosterDown
	}
	return f.Poster.PostSettlement(ctx, b)
}

func (f flakyPoster) PostRefund(ctx context.Context, r cardpay.RefundPosting) error {
	if f.down.Load() {
		return errPosterDown
	}
	return f.Poster.PostRefund(ctx, r)
}

// TestRetryPostings: while the ledger is unreachable the payment, the
// refund and the settlement batch are recorded unposted; RetryPostings
// books each exactly once afterwards.
func TestRetryPostings(t *testing.T) {
	down := &atomic.Bool{}
	l := ledger.New(dbtest.Pool(t))
	be := newBooksEnv(t, cardpay.Options{Poster: flakyPoster{Poster: books.New(l), down: down}}, "")
	ctx := be.ctx
	down.Store(true)
	if res := be.pay(t, "rp-1", 1000); !res.Approved() {
		t.Fatal(res)
	}
	if res, err := be.svc.Refund(ctx, cardpay.RefundRequest{OrgID: be.org, MerchantID: be.mid, OrderID: "rp-1", RefundID: "rp-r", Amount: 300}); err != nil || res.Status != cardpay.StatusApproved {
		t.Fatal(res, err)
	}
	if _, err := be.svc.Settle(ctx, time.Now(), cardpay.T1); !errors.Is(err, errPosterDown) {
		t.Fatalf("settle with the ledger down: %v", err)
	}
	if got := be.receivable(t); got != 0 {
		t.Fatalf("receivable %d while the ledger was down", got)
	}
	down.Store(false)
	n, err := be.svc.RetryPostings(ctx)
	if err != nil || n < 3 {
		t.Fatalf("retried %d: %v", n, err)
	}
	// +1000 payment, −300 refund, −700 batch (refund netted; fee 4.2 → 4, net 696).
	if got := be.receivable(t); got != 0 {
		t.Fatalf("receivable %d, want 0", got)
	}
	if _, err := be.ledger.Lookup(ctx, books.Caller, fmt.Sprintf("cardpay:refund:%d", refundID(t, be, "rp-r"))); err != nil {
		t.Fatalf("refund posting: %v", err)
	}
	if n, err := be.svc.RetryPostings(ctx); err != nil || n != 0 {
		t.Fatalf("second retry posted %d: %v", n, err)
	}
	be.check(t)
}

func refundID(t *testing.T, be *booksEnv, refund string) int64 {
	t.Helper()
	var id int64
	if err := dbtest.Pool(t).QueryRow(be.ctx, `SELECT id FROM card_refunds WHERE org_id = $1 AND merchant_id = $2 AND refund_id = $3`,
		be.org, be.mid, refund).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestSettleRefundsWait: refunds as large as the day's payments are not
// netted (the batch would pay nothing or less); they wait, unsettled, and
// the receivable shows what the merchant owes.
func TestSettleRefundsWait(t *testing.T) {
	be := newBooksEnv(t, cardpay.Options{}, "")
	ctx := be.ctx
	be.pay(t, "rw-1", 1000)
	for i, amt := range []int64{400, 600} {
		res, err := be.svc.Refund(ctx, cardpay.RefundRequest{OrgID: be.org, MerchantID: be.mid, OrderID: "rw-1", RefundID: fmt.Sprintf("rw-r%d", i), Amount: amt})
		if err != nil || res.Kind != "refund" || res.Status != cardpay.StatusApproved {
			t.Fatal(res, err)
		}
	}
	batches, err := be.svc.Settle(ctx, time.Now(), cardpay.T1)
	if err != nil {
		t.Fatal(err)
	}
	var mine *cardpay.Batch
	for i := range batches {
		if batches[i].MerchantID == be.mid {
			mine = &batches[i]
		}
	}
	// 1000 × 0.006 = 6 fen fee; the 1000 fen of refunds wait.
	if mine == nil || mine.Gross != 1000 || mine.Refunds != 0 || mine.Fee != 6 || mine.Net != 994 {
		t.Fatalf("batch %+v", mine)
	}
	if n := count(t, `SELECT count(*) FROM card_refunds WHERE org_id = $1 AND merchant_id = $2 AND settlement_id IS NULL`, be.org, be.mid); n != 2 {
		t.Fatalf("%d refunds left unsettled, want 2", n)
	}
	if got := be.receivable(t); got != -1000 {
		t.Fatalf("receivable %d, want -1000 (owed by the merchant)", got)
	}
	be.check(t)
}
