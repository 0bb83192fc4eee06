package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/callback"
	"github.com/jifu-open/jifu/host/outbox"
)

// startCallbacks builds the events outbox with its two sinks (the app's
// server through callback.url/callback.secret in its configuration, and
// the app's own on_event) and starts River's delivery workers. The
// returned stop waits up to 10 s for running deliveries (cancelled ones are
// retried later, by this process or another).
func startCallbacks(ctx context.Context, e *env, p *platform) (*outbox.Outbox, func(), error) {
	pool, ok := p.pool.(*pgxpool.Pool)
	if !ok {
		return nil, nil, jifu.Errorf(jifu.CodeInternal, "callbacks: the platform has no pgx pool")
	}
	ob, err := outbox.New(outbox.Config{
		Pool: pool,
		Sinks: map[string]outbox.Sink{
			callback.SinkWebhook: &callback.Webhook{
				Targets: p.targetsOf(),
				Client:  callback.NewHTTPClient(callback.DefaultTimeout),
			},
			callback.SinkOnEvent: &callback.OnEvent{Apps: callback.AppSetDispatcher{Apps: p.apps}},
		},
		Logger:  riverLogger(e.log),
		Metrics: p.metrics,
	})
	if err != nil {
		return nil, nil, err
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
