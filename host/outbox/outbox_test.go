package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/outbox"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// queue gives each test its own River queue, so that no test's workers take
// another's jobs from the shared database.
func queue(t testing.TB) string {
	return strings.ToLower(strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
}

// recorder is a Sink that records what it receives and fails as told.
type recorder struct {
	mu   sync.Mutex
	got  []string // event ids, in order
	fail func(id string, n int) error
}

func (r *recorder) Deliver(ctx context.Context, ev outbox.Event) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, id := range r.got {
		if id == ev.ID {
			n++
		}
	}
	r.got = append(r.got, ev.ID)
	if r.fail != nil {
		if err := r.fail(ev.ID, n+1); err != nil {
			return 500, err
		}
	}
	return 200, nil
}

func (r *recorder) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, g := range r.got {
		if g == id {
			n++
		}
	}
	return n
}

func start(t *testing.T, cfg outbox.Config) *outbox.Outbox {
	t.Helper()
	cfg.Pool = dbtest.Pool(t)
	if cfg.Queue == "" {
		cfg.Queue = queue(t)
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	if cfg.FetchPollInterval == 0 {
		cfg.FetchPollInterval = 100 * time.Millisecond
	}
	ob, err := outbox.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ob.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return ob
}

func enqueue(t *testing.T, pool *pgxpool.Pool, ob *outbox.Outbox, evs ...outbox.Event) {
	t.Helper()
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, ev := range evs {
			if _, err := ob.Enqueue(ctx, tx, ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or the (generous) deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func delivery(t *testing.T, ob *outbox.Outbox, app, id string) outbox.Delivery {
	t.Helper()
	ds, err := ob.List(context.Background(), outbox.ListFilter{App: app, Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.EventID == id {
			return d
		}
	}
	t.Fatalf("no delivery of %s for %s", id, app)
	return outbox.Delivery{}
}

// TestRiverSchema checks the goose set "river" leaves River's own migrator
// content: every version recorded, nothing pending.
func TestRiverSchema(t *testing.T) {
	ctx := context.Background()
	m, err := rivermigrate.New(riverpgxv5.New(dbtest.Pool(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Validate(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK {
		t.Fatalf("river schema not current: %v", res.Messages)
	}
}

func TestEnqueueRejects(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Pool(t)
	ob, err := outbox.New(outbox.Config{Pool: pool, Queue: queue(t), Logger: quiet, Sinks: map[string]outbox.Sink{"s": &recorder{}}})
	if err != nil {
		t.Fatal(err)
	}
	ok := outbox.Event{ID: "rej-ok", App: "acme", Type: "payment.succeeded", Payload: json.RawMessage(`{"a":1}`)}
	tests := []struct {
		name string
		edit func(*outbox.Event)
		code string
	}{
		{"empty id", func(e *outbox.Event) { e.ID = "" }, jifu.CodeInvalid},
		{"id with space", func(e *outbox.Event) { e.ID = "a b" }, jifu.CodeInvalid},
		{"id too long", func(e *outbox.Event) { e.ID = strings.Repeat("a", 129) }, jifu.CodeInvalid},
		{"no app", func(e *outbox.Event) { e.App = "" }, jifu.CodeInvalid},
		{"upper-case type", func(e *outbox.Event) { e.Type = "Payment" }, jifu.CodeInvalid},
		{"empty type segment", func(e *outbox.Event) { e.Type = "payment..x" }, jifu.CodeInvalid},
		{"payload not JSON", func(e *outbox.Event) { e.Payload = json.RawMessage(`{"a":`) }, jifu.CodeInvalid},
		{"payload too large", func(e *outbox.Event) {
			e.Payload = json.RawMessage(`"` + strings.Repeat("x", outbox.MaxPayloadBytes) + `"`)
		}, jifu.CodeTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := ok
			tt.edit(&ev)
			tx, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ob.Enqueue(ctx, tx, ev)
			if got := jifu.ErrorCode(err); got != tt.code {
				t.Errorf("Enqueue code = %q (%v), want %q", got, err, tt.code)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE queue = $1`, queue(t)).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Errorf("%d jobs written for a rejected event", n)
			}
		})
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox_events WHERE app = 'acme' AND id LIKE 'rej%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d events written for rejected input", n)
	}
}

func TestEnqueueIdempotent(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Pool(t)
	ob, err := outbox.New(outbox.Config{Pool: pool, Queue: queue(t), Logger: quiet,
		Sinks: map[string]outbox.Sink{"webhook": &recorder{}, "on_event": &recorder{}}})
	if err != nil {
		t.Fatal(err)
	}
	ev := outbox.Event{ID: "idem-1", App: "acme", Type: "order.created", User: "u1", Payload: json.RawMessage(`{"b": 2, "a": 1}`)}
	steps := []struct {
		name        string
		ev          outbox.Event
		wantCreated bool
		code        string
	}{
		{"first", ev, true, ""},
		{"again", ev, false, ""},
		{"same JSON, other spelling", func() outbox.Event { e := ev; e.Payload = json.RawMessage(`{"a":1,"b":2}`); return e }(), false, ""},
		{"other payload", func() outbox.Event { e := ev; e.Payload = json.RawMessage(`{"a":2}`); return e }(), false, jifu.CodeConflict},
		{"other type", func() outbox.Event { e := ev; e.Type = "order.cancelled"; return e }(), false, jifu.CodeConflict},
	}
	for _, s := range steps {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		created, err := ob.Enqueue(ctx, tx, s.ev)
		if jifu.ErrorCode(err) != s.code || created != s.wantCreated {
			t.Errorf("%s: Enqueue = %v, %v; want %v, code %q", s.name, created, err, s.wantCreated, s.code)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var jobs int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE args->>'event_id' = 'idem-1'`).Scan(&jobs); err != nil {
		t.Fatal(err)
	}
	if jobs != 2 {
		t.Errorf("%d delivery jobs, want one per sink (2)", jobs)
	}

	// Each delivery row names its own sink's job.
	var linked int
	if err := pool.QueryRow(ctx, `
		SELECT count(*) FROM outbox_deliveries d JOIN river_job j ON j.id = d.job_id
		WHERE d.event_id = 'idem-1' AND j.args->>'sink' = d.sink AND j.args->>'event_id' = d.event_id`).Scan(&linked); err != nil {
		t.Fatal(err)
	}
	if linked != 2 {
		t.Errorf("%d deliveries linked to their sink's job, want 2", linked)
	}
}

// TestEnqueueRacing enqueues an event id in a second transaction while a
// first one holds the same id uncommitted: the second waits, then sees the
// first's outcome (a duplicate, a conflict, or nothing when it rolled back).
func TestEnqueueRacing(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Pool(t)
	ob, err := outbox.New(outbox.Config{Pool: pool, Queue: queue(t), Logger: quiet,
		Sinks: map[string]outbox.Sink{"webhook": &recorder{}}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name        string
		second      json.RawMessage
		commit      bool
		wantCreated bool
		code        string
		wantJobs    int
	}{
		{"same event", json.RawMessage(`{"a":1}`), true, false, "", 1},
		{"other payload", json.RawMessage(`{"a":2}`), true, false, jifu.CodeConflict, 1},
		{"first rolled back", json.RawMessage(`{"a":2}`), false, true, "", 1},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := fmt.Sprintf("race-%d", i)
			first, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer first.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
			if _, err := ob.Enqueue(ctx, first, outbox.Event{ID: id, App: "acme", Type: "payment.succeeded", Payload: json.RawMessage(`{"a":1}`)}); err != nil {
				t.Fatal(err)
			}
			type result struct {
				created bool
				err     error
			}
			done := make(chan result, 1)
			go func() {
				var r result
				r.err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					var err error
					r.created, err = ob.Enqueue(ctx, tx, outbox.Event{ID: id, App: "acme", Type: "payment.succeeded", Payload: c.second})
					return err
				})
				done <- r
			}()
			select {
			case r := <-done:
				t.Fatalf("second Enqueue did not wait for the first transaction: %v, %v", r.created, r.err)
			case <-time.After(200 * time.Millisecond):
			}
			if c.commit {
				err = first.Commit(ctx)
			} else {
				err = first.Rollback(ctx)
			}
			if err != nil {
				t.Fatal(err)
			}
			var r result
			select {
			case r = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("second Enqueue still waiting")
			}
			if r.created != c.wantCreated || jifu.ErrorCode(r.err) != c.code {
				t.Errorf("second Enqueue = %v, %v; want %v, code %q", r.created, r.err, c.wantCreated, c.code)
			}
			var jobs, deliveries int
			if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM river_job WHERE args->>'event_id' = $1),
				(SELECT count(*) FROM outbox_deliveries WHERE event_id = $1 AND job_id IS NOT NULL)`, id).Scan(&jobs, &deliveries); err != nil {
				t.Fatal(err)
			}
			if jobs != c.wantJobs || deliveries != c.wantJobs {
				t.Errorf("%d jobs, %d deliveries; want %d of each", jobs, deliveries, c.wantJobs)
			}
		})
	}
}

// TestRolledBackNeverSent enqueues one event in a transaction that rolls
// back and one in a transaction that commits: only the second is delivered,
// and nothing of the first is stored.
func TestRolledBackNeverSent(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Pool(t)
	rec := &recorder{}
	ob := start(t, outbox.Config{Sinks: map[string]outbox.Sink{"webhook": rec}})

	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ob.Enqueue(ctx, tx, outbox.Event{ID: "rb-phantom", App: "acme", Type: "payment.succeeded"}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	enqueue(t, pool, ob, outbox.Event{ID: "rb-real", App: "acme", Type: "payment.succeeded"})
	waitFor(t, "the committed event", func() bool { return rec.count("rb-real") == 1 })
	time.Sleep(300 * time.Millisecond) // a phantom would be as fast
	if n := rec.count("rb-phantom"); n != 0 {
		t.Errorf("rolled-back event delivered %d times", n)
	}
	if _, err := ob.Event(ctx, "rb-phantom"); jifu.ErrorCode(err) != jifu.CodeNotFound {
		t.Errorf("rolled-back event stored: %v", err)
	}
	var jobs int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE args->>'event_id' = 'rb-phantom'`).Scan(&jobs); err != nil {
		t.Fatal(err)
	}
	if jobs != 0 {
		t.Errorf("rolled-back event left %d jobs", jobs)
	}
	waitFor(t, "delivered state", func() bool { return delivery(t, ob, "acme", "rb-real").State == outbox.StateDelivered })
}

// TestSchedule checks the published schedule and River's NextRetry on a
// fake clock: the n-th failure waits the n-th step, measured from the
// failure, and the retries span at least a day.
func TestSchedule(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	p := &outbox.RetryPolicy{Schedule: outbox.Schedule(), Now: func() time.Time { return now }}
	want := []time.Duration{4 * time.Minute, 10 * time.Minute, 10 * time.Minute, time.Hour, 2 * time.Hour, 6 * time.Hour, 15 * time.Hour}
	var total time.Duration
	for i, w := range want {
		attempt := i + 1
		got := p.NextRetry(&rivertype.JobRow{Attempt: attempt})
		if got.Sub(now) != w {
			t.Errorf("after attempt %d: next retry in %v, want %v", attempt, got.Sub(now), w)
		}
		total += w
	}
	if total < 24*time.Hour {
		t.Errorf("schedule spans %v, want at least a day", total)
	}
	if got := p.Wait(99); got != 15*time.Hour {
		t.Errorf("beyond the schedule: %v, want the last step", got)
	}
}

// TestScheduleInQueue fails a real delivery once and reads River's job: it
// is retryable at exactly the first step after the (fake) failure time.
func TestScheduleInQueue(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Pool(t)
	fake := time.Now().Add(time.Minute).Truncate(time.Microsecond)
	rec := &recorder{fail: func(string, int) error { return errors.New("receiver down") }}
	ob := start(t, outbox.Config{Sinks: map[string]outbox.Sink{"webhook": rec}, Now: func() time.Time { return fake }})
	enqueue(t, pool, ob, outbox.Event{ID: "sched-1", App: "acme", Type: "payment.succeeded"})
	var (
		state     string
		scheduled time.Time
		errs      int
	)
	waitFor(t, "the first failure", func() bool {
		err := pool.QueryRow(ctx, `SELECT state, scheduled_at, coalesce(array_length(errors, 1), 0) FROM river_job WHERE args->>'event_id' = 'sched-1'`).
			Scan(&state, &scheduled, &errs)
		return err == nil && errs == 1
	})
	if state != "retryable" || !scheduled.Equal(fake.Add(4*time.Minute)) {
		t.Errorf("after one failure: %s at %v, want retryable at %v", state, scheduled, fake.Add(4*time.Minute))
	}
	d := delivery(t, ob, "acme", "sched-1")
	if d.State != outbox.StatePending || d.Attempts != 1 || d.LastStatus != 500 || d.LastError != "receiver down" {
		t.Errorf("delivery = %+v", d)
	}
	if err := ob.Replay(ctx, "acme", "sched-1", "webhook"); jifu.ErrorCode(err) != jifu.CodeConflict {
		t.Errorf("Replay of a pending delivery: %v, want conflict", err)
	}
	if rec.count("sched-1") != 1 {
		t.Errorf("delivered %d times, want 1", rec.count("sched-1"))
	}
}

// TestDeadLetterAndReplay exhausts a delivery's attempts, then replays it.
func TestDeadLetterAndReplay(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Pool(t)
	var mu sync.Mutex
	up := false
	rec := &recorder{fail: func(id string, n int) error {
		mu.Lock()
		defer mu.Unlock()
		if up {
			return nil
		}
		return fmt.Errorf("HTTP 503 on try %d", n)
	}}
	reg := prometheus.NewRegistry()
	ob := start(t, outbox.Config{
		Sinks:    map[string]outbox.Sink{"webhook": rec},
		Schedule: []time.Duration{10 * time.Millisecond}, MaxAttempts: 3,
		Metrics: reg,
	})
	enqueue(t, pool, ob, outbox.Event{ID: "dead-1", App: "acme", Type: "payment.succeeded"})
	waitFor(t, "a dead letter", func() bool { return delivery(t, ob, "acme", "dead-1").State == outbox.StateDead })

	dead, err := ob.List(ctx, outbox.ListFilter{App: "acme", State: outbox.StateDead})
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || dead[0].EventID != "dead-1" || dead[0].Attempts != 3 || dead[0].LastError != "HTTP 503 on try 3" || dead[0].Type != "payment.succeeded" {
		t.Fatalf("dead letters = %+v", dead)
	}
	atts, err := ob.Attempts(ctx, "dead-1", "webhook")
	if err != nil {
		t.Fatal(err)
	}
	if len(atts) != 3 || atts[0].Error != "HTTP 503 on try 1" || atts[2].Status != 500 || atts[0].StartedAt.IsZero() {
		t.Errorf("attempts = %+v", atts)
	}
	if other, _ := ob.List(ctx, outbox.ListFilter{App: "other"}); len(other) != 0 {
		t.Errorf("another app sees %d deliveries", len(other))
	}

	for _, tt := range []struct {
		name, app, id, sink, code string
	}{
		{"other app", "other", "dead-1", "webhook", jifu.CodeNotFound},
		{"unknown event", "acme", "nope", "webhook", jifu.CodeNotFound},
		{"unknown sink", "acme", "dead-1", "sms", jifu.CodeNotFound},
	} {
		if err := ob.Replay(ctx, tt.app, tt.id, tt.sink); jifu.ErrorCode(err) != tt.code {
			t.Errorf("Replay %s: %v, want %s", tt.name, err, tt.code)
		}
	}
	mu.Lock()
	up = true
	mu.Unlock()
	if err := ob.Replay(ctx, "acme", "dead-1", "webhook"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replay", func() bool { return delivery(t, ob, "acme", "dead-1").State == outbox.StateDelivered })
	d := delivery(t, ob, "acme", "dead-1")
	if d.Attempts != 4 || d.LastError != "" || d.LastStatus != 200 || d.DeliveredAt.IsZero() {
		t.Errorf("after replay: %+v", d)
	}
	if n := rec.count("dead-1"); n != 4 {
		t.Errorf("sink saw %d attempts, want 4", n)
	}
	want := `
# HELP jifu_outbox_attempts_total Event delivery attempts by sink and outcome (delivered, failed, dead).
# TYPE jifu_outbox_attempts_total counter
jifu_outbox_attempts_total{outcome="dead",sink="webhook"} 1
jifu_outbox_attempts_total{outcome="delivered",sink="webhook"} 1
jifu_outbox_attempts_total{outcome="failed",sink="webhook"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "jifu_outbox_attempts_total"); err != nil {
		t.Error(err)
	}
}

func TestNewRejects(t *testing.T) {
	pool := dbtest.Pool(t)
	s := map[string]outbox.Sink{"webhook": &recorder{}}
	tests := []struct {
		name string
		cfg  outbox.Config
	}{
		{"no pool", outbox.Config{Sinks: s}},
		{"no sinks", outbox.Config{Pool: pool}},
		{"bad sink name", outbox.Config{Pool: pool, Sinks: map[string]outbox.Sink{"Web Hook": &recorder{}}}},
		{"zero wait", outbox.Config{Pool: pool, Sinks: s, Schedule: []time.Duration{0}}},
	}
	for _, tt := range tests {
		if _, err := outbox.New(tt.cfg); jifu.ErrorCode(err) != jifu.CodeInvalid {
			t.Errorf("%s: %v, want invalid", tt.name, err)
		}
	}
}
