package books

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/ledger"
)

// Difference kinds Reconcile adds to cardpay's (missing_at_acquirer,
// missing_on_platform, amount_mismatch).
const (
	MissingInLedger      = "missing_in_ledger"      // the card core recorded it; the ledger has no posting under its key
	LedgerAmountMismatch = "ledger_amount_mismatch" // the ledger's posting moved another amount than the record
)

// Reconcile checks the ledger against the card core's records of a day
// (cardpay.Service.Records) and the acquirer's settlement file of that day:
//
//  1. every record has its posting under its key, for its amount
//     (missing_in_ledger, ledger_amount_mismatch);
//  2. what the ledger booked per RRN — payments positive, refunds negative;
//     voided payments and their voids are not in the file and net to zero —
//     equals the file's lines (missing_at_acquirer, missing_on_platform,
//     amount_mismatch).
//
// An empty answer means the three agree. Lookups are one per record (a
// daily job; the unique (caller, key) index answers each).
func (b *Books) Reconcile(ctx context.Context, recs []cardpay.Record, file []cardpay.AcquirerLine) ([]cardpay.Difference, error) {
	diffs, _, err := b.reconcile(ctx, recs, file)
	return diffs, err
}

// ledgerIssue is a record whose posting is missing (posted < 0) or moved
// another amount.
type ledgerIssue struct {
	rec    cardpay.Record
	posted int64
}

// ReconcileDay is Reconcile of day's records, recording each ledger
// difference (missing_in_ledger, ledger_amount_mismatch) through desk as an
// erroneous transaction of kind cardpay.ErrorLedgerMismatch (Desk.OpenError,
// actor system, ref "ledger:<day>:<posting key>": reconciling the day
// again adds none), tied to the record's payment. Such a case is the
// platform's own error: it shows in the risk desk's queue but never counts
// against the card's or the user's clean days. The differences against the
// acquirer's file are the card core's to record (cardpay.Service.Reconcile
// opens long/short/amount_mismatch for them); ReconcileDay only returns
// them. A failure to record is returned with the differences.
func (b *Books) ReconcileDay(ctx context.Context, desk *cardpay.Desk, day time.Time, recs []cardpay.Record, file []cardpay.AcquirerLine) ([]cardpay.Difference, error) {
	diffs, issues, err := b.reconcile(ctx, recs, file)
	if err != nil {
		return nil, err
	}
	d := day.In(cardpayDay).Format(time.DateOnly)
	var errs []error
	for _, x := range issues {
		r := x.rec
		in := cardpay.NewError{Kind: cardpay.ErrorLedgerMismatch, Ref: "ledger:" + d + ":" + r.Key, OrgID: r.OrgID, MerchantID: r.MerchantID,
			OrderID: r.OrderID, RRN: r.RRN, Actor: cardpay.ActorSystem}
		if x.posted < 0 {
			in.Amount = r.Amount
			in.Note = fmt.Sprintf("ledger reconciliation of %s: %s %s of %d fen has no posting under %s", d, r.Kind, r.RRN, r.Amount, r.Key)
		} else {
			in.Amount = max(x.posted-r.Amount, r.Amount-x.posted)
			in.Note = fmt.Sprintf("ledger reconciliation of %s: posting %s moved %d fen, the %s %s is %d fen", d, r.Key, x.posted, r.Kind, r.RRN, r.Amount)
		}
		_, err := desk.OpenError(ctx, in)
		if code := jifu.ErrorCode(err); code == jifu.CodeNotFound || code == jifu.CodeInvalid {
			// The record names no payment the desk finds: the case stands alone.
			in.OrgID, in.MerchantID, in.OrderID, in.RRN = "", "", "", ""
			_, err = desk.OpenError(ctx, in)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return diffs, errors.Join(errs...)
}

// cardpayDay is the card core's business-day zone (Beijing).
var cardpayDay = time.FixedZone("CST", 8*3600)

func (b *Books) reconcile(ctx context.Context, recs []cardpay.Record, file []cardpay.AcquirerLine) ([]cardpay.Difference, []ledgerIssue, error) {
	var diffs []cardpay.Difference
	var issues []ledgerIssue
	type booked struct {
		order  string
		amount int64
	}
	ledgerByRRN := map[string]booked{}
	var order []string
	explained := map[string]bool{} // RRNs whose difference is already listed
	for _, r := range recs {
		t, err := b.l.Lookup(ctx, Caller, r.Key)
		signed := r.Amount
		if r.Kind == "refund" {
			signed = -r.Amount
		}
		switch {
		case errors.Is(err, ledger.ErrNotFound):
			diffs = append(diffs, cardpay.Difference{RRN: r.RRN, OrderID: r.OrderID, Platform: signed, Kind: MissingInLedger})
			issues = append(issues, ledgerIssue{rec: r, posted: -1})
			explained[r.RRN] = true
			continue
		case err != nil:
			return nil, nil, err
		case t.Amount != r.Amount:
			diffs = append(diffs, cardpay.Difference{RRN: r.RRN, OrderID: r.OrderID, Platform: signed, Kind: LedgerAmountMismatch})
			issues = append(issues, ledgerIssue{rec: r, posted: t.Amount})
			explained[r.RRN] = true
			continue
		}
		if r.Voided || r.Kind == "void" {
			continue // booked and reversed the same day; the acquirer's file has neither
		}
		if _, seen := ledgerByRRN[r.RRN]; !seen {
			order = append(order, r.RRN)
		}
		x := ledgerByRRN[r.RRN]
		x.order, x.amount = r.OrderID, x.amount+signed
		ledgerByRRN[r.RRN] = x
	}
	inFile := map[string]bool{}
	for _, l := range file {
		if l.Kind != "purchase" && l.Kind != "refund" {
			continue
		}
		inFile[l.RRN] = true
		x, ok := ledgerByRRN[l.RRN]
		switch {
		case explained[l.RRN]:
		case !ok:
			diffs = append(diffs, cardpay.Difference{RRN: l.RRN, Acquirer: l.Amount, Kind: "missing_on_platform"})
		case x.amount != l.Amount:
			diffs = append(diffs, cardpay.Difference{RRN: l.RRN, OrderID: x.order, Platform: x.amount, Acquirer: l.Amount, Kind: "amount_mismatch"})
		}
	}
	for _, rrn := range order {
		if !inFile[rrn] {
			x := ledgerByRRN[rrn]
			diffs = append(diffs, cardpay.Difference{RRN: rrn, OrderID: x.order, Platform: x.amount, Kind: "missing_at_acquirer"})
		}
	}
	return diffs, issues, nil
}
