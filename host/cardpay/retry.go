package cardpay

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// retryOtherPostings posts the settlement batches and the approved voids
// and refunds whose posting failed earlier.
func (s *Service) retryOtherPostings(ctx context.Context) (int, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, org_id, merchant_id, mode, settle_date, count, gross, refunds, fee, net
		FROM card_settlements WHERE NOT posted ORDER BY id LIMIT 1000`)
	if err != nil {
		return 0, dbErr(ctx, "list unposted batches", err)
	}
	bs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Batch, error) {
		var b Batch
		err := r.Scan(&b.ID, &b.OrgID, &b.MerchantID, &b.Mode, &b.Day, &b.Count, &b.Gross, &b.Refunds, &b.Fee, &b.Net)
		b.Key = fmt.Sprintf("cardpay:settlement:%d", b.ID)
		return b, err
	})
	if err != nil {
		return 0, dbErr(ctx, "list unposted batches", err)
	}
	n := 0
	for _, b := range bs {
		if err := s.opt.Poster.PostSettlement(ctx, b); err != nil {
			return n, err
		}
		if _, err := s.pool.Exec(ctx, `UPDATE card_settlements SET posted = true WHERE id = $1`, b.ID); err != nil {
			return n, dbErr(ctx, "mark settlement posted", err)
		}
		n++
	}
	rows, err = s.pool.Query(ctx, `SELECT id, payment_id, org_id, merchant_id, kind, amount, updated_at
		FROM card_refunds WHERE status = 'approved' AND NOT posted ORDER BY id LIMIT 1000`)
	if err != nil {
		return n, dbErr(ctx, "list unposted refunds", err)
	}
	rs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (RefundPosting, error) {
		var p RefundPosting
		err := r.Scan(&p.RefundID, &p.PaymentID, &p.OrgID, &p.MerchantID, &p.Kind, &p.Amount, &p.At)
		p.Key = fmt.Sprintf("cardpay:refund:%d", p.RefundID)
		return p, err
	})
	if err != nil {
		return n, dbErr(ctx, "list unposted refunds", err)
	}
	for _, p := range rs {
		if err := s.opt.Poster.PostRefund(ctx, p); err != nil {
			return n, err
		}
		if _, err := s.pool.Exec(ctx, `UPDATE card_refunds SET posted = true WHERE id = $1`, p.RefundID); err != nil {
			return n, dbErr(ctx, "mark refund posted", err)
		}
		n++
	}
	return n, nil
}
