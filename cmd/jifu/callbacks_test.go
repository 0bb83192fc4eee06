package main

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu/host/callback"
	"github.com/jifu-open/jifu/host/configstore"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/outbox"
)

// TestServeDeliversCallbacks: `jifu serve` runs the delivery workers, which
// find the app's target in its configuration and sign with its secret, and
// reach a private address only when allowed to.
func TestServeDeliversCallbacks(t *testing.T) {
	ctx := context.Background()
	c := newCmdEnv(t)
	key := make([]byte, 32)
	key[0] = 7
	c.vars["JIFU_MASTER_KEY"] = hex.EncodeToString(key)

	got := make(chan string, 4)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := callback.Verify([]byte("whsec_serve"), r.Header.Get(callback.HeaderSignature), body, time.Now(), 0); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			got <- "bad: " + err.Error()
			return
		}
		got <- r.Header.Get(callback.HeaderEventID) + " " + string(body)
	}))
	defer recv.Close()

	pool := dbtest.Pool(t)
	cs, err := configstore.New(pool, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.Set(ctx, "cb-app", callback.KeyURL, recv.URL+"/notify", false); err != nil {
		t.Fatal(err)
	}
	if err := cs.Set(ctx, "cb-app", callback.KeySecret, "whsec_serve", true); err != nil {
		t.Fatal(err)
	}

	// A producer elsewhere (the money core) enqueues in its own transaction.
	noop := outbox.SinkFunc(func(context.Context, outbox.Event) (int, error) { return 0, nil })
	producer, err := outbox.New(outbox.Config{Pool: pool, Sinks: map[string]outbox.Sink{callback.SinkWebhook: noop, callback.SinkOnEvent: noop}})
	if err != nil {
		t.Fatal(err)
	}
	enqueue := func(id string) {
		t.Helper()
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := producer.Enqueue(ctx, tx, outbox.Event{ID: id, App: "cb-app", Type: "payment.succeeded", Payload: []byte(`{"amount":1}`)})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}

	// By default serve refuses to call a loopback address (SSRF): the
	// attempt fails before anything is sent.
	_, stop := c.serve()
	enqueue("serve-evt-0")
	deadline := time.Now().Add(30 * time.Second)
	for {
		ds, err := producer.List(ctx, outbox.ListFilter{App: "cb-app", Sink: callback.SinkWebhook})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 1 && ds[0].EventID == "serve-evt-0" && ds[0].Attempts > 0 {
			if !strings.Contains(ds[0].LastError, "non-public address") || ds[0].State == outbox.StateDelivered {
				t.Fatalf("refused delivery: state %s, error %q", ds[0].State, ds[0].LastError)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no attempt recorded: %+v", ds)
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	select {
	case s := <-got:
		t.Fatalf("the receiver on loopback was called: %s", s)
	default:
	}

	_, stop = c.serve("--allow-private-callbacks") // the receiver is on loopback
	defer stop()
	enqueue("serve-evt-1")
	select {
	case s := <-got:
		if !strings.HasPrefix(s, "serve-evt-1 ") || !strings.Contains(s, `"data":{"amount":1}`) {
			t.Errorf("receiver got %s", s)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no callback from serve")
	}
}
