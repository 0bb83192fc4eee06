package cardpay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay/iso8583"
)

// StatusVoided is a payment cancelled in full the same day (0200 void).
const StatusVoided = "voided"

// Kinds of RefundRequest.
const (
	KindAuto   = ""       // a void when one is possible, else a refund
	KindVoid   = "void"   // 0200, 3 = 200000, 60.1 = 23: same day, in full, before settlement
	KindRefund = "refund" // 0220, 3 = 200000, 60.1 = 25: any part of what remains
)

// RefundRequest asks to give back part or all of an approved payment.
// RefundID is the merchant's idempotency key (one namespace for refunds and
// voids per merchant).
type RefundRequest struct {
	OrgID, MerchantID, OrderID, RefundID string
	Amount                               int64  // fen
	Kind                                 string // KindAuto, KindVoid or KindRefund
}

// RefundResult is the outcome of Refund.
type RefundResult struct {
	ID           int64
	RefundID     string
	Kind         string // void (same day, in full, not settled) or refund
	Amount       int64  // fen
	Status       string // approved, declined, failed
	ResponseCode string
	RRN          string // the acquirer's reference of the void or refund
	Replayed     bool   // this refund_id was seen before: stored result
}

// RefundPosting is an approved void or refund as the ledger sees it.
type RefundPosting struct {
	Key        string // "cardpay:refund:<id>"
	RefundID   int64
	PaymentID  int64
	OrgID      string
	MerchantID string
	Kind       string
	Amount     int64
	At         time.Time
}

type refundable struct {
	id, amount, settlementID    int64
	hasSettlement               bool
	status, rrn, acqTID, acqMID string
	settleDay                   time.Time
	hasDay                      bool
}

