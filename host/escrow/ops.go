package escrow

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/ledger"
)

// OpenAccount (scenario 1, 用户开户) opens the invocation user's custody
// account in r.Role. The user must be real-name verified; an SMS code goes
// to the user and SMSConfirm opens the account.
func (s *Service) OpenAccount(ctx context.Context, a Actor, r OpenAccount) (Response, error) {
	if err := r.validate(); err != nil {
		return Response{}, err
	}
	if a.User == "" {
		return Response{}, fail(ErrDenied, "an account is opened by its user, in person")
	}
	if err := s.checkRealName(ctx, a.User); err != nil {
		return Response{}, err
	}
	return s.run(ctx, a, OpOpenAccount, r.MerBillNo, r, StateAwaitingSMS, func(tx pgx.Tx, l *ledger.Ledger) (Response, error) {
		if _, err := s.custody(ctx, tx, a.App, a.User, r.Role); err == nil {
			return Response{}, fail(ErrAccountExists, "%q already has a %s account", a.User, r.Role)
		} else if ReasonOf(err) != ErrNotFound {
			return Response{}, err
		}
		return Response{}, s.smsCode(ctx, tx, a.App, r.MerBillNo, a.User, "开户")
	})
}

func (s *Service) checkRealName(ctx context.Context, user string) error {
	rn, err := s.cfg.RealNames.RealName(ctx, user)
	if err != nil {
		if jifu.ErrorCode(err) == jifu.CodeNotFound {
			return fail(ErrNotRealName, "%q is not a known user", user)
		}
		return err
	}
	if !rn.Verified {
		return fail(ErrNotRealName, "%q has not passed real-name verification", user)
	}
	return nil
}

