package callback

import (
	"context"
	"fmt"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/abi"
	"github.com/jifu-open/jifu/host/outbox"
)

// Dispatcher hands an event to an app's own WASM on_event export: the hook
// through which events reach apps that run inside the platform. It returns
// (nil, nil) when the app has no on_event to call (not loaded in this
// process, or no such export): nothing to deliver.
type Dispatcher interface {
	OnEvent(ctx context.Context, app string, ev *abi.Event) (*abi.EventResult, error)
}

// AppSetDispatcher dispatches to the serving versions of a host.AppSet.
type AppSetDispatcher struct {
	Apps *host.AppSet
}

// OnEvent implements Dispatcher. The event runs for ev.User.
func (d AppSetDispatcher) OnEvent(ctx context.Context, app string, ev *abi.Event) (*abi.EventResult, error) {
	a, ok := d.Apps.App(app)
	if !ok {
		return nil, nil
	}
	res, err := a.OnEvent(ctx, host.Caller{User: ev.User, RequestID: ev.ID}, ev)
	if jifu.ErrorCode(err) == host.CodeNoEntryPoint {
		return nil, nil
	}
	return res, err
}

// OnEvent is the outbox sink that runs apps' on_event. Status 0 from the
// guest acknowledges; any other status, a trap or a timeout fails the
// attempt, which is retried on the schedule like a webhook.
type OnEvent struct {
	Apps Dispatcher
}

// Deliver implements outbox.Sink.
func (o *OnEvent) Deliver(ctx context.Context, ev outbox.Event) (int, error) {
	res, err := o.Apps.OnEvent(ctx, ev.App, &abi.Event{Type: ev.Type, ID: ev.ID, User: ev.User, Payload: ev.Payload})
	if err != nil {
		return 0, err
	}
	if res == nil || res.Status == 0 {
		return 0, nil
	}
	return res.Status, jifu.Errorf(jifu.CodeUnavailable, "callback: on_event of %s answered %d: %s", ev.App, res.Status, clipMessage(res.Message))
}

func clipMessage(s string) string {
	if len(s) > 200 {
		return fmt.Sprintf("%s...", s[:200])
	}
	return s
}
