package books

import (
	"context"
	"errors"

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
	var diffs []cardpay.Difference
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
			explained[r.RRN] = true
			continue
		case err != nil:
			return nil, err
		case t.Amount != r.Amount:
			diffs = append(diffs, cardpay.Difference{RRN: r.RRN, OrderID: r.OrderID, Platform: signed, Kind: LedgerAmountMismatch})
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
	return diffs, nil
}
