// Package books keeps the card core's money in the platform ledger: it is
// the cardpay.Poster over host/ledger, and it reconciles the ledger against
// the acquirer's daily settlement file.
//
// Accounts (created on first use, idempotently):
//
//	(platform cardpay, acquirer_clearing)   what the acquirer owes the platform (debit-normal)
//	(merchant <org>/<merchant>, card_receivable)  what the platform owes a merchant for its card payments
//	(platform cardpay, fees)                 fee income
//	(bank merchant_payout, cardpay)          money paid out to merchants' bank accounts
//
// Transfers, all by caller "cardpay" with the card core's idempotency keys:
//
//	approved payment     clearing   → receivable   gross            key cardpay:payment:<id>
//	approved void/refund receivable → clearing     amount           key cardpay:refund:<id>
//	settlement batch     receivable → fees         Fee              key cardpay:settlement:<id>/fee  } one Submit:
//	                     receivable → payout       Net              key cardpay:settlement:<id>/net  } all or none
//
// Fees are booked per settlement batch, as the card core computes them: a
// batch nets the merchant's refunds not settled yet (which the receivable
// already shows), Fee = (Gross − Refunds) × the merchant's fee_rate
// (shopspring/decimal), rounded half up to whole fen per batch; Net = Gross −
// Refunds − Fee. So a merchant's receivable shows what it is owed until its
// batch pays it, and returns to zero. Refunds larger than a day's payments
// wait for a later batch; meanwhile the receivable is below zero: the
// merchant owes them (the account has no overdraft flag on purpose).
//
//	l := ledger.New(pool)
//	b := books.New(l)
//	svc, _ := cardpay.New(pool, key, acq, cardpay.Options{Poster: b})
//	recs, _ := svc.Records(ctx, day)
//	diffs, _ := b.Reconcile(ctx, recs, acquirerFileLines)
package books

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/ledger"
)

// Caller is the ledger caller of every card-core transfer.
const Caller = "cardpay"

// Transfer codes.
const (
	CodePayment    = "card.payment"
	CodeRefund     = "card.refund"
	CodeFee        = "card.fee"
	CodeSettlement = "card.settlement"
)

// Platform accounts.
var (
	platformOwner = ledger.Owner{Type: ledger.OwnerPlatform, ID: "cardpay"}
	clearingSpec  = ledger.AccountSpec{Owner: platformOwner, Name: "acquirer_clearing"}
	feesSpec      = ledger.AccountSpec{Owner: platformOwner, Name: "fees"}
	payoutSpec    = ledger.AccountSpec{Owner: ledger.Owner{Type: ledger.OwnerBank, ID: "merchant_payout"}, Name: "cardpay"}
)

// ReceivableSpec is the account of what the platform owes a merchant for
// its card payments.
func ReceivableSpec(org, merchant string) ledger.AccountSpec {
	return ledger.AccountSpec{Owner: ledger.Owner{Type: ledger.OwnerMerchant, ID: org + "/" + merchant}, Name: "card_receivable"}
}

// Books posts the card core's money to a ledger. Safe for concurrent use.
type Books struct {
	l      *ledger.Ledger
	ids    sync.Map // account owner/name -> id: accounts are never deleted
	group  group    // payment postings waiting to be booked together
	groups atomic.Int64
}

// New returns the books over l.
func New(l *ledger.Ledger) *Books { return &Books{l: l} }

var _ cardpay.Poster = (*Books)(nil)

func (b *Books) account(ctx context.Context, spec ledger.AccountSpec) (int64, error) {
	k := string(spec.Owner.Type) + "\x00" + spec.Owner.ID + "\x00" + spec.Name
	if id, ok := b.ids.Load(k); ok {
		return id.(int64), nil
	}
	a, err := b.l.CreateAccount(ctx, spec)
	if err != nil {
		return 0, err
	}
	b.ids.Store(k, a.ID)
	return a.ID, nil
}