// Refund voids (same day, full amount, not yet settled) or refunds an
// approved payment through the acquirer. Refunds of one payment never add
// up to more than it; the same RefundID again returns the stored result, or
// resends a refund whose answer never came (the acquirer answers a
// retransmission with its journaled answer).
func (s *Service) Refund(ctx context.Context, r RefundRequest) (RefundResult, error) {
	if r.OrgID == "" || r.MerchantID == "" || r.OrderID == "" || r.RefundID == "" || len(r.RefundID) > 64 || r.Amount <= 0 ||
		(r.Kind != KindAuto && r.Kind != KindVoid && r.Kind != KindRefund) {
		return RefundResult{}, jifu.Errorf(jifu.CodeInvalid, "cardpay: a refund needs org, merchant, order, a refund_id of 1..64 bytes, a positive amount and kind void or refund")
	}
	var res RefundResult
	var p refundable
	var stan string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var day *time.Time
		var sid *int64
		err := tx.QueryRow(ctx, `SELECT id, amount, status, rrn, acq_tid, acq_mid, settle_date, settlement_id FROM card_payments
			WHERE org_id = $1 AND merchant_id = $2 AND order_id = $3 FOR UPDATE`, r.OrgID, r.MerchantID, r.OrderID).
			Scan(&p.id, &p.amount, &p.status, &p.rrn, &p.acqTID, &p.acqMID, &day, &sid)
		if errors.Is(err, pgx.ErrNoRows) {
			return refuse(jifu.CodeNotFound, ReasonNoPayment, "cardpay: no payment %q for this merchant", r.OrderID)
		}
		if err != nil {
			return err
		}
		if day != nil {
			p.settleDay, p.hasDay = *day, true
		}
		if sid != nil {
			p.settlementID, p.hasSettlement = *sid, true
		}
		var prevPayment, prevAmount int64
		err = tx.QueryRow(ctx, `SELECT id, payment_id, amount, kind, status, response_code, rrn, stan FROM card_refunds
			WHERE org_id = $1 AND merchant_id = $2 AND refund_id = $3`, r.OrgID, r.MerchantID, r.RefundID).
			Scan(&res.ID, &prevPayment, &prevAmount, &res.Kind, &res.Status, &res.ResponseCode, &res.RRN, &stan)
		switch {
		case err == nil && (prevPayment != p.id || prevAmount != r.Amount || (r.Kind != KindAuto && r.Kind != res.Kind)):
			return refuse(jifu.CodeConflict, ReasonIDReused, "cardpay: refund_id %q was already used for another refund or void", r.RefundID)
		case err == nil && (res.Status == "failed" || res.Status == "pending"):
			res.RefundID = r.RefundID // resent below with its STAN
			return nil
		case err == nil:
			res.RefundID, res.Replayed = r.RefundID, true
			return nil
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		if p.status == StatusVoided {
			return refuse(jifu.CodeConflict, ReasonVoided, "cardpay: payment %q was voided: nothing to refund", r.OrderID)
		}
		if p.status != StatusApproved {
			return refuse(jifu.CodeConflict, ReasonNotApproved, "cardpay: payment %q is %s, not approved: nothing to refund", r.OrderID, p.status)
		}
		var taken int64
		var others int
		if err := tx.QueryRow(ctx, `SELECT coalesce(sum(amount), 0), count(*) FROM card_refunds
			WHERE payment_id = $1 AND status IN ('approved', 'pending', 'failed')`, p.id).Scan(&taken, &others); err != nil {
			return err
		}
		if taken+r.Amount > p.amount {
			return refuse(jifu.CodeInvalid, ReasonExceeds, "cardpay: refunds would exceed the payment (%d of %d fen already taken)", taken, p.amount)
		}
		today := s.opt.Now().In(beijing).Format("2006-01-02")
		why := ""
		switch {
		case r.Amount != p.amount:
			why = ReasonVoidPartial
		case others > 0:
			why = ReasonVoidRefunded
		case p.hasSettlement:
			why = ReasonVoidSettled
		case !p.hasDay || p.settleDay.Format("2006-01-02") != today:
			why = ReasonVoidNotToday
		}
		switch {
		case r.Kind == KindVoid && why != "":
			return refuse(jifu.CodeConflict, why, "cardpay: payment %q cannot be voided (%s): refund it instead", r.OrderID, why)
		case r.Kind == KindVoid || (r.Kind == KindAuto && why == ""):
			res.Kind = KindVoid
		default:
			res.Kind = KindRefund
		}
		stan = s.acq.NextSTAN()
		res.RefundID, res.Status = r.RefundID, "pending"
		return tx.QueryRow(ctx, `INSERT INTO card_refunds (payment_id, org_id, merchant_id, refund_id, kind, amount, status, stan)
			VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7) RETURNING id`, p.id, r.OrgID, r.MerchantID, r.RefundID, res.Kind, r.Amount, stan).Scan(&res.ID)
	})
	if err != nil {
		return RefundResult{}, dbErr(ctx, "refund", err)
	}
	res.Amount = r.Amount
	if res.Replayed {
		return res, nil
	}
	m := &iso8583.Message{MTI: iso8583.MTIAdvice, ProcessingCode: iso8583.ProcVoidRefund, Amount: r.Amount, STAN: stan,
		RRN: p.rrn, TerminalID: p.acqTID, MerchantID: p.acqMID, Currency: iso8583.CurrencyCNY, Field60: iso8583.TypeRefund + s.opt.BatchNo}
	if res.Kind == "void" {
		m.MTI, m.Field60 = iso8583.MTIFinancial, iso8583.TypeVoid+s.opt.BatchNo
	}
	var resp *iso8583.Message
	if res.Kind == "void" {
		resp, err = s.acq.Void(ctx, m)
	} else {
		resp, err = s.acq.Refund(ctx, m)
	}
	bg := context.WithoutCancel(ctx)
	if err != nil {
		res.Status = "failed"
		if _, dbe := s.pool.Exec(bg, `UPDATE card_refunds SET status = 'failed', updated_at = now() WHERE id = $1`, res.ID); dbe != nil {
			s.log.ErrorContext(ctx, "cardpay: recording a refund failure failed", "refund", res.ID, "err", dbe)
		}
		return res, err
	}
	res.ResponseCode, res.RRN = resp.ResponseCode, resp.RRN
	res.Status = StatusDeclined
	if resp.ResponseCode == iso8583.ResponseApproved {
		res.Status = StatusApproved
	}
	_, err = s.pool.Exec(bg, `WITH r AS (UPDATE card_refunds SET status = $2, response_code = $3, rrn = $4, updated_at = now() WHERE id = $1 RETURNING payment_id)
		UPDATE card_payments p SET status = 'voided', updated_at = now() FROM r WHERE p.id = r.payment_id AND $5`,
		res.ID, res.Status, res.ResponseCode, res.RRN, res.Kind == "void" && res.Status == StatusApproved)
	if err != nil {
		return res, dbErr(ctx, "record refund", err)
	}
	if res.Status == StatusApproved && s.opt.Poster != nil {
		if err := s.opt.Poster.PostRefund(ctx, RefundPosting{Key: fmt.Sprintf("cardpay:refund:%d", res.ID), RefundID: res.ID,
			PaymentID: p.id, OrgID: r.OrgID, MerchantID: r.MerchantID, Kind: res.Kind, Amount: r.Amount, At: s.opt.Now()}); err != nil {
			s.log.WarnContext(ctx, "cardpay: refund posting deferred", "refund", res.ID, "err", err)
		} else if _, err := s.pool.Exec(bg, `UPDATE card_refunds SET posted = true WHERE id = $1`, res.ID); err != nil {
			s.log.WarnContext(ctx, "cardpay: marking a refund posted failed (RetryPostings replays it)", "refund", res.ID, "err", err)
		}
	}
	return res, nil
}
