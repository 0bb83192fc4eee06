package cardpay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/jifu-open/jifu"
)

// Slip is the sale slip (签购单) data of one payment: what the reader app
// prints or shows and the cardholder signs. The PAN is masked.
type Slip struct {
	MerchantName string    `json:"merchant_name"`
	MerchantNo   string    `json:"merchant_no"`  // acquirer MID (商户编号)
	TerminalNo   string    `json:"terminal_no"`  // acquirer TID (终端编号)
	CardNo       string    `json:"card_no"`      // first 6, last 4 (卡号)
	TxnType      string    `json:"txn_type"`     // 消费/SALE
	BatchNo      string    `json:"batch_no"`     // 批次号
	VoucherNo    string    `json:"voucher_no"`   // 凭证号 (STAN)
	AuthCode     string    `json:"auth_code"`    // 授权码
	RefNo        string    `json:"ref_no"`       // 参考号 (RRN)
	DateTime     time.Time `json:"date_time"`    // 日期/时间
	Amount       int64     `json:"amount"`       // 金额, fen
	AmountText   string    `json:"amount_text"`  // "RMB 123.45"
	ProductName  string    `json:"product_name"` // 商品名称 (the request's product_name)
	OrderID      string    `json:"order_id"`
}

// Slip returns the sale slip of an approved payment.
func (s *Service) Slip(ctx context.Context, org, merchantID, orderID string) (Slip, error) {
	var sl Slip
	var status string
	err := s.pool.QueryRow(ctx, `SELECT m.name, p.acq_mid, p.acq_tid, p.pan_masked, p.batch_no, p.stan, p.auth_code, p.rrn,
		p.updated_at, p.amount, p.product_name, p.order_id, p.status
		FROM card_payments p JOIN card_merchants m USING (org_id, merchant_id)
		WHERE p.org_id = $1 AND p.merchant_id = $2 AND p.order_id = $3`, org, merchantID, orderID).
		Scan(&sl.MerchantName, &sl.MerchantNo, &sl.TerminalNo, &sl.CardNo, &sl.BatchNo, &sl.VoucherNo, &sl.AuthCode, &sl.RefNo,
			&sl.DateTime, &sl.Amount, &sl.ProductName, &sl.OrderID, &status)
	if errors.Is(err, pgx.ErrNoRows) {
		return sl, jifu.Errorf(jifu.CodeNotFound, "cardpay: no payment %q for this merchant", orderID)
	}
	if err != nil {
		return sl, dbErr(ctx, "slip", err)
	}
	if status != StatusApproved {
		return sl, jifu.Errorf(jifu.CodeNotFound, "cardpay: payment %q was not approved (%s): no slip", orderID, status)
	}
	sl.TxnType = "消费/SALE"
	sl.DateTime = sl.DateTime.In(beijing)
	sl.AmountText = "RMB " + decimal.New(sl.Amount, -2).StringFixed(2)
	return sl, nil
}

