package callback_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/callback"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/guesttest"
	"github.com/jifu-open/jifu/host/kvstore"
	"github.com/jifu-open/jifu/host/manifest"
	"github.com/jifu-open/jifu/host/outbox"
)

// TestOnEventWASM delivers events through the outbox to a real Go guest's
// on_event under wazero: an acknowledged event has its effect in the app's
// store, a refused one is retried and ends dead, and an app not loaded in
// this process has nothing to run.
func TestOnEventWASM(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Pool(t)
	kv := kvstore.New(pool)
	cache := filepath.Join(os.TempDir(), "jifu-test-wazero-cache")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	h, err := host.New(ctx, host.Config{CacheDir: cache, KV: kv, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	m, problems := manifest.Parse(guesttest.ReadFile(t, "host/callback/testdata/events/jifu.json"))
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	app, err := h.Load(ctx, host.AppSpec{Slug: "events", Wasm: guesttest.BuildGo(t, "host/callback/testdata/events"), Manifest: m})
	if err != nil {
		t.Fatal(err)
	}
	apps := host.NewAppSet()
	apps.Put(app)
	defer apps.Close(ctx)

	ob, err := outbox.New(outbox.Config{
		Pool: pool, Queue: "onevent", Logger: quiet, FetchPollInterval: 100 * time.Millisecond,
		Sinks:    map[string]outbox.Sink{callback.SinkOnEvent: &callback.OnEvent{Apps: callback.AppSetDispatcher{Apps: apps}}},
		Schedule: []time.Duration{20 * time.Millisecond}, MaxAttempts: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer ob.Stop(context.Background())
	enqueueAll(t, pool, ob, []outbox.Event{
		{ID: "oe-created", App: "events", Type: "order.created", User: "u1", Payload: []byte(`{"order":1}`)},
		{ID: "oe-refused", App: "events", Type: "order.refused"},
		{ID: "oe-elsewhere", App: "not-loaded", Type: "order.created"},
	})
	state := func(app, id string) outbox.Delivery {
		ds, err := ob.List(ctx, outbox.ListFilter{App: app})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.EventID == id {
				return d
			}
		}
		return outbox.Delivery{}
	}
	waitFor(t, 60*time.Second, "the deliveries to settle", func() bool {
		return state("events", "oe-created").State == outbox.StateDelivered &&
			state("events", "oe-refused").State == outbox.StateDead &&
			state("not-loaded", "oe-elsewhere").State == outbox.StateDelivered
	})
	v, _, err := kv.Get(ctx, "events", []byte("seen/oe-created"))
	if err != nil || string(v) != "1" {
		t.Errorf("the guest's effect: %q, %v; want 1", v, err)
	}
	if d := state("events", "oe-refused"); d.Attempts != 3 || d.LastError == "" {
		t.Errorf("refused event: %+v", d)
	}
	if _, _, err := kv.Get(ctx, "events", []byte("seen/oe-refused")); err == nil {
		t.Error("the refused event had an effect")
	}
}