func (s *Service) openConfirmed(ctx context.Context, tx pgx.Tx, l *ledger.Ledger, app, user, bill string, r OpenAccount) (Response, error) {
	rn, err := s.cfg.RealNames.RealName(ctx, user)
	if err != nil {
		return Response{}, err
	}
	if !rn.Verified {
		return Response{}, fail(ErrNotRealName, "%q has not passed real-name verification", user)
	}
	id, err := s.account(ctx, l, custodyOwner(app, r.Role, user), custodyName, ledger.DebitsMustNotExceedCredits)
	if err != nil {
		return Response{}, err
	}
	tag, err := tx.Exec(ctx, `INSERT INTO escrow_accounts (app, user_id, role, account_id, real_name, ident_masked, bill_no, opened_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
		app, user, r.Role, id, rn.Name, maskID(rn.IDNumber), bill, s.now())
	if err != nil {
		return Response{}, err
	}
	if tag.RowsAffected() == 0 {
		return Response{}, fail(ErrAccountExists, "%q already has a %s account", user, r.Role)
	}
	return Response{AccountID: id, State: StateDone}, nil
}

// SMSConfirm completes a request waiting for its SMS code (account opening,
// listing registration, merchant-initiated withholding). A wrong code counts
// an attempt; after five, or past its validity, the code is dead. Confirming
// a completed request replays its response.
func (s *Service) SMSConfirm(ctx context.Context, a Actor, r SMSConfirm) (Response, error) {
	if err := r.validate(); err != nil {
		return Response{}, err
	}
	var (
		resp   Response
		wrong  error
		prior  *stored
		toBank bool
	)
	err := s.inTx(ctx, func(tx pgx.Tx, l *ledger.Ledger) error {
		wrong, prior, toBank = nil, nil, false
		p, _, err := s.load(ctx, tx, a.App, r.MerBillNo, true)
		if err != nil {
			return err
		}
		if p.op != OpOpenAccount && p.op != OpRegisterLoan && p.op != OpWithholdTopUp {
			return fail(ErrNotFound, "no request %s waiting for an SMS code", r.MerBillNo)
		}
		if p.state != StateAwaitingSMS {
			prior = p
			return nil
		}
		var (
			user     string
			hash     []byte
			expires  time.Time
			attempts int
		)
		if err := tx.QueryRow(ctx, `SELECT user_id, code_hash, expires_at, attempts FROM escrow_sms WHERE app = $1 AND bill_no = $2`,
			a.App, r.MerBillNo).Scan(&user, &hash, &expires, &attempts); err != nil {
			return err
		}
		if a.User != "" && a.User != user {
			return fail(ErrDenied, "the code of %s is for another user", r.MerBillNo)
		}
		if !s.now().Before(expires) || attempts >= maxSMSAttempts {
			return fail(ErrSMSCodeExpired, "the code of %s has expired; make a new request", r.MerBillNo)
		}
		if !compareCode(a.App, r.MerBillNo, r.SmsCode, hash) {
			wrong = fail(ErrSMSCodeWrong, "wrong code for %s", r.MerBillNo)
			_, err := tx.Exec(ctx, `UPDATE escrow_sms SET attempts = attempts + 1 WHERE app = $1 AND bill_no = $2`, a.App, r.MerBillNo)
			return err
		}
		switch p.op {
		case OpOpenAccount:
			var q OpenAccount
			if err := json.Unmarshal(p.req, &q); err != nil {
				return err
			}
			resp, err = s.openConfirmed(ctx, tx, l, a.App, user, r.MerBillNo, q)
		case OpRegisterLoan:
			var q RegisterLoan
			if err := json.Unmarshal(p.req, &q); err != nil {
				return err
			}
			resp, err = s.loanConfirmed(ctx, tx, l, a.App, r.MerBillNo, q)
		case OpWithholdTopUp:
			var q WithholdTopUp
			if err := json.Unmarshal(p.req, &q); err != nil {
				return err
			}
			toBank = true
			resp, err = Response{State: StateBankPending, Amount: q.Amount}, s.bankOrder(ctx, tx, a.App, r.MerBillNo, q.User, q.Role, "debit", "withhold", q.Amount, 0)
		default:
			err = jifu.Errorf(jifu.CodeInternal, "escrow: %s waits for SMS but %s has no confirmation", r.MerBillNo, p.op)
		}
		if err != nil {
			return err
		}
		resp.ErrCode, resp.MerBillNo, resp.Op = "ok", r.MerBillNo, p.op
		if _, err := tx.Exec(ctx, `DELETE FROM escrow_sms WHERE app = $1 AND bill_no = $2`, a.App, r.MerBillNo); err != nil {
			return err
		}
		return s.finish(ctx, tx, a.App, r.MerBillNo, resp)
	})
	switch {
	case err != nil:
		return Response{}, err
	case wrong != nil:
		return Response{}, wrong
	case prior != nil && prior.state == StateBankPending, toBank:
		return s.settleBank(ctx, a.App, r.MerBillNo)
	case prior != nil:
		return replay(prior)
	}
	return resp, nil
}

// RegisterLoan (scenario 2, 平台发布借款标) registers a listing; the borrower
// confirms by SMS, which opens it to bids and freezes the borrower's margin.
func (s *Service) RegisterLoan(ctx context.Context, a Actor, r RegisterLoan) (Response, error) {
	if err := r.validate(); err != nil {
		return Response{}, err
	}
	return s.run(ctx, a, OpRegisterLoan, r.MerBillNo, r, StateAwaitingSMS, func(tx pgx.Tx, l *ledger.Ledger) (Response, error) {
		if _, err := s.custody(ctx, tx, a.App, r.Borrower, RoleBorrower); err != nil {
			return Response{}, err
		}
		if _, err := s.loan(ctx, tx, a.App, r.BidNo, false); err == nil {
			return Response{}, fail(ErrWrongState, "listing %s is already registered", r.BidNo)
		} else if ReasonOf(err) != ErrNotFound {
			return Response{}, err
		}
		return Response{}, s.smsCode(ctx, tx, a.App, r.MerBillNo, r.Borrower,
			"借款标"+r.BidNo+"（借款"+ledger.Yuan(r.LendAmt)+"元）登记")
	})
}

func (s *Service) loanConfirmed(ctx context.Context, tx pgx.Tx, l *ledger.Ledger, app, bill string, r RegisterLoan) (Response, error) {
	if _, err := s.loan(ctx, tx, app, r.BidNo, false); err == nil {
		return Response{}, fail(ErrWrongState, "listing %s is already registered", r.BidNo)
	} else if ReasonOf(err) != ErrNotFound {
		return Response{}, err
	}
	borrower, err := s.custody(ctx, tx, app, r.Borrower, RoleBorrower)
	if err != nil {
		return Response{}, err
	}
	owner := loanOwner(app, r.BidNo)
	ids := map[string]int64{}
	for name, flags := range map[string]ledger.Flags{
		"capacity": ledger.DebitsMustNotExceedCredits, "capacity-source": 0, "capacity-used": 0,
		"borrower-margin": ledger.DebitsMustNotExceedCredits, "guarantor-margin": ledger.DebitsMustNotExceedCredits,
	} {
		if ids[name], err = s.account(ctx, l, owner, name, flags); err != nil {
			return Response{}, err
		}
	}
	caller := ledgerCaller(app)
	if _, err := l.Transfer(ctx, caller, ledger.Transfer{ID: bill + "/capacity", Debit: ids["capacity-source"],
		Credit: ids["capacity"], Amount: r.LendAmt, Code: "capacity"}); err != nil {
		return Response{}, err
	}
	if r.GuaranteesAmt > 0 {
		if _, err := l.Transfer(ctx, caller, ledger.Transfer{ID: bill + "/margin", Debit: borrower,
			Credit: ids["borrower-margin"], Amount: r.GuaranteesAmt, Code: "margin.freeze"}); err != nil {
			return Response{}, fromLedger(err, ErrInsufficientFunds, "the borrower cannot cover the margin")
		}
	}
	rate, _ := parseRate("TrdLendRate", r.TrdLendRate)
	now := s.now()
	tag, err := tx.Exec(ctx, `INSERT INTO escrow_loans (app, bid_no, bill_no, borrower, amount, rate, deadline, capacity_id,
		borrower_margin_id, guarantor_margin_id, created_at) VALUES ($1, $2, $3, $4, $5, $6::numeric, $7, $8, $9, $10, $11)
		ON CONFLICT DO NOTHING`,
		app, r.BidNo, bill, r.Borrower, r.LendAmt, rate.String(), now.Add(time.Duration(r.RaiseDays)*24*time.Hour),
		ids["capacity"], ids["borrower-margin"], ids["guarantor-margin"], now)
	if err != nil {
		return Response{}, err
	}
	if tag.RowsAffected() == 0 { // registered concurrently under another bill
		return Response{}, fail(ErrWrongState, "listing %s is already registered", r.BidNo)
	}
	return Response{State: StateDone, Amount: r.LendAmt, Remaining: r.LendAmt}, nil
}

// RegisterGuarantor (scenario 3, 担保方对标的担保): the invocation's user
// guarantees a listing, with a margin frozen from its custody account or
// without.
func (s *Service) RegisterGuarantor(ctx context.Context, a Actor, r RegisterGuarantor) (Response, error) {
	if err := r.validate(); err != nil {
		return Response{}, err
	}
	return s.run(ctx, a, OpRegisterGuarantor, r.MerBillNo, r, StateDone, func(tx pgx.Tx, l *ledger.Ledger) (Response, error) {
		ln, err := s.loan(ctx, tx, a.App, r.BidNo, true)
		if err != nil {
			return Response{}, err
		}
		if ln.guarantor != "" {
			return Response{}, fail(ErrWrongState, "listing %s already has a guarantor", r.BidNo)
		}
		if _, err := s.actFor(ctx, tx, a, r.Guarantor, "", r.MarginAmt, r.BidNo, decimal.Decimal{}); err != nil {
			return Response{}, err
		}
		g, err := s.custody(ctx, tx, a.App, r.Guarantor, RoleGuarantor)
		if err != nil {
			return Response{}, err
		}
		if r.MarginAmt > 0 {
			if _, err := l.Transfer(ctx, ledgerCaller(a.App), ledger.Transfer{ID: r.MerBillNo + "/margin", Debit: g,
				Credit: ln.gMargin, Amount: r.MarginAmt, Code: "margin.freeze"}); err != nil {
				return Response{}, fromLedger(err, ErrInsufficientFunds, "the guarantor cannot cover the margin")
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE escrow_loans SET guarantor = $3 WHERE app = $1 AND bid_no = $2`, a.App, r.BidNo, r.Guarantor); err != nil {
			return Response{}, err
		}
		return Response{Amount: r.MarginAmt}, nil
	})
}

