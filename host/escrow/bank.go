package escrow

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/jifu-open/jifu/host/ledger"
)

// TopUp (scenarios 10 and 11, 充值: 网银 and 代扣-用户发起) credits the user's
// custody account from the user's bank card. The user makes it; the
// withhold channel also needs the user's withhold mandate. The request is
// recorded before the bank is asked; an unknown bank outcome leaves it
// bank_pending, and a replay or Query asks the bank again.
func (s *Service) TopUp(ctx context.Context, a Actor, r TopUp) (Response, error) {
	if err := r.validate(); err != nil {
		return Response{}, err
	}
	if a.User != r.User {
		return Response{}, fail(ErrDenied, "a top-up is made by its user")
	}
	return s.run(ctx, a, OpTopUp, r.MerBillNo, r, StateBankPending, func(tx pgx.Tx, l *ledger.Ledger) (Response, error) {
		if _, err := s.custody(ctx, tx, a.App, r.User, r.Role); err != nil {
			return Response{}, err
		}
		if r.Channel == "withhold" {
			if err := s.useMandate(ctx, tx, a.App, r.User, AuthWithhold, r.Amount, "", decimal.Decimal{}); err != nil {
				return Response{}, err
			}
		}
		return Response{Amount: r.Amount}, s.bankOrder(ctx, tx, a.App, r.MerBillNo, r.User, r.Role, "debit", r.Channel, r.Amount, 0)
	})
}

// WithholdTopUp (scenario 12, 委托收款-商户发起): the platform asks to
// withhold from the user's card; it needs the user's withhold mandate, and
// the user confirms by SMS (SMSConfirm), after which the bank is asked.
func (s *Service) WithholdTopUp(ctx context.Context, a Actor, r WithholdTopUp) (Response, error) {
	if err := r.validate(); err != nil {
		return Response{}, err
	}
	return s.run(ctx, a, OpWithholdTopUp, r.MerBillNo, r, StateAwaitingSMS, func(tx pgx.Tx, l *ledger.Ledger) (Response, error) {
		if _, err := s.custody(ctx, tx, a.App, r.User, r.Role); err != nil {
			return Response{}, err
		}
		if err := s.useMandate(ctx, tx, a.App, r.User, AuthWithhold, r.Amount, "", decimal.Decimal{}); err != nil {
			return Response{}, err
		}
		return Response{Amount: r.Amount}, s.smsCode(ctx, tx, a.App, r.MerBillNo, r.User, "代扣充值"+ledger.Yuan(r.Amount)+"元")
	})
}

// Withdraw (scenario 13, 提现) holds the amount on the user's custody account
// (crediting the bank), asks the bank to pay the user's card, and posts the
// hold when the bank confirms or voids it when the bank refuses. An unknown
// outcome keeps the hold until a replay or Query learns the answer.
func (s *Service) Withdraw(ctx context.Context, a Actor, r Withdraw) (Response, error) {
	if err := r.validate(); err != nil {
		return Response{}, err
	}
	if a.User != r.User {
		return Response{}, fail(ErrDenied, "a withdrawal is made by its user")
	}
	return s.run(ctx, a, OpWithdraw, r.MerBillNo, r, StateBankPending, func(tx pgx.Tx, l *ledger.Ledger) (Response, error) {
		from, err := s.custody(ctx, tx, a.App, r.User, r.Role)
		if err != nil {
			return Response{}, err
		}
		bank, err := s.account(ctx, l, ledger.Owner{Type: ledger.OwnerBank, ID: s.cfg.BankName}, "settlement", 0)
		if err != nil {
			return Response{}, err
		}
		hold, err := l.Transfer(ctx, ledgerCaller(a.App), ledger.Transfer{ID: r.MerBillNo + "/withdraw", Debit: from, Credit: bank,
			Amount: r.Amount, Code: "withdraw", Pending: true, Timeout: s.cfg.WithdrawHold})
		if err != nil {
			return Response{}, fromLedger(err, ErrInsufficientFunds, "the custody account cannot cover the withdrawal")
		}
		return Response{Amount: r.Amount}, s.bankOrder(ctx, tx, a.App, r.MerBillNo, r.User, r.Role, "credit", "withdraw", r.Amount, hold.ID)
	})
}

