package cardpay

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay/iso8583"
)

// RetryReversals sends again the reversal of every payment left
// reversal_pending (the acquirer did not acknowledge it in time), marks the
// acknowledged ones reversed and gives back their risk counters. A payment
// whose reversal is still unanswered becomes an erroneous transaction
// (ErrorReversalUnanswered, once per payment), closed as not at fault when
// the acknowledgement comes. For a scheduler; it returns how many were
// reversed.
func (s *Service) RetryReversals(ctx context.Context) (int, error) {
	rows, err := s.pool.Query(ctx, `SELECT p.id, p.org_id, p.merchant_id, p.stan, p.acq_tid, p.acq_mid, p.amount, p.batch_no,
		p.card_token, p.terminal_type, p.card_class, p.t0, p.created_at, p.order_id, p.params, p.pan_masked
		FROM card_payments p WHERE p.status = 'reversal_pending' ORDER BY p.id LIMIT 1000`)
	if err != nil {
		return 0, dbErr(ctx, "list pending reversals", err)
	}
	type pending struct {
		id                                                      int64
		org, merchant, stan, tid, mid, batch, token, typ, class string
		amount                                                  int64
		t0                                                      bool
		at                                                      time.Time
		order, params, masked                                   string
	}
	ps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pending, error) {
		var p pending
		err := r.Scan(&p.id, &p.org, &p.merchant, &p.stan, &p.tid, &p.mid, &p.amount, &p.batch, &p.token, &p.typ, &p.class, &p.t0, &p.at, &p.order, &p.params, &p.masked)
		return p, err
	})
	if err != nil {
		return 0, dbErr(ctx, "list pending reversals", err)
	}
	n := 0
	for _, p := range ps {
		orig := &iso8583.Message{MTI: iso8583.MTIFinancial, ProcessingCode: iso8583.ProcPurchase, Amount: p.amount, STAN: p.stan,
			Condition: "00", TerminalID: p.tid, MerchantID: p.mid, Currency: iso8583.CurrencyCNY, Field60: iso8583.TypePurchase + p.batch}
		if err := s.acq.Reverse(ctx, orig); err != nil {
			s.log.WarnContext(ctx, "cardpay: reversal still not acknowledged", "payment", p.id, "err", err)
			if err := s.Desk().recordUnansweredReversal(ctx, p.id); err != nil {
				s.log.ErrorContext(ctx, "cardpay: recording an unanswered reversal failed", "payment", p.id, "err", jifu.ErrorMessage(err))
			}
			continue
		}
		m, err := s.merchant(ctx, p.org, p.merchant)
		if err != nil {
			return n, err
		}
		// The reversal and its notification (relay.go) in one statement.
		note := s.notification(Result{PaymentID: p.id, OrderID: p.order, Status: StatusReversed, Rule: "acquirer:unknown_result",
			PANMasked: p.masked, Params: p.params}, m, p.amount)
		var moved bool
		err = s.pool.QueryRow(ctx, `WITH r AS (
				UPDATE card_payments SET status = 'reversed', updated_at = now() WHERE id = $1 AND status = 'reversal_pending' RETURNING id),
			n AS (INSERT INTO card_notifications (payment_id, payload) SELECT id, $2 FROM r WHERE $2::text IS NOT NULL)
			SELECT EXISTS (SELECT 1 FROM r)`, p.id, note).Scan(&moved)
		if err != nil {
			return n, dbErr(ctx, "record reversal", err)
		}
		if !moved {
			continue
		}
		// The counters the payment moved: card and user day/month, and T0 when it was T0.
		day := "D" + p.at.In(beijing).Format("2006-01-02")
		month := "M" + p.at.In(beijing).Format("2006-01")
		user := p.org + "/" + p.merchant
		cs := []counter{{scope: "card", subject: p.token, period: day}, {scope: "card", subject: p.token, period: month},
			{scope: "user", subject: user + "/" + p.typ, period: day}, {scope: "user", subject: user + "/" + p.typ, period: month}}
		if p.t0 {
			cs = append(cs, counter{scope: "card_t0", subject: p.token, period: day}, counter{scope: "user_t0", subject: user, period: day})
		}
		if p.token != "" && p.class != "" {
			s.release(ctx, riskOutcome{applied: cs, amount: p.amount})
		}
		if err := s.Desk().resolveReversal(ctx, p.id); err != nil {
			s.log.ErrorContext(ctx, "cardpay: closing the unanswered-reversal case failed", "payment", p.id, "err", jifu.ErrorMessage(err))
		}
		s.log.InfoContext(ctx, "cardpay: reversed on retry", "payment", p.id, "ref", fmt.Sprintf("%s/%s", p.tid, p.stan))
		n++
	}
	return n, nil
}
