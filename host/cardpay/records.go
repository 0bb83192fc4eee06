package cardpay

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Record is one money movement of a day as the card core recorded it: an
// approved (or later voided) payment, or an approved void or refund. Key is
// the idempotency key its ledger posting carries (Posting.Key or
// RefundPosting.Key), so a ledger can be reconciled against the records and
// the acquirer's file.
type Record struct {
	Key               string
	Kind              string // payment, void, refund
	RRN               string // the acquirer's reference of this movement
	OrgID, MerchantID string
	AcquirerMID       string // the merchant's ID at the acquirer (the file's mid)
	OrderID           string
	Amount            int64 // fen, positive
	Voided            bool  // a payment voided later the same day (not in the acquirer's file)
	Posted            bool  // the card core knows its posting succeeded
}

// Records returns the day's (Beijing date) approved and voided payments and
// the voids and refunds approved that day, payments first, each in id order.
func (s *Service) Records(ctx context.Context, day time.Time) ([]Record, error) {
	d := day.In(beijing).Format("2006-01-02")
	rows, err := s.pool.Query(ctx, `
		SELECT 0 AS ord, 'payment', id, rrn, org_id, merchant_id, acq_mid, order_id, amount, status = 'voided', posted FROM card_payments
		WHERE settle_date = $1 AND status IN ('approved', 'voided')
		UNION ALL
		SELECT 1, r.kind, r.id, r.rrn, p.org_id, p.merchant_id, p.acq_mid, p.order_id, r.amount, false, false FROM card_refunds r JOIN card_payments p ON p.id = r.payment_id
		WHERE r.status = 'approved' AND (r.updated_at AT TIME ZONE 'Asia/Shanghai')::date = $1
		ORDER BY 1, 3`, d)
	if err != nil {
		return nil, dbErr(ctx, "records", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Record, error) {
		var rec Record
		var id int64
		var ord int
		err := r.Scan(&ord, &rec.Kind, &id, &rec.RRN, &rec.OrgID, &rec.MerchantID, &rec.AcquirerMID, &rec.OrderID, &rec.Amount, &rec.Voided, &rec.Posted)
		if rec.Kind == "payment" {
			rec.Key = fmt.Sprintf("cardpay:payment:%d", id)
		} else {
			rec.Key = fmt.Sprintf("cardpay:refund:%d", id)
		}
		return rec, err
	})
	if err != nil {
		return nil, dbErr(ctx, "records", err)
	}
	return out, nil
}
