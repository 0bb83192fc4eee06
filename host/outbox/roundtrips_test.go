package outbox_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/outbox"
)

// counter is a pgx tracer that counts the statements a connection sends,
// apart from River's rate-limited insert notification (at most one per
// queue per FetchCooldown, 100 ms) and the transaction's own BEGIN/COMMIT.
type counter struct{ n atomic.Int64 }

func (c *counter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	sql := strings.ToLower(strings.TrimSpace(d.SQL))
	if !strings.Contains(sql, "pg_notify") && sql != "begin" && sql != "commit" {
		c.n.Add(1)
	}
	return ctx
}

func (c *counter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// tracedPool opens a pool on the test's database that counts statements.
func tracedPool(t testing.TB) (*pgxpool.Pool, *counter) {
	t.Helper()
	dbtest.Pool(t) // creates the test's database
	cfg, err := pgxpool.ParseConfig(dbtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	c := &counter{}
	cfg.ConnConfig.Tracer = c
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, c
}

// TestEnqueueRoundTrips pins Enqueue's cost in statements (each a round
// trip): two for a new event whatever the number of sinks, one for a
// duplicate.
func TestEnqueueRoundTrips(t *testing.T) {
	ctx := context.Background()
	pool, c := tracedPool(t)
	for _, sinks := range []int{1, 3} {
		m := map[string]outbox.Sink{}
		for i := range sinks {
			m[fmt.Sprintf("s%d", i)] = &recorder{}
		}
		ob, err := outbox.New(outbox.Config{Pool: pool, Queue: queue(t), Logger: quiet, Sinks: m})
		if err != nil {
			t.Fatal(err)
		}
		// River asks the server's version once per client, on its first insert.
		enqueue(t, pool, ob, outbox.Event{ID: fmt.Sprintf("rt-warm-%d", sinks), App: "acme", Type: "payment.succeeded"})
		for _, step := range []struct {
			name string
			want int64
		}{{"new", 2}, {"duplicate", 1}} {
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				c.n.Store(0)
				_, err := ob.Enqueue(ctx, tx, outbox.Event{ID: fmt.Sprintf("rt-%d", sinks), App: "acme", Type: "payment.succeeded"})
				if got := c.n.Load(); got != step.want {
					t.Errorf("%d sinks, %s event: %d statements, want %d", sinks, step.name, got, step.want)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

// BenchmarkEnqueue is one event with one sink in its own transaction
// (BEGIN, Enqueue, COMMIT), one at a time: latency is round trips.
func BenchmarkEnqueue(b *testing.B) {
	ctx := context.Background()
	pool, c := tracedPool(b)
	ob, err := outbox.New(outbox.Config{Pool: pool, Queue: queue(b), Logger: quiet,
		Sinks: map[string]outbox.Sink{"webhook": &recorder{}}})
	if err != nil {
		b.Fatal(err)
	}
	c.n.Store(0)
	b.ResetTimer()
	for i := range b.N {
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := ob.Enqueue(ctx, tx, outbox.Event{ID: fmt.Sprintf("bench-%d", i), App: "acme", Type: "payment.succeeded",
				Payload: []byte(`{"payment_id":1,"status":"approved","amount":1}`)})
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(c.n.Load())/float64(b.N), "stmts/op")
}
