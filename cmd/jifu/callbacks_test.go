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
// find the app's target in its configuration and sign with its secret.
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

	_, stop := c.serve()
	defer stop()

	// A producer elsewhere (the money core) enqueues in its own transaction.
	noop := outbox.SinkFunc(func(context.Context, outbox.Event) (int, error) { return 0, nil })
	producer, err := outbox.New(outbox.Config{Pool: pool, Sinks: map[string]outbox.Sink{callback.SinkWebhook: noop, callback.SinkOnEvent: noop}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := producer.Enqueue(ctx, tx, outbox.Event{ID: "serve-evt-1", App: "cb-app", Type: "payment.succeeded", Payload: []byte(`{"amount":1}`)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if !strings.HasPrefix(s, "serve-evt-1 ") || !strings.Contains(s, `"data":{"amount":1}`) {
			t.Errorf("receiver got %s", s)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no callback from serve")
	}
}
