package outbox_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/outbox"
)

// TestEnqueueMany: a batch is written in two statements whatever its size
// and sinks, each event with one delivery per sink whose job exists; the
// same batch again writes nothing; an id reused with other content refuses
// the whole batch; every event is delivered once per sink.
func TestEnqueueMany(t *testing.T) {
	ctx := context.Background()
	pool, c := tracedPool(t)
	a, b := &recorder{}, &recorder{}
	ob := start(t, outbox.Config{Sinks: map[string]outbox.Sink{"a": a, "b": b}})
	evs := make([]outbox.Event, 5)
	for i := range evs {
		evs[i] = outbox.Event{ID: fmt.Sprintf("many-%d", i), App: "acme", Type: "payment.succeeded",
			Payload: []byte(fmt.Sprintf(`{"n":%d}`, i))}
	}
	batch := func(evs []outbox.Event) (int, error) {
		var n int
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var err error
			n, err = ob.EnqueueMany(ctx, tx, evs)
			return err
		})
		return n, err
	}
	// River asks the server's version once per client, on its first insert.
	if _, err := batch([]outbox.Event{{ID: "many-warm", App: "acme", Type: "payment.succeeded"}}); err != nil {
		t.Fatal(err)
	}
	c.n.Store(0)
	if n, err := batch(evs); err != nil || n != 5 {
		t.Fatalf("first batch: %d %v", n, err)
	}
	if got := c.n.Load(); got != 2 {
		t.Errorf("a batch of 5 events and 2 sinks took %d statements, want 2", got)
	}
	if n := count(t, `SELECT count(*) FROM outbox_deliveries d JOIN river_job j ON j.id = d.job_id
		WHERE d.event_id LIKE 'many-_' AND j.args->>'event_id' = d.event_id AND j.args->>'sink' = d.sink`); n != 10 {
		t.Fatalf("%d delivery rows with their jobs, want 10", n)
	}
	// Again, and again with one new event: only the new one is written.
	if n, err := batch(evs); err != nil || n != 0 {
		t.Fatalf("same batch again: %d %v", n, err)
	}
	more := append(append([]outbox.Event{}, evs[:2]...), outbox.Event{ID: "many-5", App: "acme", Type: "payment.succeeded"})
	if n, err := batch(more); err != nil || n != 1 {
		t.Fatalf("batch with one new event: %d %v", n, err)
	}
	// Refusals change nothing.
	other := []outbox.Event{{ID: "many-6", App: "acme", Type: "payment.succeeded"},
		{ID: "many-1", App: "acme", Type: "payment.failed", Payload: []byte(`{"n":1}`)}}
	if _, err := batch(other); jifu.ErrorCode(err) != jifu.CodeConflict {
		t.Fatalf("reused id: %v", err)
	}
	twice := []outbox.Event{{ID: "many-7", App: "acme", Type: "a.b"}, {ID: "many-7", App: "acme", Type: "a.b"}}
	if _, err := batch(twice); jifu.ErrorCode(err) != jifu.CodeInvalid {
		t.Fatalf("id twice: %v", err)
	}
	bad := []outbox.Event{{ID: "many-8", App: "acme", Type: "a.b"}, {ID: "many 9", App: "acme", Type: "a.b"}}
	if _, err := batch(bad); jifu.ErrorCode(err) != jifu.CodeInvalid {
		t.Fatalf("bad id: %v", err)
	}
	if n := count(t, `SELECT count(*) FROM outbox_events WHERE id IN ('many-6', 'many-7', 'many-8')`); n != 0 {
		t.Fatalf("refused batches left %d events", n)
	}
	for i := range 6 {
		id := fmt.Sprintf("many-%d", i)
		waitFor(t, "delivery of "+id, func() bool { return a.count(id) == 1 && b.count(id) == 1 })
	}
}

func count(t *testing.T, q string) int {
	t.Helper()
	var n int
	if err := dbtest.Pool(t).QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
