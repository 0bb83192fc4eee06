package main

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/callback"
	"github.com/jifu-open/jifu/host/outbox"
)

// newEventsOutbox builds the events outbox with its sinks: the app's
// server through callback.url/callback.secret in its configuration
// (callback.SinkWebhook), the app's own on_event (callback.SinkOnEvent: a
// directly loaded app, else the marketplace version serving the event's
// user) and the marketplace's payment volume (SinkPaymentStats). Building
// it starts nothing: producers (payments) enqueue through it at once, and
// startCallbacks runs the delivery workers in serve.
func newEventsOutbox(e *env, p *platform) (*outbox.Outbox, error) {
	if p.pgpool == nil {
		return nil, jifu.Errorf(jifu.CodeInternal, "callbacks: the platform has no pgx pool")
	}
	return outbox.New(outbox.Config{
		Pool: p.pgpool,
		Sinks: map[string]outbox.Sink{
			callback.SinkWebhook: &callback.Webhook{
				Targets: p.targetsOf(),
				Client:  callbackClient(e),
			},
			callback.SinkOnEvent: &callback.OnEvent{Apps: &appDispatcher{apps: p.apps, link: p.link}},
			SinkPaymentStats:     &paymentStats{link: p.link},
		},
		Logger:  riverLogger(e.log),
		Metrics: p.metrics,
	})
}

// callbackClient is the HTTP client of every callback to a developer's or
// merchant's server: public addresses only, unless --allow-private-callbacks.
func callbackClient(e *env) *http.Client {
	if e.cli != nil && e.cli.AllowPrivateCallbacks {
		return callback.NewHTTPClient(callback.DefaultTimeout)
	}
	return callback.NewHTTPClient(callback.DefaultTimeout, callback.PublicOnly())
}

// startCallbacks starts the platform outbox's delivery workers (River). The
// returned stop waits up to 10 s for running deliveries (cancelled ones are
// retried later, by this process or another).
func startCallbacks(ctx context.Context, e *env, p *platform) (*outbox.Outbox, func(), error) {
	ob := p.outbox
	if ob == nil {
		return nil, nil, jifu.Errorf(jifu.CodeInternal, "callbacks: the platform has no outbox")
	}
	// Not ctx: its cancellation (Ctrl-C) would make River cancel running
	// deliveries at once; stop lets them finish first.
	if err := ob.Start(context.WithoutCancel(ctx)); err != nil {
		return nil, nil, err
	}
	stop := func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ob.Stop(sctx); err != nil {
			e.log.Warn("callbacks: stop", "err", err)
		}
	}
	return ob, stop, nil
}

// riverLogger keeps River's routine info messages (leadership, queue
// start-up) out of the server's log unless it runs at debug level.
func riverLogger(log *slog.Logger) *slog.Logger {
	if log.Enabled(context.Background(), slog.LevelDebug) {
		return log
	}
	return slog.New(warnOnly{log.Handler()})
}

type warnOnly struct{ slog.Handler }

func (w warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && w.Handler.Enabled(ctx, l)
}

func (w warnOnly) WithAttrs(a []slog.Attr) slog.Handler { return warnOnly{w.Handler.WithAttrs(a)} }
func (w warnOnly) WithGroup(n string) slog.Handler      { return warnOnly{w.Handler.WithGroup(n)} }
