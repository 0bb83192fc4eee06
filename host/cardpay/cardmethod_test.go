package cardpay_test

import (
	"testing"
	"time"

	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/cardpay/cardmethod"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/ledger"
	"github.com/jifu-open/jifu/host/payment"
	"github.com/jifu-open/jifu/host/payment/paymenttest"
)

// TestCardMethod pays payment intents by card through the payment service:
// the user pays at a reader with the intent's id as order_id, then confirms
// a card part; refunds go back to the card; a failed combined payment gives
// the card payment back; a confirmation without a card payment fails.
func TestCardMethod(t *testing.T) {
	be := newBooksEnv(t, cardpay.Options{}, "")
	ctx := be.ctx
	pool := dbtest.Pool(t)
	ev := paymenttest.NewEvents(t, pool)
	svc, err := payment.New(payment.Config{Pool: pool, Ledger: be.ledger, Events: ev,
		Methods: []payment.Method{payment.Balance{}, payment.Credit{}, cardmethod.New(be.svc, nil)}})
	if err != nil {
		t.Fatal(err)
	}
	app := "shop-" + be.mid
	appBalance := func(t *testing.T) int64 {
		t.Helper()
		a, err := be.ledger.FindAccount(ctx, ledger.Owner{Type: ledger.OwnerApp, ID: app}, "receivable")
		if err != nil {
			t.Fatal(err)
		}
		b, err := be.ledger.Balance(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		return b.Net()
	}
	create := func(t *testing.T, key string, amount int64) payment.Intent {
		t.Helper()
		in, err := svc.Create(ctx, payment.CreateRequest{App: app, User: "u-" + be.mid, Amount: amount, Description: "咖啡豆", Key: key})
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	cardStatus := func(t *testing.T, intent string) string {
		t.Helper()
		var s string
		if err := pool.QueryRow(ctx, `SELECT status FROM card_payments WHERE order_id = $1`, intent).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}

	t.Run("paid by card, then refunded in part", func(t *testing.T) {
		in := create(t, "k-card", 12345)
		if res := be.pay(t, in.ID, 12345); !res.Approved() {
			t.Fatal(res)
		}
		done, err := svc.Confirm(ctx, in.ID, in.User, []payment.Split{{Method: cardmethod.Name, Amount: 12345}})
		if err != nil || done.State != payment.StateSucceeded || done.Method != cardmethod.Name {
			t.Fatalf("%+v %v", done, err)
		}
		if got := appBalance(t); got != 12345 {
			t.Fatalf("payee has %d", got)
		}
		if got := be.receivable(t); got != 0 {
			t.Fatalf("merchant receivable %d: the intent's card money must go to the payee only", got)
		}
		if ts := ev.Types(t, in.ID); len(ts) != 1 || ts[0] != payment.EventSucceeded {
			t.Fatalf("events %v", ts)
		}
		// A bound card payment is not settled to the reader's merchant.
		batches, err := be.svc.Settle(ctx, time.Now(), cardpay.T1)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range batches {
			if b.MerchantID == be.mid {
				t.Fatalf("bound card payment settled to the merchant: %+v", b)
			}
		}
		r, err := svc.Refund(ctx, app, payment.RefundRequest{IntentID: in.ID, Key: "rf-1", Amount: 2345})
		if err != nil || r.State != payment.RefundSucceeded {
			t.Fatalf("%+v %v", r, err)
		}
		if got := appBalance(t); got != 10000 {
			t.Fatalf("payee has %d after the refund", got)
		}
		if n := count(t, `SELECT count(*) FROM card_refunds r JOIN card_payments p ON p.id = r.payment_id
			WHERE p.order_id = $1 AND r.status = 'approved' AND r.amount = 2345`, in.ID); n != 1 {
			t.Fatalf("%d approved acquirer refunds", n)
		}
		if got := be.receivable(t); got != 0 {
			t.Fatalf("merchant receivable %d after the refund", got)
		}
		// The same refund key again: the stored refund, nothing sent again.
		again, err := svc.Refund(ctx, app, payment.RefundRequest{IntentID: in.ID, Key: "rf-1", Amount: 2345})
		if err != nil || !again.Replayed {
			t.Fatalf("%+v %v", again, err)
		}
		if n := count(t, `SELECT count(*) FROM card_refunds r JOIN card_payments p ON p.id = r.payment_id WHERE p.order_id = $1`, in.ID); n != 1 {
			t.Fatalf("%d acquirer refunds after a replay", n)
		}
		be.check(t)
	})

	t.Run("no card payment: the intent fails, nothing moves", func(t *testing.T) {
		in := create(t, "k-nocard", 500)
		before := appBalance(t)
		done, err := svc.Confirm(ctx, in.ID, in.User, []payment.Split{{Method: cardmethod.Name, Amount: 500}})
		if err != nil || done.State != payment.StateFailed {
			t.Fatalf("%+v %v", done, err)
		}
		if appBalance(t) != before {
			t.Fatal("money moved")
		}
	})

	t.Run("card amount differs from the part: fails", func(t *testing.T) {
		in := create(t, "k-amount", 800)
		be.pay(t, in.ID, 700)
		done, err := svc.Confirm(ctx, in.ID, in.User, []payment.Split{{Method: cardmethod.Name, Amount: 800}})
		if err != nil || done.State != payment.StateFailed {
			t.Fatalf("%+v %v", done, err)
		}
		if s := cardStatus(t, in.ID); s != cardpay.StatusApproved {
			t.Fatalf("unbound card payment is %s", s)
		}
	})

	t.Run("combined, balance refused: the card payment is voided", func(t *testing.T) {
		in := create(t, "k-combined", 5000)
		recvBefore := be.receivable(t)
		be.pay(t, in.ID, 3000)
		before := appBalance(t)
		done, err := svc.Confirm(ctx, in.ID, in.User, []payment.Split{{Method: cardmethod.Name, Amount: 3000}, {Method: payment.MethodBalance, Amount: 2000}})
		if err != nil || done.State != payment.StateFailed {
			t.Fatalf("%+v %v", done, err)
		}
		if s := cardStatus(t, in.ID); s != cardpay.StatusVoided {
			t.Fatalf("card payment is %s, want voided", s)
		}
		if appBalance(t) != before || be.receivable(t) != recvBefore {
			t.Fatalf("money moved: payee %d, receivable %d", appBalance(t), be.receivable(t))
		}
		be.check(t)
	})
}