// Bid (scenarios 4 and 5, 投资人投标) freezes an investor's bid: a hold on the
// investor's custody account (crediting the borrower's) and a hold of the
// same amount on the listing's capacity account, which refuses overdraft, so
// cumulative bids never exceed the loan amount however many race. The
// investor makes it, or the platform under the investor's auto_bid
// authorization (scenario 16). The holds expire at the listing's deadline.
func (s *Service) Bid(ctx context.Context, a Actor, r Bid) (Response, error) {
	if err := r.validate(); err != nil {
		return Response{}, err
	}
	return s.run(ctx, a, OpBid, r.MerBillNo, r, StateDone, func(tx pgx.Tx, l *ledger.Ledger) (Response, error) {
		ln, err := s.loan(ctx, tx, a.App, r.BidNo, false)
		if err != nil {
			return Response{}, err
		}
		now := s.now()
		if ln.deadline.Sub(now) < time.Second { // a hold needs a timeout ahead
			return Response{}, fail(ErrWrongState, "listing %s closed for bids at %s", r.BidNo, ln.deadline.Format(time.RFC3339))
		}
		if r.Investor == ln.borrower {
			return Response{}, fail(ErrInvalid, "the borrower cannot bid on its own listing")
		}
		inv, err := s.custody(ctx, tx, a.App, r.Investor, RoleInvestor)
		if err != nil {
			return Response{}, err
		}
		bor, err := s.custody(ctx, tx, a.App, ln.borrower, RoleBorrower)
		if err != nil {
			return Response{}, err
		}
		auto, err := s.actFor(ctx, tx, a, r.Investor, AuthAutoBid, r.TrdAmt, "", ln.rate)
		if err != nil {
			return Response{}, err
		}
		used, err := l.FindAccount(ctx, loanOwner(a.App, r.BidNo), "capacity-used")
		if err != nil {
			return Response{}, err
		}
		timeout := ln.deadline.Sub(now)
		caller := ledgerCaller(a.App)
		capHold, err := l.Transfer(ctx, caller, ledger.Transfer{ID: r.MerBillNo + "/capacity", Debit: ln.capacity, Credit: used.ID,
			Amount: r.TrdAmt, Code: "bid.capacity", Pending: true, Timeout: timeout})
		if err != nil {
			return Response{}, fromLedger(err, ErrOversubscribed, "listing "+r.BidNo+" has less than the bid left")
		}
		hold, err := l.Transfer(ctx, caller, ledger.Transfer{ID: r.MerBillNo + "/bid", Debit: inv, Credit: bor,
			Amount: r.TrdAmt, Code: "bid", Pending: true, Timeout: timeout, Metadata: map[string]string{"bid_no": r.BidNo}})
		if err != nil {
			return Response{}, fromLedger(err, ErrInsufficientFunds, "the investor cannot cover the bid")
		}
		if _, err := tx.Exec(ctx, `INSERT INTO escrow_bids (app, bill_no, bid_no, investor, amount, hold_id, cap_hold_id, auto, status, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'frozen', $9)`,
			a.App, r.MerBillNo, r.BidNo, r.Investor, r.TrdAmt, hold.ID, capHold.ID, auto, now); err != nil {
			return Response{}, err
		}
		left, err := l.Balance(ctx, ln.capacity)
		if err != nil {
			return Response{}, err
		}
		return Response{Amount: r.TrdAmt, Remaining: left.Available()}, nil
	})
}