// PostPayment implements cardpay.Poster: clearing → merchant receivable.
// Concurrent postings are booked together (see group.go); each caller gets
// its own posting's outcome.
func (b *Books) PostPayment(ctx context.Context, p cardpay.Posting) error {
	clearing, err := b.account(ctx, clearingSpec)
	if err != nil {
		return err
	}
	recv, err := b.account(ctx, ReceivableSpec(p.OrgID, p.MerchantID))
	if err != nil {
		return err
	}
	return b.post(ctx, paymentTransfer(p, clearing, recv))
}

func paymentTransfer(p cardpay.Posting, clearing, recv int64) ledger.Transfer {
	return ledger.Transfer{ID: p.Key, Debit: clearing, Credit: recv, Amount: p.Amount,
		Code: CodePayment, Metadata: map[string]string{"payment": strconv.FormatInt(p.PaymentID, 10), "order": p.OrderID, "rrn": p.RRN}}
}

// PostRefund implements cardpay.Poster: merchant receivable → clearing.
func (b *Books) PostRefund(ctx context.Context, r cardpay.RefundPosting) error {
	clearing, err := b.account(ctx, clearingSpec)
	if err != nil {
		return err
	}
	recv, err := b.account(ctx, ReceivableSpec(r.OrgID, r.MerchantID))
	if err != nil {
		return err
	}
	_, err = b.l.Transfer(ctx, Caller, ledger.Transfer{ID: r.Key, Debit: recv, Credit: clearing, Amount: r.Amount,
		Code: CodeRefund, Metadata: map[string]string{"payment": strconv.FormatInt(r.PaymentID, 10), "kind": r.Kind}})
	return err
}

// PostSettlement implements cardpay.Poster: the batch's fee to fee income
// and its net to the payout bank, in one atomic Submit.
func (b *Books) PostSettlement(ctx context.Context, s cardpay.Batch) error {
	if s.Fee < 0 || s.Net < 0 || s.Refunds < 0 || s.Fee+s.Net != s.Gross-s.Refunds {
		return jifu.Errorf(jifu.CodeInvalid, "books: batch %s: fee %d + net %d is not gross %d less refunds %d", s.Key, s.Fee, s.Net, s.Gross, s.Refunds)
	}
	recv, err := b.account(ctx, ReceivableSpec(s.OrgID, s.MerchantID))
	if err != nil {
		return err
	}
	fees, err := b.account(ctx, feesSpec)
	if err != nil {
		return err
	}
	payout, err := b.account(ctx, payoutSpec)
	if err != nil {
		return err
	}
	meta := map[string]string{"batch": strconv.FormatInt(s.ID, 10), "mode": s.Mode, "day": s.Day.Format("2006-01-02"),
		"count": strconv.Itoa(s.Count), "refunds": strconv.FormatInt(s.Refunds, 10)}
	var ts []ledger.Transfer
	if s.Fee > 0 {
		ts = append(ts, ledger.Transfer{ID: s.Key + "/fee", Debit: recv, Credit: fees, Amount: s.Fee, Code: CodeFee, Metadata: meta})
	}
	if s.Net > 0 {
		ts = append(ts, ledger.Transfer{ID: s.Key + "/net", Debit: recv, Credit: payout, Amount: s.Net, Code: CodeSettlement, Metadata: meta})
	}
	if len(ts) == 0 {
		return nil
	}
	_, err = b.l.Submit(ctx, Caller, ts)
	return err
}

// Receivable returns the merchant's card receivable: what the platform owes
// it (credits less debits posted); 0 when it has no account yet.
func (b *Books) Receivable(ctx context.Context, org, merchant string) (int64, error) {
	spec := ReceivableSpec(org, merchant)
	a, err := b.l.FindAccount(ctx, spec.Owner, spec.Name)
	if errors.Is(err, ledger.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	bal, err := b.l.Balance(ctx, a.ID)
	if err != nil {
		return 0, err
	}
	return bal.Net(), nil
}