func (s *Service) bankOrder(ctx context.Context, tx pgx.Tx, app, bill, user, role, direction, channel string, amount, hold int64) error {
	var h *int64
	if hold != 0 {
		h = &hold
	}
	_, err := tx.Exec(ctx, `INSERT INTO escrow_bank_orders (app, bill_no, user_id, role, direction, channel, amount, hold_id, state, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9)`, app, bill, user, role, direction, channel, amount, h, s.now())
	return err
}

// settleBank sends the pending bank order of bill (again: orders are
// idempotent at the bank) and books its outcome: a top-up credits the
// custody account from the bank's account, a withdrawal posts its hold; a
// refusal fails the request (voiding a withdrawal's hold); an unknown
// outcome leaves it bank_pending.
func (s *Service) settleBank(ctx context.Context, app, bill string) (Response, error) {
	var (
		user, role, direction, channel, state string
		amount                                int64
		hold                                  *int64
	)
	err := s.pool.QueryRow(ctx, `SELECT user_id, role, direction, channel, amount, hold_id, state FROM escrow_bank_orders
		WHERE app = $1 AND bill_no = $2`, app, bill).Scan(&user, &role, &direction, &channel, &amount, &hold, &state)
	if errors.Is(err, pgx.ErrNoRows) {
		return Response{}, fail(ErrNotFound, "no bank order %s", bill)
	}
	if err != nil {
		return Response{}, dbError(ctx, err)
	}
	order := BankOrder{Ref: app + "/" + bill, User: user, Amount: amount, Channel: channel}
	var res BankResult
	if state == "pending" {
		if direction == "debit" {
			res, err = s.cfg.Bank.Debit(ctx, order)
		} else {
			res, err = s.cfg.Bank.Credit(ctx, order)
		}
		if err != nil {
			s.log.WarnContext(ctx, "escrow: bank outcome unknown", "app", app, "bill", bill, "err", err)
			res = BankResult{Status: BankUnknown}
		}
	}
	var (
		resp  Response
		prior *stored
	)
	err = s.inTx(ctx, func(tx pgx.Tx, l *ledger.Ledger) error {
		p, _, err := s.load(ctx, tx, app, bill, true)
		if err != nil {
			return err
		}
		prior = p
		if p.state != StateBankPending || res.Status == BankUnknown {
			return nil
		}
		resp = p.resp
		caller := ledgerCaller(app)
		if res.Status == BankSucceeded {
			resp.ErrCode, resp.State = "ok", StateDone
			if direction == "debit" {
				to, err := s.custody(ctx, tx, app, user, role)
				if err != nil {
					return err
				}
				bank, err := s.account(ctx, l, ledger.Owner{Type: ledger.OwnerBank, ID: s.cfg.BankName}, "settlement", 0)
				if err != nil {
					return err
				}
				if _, err := l.Transfer(ctx, caller, ledger.Transfer{ID: bill + "/topup", Debit: bank, Credit: to,
					Amount: amount, Code: "topup", Metadata: map[string]string{"channel": channel}}); err != nil {
					return err
				}
			} else if _, err := l.PostPending(ctx, caller, bill+"/post", *hold, 0); err != nil {
				return err
			}
		} else {
			resp.ErrCode, resp.ErrMsg, resp.State = string(ErrBankDeclined), "escrow: bank_declined: "+res.Reason, StateFailed
			if direction == "credit" {
				if _, err := l.VoidPending(ctx, caller, bill+"/void", *hold); err != nil {
					return err
				}
			}
		}
		orderState := map[bool]string{true: "succeeded", false: "failed"}[res.Status == BankSucceeded]
		if _, err := tx.Exec(ctx, `UPDATE escrow_bank_orders SET state = $3 WHERE app = $1 AND bill_no = $2`, app, bill, orderState); err != nil {
			return err
		}
		prior = nil
		return s.finish(ctx, tx, app, bill, resp)
	})
	if err != nil {
		return Response{}, err
	}
	if prior != nil {
		if prior.state == StateBankPending {
			r := prior.resp
			return r, nil
		}
		return replay(prior)
	}
	if resp.State == StateFailed {
		return resp, fail(ErrBankDeclined, "%s", res.Reason)
	}
	return resp, nil
}