// RegisterDebtTransfer (scenario 6, 个人债权转让, first step): the buyer
// confirms and its price is frozen (a hold crediting the seller), and
// Principal of the seller's claim is reserved for it. Transfer with type
// debt_transfer completes it.
func (s *Service) RegisterDebtTransfer(ctx context.Context, a Actor, r RegisterDebtTransfer) (Response, error) {
	if err := r.validate(); err != nil {
		return Response{}, err
	}
	return s.run(ctx, a, OpRegisterDebt, r.MerBillNo, r, StateDone, func(tx pgx.Tx, l *ledger.Ledger) (Response, error) {
		if _, err := s.loan(ctx, tx, a.App, r.BidNo, false); err != nil {
			return Response{}, err
		}
		if _, err := s.actFor(ctx, tx, a, r.Buyer, "", r.Price, r.BidNo, decimal.Decimal{}); err != nil {
			return Response{}, err
		}
		buyer, err := s.custody(ctx, tx, a.App, r.Buyer, RoleInvestor)
		if err != nil {
			return Response{}, err
		}
		seller, err := s.custody(ctx, tx, a.App, r.Seller, RoleInvestor)
		if err != nil {
			return Response{}, err
		}
		tag, err := tx.Exec(ctx, `UPDATE escrow_claims SET reserved = reserved + $4
			WHERE app = $1 AND bid_no = $2 AND holder = $3 AND principal - reserved >= $4`, a.App, r.BidNo, r.Seller, r.Principal)
		if err != nil {
			return Response{}, err
		}
		if tag.RowsAffected() == 0 {
			return Response{}, fail(ErrExceedsClaim, "%q holds less than %d fen of %s free to transfer", r.Seller, r.Principal, r.BidNo)
		}
		hold, err := l.Transfer(ctx, ledgerCaller(a.App), ledger.Transfer{ID: r.MerBillNo + "/price", Debit: buyer, Credit: seller,
			Amount: r.Price, Code: "debt_transfer", Pending: true, Timeout: s.cfg.TransferHold, Metadata: map[string]string{"bid_no": r.BidNo}})
		if err != nil {
			return Response{}, fromLedger(err, ErrInsufficientFunds, "the buyer cannot cover the price")
		}
		if _, err := tx.Exec(ctx, `INSERT INTO escrow_debt_transfers (app, bill_no, bid_no, seller, buyer, principal, price, hold_id, status, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'frozen', $9)`,
			a.App, r.MerBillNo, r.BidNo, r.Seller, r.Buyer, r.Principal, r.Price, hold.ID, s.now()); err != nil {
			return Response{}, err
		}
		return Response{Amount: r.Price}, nil
	})
}

// Transfer (IPS 4.10 转账) runs the typed transfers; see the type's doc.
func (s *Service) Transfer(ctx context.Context, a Actor, r Transfer) (Response, error) {
	if err := r.validate(); err != nil {
		return Response{}, err
	}
	return s.run(ctx, a, OpTransfer, r.MerBillNo, r, StateDone, func(tx pgx.Tx, l *ledger.Ledger) (Response, error) {
		ln, err := s.loan(ctx, tx, a.App, r.BidNo, true)
		if err != nil {
			return Response{}, err
		}
		switch r.TransferType {
		case TransferInvest:
			return s.invest(ctx, tx, l, a, ln, r)
		case TransferDebt:
			return s.debtTransfer(ctx, tx, l, a, ln, r)
		case TransferCompensation:
			return s.compensate(ctx, tx, l, a, ln, r)
		default:
			return s.compensationRepay(ctx, tx, l, a, ln, r)
		}
	})
}

type frozenBid struct {
	bill, investor string
	amount         int64
	hold, capHold  int64
	status         string
}

