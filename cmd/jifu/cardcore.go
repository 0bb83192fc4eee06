package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/cardpay/acquirer"
	"github.com/jifu-open/jifu/host/cardpay/books"
	"github.com/jifu-open/jifu/host/cardpay/cardmethod"
	"github.com/jifu-open/jifu/host/cardpay/dukpt"
	"github.com/jifu-open/jifu/host/database"
	"github.com/jifu-open/jifu/host/ledger"
	"github.com/jifu-open/jifu/host/outbox"
)

// cardCore is the card core as serve runs it: the service with the ledger
// as its Poster (books), merchant notifications through an outbox of its
// own (queue card_notify, one sink: the signed callback to notify_url),
// the acquirer link, and the scheduled jobs (cardJobs).
type cardCore struct {
	svc    *cardpay.Service
	books  *books.Books
	acq    *acquirer.Client
	pool   *pgxpool.Pool
	notify *outbox.Outbox
	jobs   *cardJobs
	log    *slog.Logger
	sim    *embeddedSim // the in-process acquirer of --card-sim, or nil
}

// newCardCore builds the card core when f names an acquirer, or asks for
// the local simulator (f.CardSim), which it then starts (nil, nil
// otherwise). It opens its own pool on dbURL.
func newCardCore(ctx context.Context, e *env, f cardFlags, dbURL string) (_ *cardCore, err error) {
	if f.AcquirerAddr == "" && !f.CardSim {
		return nil, nil
	}
	tmk, err := dukpt.ParseKey(f.AcquirerTMK)
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeInvalid, "--acquirer-tmk: %s", jifu.ErrorMessage(err))
	}
	key, err := masterKey(e)
	if err != nil {
		return nil, err
	}
	c := &cardCore{log: e.log}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if f.AcquirerAddr == "" {
		if c.sim, err = startEmbeddedSim(ctx, e, tmk, dbURL); err != nil {
			return nil, err
		}
		f.AcquirerAddr = c.sim.addr
	}
	if c.pool, err = database.Open(ctx, dbURL); err != nil {
		return nil, err
	}
	if c.acq, err = acquirer.New(acquirer.Config{Addr: f.AcquirerAddr, TMK: tmk, TerminalID: f.AcquirerTID, MerchantID: f.AcquirerMID, Logger: e.log}); err != nil {
		return nil, err
	}
	sink, err := cardpay.NewNotifySink(c.pool, key, callbackClient(e))
	if err != nil {
		return nil, err
	}
	if c.notify, err = outbox.New(outbox.Config{Pool: c.pool, Queue: cardpay.NotifyQueue,
		Sinks: map[string]outbox.Sink{cardpay.NotifySinkName: sink}, Workers: 8, Logger: riverLogger(e.log)}); err != nil {
		return nil, err
	}
	c.books = books.New(ledger.New(c.pool, ledger.WithLogger(e.log)))
	if c.svc, err = cardpay.New(c.pool, key, c.acq, cardpay.Options{Poster: c.books, Notifier: cardpay.OutboxNotifier{Outbox: c.notify},
		Logger: e.log}); err != nil {
		return nil, err
	}
	c.jobs = &cardJobs{svc: c.svc, books: c.books, dir: f.AcquirerFiles, t0Cutoff: f.T0Cutoff, log: e.log, now: time.Now}
	if c.jobs.dir == "" {
		c.jobs.dir = defaultAcquirerFiles(e)
	}
	return c, nil
}

// method is the card method of the payment capability.
func (c *cardCore) method() *cardmethod.Method { return cardmethod.New(c.svc, c.log) }

// start runs the notification relay and delivery and the scheduled jobs
// until the returned stop is called.
func (c *cardCore) start(ctx context.Context, every time.Duration) (stop func(), err error) {
	if err := c.notify.Start(context.WithoutCancel(ctx)); err != nil {
		return nil, err
	}
	jctx, cancel := context.WithCancel(ctx)
	done, relayed := make(chan struct{}), make(chan struct{})
	go func() { c.jobs.run(jctx, every); close(done) }()
	// The relay moves each result's notification (recorded with the result)
	// into the outbox within about cardpay.DefaultRelayEvery.
	go func() { c.svc.RunNotifyRelay(jctx, cardpay.DefaultRelayEvery); close(relayed) }()
	return func() {
		cancel()
		<-done
		<-relayed
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.notify.Stop(sctx); err != nil {
			c.log.Warn("card notifications: stop", "err", err)
		}
	}, nil
}

func (c *cardCore) close() {
	if c == nil {
		return
	}
	if c.acq != nil {
		c.acq.Close()
	}
	if c.pool != nil {
		c.pool.Close()
	}
	c.sim.stop()
}
