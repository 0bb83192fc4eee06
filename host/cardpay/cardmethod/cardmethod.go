// Package cardmethod is the "card" method of the payment capability
// (payment.Method) over the card core (cardpay.Service).
//
// Card-present money cannot be pulled at confirmation time: the card is at
// a reader. So the user pays at a reader first, the reader's order_id being
// the intent's id (pi_…) and its amount the card part's; the card core
// authorizes it with the acquirer and books it to the reader merchant's card
// receivable (books). Confirming the intent with a card part then binds
// that approved card payment to the intent and moves its money from the
// merchant's card receivable to the intent's payee in the ledger, in the
// payment's own transaction:
//
//	Authorize  BindIntent; hold receivable(org/merchant) → payee     key pay/<intent>/<i>/auth
//	Capture    post the hold                                         key pay/<intent>/<i>/capture/0
//	Void       void (same day) or refund the card at the acquirer; void the hold
//	Refund     hold payee → refunds_in_flight; refund at the acquirer; post the hold and move
//	           in-flight → receivable (approved) or void the hold (declined)
//
// A bound card payment is left out of merchant settlement batches. Refunds
// at the acquirer are booked by the card core's Poster (receivable →
// clearing), so the books balance: clearing → receivable → payee on the way
// in, payee → receivable → clearing on the way back.
//
//	svc, _ := payment.New(payment.Config{..., Methods: []payment.Method{payment.Balance{}, payment.Credit{}, cardmethod.New(card, log)}})
package cardmethod

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/cardpay/books"
	"github.com/jifu-open/jifu/host/ledger"
	"github.com/jifu-open/jifu/host/payment"
)

// Name is the method's name in the payment capability.
const Name = "card"

// Card is what the method needs of the card core (*cardpay.Service).
type Card interface {
	BindIntent(ctx context.Context, intentID string, amount int64) (cardpay.IntentPayment, error)
	IntentPaymentOf(ctx context.Context, intentID string) (cardpay.IntentPayment, error)
	Refund(ctx context.Context, r cardpay.RefundRequest) (cardpay.RefundResult, error)
}

// Method is the card method. Safe for concurrent use.
type Method struct {
	card Card
	log  *slog.Logger
}

// New returns the card method over the card core; log may be nil.
func New(card Card, log *slog.Logger) *Method {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Method{card: card, log: log}
}

var _ payment.Method = (*Method)(nil)

// Name implements payment.Method.
func (*Method) Name() string { return Name }

// Available implements payment.Method. The platform knows no balance of a
// card (the user pays at a reader, for the intent's amount): 0.
func (*Method) Available(context.Context, *ledger.Ledger, string) (int64, error) { return 0, nil }

func (m *Method) receivable(ctx context.Context, l *ledger.Ledger, p cardpay.IntentPayment) (int64, error) {
	a, err := l.CreateAccount(ctx, books.ReceivableSpec(p.OrgID, p.MerchantID))
	return a.ID, err
}

// Authorize implements payment.Method: it binds the approved card payment
// made for the intent and holds its amount from the reader merchant's
// card receivable for the payee. No such payment is a refusal
// (CodeConflict).
func (m *Method) Authorize(ctx context.Context, l *ledger.Ledger, r payment.Ref, timeout time.Duration) ([]int64, error) {
	p, err := m.card.BindIntent(ctx, r.IntentID, r.Amount)
	if err != nil {
		return nil, err
	}
	recv, err := m.receivable(ctx, l, p)
	if err != nil {
		return nil, err
	}
	res, err := l.Transfer(ctx, payment.LedgerCaller, ledger.Transfer{ID: r.Key("auth"), Debit: recv, Credit: r.PayeeAccount,
		Amount: r.Amount, Code: "payment", Pending: true, Timeout: timeout,
		Metadata: map[string]string{"intent": r.IntentID, "method": Name, "rrn": p.RRN}})
	if err != nil {
		return nil, err
	}
	return []int64{res.ID}, nil
}

// Capture implements payment.Method: the holds are posted in full.
func (m *Method) Capture(ctx context.Context, l *ledger.Ledger, r payment.Ref, holds []int64) error {
	for i, h := range holds {
		if _, err := l.PostPending(ctx, payment.LedgerCaller, r.Key("capture/"+strconv.Itoa(i)), h, 0); err != nil {
			return err
		}
	}
	return nil
}