// invest (scenarios 4 and 5): posts the listed frozen bids (none listed:
// all, the one-time release) to the borrower, records the investors'
// claims, and takes the platform's fee from the borrower.
func (s *Service) invest(ctx context.Context, tx pgx.Tx, l *ledger.Ledger, a Actor, ln *loan, r Transfer) (Response, error) {
	bids, err := s.bids(ctx, tx, a.App, ln.bidNo, r.Bills)
	if err != nil {
		return Response{}, err
	}
	caller := ledgerCaller(a.App)
	var sum int64
	for _, b := range bids {
		// The capacity first, as a bid takes its locks: one lock order.
		if _, err := l.PostPending(ctx, caller, r.MerBillNo+"/"+b.bill+"/capacity", b.capHold, 0); err != nil {
			return Response{}, fromLedger(err, ErrWrongState, "bid "+b.bill)
		}
		if _, err := l.PostPending(ctx, caller, r.MerBillNo+"/"+b.bill, b.hold, 0); err != nil {
			return Response{}, fromLedger(err, ErrWrongState, "bid "+b.bill)
		}
		if _, err := tx.Exec(ctx, `UPDATE escrow_bids SET status = 'released' WHERE app = $1 AND bill_no = $2`, a.App, b.bill); err != nil {
			return Response{}, err
		}
		if err := addClaim(ctx, tx, a.App, ln.bidNo, b.investor, b.amount); err != nil {
			return Response{}, err
		}
		sum += b.amount
	}
	if r.Fee > 0 {
		bor, err := s.custody(ctx, tx, a.App, ln.borrower, RoleBorrower)
		if err != nil {
			return Response{}, err
		}
		platform, err := s.account(ctx, l, custodyOwner(a.App, RolePlatform, ""), custodyName, ledger.DebitsMustNotExceedCredits)
		if err != nil {
			return Response{}, err
		}
		if _, err := l.Transfer(ctx, caller, ledger.Transfer{ID: r.MerBillNo + "/fee", Debit: bor, Credit: platform,
			Amount: r.Fee, Code: "fee"}); err != nil {
			return Response{}, fromLedger(err, ErrInsufficientFunds, "the borrower cannot cover the fee")
		}
	}
	var released int64
	if err := tx.QueryRow(ctx, `UPDATE escrow_loans SET released = released + $3 WHERE app = $1 AND bid_no = $2 RETURNING released`,
		a.App, ln.bidNo, sum).Scan(&released); err != nil {
		return Response{}, err
	}
	return Response{Amount: sum, Released: released}, nil
}

// bids locks and returns the listed bids of a listing (none listed: every
// frozen one), refusing unknown bills and bids no longer frozen.
func (s *Service) bids(ctx context.Context, tx pgx.Tx, app, bidNo string, list []string) ([]frozenBid, error) {
	q := `SELECT bill_no, investor, amount, hold_id, cap_hold_id, status FROM escrow_bids WHERE app = $1 AND bid_no = $2`
	args := []any{app, bidNo}
	bills := sortedUnique(list)
	if len(bills) > 0 {
		q += ` AND bill_no = ANY($3)`
		args = append(args, bills)
	} else {
		q += ` AND status = 'frozen'`
	}
	rows, err := tx.Query(ctx, q+` ORDER BY bill_no FOR UPDATE`, args...)
	if err != nil {
		return nil, err
	}
	bids, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (frozenBid, error) {
		var b frozenBid
		return b, row.Scan(&b.bill, &b.investor, &b.amount, &b.hold, &b.capHold, &b.status)
	})
	if err != nil {
		return nil, err
	}
	if len(bills) > 0 && len(bids) != len(bills) {
		return nil, fail(ErrNotFound, "some of Bills are not bids on %s", bidNo)
	}
	if len(bids) == 0 {
		return nil, fail(ErrWrongState, "listing %s has no frozen bids", bidNo)
	}
	for _, b := range bids {
		if b.status != "frozen" {
			return nil, fail(ErrWrongState, "bid %s is %s", b.bill, b.status)
		}
	}
	return bids, nil
}

func addClaim(ctx context.Context, tx pgx.Tx, app, bidNo, holder string, principal int64) error {
	_, err := tx.Exec(ctx, `INSERT INTO escrow_claims (app, bid_no, holder, principal) VALUES ($1, $2, $3, $4)
		ON CONFLICT (app, bid_no, holder) DO UPDATE SET principal = escrow_claims.principal + EXCLUDED.principal`,
		app, bidNo, holder, principal)
	return err
}

// debtTransfer (scenario 6, second step): posts the buyer's frozen price to
// the seller and moves the reserved principal of the claim to the buyer.
func (s *Service) debtTransfer(ctx context.Context, tx pgx.Tx, l *ledger.Ledger, a Actor, ln *loan, r Transfer) (Response, error) {
	var (
		seller, buyer, status  string
		principal, price, hold int64
	)
	err := tx.QueryRow(ctx, `SELECT seller, buyer, principal, price, hold_id, status FROM escrow_debt_transfers
		WHERE app = $1 AND bill_no = $2 AND bid_no = $3 FOR UPDATE`, a.App, r.Bills[0], ln.bidNo).
		Scan(&seller, &buyer, &principal, &price, &hold, &status)
	if errors.Is(err, pgx.ErrNoRows) {
		return Response{}, fail(ErrNotFound, "no debt transfer %s on %s", r.Bills[0], ln.bidNo)
	}
	if err != nil {
		return Response{}, err
	}
	if status != "frozen" {
		return Response{}, fail(ErrWrongState, "debt transfer %s is %s", r.Bills[0], status)
	}
	if _, err := l.PostPending(ctx, ledgerCaller(a.App), r.MerBillNo+"/post", hold, 0); err != nil {
		return Response{}, fromLedger(err, ErrWrongState, "debt transfer "+r.Bills[0])
	}
	if _, err := tx.Exec(ctx, `UPDATE escrow_claims SET principal = principal - $4, reserved = reserved - $4
		WHERE app = $1 AND bid_no = $2 AND holder = $3`, a.App, ln.bidNo, seller, principal); err != nil {
		return Response{}, err
	}
	if err := addClaim(ctx, tx, a.App, ln.bidNo, buyer, principal); err != nil {
		return Response{}, err
	}
	if _, err := tx.Exec(ctx, `UPDATE escrow_debt_transfers SET status = 'done' WHERE app = $1 AND bill_no = $2`, a.App, r.Bills[0]); err != nil {
		return Response{}, err
	}
	return Response{Amount: price, Lines: []Line{{User: buyer, Amount: principal}}}, nil
}