// Settle creates the day's settlement batches of the given mode, one per
// merchant: T0 takes the day's approved payments marked T0, T1 every other
// approved payment of the day, except payments bound to a payment intent
// (their money goes to the intent's payee through the ledger). The
// merchant's approved refunds (not voids: a voided payment is not settled)
// of that day or before that no batch has netted yet are netted when they
// are less than the payments (else they wait for a later batch). Fee =
// (Gross − Refunds) × the merchant's fee_rate, rounded half up to whole fen,
// per batch; Net = Gross − Refunds − Fee. Running it again for the same
// day and mode adds nothing (a batch is unique per merchant, mode and day);
// each batch is posted through the Poster.
func (s *Service) Settle(ctx context.Context, day time.Time, mode string) ([]Batch, error) {
	if mode != T0 && mode != T1 {
		return nil, jifu.Errorf(jifu.CodeInvalid, "cardpay: settlement mode must be T0 or T1")
	}
	d := day.In(beijing).Format("2006-01-02")
	var out []Batch
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT p.org_id, p.merchant_id, count(*), sum(p.amount), m.fee_rate::text
			FROM card_payments p JOIN card_merchants m USING (org_id, merchant_id)
			WHERE p.settle_date = $1 AND p.status = 'approved' AND p.settlement_id IS NULL AND p.intent_id IS NULL AND ($2 = 'T1' OR p.t0)
			GROUP BY p.org_id, p.merchant_id, m.fee_rate ORDER BY 1, 2`, d, mode)
		if err != nil {
			return err
		}
		type agg struct {
			b    Batch
			rate string
		}
		aggs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (agg, error) {
			var a agg
			err := r.Scan(&a.b.OrgID, &a.b.MerchantID, &a.b.Count, &a.b.Gross, &a.rate)
			return a, err
		})
		if err != nil {
			return err
		}
		for _, a := range aggs {
			b := a.b
			rate, err := decimal.NewFromString(a.rate)
			if err != nil {
				return jifu.Errorf(jifu.CodeInternal, "cardpay: fee rate %q: %w", a.rate, err)
			}
			refundIDs, refunds, err := unsettledRefunds(ctx, tx, b.OrgID, b.MerchantID, d)
			if err != nil {
				return err
			}
			if refunds < b.Gross { // otherwise they wait for a bigger batch
				b.Refunds = refunds
			} else {
				refundIDs = nil
			}
			sales := b.Gross - b.Refunds
			b.Fee = decimal.NewFromInt(sales).Mul(rate).Round(0).IntPart() // half away from zero = half up for positives
			b.Net, b.Mode, b.Day = sales-b.Fee, mode, day
			err = tx.QueryRow(ctx, `INSERT INTO card_settlements (org_id, merchant_id, mode, settle_date, count, gross, refunds, fee, net)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING RETURNING id`,
				b.OrgID, b.MerchantID, mode, d, b.Count, b.Gross, b.Refunds, b.Fee, b.Net).Scan(&b.ID)
			if errors.Is(err, pgx.ErrNoRows) {
				continue // already settled
			}
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE card_payments SET settlement_id = $1 WHERE settle_date = $2 AND status = 'approved'
				AND settlement_id IS NULL AND intent_id IS NULL AND org_id = $3 AND merchant_id = $4 AND ($5 = 'T1' OR t0)`, b.ID, d, b.OrgID, b.MerchantID, mode); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE card_refunds SET settlement_id = $1 WHERE id = ANY($2)`, b.ID, refundIDs); err != nil {
				return err
			}
			b.Key = fmt.Sprintf("cardpay:settlement:%d", b.ID)
			out = append(out, b)
		}
		return nil
	})
	if err != nil {
		return nil, dbErr(ctx, "settle", err)
	}
	if s.opt.Poster != nil {
		for _, b := range out {
			if err := s.opt.Poster.PostSettlement(ctx, b); err != nil {
				return out, err
			}
			if _, err := s.pool.Exec(ctx, `UPDATE card_settlements SET posted = true WHERE id = $1`, b.ID); err != nil {
				return out, dbErr(ctx, "mark settlement posted", err)
			}
		}
	}
	if mode == T0 && len(out) > 0 {
		s.upgradeAfterT0(ctx, out) // user levels whose condition is T0 volume
	}
	return out, nil
}

// AcquirerLine is one line of the acquirer's settlement file (see
// acquirersim.SettlementLine): purchases positive, refunds negative.
type AcquirerLine struct {
	RRN    string
	Kind   string
	Amount int64
}

// Difference is one reconciliation difference.
type Difference struct {
	RRN      string
	OrderID  string // when the platform knows the payment
	Platform int64  // amount on our side (0: missing)
	Acquirer int64  // amount in the acquirer's file (0: missing)
	Kind     string // missing_at_acquirer, missing_on_platform, amount_mismatch
}

// Reconcile compares the day's approved payments and refunds with the
// acquirer's settlement file, by RRN, and lists the differences (empty: the
// books agree). Refunds count negative, as in the file. Each difference is
// recorded as an erroneous transaction (ErrorLong, ErrorShort,
// ErrorAmountMismatch) once: reconciling the day again adds none.
func (s *Service) Reconcile(ctx context.Context, day time.Time, file []AcquirerLine) ([]Difference, error) {
	d := day.In(beijing).Format("2006-01-02")
	rows, err := s.pool.Query(ctx, `SELECT rrn, order_id, amount FROM card_payments WHERE settle_date = $1 AND status = 'approved' ORDER BY id`, d)
	if err != nil {
		return nil, dbErr(ctx, "reconcile", err)
	}
	type ours struct {
		order  string
		amount int64
	}
	mine := map[string]ours{}
	var order []string
	var rrn, oid string
	var amt int64
	if _, err := pgx.ForEachRow(rows, []any{&rrn, &oid, &amt}, func() error {
		mine[rrn] = ours{oid, amt}
		order = append(order, rrn)
		return nil
	}); err != nil {
		return nil, dbErr(ctx, "reconcile", err)
	}
	// Refunds approved that day count negative, as in the acquirer's file.
	rows, err = s.pool.Query(ctx, `SELECT r.rrn, p.order_id, -r.amount FROM card_refunds r JOIN card_payments p ON p.id = r.payment_id
		WHERE r.kind = 'refund' AND r.status = 'approved' AND (r.updated_at AT TIME ZONE 'Asia/Shanghai')::date = $1 ORDER BY r.id`, d)
	if err != nil {
		return nil, dbErr(ctx, "reconcile", err)
	}
	if _, err := pgx.ForEachRow(rows, []any{&rrn, &oid, &amt}, func() error {
		mine[rrn] = ours{oid, amt}
		order = append(order, rrn)
		return nil
	}); err != nil {
		return nil, dbErr(ctx, "reconcile", err)
	}
	var diffs []Difference
	seen := map[string]bool{}
	for _, l := range file {
		if l.Kind != "purchase" && l.Kind != "refund" {
			continue
		}
		seen[l.RRN] = true
		o, ok := mine[l.RRN]
		switch {
		case !ok:
			diffs = append(diffs, Difference{RRN: l.RRN, Acquirer: l.Amount, Kind: "missing_on_platform"})
		case o.amount != l.Amount:
			diffs = append(diffs, Difference{RRN: l.RRN, OrderID: o.order, Platform: o.amount, Acquirer: l.Amount, Kind: "amount_mismatch"})
		}
	}
	for _, r := range order {
		if !seen[r] {
			diffs = append(diffs, Difference{RRN: r, OrderID: mine[r].order, Platform: mine[r].amount, Kind: "missing_at_acquirer"})
		}
	}
	// Each difference is an erroneous transaction (长款, 短款, amount), once per day and RRN.
	if err := s.Desk().recordDifferences(ctx, day, diffs); err != nil {
		return diffs, err
	}
	return diffs, nil
}

// unsettledRefunds locks and returns the merchant's approved refunds of day
// d or before that no batch has netted, leaving out refunds of payments
// bound to a payment intent (the payee paid those back).
func unsettledRefunds(ctx context.Context, tx pgx.Tx, org, merchant, d string) ([]int64, int64, error) {
	rows, err := tx.Query(ctx, `SELECT r.id, r.amount FROM card_refunds r JOIN card_payments p ON p.id = r.payment_id
		WHERE r.org_id = $1 AND r.merchant_id = $2 AND r.kind = 'refund' AND r.status = 'approved' AND r.settlement_id IS NULL
		AND p.intent_id IS NULL AND (r.updated_at AT TIME ZONE 'Asia/Shanghai')::date <= $3::date
		ORDER BY r.id FOR UPDATE OF r`, org, merchant, d)
	if err != nil {
		return nil, 0, err
	}
	var ids []int64
	var sum int64
	var id, amt int64
	if _, err := pgx.ForEachRow(rows, []any{&id, &amt}, func() error {
		ids = append(ids, id)
		sum += amt
		return nil
	}); err != nil {
		return nil, 0, err
	}
	return ids, sum, nil
}