// Void implements payment.Method: the card payment is given back to the
// cardholder at the acquirer (a void the same day, else a refund), then the
// holds are voided. The acquirer comes first because the card core books
// its void on the merchant's receivable through its own connection: the
// payment's transaction must not hold that account's lock meanwhile. If the
// acquirer cannot be reached the error stands and the payment's sweep
// (Resume) tries again; if it declines, the failure is logged and the card
// payment stays with the merchant (who refunds it by hand).
func (m *Method) Void(ctx context.Context, l *ledger.Ledger, r payment.Ref, holds []int64) error {
	p, err := m.card.IntentPaymentOf(ctx, r.IntentID)
	switch {
	case jifu.ErrorCode(err) == jifu.CodeNotFound:
		// never bound: nothing was taken from the card for this intent
	case err != nil:
		return err
	default:
		res, err := m.card.Refund(ctx, cardpay.RefundRequest{OrgID: p.OrgID, MerchantID: p.MerchantID, OrderID: r.IntentID,
			RefundID: "void-" + r.IntentID, Amount: p.Amount})
		if err != nil {
			return err
		}
		if res.Status != cardpay.StatusApproved {
			m.log.WarnContext(ctx, "cardmethod: the acquirer declined giving back a failed intent's card payment",
				"intent", r.IntentID, "payment", p.PaymentID, "response", res.ResponseCode)
		}
	}
	for i, h := range holds {
		_, err := l.VoidPending(ctx, payment.LedgerCaller, r.Key("void/"+strconv.Itoa(i)), h)
		if err != nil && !errors.Is(err, ledger.ErrHoldResolved) {
			return err
		}
	}
	return nil
}

// Refund implements payment.Method. In the payment's transaction: amount
// is held from the payee to the card core's refunds-in-flight account (a
// payee without the money refuses before the acquirer is asked); the
// acquirer refunds the card (the card core books receivable → clearing on
// its own connection, which is why the transaction stays off the
// receivable until then); approved, the hold is posted and the money moves
// on from in-flight to the merchant's receivable; declined, the hold is
// voided and the refusal (CodeConflict) returned.
func (m *Method) Refund(ctx context.Context, l *ledger.Ledger, r payment.Ref, amount int64, key string) error {
	p, err := m.card.IntentPaymentOf(ctx, r.IntentID)
	if err != nil {
		return err
	}
	inflight, err := l.CreateAccount(ctx, inFlightSpec)
	if err != nil {
		return err
	}
	meta := map[string]string{"intent": r.IntentID, "method": Name}
	hold, err := l.Transfer(ctx, payment.LedgerCaller, ledger.Transfer{ID: key + "/hold", Debit: r.PayeeAccount, Credit: inflight.ID,
		Amount: amount, Code: "refund", Pending: true, Timeout: 10 * time.Minute, Metadata: meta})
	if err != nil {
		return err
	}
	res, err := m.card.Refund(ctx, cardpay.RefundRequest{OrgID: p.OrgID, MerchantID: p.MerchantID, OrderID: r.IntentID,
		RefundID: key, Amount: amount})
	if err != nil {
		return err // the payment's transaction rolls back, hold included; the same key resends
	}
	if res.Status != cardpay.StatusApproved {
		if _, err := l.VoidPending(ctx, payment.LedgerCaller, key+"/void", hold.ID); err != nil {
			return err
		}
		return jifu.Errorf(jifu.CodeConflict, "cardmethod: the acquirer declined the refund (%s)", res.ResponseCode)
	}
	if _, err := l.PostPending(ctx, payment.LedgerCaller, key+"/post", hold.ID, 0); err != nil {
		return err
	}
	recv, err := m.receivable(ctx, l, p)
	if err != nil {
		return err
	}
	_, err = l.Transfer(ctx, payment.LedgerCaller, ledger.Transfer{ID: key + "/receivable", Debit: inflight.ID, Credit: recv,
		Amount: amount, Code: "refund", Metadata: meta})
	return err
}

// inFlightSpec holds card refunds of intents between the payee and the
// merchant's receivable while the acquirer is asked.
var inFlightSpec = ledger.AccountSpec{Owner: ledger.Owner{Type: ledger.OwnerPlatform, ID: "cardpay"}, Name: "refunds_in_flight"}