// compensate (scenario 8, 担保方代偿): the guarantor pays the holders (or the
// named Payees) pro rata, from its margin on the listing first and then from
// its custody account; the borrower then owes the guarantor.
func (s *Service) compensate(ctx context.Context, tx pgx.Tx, l *ledger.Ledger, a Actor, ln *loan, r Transfer) (Response, error) {
	if ln.guarantor == "" {
		return Response{}, fail(ErrWrongState, "listing %s has no guarantor", ln.bidNo)
	}
	g, err := s.custody(ctx, tx, a.App, ln.guarantor, RoleGuarantor)
	if err != nil {
		return Response{}, err
	}
	hs, err := s.holdings(ctx, tx, a.App, ln.bidNo, r.Payees)
	if err != nil {
		return Response{}, err
	}
	// The guarantor's margin on this listing pays first: it was frozen for
	// exactly this.
	margin, err := l.Balance(ctx, ln.gMargin)
	if err != nil {
		return Response{}, err
	}
	if m := min(margin.Available(), r.Amount); m > 0 {
		if _, err := l.Transfer(ctx, ledgerCaller(a.App), ledger.Transfer{ID: r.MerBillNo + "/margin", Debit: ln.gMargin, Credit: g,
			Amount: m, Code: "margin.apply"}); err != nil {
			return Response{}, err
		}
	}
	lines, err := s.payOut(ctx, tx, l, a.App, r.MerBillNo, g, r.Amount, hs, "compensation")
	if err != nil {
		return Response{}, err
	}
	if _, err := tx.Exec(ctx, `UPDATE escrow_loans SET compensated = compensated + $3 WHERE app = $1 AND bid_no = $2`,
		a.App, ln.bidNo, r.Amount); err != nil {
		return Response{}, err
	}
	return Response{Amount: r.Amount, Lines: lines}, nil
}

// compensationRepay (scenario 9, 借款人针对代偿的还款): the borrower repays
// the guarantor, at most what it compensated and was not repaid; the
// borrower makes it or the platform under the borrower's auto_repay.
func (s *Service) compensationRepay(ctx context.Context, tx pgx.Tx, l *ledger.Ledger, a Actor, ln *loan, r Transfer) (Response, error) {
	if ln.guarantor == "" {
		return Response{}, fail(ErrWrongState, "listing %s has no guarantor", ln.bidNo)
	}
	if r.Amount > ln.compensated-ln.compRepaid {
		return Response{}, fail(ErrExceedsDebt, "the borrower owes the guarantor %d fen, not %d", ln.compensated-ln.compRepaid, r.Amount)
	}
	if _, err := s.actFor(ctx, tx, a, ln.borrower, AuthAutoRepay, r.Amount, ln.bidNo, decimal.Decimal{}); err != nil {
		return Response{}, err
	}
	bor, err := s.custody(ctx, tx, a.App, ln.borrower, RoleBorrower)
	if err != nil {
		return Response{}, err
	}
	g, err := s.custody(ctx, tx, a.App, ln.guarantor, RoleGuarantor)
	if err != nil {
		return Response{}, err
	}
	if _, err := l.Transfer(ctx, ledgerCaller(a.App), ledger.Transfer{ID: r.MerBillNo + "/repay", Debit: bor, Credit: g,
		Amount: r.Amount, Code: "compensation_repay"}); err != nil {
		return Response{}, fromLedger(err, ErrInsufficientFunds, "the borrower cannot cover the repayment")
	}
	if _, err := tx.Exec(ctx, `UPDATE escrow_loans SET comp_repaid = comp_repaid + $3 WHERE app = $1 AND bid_no = $2`,
		a.App, ln.bidNo, r.Amount); err != nil {
		return Response{}, err
	}
	return Response{Amount: r.Amount, Lines: []Line{{User: ln.guarantor, Amount: r.Amount}}}, nil
}

