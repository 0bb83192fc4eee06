package cardpay_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/outbox"
)

// crashingNotifier writes its batch to the outbox and then fails, as a
// process that dies before the relay's commit, as many times as told.
type crashingNotifier struct {
	inner   cardpay.OutboxNotifier
	crashes atomic.Int32
}

func (c *crashingNotifier) crash() error {
	if c.crashes.Add(-1) >= 0 {
		return jifu.Errorf(jifu.CodeUnavailable, "test: the relay's process died")
	}
	return nil
}

func (c *crashingNotifier) Notify(ctx context.Context, tx pgx.Tx, n cardpay.Notification) error {
	if err := c.inner.Notify(ctx, tx, n); err != nil {
		return err
	}
	return c.crash()
}

func (c *crashingNotifier) NotifyBatch(ctx context.Context, tx pgx.Tx, ns []cardpay.Notification) error {
	if err := c.inner.NotifyBatch(ctx, tx, ns); err != nil {
		return err
	}
	return c.crash()
}

// TestNotificationRelay: a result's notification is recorded with it and
// waits for the relay; a relay that dies before its commit moves nothing;
// after a restart another instance relays every waiting one, once; a row
// relayed again adds no event (the event id is the payment's); a row the
// outbox refuses is set aside without holding up the others; a running
// relay moves a notification within moments.
func TestNotificationRelay(t *testing.T) {
	e := setup(t)
	e.stopRelay()
	defer e.startRelay()
	pool := dbtest.Pool(t)
	sink, err := cardpay.NewNotifySink(pool, e.master, nil)
	if err != nil {
		t.Fatal(err)
	}
	ob, err := outbox.New(outbox.Config{Pool: pool, Queue: cardpay.NotifyQueue, Sinks: map[string]outbox.Sink{cardpay.NotifySinkName: sink},
		Logger: slog.New(slog.DiscardHandler)}) // not started: the events stay in the outbox
	if err != nil {
		t.Fatal(err)
	}
	crashing := &crashingNotifier{inner: cardpay.OutboxNotifier{Outbox: ob}}
	crashing.crashes.Store(1)
	be := newBooksEnv(t, cardpay.Options{Notifier: crashing}, "")
	events := func() int {
		return count(t, `SELECT count(*) FROM outbox_events WHERE payload->>'merchant_id' = $1`, be.mid)
	}
	waiting := func() int {
		return count(t, `SELECT count(*) FROM card_notifications n JOIN card_payments p ON p.id = n.payment_id
			WHERE p.merchant_id = $1 AND n.failed_at IS NULL`, be.mid)
	}
	var ids []int64
	for i, amount := range []int64{1000, 4444, 2000} { // approved, declined (51), approved
		res := be.pay(t, fmt.Sprintf("rl-%d", i), amount)
		if res.Status != cardpay.StatusApproved && res.Status != cardpay.StatusDeclined {
			t.Fatal(res)
		}
		ids = append(ids, res.PaymentID)
	}
	if w, ev := waiting(), events(); w != 3 || ev != 0 {
		t.Fatalf("before the relay: %d waiting, %d events", w, ev)
	}

	// The relay dies after writing the batch to the outbox, before its commit.
	if _, err := be.svc.RelayNotifications(e.ctx); err == nil {
		t.Fatal("the crashing relay reported success")
	}
	if w, ev := waiting(), events(); w != 3 || ev != 0 {
		t.Fatalf("after a crashed relay: %d waiting, %d events", w, ev)
	}

	// Restarted (another instance of the service): every waiting
	// notification is relayed, once.
	svc2, err := cardpay.New(pool, e.master, nil, cardpay.Options{Notifier: cardpay.OutboxNotifier{Outbox: ob}})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := svc2.RelayNotifications(e.ctx); err != nil || n < 3 {
		t.Fatalf("relay after restart: %d %v", n, err)
	}
	if w, ev := waiting(), events(); w != 0 || ev != 3 {
		t.Fatalf("after the relay: %d waiting, %d events", w, ev)
	}
	for i, want := range []string{"card.payment.approved", "card.payment.declined", "card.payment.approved"} {
		if n := count(t, `SELECT count(*) FROM outbox_events WHERE id = $1 AND type = $2 AND payload->>'order_id' = $3`,
			fmt.Sprintf("cardpay.%d.result", ids[i]), want, fmt.Sprintf("rl-%d", i)); n != 1 {
			t.Fatalf("payment %d: %d events of type %s", ids[i], n, want)
		}
	}

	// The same notification waiting again (it cannot be: the relay deletes
	// it with the transaction that enqueues it) adds no event.
	if _, err := pool.Exec(e.ctx, `INSERT INTO card_notifications (payment_id, payload)
		SELECT $1, payload::text FROM outbox_events WHERE id = $2`, ids[0], fmt.Sprintf("cardpay.%d.result", ids[0])); err != nil {
		t.Fatal(err)
	}
	if n, err := svc2.RelayNotifications(e.ctx); err != nil || n != 1 {
		t.Fatalf("relaying a duplicate: %d %v", n, err)
	}
	if w, ev := waiting(), events(); w != 0 || ev != 3 {
		t.Fatalf("after relaying a duplicate: %d waiting, %d events", w, ev)
	}

	// A row the outbox refuses (another result under a notified payment's
	// event id) is set aside; a good row behind it goes through.
	if _, err := pool.Exec(e.ctx, `INSERT INTO card_notifications (payment_id, payload)
		SELECT $1, jsonb_set(payload, '{status}', '"reversed"')::text FROM outbox_events WHERE id = $2`,
		ids[1], fmt.Sprintf("cardpay.%d.result", ids[1])); err != nil {
		t.Fatal(err)
	}
	good := be.pay(t, "rl-good", 3000)
	if n, err := svc2.RelayNotifications(e.ctx); err != nil || n != 1 {
		t.Fatalf("relaying past a refused row: %d %v", n, err)
	}
	if n := count(t, `SELECT count(*) FROM outbox_events WHERE id = $1`, fmt.Sprintf("cardpay.%d.result", good.PaymentID)); n != 1 {
		t.Fatal("the good row behind a refused one was not relayed")
	}
	if n := count(t, `SELECT count(*) FROM card_notifications WHERE payment_id = $1 AND failed_at IS NOT NULL AND error <> ''`, ids[1]); n != 1 {
		t.Fatal("the refused row was not set aside")
	}
	if n, err := svc2.RelayNotifications(e.ctx); err != nil || n != 0 {
		t.Fatalf("relay with only a set-aside row: %d %v", n, err)
	}
	if _, err := pool.Exec(e.ctx, `DELETE FROM card_notifications WHERE payment_id = $1`, ids[1]); err != nil {
		t.Fatal(err)
	}

	// A running relay: the notification is in the outbox within moments
	// (DefaultRelayEvery plus the batch; 10 s allows for a loaded machine).
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { svc2.RunNotifyRelay(ctx, 0); close(done) }()
	defer func() { cancel(); <-done }()
	res := be.pay(t, "rl-live", 1500)
	start := time.Now()
	id := fmt.Sprintf("cardpay.%d.result", res.PaymentID)
	for count(t, `SELECT count(*) FROM outbox_events WHERE id = $1`, id) == 0 {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the running relay did not move the notification in 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("relayed %s after %v", id, time.Since(start).Round(time.Millisecond))
}
