package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu/host/ledger"
	"github.com/jifu-open/jifu/host/payment"
	"github.com/jifu-open/jifu/host/payment/page"
	"github.com/jifu-open/jifu/web/respond"
	"github.com/jifu-open/jifu/web/session"
)

// payments is the payment capability's wiring in serve: the service (given
// to the host as host.Config.Payments), the confirmation page at /pay/, and
// the sweeps (expiry of unconfirmed intents, Resume of abandoned ones).
type payments struct {
	svc  *payment.Service
	page *page.Handler
	log  *slog.Logger
}

// newPayments builds the payment service over pool. masterKey derives the
// page's form-token key. ev receives the outcomes inside their transactions
// (paymentEvents: the platform outbox). methods, when given, replace the
// default ones (balance, credit), as serve does to add card.
func newPayments(pool *pgxpool.Pool, l *ledger.Ledger, masterKey []byte, ev payment.Events, log *slog.Logger, methods ...payment.Method) (*payments, error) {
	svc, err := payment.New(payment.Config{Pool: pool, Ledger: l, Events: ev, Logger: log, Methods: methods})
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, masterKey)
	mac.Write([]byte("jifu.payment.page.v1"))
	// The payer is the store session's user (in dev mode, X-Jifu-User when
	// there is no session); the page is mounted behind web's session layer.
	identity := func(r *http.Request) string { u, _ := session.Identity(r); return u }
	ph, err := page.New(page.Config{Payments: svc, Identity: identity, Key: mac.Sum(nil), Logger: log, Status: respond.Status})
	if err != nil {
		return nil, err
	}
	return &payments{svc: svc, page: ph, log: log}, nil
}

// start runs the sweeps (expiry, Resume) until the returned stop is called.
// Events are delivered by the platform outbox (startCallbacks).
func (p *payments) start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { p.svc.Run(ctx, 5*time.Second); close(done) }()
	return func() { cancel(); <-done }
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