// Repay (scenario 7, 借款人还款) pays the holders of a listing's claims pro
// rata from the borrower's custody account: by the borrower (manual) or by
// the platform under the borrower's auto_repay authorization (scenario 17).
func (s *Service) Repay(ctx context.Context, a Actor, r Repay) (Response, error) {
	if err := r.validate(); err != nil {
		return Response{}, err
	}
	return s.run(ctx, a, OpRepay, r.MerBillNo, r, StateDone, func(tx pgx.Tx, l *ledger.Ledger) (Response, error) {
		ln, err := s.loan(ctx, tx, a.App, r.BidNo, true)
		if err != nil {
			return Response{}, err
		}
		if _, err := s.actFor(ctx, tx, a, ln.borrower, AuthAutoRepay, r.Amount, ln.bidNo, decimal.Decimal{}); err != nil {
			return Response{}, err
		}
		bor, err := s.custody(ctx, tx, a.App, ln.borrower, RoleBorrower)
		if err != nil {
			return Response{}, err
		}
		hs, err := s.holdings(ctx, tx, a.App, ln.bidNo, nil)
		if err != nil {
			return Response{}, err
		}
		lines, err := s.payOut(ctx, tx, l, a.App, r.MerBillNo, bor, r.Amount, hs, "repay")
		if err != nil {
			return Response{}, err
		}
		return Response{Amount: r.Amount, Lines: lines}, nil
	})
}

// Unfreeze (scenarios 14 and 15, 解冻保证金) returns part of a listing's
// guarantor or borrower margin to its owner; repeated until zero, never
// beyond.
func (s *Service) Unfreeze(ctx context.Context, a Actor, r Unfreeze) (Response, error) {
	if err := r.validate(); err != nil {
		return Response{}, err
	}
	return s.run(ctx, a, OpUnfreeze, r.MerBillNo, r, StateDone, func(tx pgx.Tx, l *ledger.Ledger) (Response, error) {
		ln, err := s.loan(ctx, tx, a.App, r.BidNo, true)
		if err != nil {
			return Response{}, err
		}
		margin, owner := ln.bMargin, ln.borrower
		if r.UnfreezeType == RoleGuarantor {
			if ln.guarantor == "" {
				return Response{}, fail(ErrWrongState, "listing %s has no guarantor", ln.bidNo)
			}
			margin, owner = ln.gMargin, ln.guarantor
		}
		to, err := s.custody(ctx, tx, a.App, owner, r.UnfreezeType)
		if err != nil {
			return Response{}, err
		}
		if _, err := l.Transfer(ctx, ledgerCaller(a.App), ledger.Transfer{ID: r.MerBillNo + "/unfreeze", Debit: margin, Credit: to,
			Amount: r.Amount, Code: "margin.unfreeze"}); err != nil {
			return Response{}, fromLedger(err, ErrExceedsMargin, "the "+r.UnfreezeType+" margin of "+ln.bidNo+" is smaller")
		}
		left, err := l.Balance(ctx, margin)
		if err != nil {
			return Response{}, err
		}
		return Response{Amount: r.Amount, Remaining: left.Available()}, nil
	})
}

// Authorize (scenarios 16 and 17, and the withholding mandate of 11–12)
// records the invocation user's standing authorization, replacing the live
// one of its kind.
func (s *Service) Authorize(ctx context.Context, a Actor, r Authorize) (Response, error) {
	if err := r.validate(); err != nil {
		return Response{}, err
	}
	if a.User == "" {
		return Response{}, fail(ErrDenied, "a standing authorization is given by its user, in person")
	}
	return s.run(ctx, a, OpAuthorize, r.MerBillNo, r, StateDone, func(tx pgx.Tx, l *ledger.Ledger) (Response, error) {
		var rate decimal.Decimal
		if r.MinRate != "" {
			rate, _ = parseRate("MinRate", r.MinRate)
		}
		now := s.now()
		_, err := tx.Exec(ctx, `INSERT INTO escrow_authorizations (app, user_id, kind, bill_no, max_amount, total_limit, min_rate, bid_no, valid_until, signed_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7::numeric, $8, $9, $10)
			ON CONFLICT (app, user_id, kind) DO UPDATE SET bill_no = EXCLUDED.bill_no, max_amount = EXCLUDED.max_amount,
				total_limit = EXCLUDED.total_limit, used = 0, min_rate = EXCLUDED.min_rate, bid_no = EXCLUDED.bid_no,
				valid_until = EXCLUDED.valid_until, revoked_at = NULL, signed_at = EXCLUDED.signed_at`,
			a.App, a.User, r.Kind, r.MerBillNo, r.MaxAmount, r.TotalLimit, rate.String(), r.BidNo,
			now.Add(time.Duration(r.ValidDays)*24*time.Hour), now)
		return Response{Amount: r.MaxAmount}, err
	})
}

// Revoke ends the invocation user's standing authorization of a kind.
func (s *Service) Revoke(ctx context.Context, a Actor, r Revoke) (Response, error) {
	if err := r.validate(); err != nil {
		return Response{}, err
	}
	if a.User == "" {
		return Response{}, fail(ErrDenied, "a standing authorization is revoked by its user")
	}
	return s.run(ctx, a, OpRevoke, r.MerBillNo, r, StateDone, func(tx pgx.Tx, l *ledger.Ledger) (Response, error) {
		tag, err := tx.Exec(ctx, `UPDATE escrow_authorizations SET revoked_at = $4
			WHERE app = $1 AND user_id = $2 AND kind = $3 AND revoked_at IS NULL`, a.App, a.User, r.Kind, s.now())
		if err == nil && tag.RowsAffected() == 0 {
			err = fail(ErrNotFound, "no live %s authorization", r.Kind)
		}
		return Response{}, err
	})
}

