package main

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/abi"
	"github.com/jifu-open/jifu/host/callback"
	"github.com/jifu-open/jifu/host/notify"
	"github.com/jifu-open/jifu/host/outbox"
	"github.com/jifu-open/jifu/host/payment"
	"github.com/jifu-open/jifu/marketplace"
)

// SinkPaymentStats is the outbox sink that adds successful payments to the
// marketplace's payment volume (marketplace.Service.RecordPayment).
const SinkPaymentStats = "payment_stats"

// marketLink hands the marketplace, which serve starts after the host (the
// host's capabilities are built first and the marketplace needs the host),
// to the peers built before it: the outbox's sinks and the escrow
// capability's real-name and SMS peers. Until startMarketplace sets it,
// those peers answer CodeUnavailable, so that work waiting for them is
// retried rather than dropped.
type marketLink struct {
	svc      atomic.Pointer[marketplace.Service]
	serving  atomic.Pointer[marketplace.Serving]
	notifier atomic.Pointer[notify.Notifier]
}

// set connects the started marketplace.
func (l *marketLink) set(m *marketplaceParts) {
	l.svc.Store(m.svc)
	l.serving.Store(m.serving)
	l.notifier.Store(m.notifier)
}

func notConnected(what string) error {
	return jifu.Errorf(jifu.CodeUnavailable, "%s: the marketplace is not started in this process", what)
}

// paymentEvents implements payment.Events over the outbox: each outcome is
// written, with its delivery jobs, in the payment's own transaction, so a
// rolled-back payment announces nothing and a committed one is delivered to
// every sink (the app's on_event, the developer's signed callback, the
// payment statistics) at least once, across restarts.
type paymentEvents struct {
	ob *outbox.Outbox
}

// Publish implements payment.Events.
func (p paymentEvents) Publish(ctx context.Context, tx pgx.Tx, ev payment.Event) error {
	_, err := p.ob.Enqueue(ctx, tx, outbox.Event{ID: outboxEventID(ev.ID), App: ev.App, Type: ev.Type,
		User: ev.User, Payload: ev.Payload})
	return err
}

// outboxEventID maps a payment event id ("pi_…/payment.succeeded", or a
// refund's "re_…") to the outbox's id alphabet, where "/" is not allowed:
// "pi_…:payment.succeeded". The mapping is one-to-one on payment's ids, so
// a replayed publish is still the same outbox event.
func outboxEventID(id string) string { return strings.ReplaceAll(id, "/", ":") }

// appDispatcher finds the app an event's on_event runs in: one loaded
// directly in the host (jifu serve --dev-apps, jifu app run), else the
// marketplace's version that serves the event's user.
type appDispatcher struct {
	apps *host.AppSet
	link *marketLink
}

// OnEvent implements callback.Dispatcher.
func (d *appDispatcher) OnEvent(ctx context.Context, slug string, ev *abi.Event) (*abi.EventResult, error) {
	if _, ok := d.apps.App(slug); ok {
		return callback.AppSetDispatcher{Apps: d.apps}.OnEvent(ctx, slug, ev)
	}
	srv := d.link.serving.Load()
	if srv == nil {
		return nil, notConnected("on_event")
	}
	r, err := srv.Route(ctx, slug, ev.User)
	if jifu.ErrorCode(err) == jifu.CodeNotFound {
		return nil, nil // no such app, or none of it released: nothing to run
	}
	if err != nil {
		return nil, err
	}
	res, err := r.App.OnEvent(ctx, host.Caller{User: ev.User, RequestID: ev.ID}, ev)
	if jifu.ErrorCode(err) == host.CodeNoEntryPoint {
		return nil, nil
	}
	return res, err
}

// paymentStats is the outbox sink that records each payment.succeeded
// event in the marketplace's payment volume (idempotent on the intent id, so
// the outbox's at-least-once delivery counts a payment once). Other events
// are acknowledged untouched. The version recorded is the app version that
// serves the payer now (the one that created the payment unless a release
// changed in between); "" for apps outside the marketplace.
type paymentStats struct {
	link *marketLink
}

// Deliver implements outbox.Sink.
func (s *paymentStats) Deliver(ctx context.Context, ev outbox.Event) (int, error) {
	if ev.Type != payment.EventSucceeded {
		return 0, nil
	}
	var body payment.EventBody
	if err := json.Unmarshal(ev.Payload, &body); err != nil {
		return 0, jifu.Errorf(jifu.CodeInvalid, "payment statistics: event %s: %w", ev.ID, err)
	}
	in := body.Intent
	if in.ID == "" || in.Amount <= 0 {
		return 0, jifu.Errorf(jifu.CodeInvalid, "payment statistics: event %s names no paid intent", ev.ID)
	}
	svc := s.link.svc.Load()
	if svc == nil {
		return 0, notConnected("payment statistics")
	}
	version := ""
	if srv := s.link.serving.Load(); srv != nil {
		if r, err := srv.Route(ctx, ev.App, ev.User); err == nil {
			version = r.App.Manifest().Version
		}
	}
	return 0, svc.RecordPayment(ctx, marketplace.Payment{App: ev.App, Version: version, User: ev.User,
		AmountFen: in.Amount, ID: in.ID})
}
