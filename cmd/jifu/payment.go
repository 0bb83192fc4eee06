package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/abi"
	"github.com/jifu-open/jifu/host/ledger"
	"github.com/jifu-open/jifu/host/payment"
	"github.com/jifu-open/jifu/host/payment/page"
)

// payments is the payment capability's wiring in serve: the service (given
// to the host as host.Config.Payments), the confirmation page at /pay/, and
// the sweeps (expiry of unconfirmed intents, Resume of abandoned ones).
type payments struct {
	svc  *payment.Service
	page *page.Handler
	devE *devEvents
	log  *slog.Logger
}

// newPayments builds the payment service over pool. masterKey derives the
// page's form-token key. apps resolves the apps events are delivered to.
// methods, when given, replace the default ones (balance, credit), as serve
// does to add card.
func newPayments(pool *pgxpool.Pool, l *ledger.Ledger, masterKey []byte, apps *host.AppSet, dev bool, log *slog.Logger, methods ...payment.Method) (*payments, error) {
	// Until host/outbox is plugged in, events go straight to the app's
	// on_event once their transaction has committed (devEvents).
	ev := &devEvents{pool: pool, apps: apps, log: log, ch: make(chan payment.Event, 1024)}
	svc, err := payment.New(payment.Config{Pool: pool, Ledger: l, Events: ev, Logger: log, Methods: methods})
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, masterKey)
	mac.Write([]byte("jifu.payment.page.v1"))
	identity := func(*http.Request) string { return "" } // the store's session comes with the marketplace
	if dev {
		identity = page.DevIdentity
	}
	ph, err := page.New(page.Config{Payments: svc, Identity: identity, Key: mac.Sum(nil), Logger: log})
	if err != nil {
		return nil, err
	}
	return &payments{svc: svc, page: ph, devE: ev, log: log}, nil
}

// start runs the sweeps and the event delivery until the returned stop is
// called.
func (p *payments) start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	go func() { p.svc.Run(ctx, 5*time.Second); done <- struct{}{} }()
	go func() { p.devE.run(ctx); done <- struct{}{} }()
	return func() { cancel(); <-done; <-done }
}

// routes serves the confirmation page at /pay/ and everything else with next.
func (p *payments) routes(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/pay/") {
			p.page.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// demoCreditLines are the demo users' credit limits `make run` grants, in fen.
var demoCreditLines = []struct {
	user string
	fen  int64
}{{"u1", 50_000}, {"u2", 20_000}}

// seedPayments grants the demo credit lines (the demo wallets are seeded
// with the ledger's demo books). Idempotent: a line already at its limit is
// left alone.
func seedPayments(ctx context.Context, p *payments) error {
	for _, c := range demoCreditLines {
		line, err := p.svc.CreditLine(ctx, c.user)
		if err != nil {
			return err
		}
		if line.Limit == c.fen {
			continue
		}
		if _, err := p.svc.SetCreditLimit(ctx, c.user, c.fen); err != nil {
			return err
		}
	}
	return nil
}

// devEvents is a stand-in for host/outbox: Publish queues the event in
// memory, and once the publishing transaction has visibly committed (the
// intent or refund is in the state the event announces) it is handed to the
// app's on_event, with a few retries. Events whose transaction rolled back
// are dropped; events are lost if the process stops. The outbox replaces it
// with durable delivery and signed callbacks.
type devEvents struct {
	pool *pgxpool.Pool
	apps *host.AppSet
	log  *slog.Logger
	ch   chan payment.Event
}

// Publish implements payment.Events.
func (d *devEvents) Publish(_ context.Context, _ pgx.Tx, ev payment.Event) error {
	select {
	case d.ch <- ev:
	default:
		d.log.Warn("payment: event queue full; event dropped", "event", ev.ID, "type", ev.Type)
	}
	return nil
}

func (d *devEvents) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-d.ch:
			d.deliver(ctx, ev)
		}
	}
}

func (d *devEvents) deliver(ctx context.Context, ev payment.Event) {
	for attempt := 0; attempt < 20; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
		ok, err := d.committed(ctx, ev)
		if err != nil || !ok {
			continue
		}
		app, found := d.apps.App(ev.App)
		if !found || !app.Manifest().HasEntryPoint(abi.ExportOnEvent) {
			return
		}
		res, err := app.OnEvent(ctx, host.Caller{User: ev.User}, &abi.Event{Type: ev.Type, ID: ev.ID, User: ev.User, Payload: ev.Payload})
		if err == nil && res.Status == 0 {
			return
		}
		d.log.WarnContext(ctx, "payment: on_event refused; retrying", "app", ev.App, "event", ev.ID, "err", err)
	}
	d.log.WarnContext(ctx, "payment: event not delivered", "app", ev.App, "event", ev.ID, "type", ev.Type)
}

// committed reports whether the transaction that published ev has
// committed: the refund exists, or the intent is past the state it left.
func (d *devEvents) committed(ctx context.Context, ev payment.Event) (bool, error) {
	var n int
	var err error
	switch ev.Type {
	case payment.EventRefunded, payment.EventRefundFailed:
		err = d.pool.QueryRow(ctx, `SELECT count(*) FROM payment_refunds WHERE id = $1`, ev.ID).Scan(&n)
	default:
		err = d.pool.QueryRow(ctx, `SELECT count(*) FROM payment_intents
			WHERE id = $1 AND state NOT IN ('created', 'confirmed', 'authorized')`, ev.IntentID).Scan(&n)
	}
	if errors.Is(err, context.Canceled) {
		return false, err
	}
	return n > 0, err
}