// Query returns the state and response of a request; for a bank order whose
// outcome was unknown it asks the bank again first.
func (s *Service) Query(ctx context.Context, a Actor, r Query) (Response, error) {
	if err := r.validate(); err != nil {
		return Response{}, err
	}
	var p *stored
	err := s.inTx(ctx, func(tx pgx.Tx, _ *ledger.Ledger) error {
		var err error
		p, _, err = s.load(ctx, tx, a.App, r.MerBillNo, false)
		return err
	})
	if err != nil {
		return Response{}, err
	}
	if p.state == StateBankPending {
		return s.settleBank(ctx, a.App, r.MerBillNo)
	}
	if p.state == StateAwaitingSMS {
		return Response{ErrCode: "ok", MerBillNo: r.MerBillNo, Op: p.op, State: p.state}, nil
	}
	return replay(p)
}

// Balance returns a custody account's available and frozen amounts.
func (s *Service) Balance(ctx context.Context, a Actor, r Balance) (Response, error) {
	if err := r.validate(); err != nil {
		return Response{}, err
	}
	var resp Response
	err := s.inTx(ctx, func(tx pgx.Tx, l *ledger.Ledger) error {
		id, err := s.custody(ctx, tx, a.App, r.User, r.Role)
		if err != nil {
			return err
		}
		b, err := l.Balance(ctx, id)
		resp = Response{ErrCode: "ok", Op: OpBalance, State: StateDone, AccountID: id, Available: b.Available(), Frozen: b.DebitsPending}
		return err
	})
	return resp, err
}

// Cancel returns frozen bids or a frozen debt-transfer price to their
// owners (see the type's doc). The platform makes it: it only gives money
// back.
func (s *Service) Cancel(ctx context.Context, a Actor, r Cancel) (Response, error) {
	if err := r.validate(); err != nil {
		return Response{}, err
	}
	return s.run(ctx, a, OpCancel, r.MerBillNo, r, StateDone, func(tx pgx.Tx, l *ledger.Ledger) (Response, error) {
		ln, err := s.loan(ctx, tx, a.App, r.BidNo, true)
		if err != nil {
			return Response{}, err
		}
		caller := ledgerCaller(a.App)
		// void releases a hold; one the expiry sweep already voided is
		// returned money too.
		void := func(key string, hold int64) error {
			_, err := l.VoidPending(ctx, caller, key, hold)
			if ledger.ReasonOf(err) == ledger.ErrHoldResolved {
				return nil
			}
			return err
		}
		if r.CancelType == TransferDebt {
			var (
				seller, status   string
				principal, price int64
				hold             int64
			)
			err := tx.QueryRow(ctx, `SELECT seller, principal, price, hold_id, status FROM escrow_debt_transfers
				WHERE app = $1 AND bill_no = $2 AND bid_no = $3 FOR UPDATE`, a.App, r.Bills[0], ln.bidNo).
				Scan(&seller, &principal, &price, &hold, &status)
			if errors.Is(err, pgx.ErrNoRows) {
				return Response{}, fail(ErrNotFound, "no debt transfer %s on %s", r.Bills[0], ln.bidNo)
			}
			if err != nil {
				return Response{}, err
			}
			if status != "frozen" {
				return Response{}, fail(ErrWrongState, "debt transfer %s is %s", r.Bills[0], status)
			}
			if err := void(r.MerBillNo+"/void", hold); err != nil {
				return Response{}, err
			}
			if _, err := tx.Exec(ctx, `UPDATE escrow_claims SET reserved = reserved - $4 WHERE app = $1 AND bid_no = $2 AND holder = $3`,
				a.App, ln.bidNo, seller, principal); err != nil {
				return Response{}, err
			}
			_, err = tx.Exec(ctx, `UPDATE escrow_debt_transfers SET status = 'cancelled' WHERE app = $1 AND bill_no = $2`, a.App, r.Bills[0])
			return Response{Amount: price}, err
		}
		bids, err := s.bids(ctx, tx, a.App, ln.bidNo, r.Bills)
		if err != nil {
			return Response{}, err
		}
		var sum int64
		for _, b := range bids {
			if err := void(r.MerBillNo+"/"+b.bill+"/capacity", b.capHold); err != nil {
				return Response{}, err
			}
			if err := void(r.MerBillNo+"/"+b.bill, b.hold); err != nil {
				return Response{}, err
			}
			if _, err := tx.Exec(ctx, `UPDATE escrow_bids SET status = 'cancelled' WHERE app = $1 AND bill_no = $2`, a.App, b.bill); err != nil {
				return Response{}, err
			}
			sum += b.amount
		}
		left, err := l.Balance(ctx, ln.capacity)
		if err != nil {
			return Response{}, err
		}
		return Response{Amount: sum, Remaining: left.Available()}, nil
	})
}
