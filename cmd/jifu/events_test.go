package main

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/ledger"
	"github.com/jifu-open/jifu/host/outbox"
	"github.com/jifu-open/jifu/host/payment"
)

// brokenEvents enqueues through the outbox and then fails, so the
// payment's transaction rolls back after the event was written in it.
type brokenEvents struct{ paymentEvents }

func (b brokenEvents) Publish(ctx context.Context, tx pgx.Tx, ev payment.Event) error {
	if err := b.paymentEvents.Publish(ctx, tx, ev); err != nil {
		return err
	}
	return jifu.Errorf(jifu.CodeUnavailable, "test: publishing broke after the enqueue")
}

// A payment whose capture transaction rolls back leaves no event in the
// outbox (and is not paid); when it is finished later (Resume), exactly one
// event is written, and publishing it again is a no-op.
func TestPaymentEventsCommitWithThePayment(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Pool(t)
	noop := outbox.SinkFunc(func(context.Context, outbox.Event) (int, error) { return 0, nil })
	ob, err := outbox.New(outbox.Config{Pool: pool, Sinks: map[string]outbox.Sink{"webhook": noop, "on_event": noop}})
	if err != nil {
		t.Fatal(err)
	}
	l := ledger.New(pool)
	bank, err := l.CreateAccount(ctx, ledger.AccountSpec{Owner: ledger.Owner{Type: ledger.OwnerBank, ID: "rb-bank"}, Name: "settlement"})
	if err != nil {
		t.Fatal(err)
	}
	wallet, err := payment.OpenWallet(ctx, l, "rb-user")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Transfer(ctx, "seed", ledger.Transfer{ID: "rb-topup", Debit: bank.ID, Credit: wallet.ID, Amount: 1000, Code: "test.fund"}); err != nil {
		t.Fatal(err)
	}
	const lease = 50 * time.Millisecond
	broken, err := payment.New(payment.Config{Pool: pool, Ledger: l, Events: brokenEvents{paymentEvents{ob: ob}}, Lease: lease})
	if err != nil {
		t.Fatal(err)
	}
	in, err := broken.Create(ctx, payment.CreateRequest{App: "rb-app", User: "rb-user", Amount: 300, Description: "rollback", Key: "rb-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := broken.Confirm(ctx, in.ID, "rb-user", []payment.Split{{Method: payment.MethodBalance, Amount: 300}}); jifu.ErrorCode(err) != jifu.CodeUnavailable {
		t.Fatalf("confirm with a broken publish: %v, want unavailable", err)
	}
	count := func() (events int) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox_events WHERE app = 'rb-app'`).Scan(&events); err != nil {
			t.Fatal(err)
		}
		return events
	}
	got, err := broken.Get(ctx, "rb-app", in.ID)
	if err != nil || got.State.Paid() || count() != 0 {
		t.Fatalf("after the rollback: state %s (%v), %d events; want unpaid and none", got.State, err, count())
	}

	svc, err := payment.New(payment.Config{Pool: pool, Ledger: l, Events: paymentEvents{ob: ob}, Lease: lease})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * lease)
	if n, err := svc.Resume(ctx); err != nil || n != 1 {
		t.Fatalf("resume: %d, %v", n, err)
	}
	if got, err = svc.Get(ctx, "rb-app", in.ID); err != nil || got.State != payment.StateSucceeded {
		t.Fatalf("after resume: %s, %v", got.State, err)
	}
	var id, typ, user string
	if err := pool.QueryRow(ctx, `SELECT id, type, user_id FROM outbox_events WHERE app = 'rb-app'`).Scan(&id, &typ, &user); err != nil {
		t.Fatal(err)
	}
	if id != in.ID+":"+payment.EventSucceeded || typ != payment.EventSucceeded || user != "rb-user" {
		t.Fatalf("event %s %s %s", id, typ, user)
	}
	payload, err := payment.EventPayload(payment.EventSucceeded, got, nil)
	if err != nil {
		t.Fatal(err)
	}
	again := payment.Event{ID: in.ID + "/" + payment.EventSucceeded, Type: payment.EventSucceeded, App: "rb-app", User: "rb-user", IntentID: in.ID, Payload: payload}
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return paymentEvents{ob: ob}.Publish(ctx, tx, again) }); err != nil {
		t.Fatalf("publishing the event again: %v", err)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d events after a replayed publish, want 1", n)
	}
}

func TestOutboxEventID(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"pi_0123abcd/payment.succeeded", "pi_0123abcd:payment.succeeded"},
		{"pi_0123abcd/payment.refund_failed", "pi_0123abcd:payment.refund_failed"},
		{"re_0123abcd", "re_0123abcd"},
	} {
		got := outboxEventID(tc.in)
		if got != tc.want {
			t.Errorf("outboxEventID(%q) = %q, want %q", tc.in, got, tc.want)
		}
		ev := outbox.Event{ID: got, App: "a", Type: payment.EventSucceeded}
		if err := ev.Validate(); err != nil {
			t.Errorf("%q is not an outbox id: %v", got, err)
		}
	}
}

// The statistics sink acknowledges other events untouched, refuses a
// payload without a paid intent (CodeInvalid), and waits (CodeUnavailable,
// retried) while the marketplace is not started.
func TestPaymentStatsSinkRefusals(t *testing.T) {
	ctx := context.Background()
	sink := &paymentStats{link: &marketLink{}}
	for _, tc := range []struct {
		name    string
		ev      outbox.Event
		want    string
		wantErr bool
	}{
		{"other event", outbox.Event{ID: "x1", App: "a", Type: payment.EventFailed, Payload: []byte(`{}`)}, "", false},
		{"not JSON", outbox.Event{ID: "x2", App: "a", Type: payment.EventSucceeded, Payload: []byte(`{`)}, jifu.CodeInvalid, true},
		{"no intent", outbox.Event{ID: "x3", App: "a", Type: payment.EventSucceeded, Payload: []byte(`{"type":"payment.succeeded"}`)}, jifu.CodeInvalid, true},
		{"zero amount", outbox.Event{ID: "x4", App: "a", Type: payment.EventSucceeded, Payload: []byte(`{"intent":{"id":"pi_1","amount":0}}`)}, jifu.CodeInvalid, true},
		{"no marketplace", outbox.Event{ID: "x5", App: "a", Type: payment.EventSucceeded, Payload: []byte(`{"intent":{"id":"pi_1","amount":5}}`)}, jifu.CodeUnavailable, true},
	} {
		_, err := sink.Deliver(ctx, tc.ev)
		if (err != nil) != tc.wantErr || (err != nil && jifu.ErrorCode(err) != tc.want) {
			t.Errorf("%s: %v, want code %q", tc.name, err, tc.want)
		}
	}
}
