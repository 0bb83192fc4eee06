package cardpay

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu"
)

// IntentPayment is an approved card payment bound to a payment intent of
// the payment capability.
type IntentPayment struct {
	PaymentID  int64
	OrgID      string
	MerchantID string
	Amount     int64 // fen
	RRN        string
}

// BindIntent binds to intent intentID the approved card payment a reader
// made for it (its order_id is the intent's id) of exactly amount fen, and
// returns it. Binding is idempotent for the same intent; a bound payment
// leaves merchant settlement (its money goes to the intent's payee). No such
// payment, another amount, or one order_id used at several merchants is
// CodeConflict (the user has not paid at a reader yet, or paid otherwise).
func (s *Service) BindIntent(ctx context.Context, intentID string, amount int64) (IntentPayment, error) {
	var out IntentPayment
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, org_id, merchant_id, amount, rrn FROM card_payments
			WHERE order_id = $1 AND status = 'approved' AND (intent_id IS NULL OR intent_id = $1) FOR UPDATE`, intentID)
		if err != nil {
			return err
		}
		ps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (IntentPayment, error) {
			var p IntentPayment
			err := r.Scan(&p.PaymentID, &p.OrgID, &p.MerchantID, &p.Amount, &p.RRN)
			return p, err
		})
		if err != nil {
			return err
		}
		switch {
		case len(ps) == 0:
			return jifu.Errorf(jifu.CodeConflict, "cardpay: no approved card payment for intent %s: pay at the reader first", intentID)
		case len(ps) > 1:
			return jifu.Errorf(jifu.CodeConflict, "cardpay: several merchants took a card payment for intent %s", intentID)
		case ps[0].Amount != amount:
			return jifu.Errorf(jifu.CodeConflict, "cardpay: the card payment for intent %s is %d fen, not %d", intentID, ps[0].Amount, amount)
		}
		out = ps[0]
		_, err = tx.Exec(ctx, `UPDATE card_payments SET intent_id = $2 WHERE id = $1`, out.PaymentID, intentID)
		return err
	})
	if err != nil {
		return IntentPayment{}, dbErr(ctx, "bind intent", err)
	}
	return out, nil
}

// IntentPaymentOf returns the card payment bound to intentID; CodeNotFound
// when there is none.
func (s *Service) IntentPaymentOf(ctx context.Context, intentID string) (IntentPayment, error) {
	var p IntentPayment
	err := s.pool.QueryRow(ctx, `SELECT id, org_id, merchant_id, amount, rrn FROM card_payments WHERE intent_id = $1`, intentID).
		Scan(&p.PaymentID, &p.OrgID, &p.MerchantID, &p.Amount, &p.RRN)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, jifu.Errorf(jifu.CodeNotFound, "cardpay: no card payment bound to intent %s", intentID)
	}
	if err != nil {
		return p, dbErr(ctx, "intent payment", err)
	}
	return p, nil
}
