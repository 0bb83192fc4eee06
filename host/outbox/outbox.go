// Package outbox is the platform's transactional events outbox: an event an
// app is owed (a payment result, an order notification, a review decision) is
// written in the same PostgreSQL transaction as the state change that caused
// it, together with the River jobs that deliver it. A rolled-back transaction
// leaves neither event nor job (no phantom events); a committed one always
// has both (no lost events), and River works the jobs at least once, across
// crashes, on the published retry schedule.
//
//	ob, err := outbox.New(outbox.Config{Pool: pool, Sinks: map[string]outbox.Sink{"webhook": wh}})
//	err = ob.Start(ctx)               // in serve; ob.Stop(ctx) on the way out
//	tx, _ := pool.Begin(ctx)
//	// ... the state change ...
//	_, err = ob.Enqueue(ctx, tx, outbox.Event{ID: "pay_123.succeeded", App: "acme", Type: "payment.succeeded", Payload: body})
//	err = tx.Commit(ctx)
//
// Each event is delivered once per Sink (the app's server, the app's own
// WASM on_event): a Sink's Deliver returning nil acknowledges; an error
// records the attempt and retries after Schedule()[n-1]. After the last
// attempt the delivery is dead: List shows it with its attempts, Replay
// sends it again. Delivery is at least once; receivers deduplicate by the
// event id.
//
// Errors are *jifu.Error: CodeInvalid for a malformed event (nothing
// written), CodeConflict for an id reused with different content or a replay
// of a delivery still pending, CodeNotFound, and the database's codes.
package outbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/database"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates outbox_events, outbox_deliveries and outbox_attempts.
// It needs RiverMigrations applied too (the jobs live in river_job).
var Migrations = database.MigrationSet{Name: "outbox", FS: database.MustSub(migrationFiles, "migrations")}

// Limits on events.
const (
	MaxPayloadBytes = 256 << 10
	MaxAppBytes     = 255
	MaxUserBytes    = 255
	MaxErrorBytes   = 1000 // a recorded attempt's error is cut to this
)

// DefaultQueue is the River queue deliveries run on.
const DefaultQueue = "outbox"

// Schedule returns the published retry schedule: the wait after the 1st,
// 2nd, ... failed attempt. Seven retries span 1 day 14 minutes after the
// first attempt, so a delivery is tried 8 times before it is dead.
func Schedule() []time.Duration {
	return []time.Duration{
		4 * time.Minute, 10 * time.Minute, 10 * time.Minute,
		time.Hour, 2 * time.Hour, 6 * time.Hour, 15 * time.Hour,
	}
}

var (
	idPattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`)
	typePattern = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)
	sinkPattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)
)

// Event is one thing that happened that an app is owed.
type Event struct {
	ID        string          // unique; the producer's idempotency key and the receiver's dedup key
	App       string          // slug of the app the event is for
	Type      string          // dotted lower-case name, as "payment.succeeded"
	User      string          // platform user the event concerns, "" when none
	Payload   json.RawMessage // JSON; nil means {}
	CreatedAt time.Time       // set by Enqueue
}

// NewID returns a fresh random event id, "evt_" and 24 hex digits, for
// producers without a natural key. A natural key (the payment id and the
// transition) is better: it makes a retried producer idempotent.
func NewID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "evt_" + hex.EncodeToString(b[:])
}

// Validate checks the event's fields and fills in the default payload.
func (ev *Event) Validate() error {
	switch {
	case !idPattern.MatchString(ev.ID):
		return jifu.Errorf(jifu.CodeInvalid, "outbox: event id %q must match %s", ev.ID, idPattern)
	case ev.App == "" || len(ev.App) > MaxAppBytes:
		return jifu.Errorf(jifu.CodeInvalid, "outbox: event %s: app must be 1..%d bytes", ev.ID, MaxAppBytes)
	case len(ev.Type) > 64 || !typePattern.MatchString(ev.Type):
		return jifu.Errorf(jifu.CodeInvalid, "outbox: event %s: type %q must be dotted lower-case words, at most 64 bytes", ev.ID, ev.Type)
	case len(ev.User) > MaxUserBytes:
		return jifu.Errorf(jifu.CodeInvalid, "outbox: event %s: user must be at most %d bytes", ev.ID, MaxUserBytes)
	case len(ev.Payload) > MaxPayloadBytes:
		return jifu.Errorf(jifu.CodeTooLarge, "outbox: event %s: payload is %d bytes, over %d", ev.ID, len(ev.Payload), MaxPayloadBytes)
	}
	if len(bytes.TrimSpace(ev.Payload)) == 0 {
		ev.Payload = json.RawMessage(`{}`)
	} else if !json.Valid(ev.Payload) {
		return jifu.Errorf(jifu.CodeInvalid, "outbox: event %s: payload is not valid JSON", ev.ID)
	}
	return nil
}

// Sink delivers events to one kind of destination. Deliver makes one
// attempt: nil acknowledges the event; an error (with status, the
// destination's answer such as an HTTP status, or 0) fails the attempt,
// which is recorded and retried on the schedule. Deliver must honour ctx.
type Sink interface {
	Deliver(ctx context.Context, ev Event) (status int, err error)
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(ctx context.Context, ev Event) (int, error)

// Deliver calls f.
func (f SinkFunc) Deliver(ctx context.Context, ev Event) (int, error) { return f(ctx, ev) }

// Config configures an Outbox. Zero values take the defaults shown.
type Config struct {
	Pool  *pgxpool.Pool   // the platform database, migrated with RiverMigrations and Migrations
	Sinks map[string]Sink // every event is delivered to each; names match ^[a-z][a-z0-9_]{0,31}$

	Queue       string          // River queue; DefaultQueue
	Workers     int             // concurrent deliveries in this process; 20
	Schedule    []time.Duration // waits between attempts; Schedule()
	MaxAttempts int             // attempts before a delivery is dead; len(Schedule)+1
	JobTimeout  time.Duration   // an attempt's deadline, on top of the sink's own; 1 minute
	// RescueAfter is how long a job may stay running (its worker died, say)
	// before the leader puts it back on the schedule; 5 minutes, at least
	// JobTimeout.
	RescueAfter time.Duration
	// FetchPollInterval bounds how long a job made available waits for a
	// worker when no notification arrives; River's default (1 s).
	FetchPollInterval time.Duration
	// LeaderElectionDisabled keeps this process out of River's leader
	// election (the leader runs maintenance: rescuing, scheduling, cleaning).
	LeaderElectionDisabled bool
	Now                    func() time.Time // the retry policy's clock; time.Now
	Logger                 *slog.Logger     // slog.Default()
	// Metrics, when set, receives jifu_outbox_attempts_total{sink,outcome}
	// and jifu_outbox_attempt_seconds{sink}.
	Metrics prometheus.Registerer
}

// Outbox writes events and runs their delivery. It is safe for concurrent
// use. A process that only writes events (New without Start) needs no
// workers running.
type Outbox struct {
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
	sinks  map[string]Sink
	names  []string // sink names, sorted
	queue  string
	max    int
	log    *slog.Logger
	met    *metrics
}

// New builds an Outbox and its River client; Start runs the workers.
func New(cfg Config) (*Outbox, error) {
	if cfg.Pool == nil {
		return nil, jifu.Errorf(jifu.CodeInvalid, "outbox: no pool")
	}
	if len(cfg.Sinks) == 0 {
		return nil, jifu.Errorf(jifu.CodeInvalid, "outbox: no sinks")
	}
	o := &Outbox{pool: cfg.Pool, sinks: cfg.Sinks, queue: cfg.Queue, log: cfg.Logger}
	for name := range cfg.Sinks {
		if !sinkPattern.MatchString(name) {
			return nil, jifu.Errorf(jifu.CodeInvalid, "outbox: sink name %q must match %s", name, sinkPattern)
		}
		o.names = append(o.names, name)
	}
	sort.Strings(o.names)
	met, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeInvalid, "outbox: metrics: %w", err)
	}
	o.met = met
	if o.queue == "" {
		o.queue = DefaultQueue
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	schedule := cfg.Schedule
	if len(schedule) == 0 {
		schedule = Schedule()
	}
	for _, d := range schedule {
		if d <= 0 {
			return nil, jifu.Errorf(jifu.CodeInvalid, "outbox: schedule holds a non-positive wait %v", d)
		}
	}
	o.max = cfg.MaxAttempts
	if o.max <= 0 {
		o.max = len(schedule) + 1
	}
	workers := cfg.Workers
	if workers <= 0 {
		workers = 20
	}
	jobTimeout := cfg.JobTimeout
	if jobTimeout <= 0 {
		jobTimeout = time.Minute
	}
	rescue := max(cfg.RescueAfter, jobTimeout)
	if cfg.RescueAfter <= 0 {
		rescue = max(5*time.Minute, jobTimeout)
	}
	ws := river.NewWorkers()
	if err := river.AddWorkerSafely(ws, &deliverWorker{o: o}); err != nil {
		return nil, jifu.Errorf(jifu.CodeInternal, "outbox: %w", err)
	}
	client, err := river.NewClient(riverpgxv5.New(cfg.Pool), &river.Config{
		Queues:                 map[string]river.QueueConfig{o.queue: {MaxWorkers: workers}},
		Workers:                ws,
		RetryPolicy:            &RetryPolicy{Schedule: schedule, Now: cfg.Now},
		MaxAttempts:            o.max,
		JobTimeout:             jobTimeout,
		RescueStuckJobsAfter:   rescue,
		FetchPollInterval:      cfg.FetchPollInterval,
		LeaderElectionDisabled: cfg.LeaderElectionDisabled,
		Logger:                 o.log,
		Middleware:             []rivertype.Middleware{river.JobInsertMiddlewareFunc(presetJobIDs)},
	})
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeInvalid, "outbox: river client: %w", err)
	}
	o.client = client
	return o, nil
}

// Start runs the delivery workers (and, on the elected leader, River's
// maintenance) until Stop.
func (o *Outbox) Start(ctx context.Context) error {
	if err := o.client.Start(ctx); err != nil {
		return jifu.Errorf(jifu.CodeUnavailable, "outbox: start: %w", err)
	}
	return nil
}

// Stop lets running deliveries finish until ctx is done, then cancels them
// (a cancelled attempt is retried later, by this process or another).
func (o *Outbox) Stop(ctx context.Context) error {
	err := o.client.Stop(ctx)
	if err != nil && ctx.Err() != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		err = o.client.StopAndCancel(cctx)
	}
	if err != nil {
		return jifu.Errorf(jifu.CodeUnavailable, "outbox: stop: %w", err)
	}
	return nil
}

// Enqueue writes ev and one delivery job per sink inside tx, the caller's
// transaction: they become visible, and are delivered, only if tx commits.
// Enqueuing the same event (same id and content) again is a no-op that
// returns created=false; the same id with other content is CodeConflict.
//
// A new event costs two statements whatever the number of sinks: one writes
// the event and its delivery rows, checks for a duplicate and takes the
// jobs' ids from River's sequence; then River inserts all the jobs with
// those ids (plus, at most every FetchCooldown per queue, River's insert
// notification). A duplicate costs one.
func (o *Outbox) Enqueue(ctx context.Context, tx pgx.Tx, ev Event) (created bool, err error) {
	if err := ev.Validate(); err != nil {
		return false, err
	}
	// The statement's snapshot predates its own insert, so the comparison
	// reads only a row that existed before: NULL when the insert happened.
	// The delivery rows reference the event inserted by the same statement:
	// the foreign key is checked at the statement's end.
	var (
		inserted bool
		same     *bool
		sinks    []string
		jobs     []int64
	)
	err = tx.QueryRow(ctx, `
		WITH ins AS (
			INSERT INTO outbox_events (id, app, type, user_id, payload) VALUES ($1, $2, $3, $4, $5::jsonb)
			ON CONFLICT (id) DO NOTHING RETURNING id
		), dl AS (
			INSERT INTO outbox_deliveries (event_id, sink, app, job_id)
			SELECT ins.id, s.sink, $2, nextval('river_job_id_seq') FROM ins, unnest($6::text[]) AS s (sink)
			RETURNING sink, job_id
		)
		SELECT EXISTS (SELECT 1 FROM ins),
			(SELECT app = $2 AND type = $3 AND user_id = $4 AND payload = $5::jsonb FROM outbox_events WHERE id = $1),
			(SELECT coalesce(array_agg(sink ORDER BY job_id), '{}') FROM dl),
			(SELECT coalesce(array_agg(job_id ORDER BY job_id), '{}') FROM dl)`,
		ev.ID, ev.App, ev.Type, ev.User, string(ev.Payload), o.names).Scan(&inserted, &same, &sinks, &jobs)
	if err != nil {
		return false, database.QueryError(ctx, "outbox: enqueue", err)
	}
	if !inserted {
		if same == nil {
			// Another transaction committed the id while this statement
			// waited on it: its row is newer than the snapshot. Read it now.
			var s bool
			err := tx.QueryRow(ctx, `
				SELECT app = $2 AND type = $3 AND user_id = $4 AND payload = $5::jsonb
				FROM outbox_events WHERE id = $1`, ev.ID, ev.App, ev.Type, ev.User, string(ev.Payload)).Scan(&s)
			if err != nil {
				return false, database.QueryError(ctx, "outbox: enqueue", err)
			}
			same = &s
		}
		if !*same {
			return false, jifu.Errorf(jifu.CodeConflict, "outbox: event id %s was already used for another event", ev.ID)
		}
		return false, nil
	}
	if len(sinks) != len(jobs) || len(sinks) != len(o.names) {
		return false, jifu.Errorf(jifu.CodeInternal, "outbox: enqueue: %d delivery rows for %d sinks", len(sinks), len(o.names))
	}
	params := make([]river.InsertManyParams, len(sinks))
	for i, sink := range sinks {
		params[i] = river.InsertManyParams{Args: DeliverArgs{EventID: ev.ID, Sink: sink}, InsertOpts: o.insertOpts()}
	}
	res, err := o.client.InsertManyTx(context.WithValue(ctx, jobIDsKey{}, jobs), tx, params)
	if err != nil {
		return false, jifu.Errorf(jifu.CodeUnavailable, "outbox: enqueue delivery jobs: %w", err)
	}
	if len(res) != len(jobs) {
		return false, jifu.Errorf(jifu.CodeInternal, "outbox: enqueue: river inserted %d jobs for %d sinks", len(res), len(jobs))
	}
	for i, r := range res {
		if r.Job.ID != jobs[i] {
			// A River version that ignores preset ids: the delivery rows
			// would name the wrong jobs. Fail the transaction rather.
			return false, jifu.Errorf(jifu.CodeInternal, "outbox: enqueue: river gave job %d the id %d, not %d", i, r.Job.ID, jobs[i])
		}
	}
	return true, nil
}

// jobIDsKey carries the ids Enqueue took for its jobs to presetJobIDs.
type jobIDsKey struct{}

// presetJobIDs is River insert middleware: when the context carries one id
// per job (Enqueue's, from river_job_id_seq, already in the delivery rows),
// River inserts the jobs with those ids instead of drawing new ones (its
// insert takes a given id, else nextval of the same sequence). Other
// inserts (Replay) pass through.
func presetJobIDs(ctx context.Context, params []*rivertype.JobInsertParams,
	inner func(context.Context) ([]*rivertype.JobInsertResult, error)) ([]*rivertype.JobInsertResult, error) {
	if ids, ok := ctx.Value(jobIDsKey{}).([]int64); ok && len(ids) == len(params) {
		for i, p := range params {
			p.ID = &ids[i]
		}
	}
	return inner(ctx)
}

func (o *Outbox) insertOpts() *river.InsertOpts {
	return &river.InsertOpts{Queue: o.queue, MaxAttempts: o.max}
}

// DeliverArgs is the River job that delivers one event to one sink.
type DeliverArgs struct {
	EventID string `json:"event_id"`
	Sink    string `json:"sink"`
}

// Kind is the River job kind.
func (DeliverArgs) Kind() string { return "outbox_deliver" }

// deliverWorker works DeliverArgs jobs with the Outbox's sinks.
type deliverWorker struct {
	river.WorkerDefaults[DeliverArgs]
	o *Outbox
}

func (w *deliverWorker) Work(ctx context.Context, job *river.Job[DeliverArgs]) error {
	return w.o.Deliver(ctx, job.Args, job.Attempt >= job.MaxAttempts)
}

// Deliver makes one attempt of one delivery with this Outbox's sink and
// records it (attempt row, delivery state). final marks the last attempt:
// failing it makes the delivery dead. It returns nil when the sink
// acknowledged or the delivery was already delivered, and the sink's error
// otherwise. River's worker calls it; so can a Lambda handler fed from
// another queue.
func (o *Outbox) Deliver(ctx context.Context, args DeliverArgs, final bool) error {
	sink, ok := o.sinks[args.Sink]
	if !ok {
		// A job from a process configured with other sinks: not ours to drop.
		return fmt.Errorf("outbox: no sink %q in this process", args.Sink)
	}
	var (
		ev    Event
		state string
	)
	err := o.pool.QueryRow(ctx, `
		SELECT e.app, e.type, e.user_id, e.payload, e.created_at, d.state
		FROM outbox_events e JOIN outbox_deliveries d ON d.event_id = e.id
		WHERE e.id = $1 AND d.sink = $2`, args.EventID, args.Sink).
		Scan(&ev.App, &ev.Type, &ev.User, &ev.Payload, &ev.CreatedAt, &state)
	if errors.Is(err, pgx.ErrNoRows) {
		return river.JobCancel(fmt.Errorf("outbox: event %s has no %s delivery", args.EventID, args.Sink))
	}
	if err != nil {
		return database.QueryError(ctx, "outbox: load event", err)
	}
	ev.ID = args.EventID
	if state == StateDelivered {
		return nil // a replay raced an earlier job, or a crash after recording
	}
	start := time.Now()
	status, derr := sink.Deliver(ctx, ev)
	elapsed := time.Since(start)
	msg := ""
	newState := StateDelivered
	if derr != nil {
		msg = truncate(derr.Error(), MaxErrorBytes)
		newState = StatePending
		if final {
			newState = StateDead
		}
	}
	outcome := map[string]string{StateDelivered: "delivered", StatePending: "failed", StateDead: "dead"}[newState]
	o.met.attempts.WithLabelValues(args.Sink, outcome).Inc()
	o.met.duration.WithLabelValues(args.Sink).Observe(elapsed.Seconds())
	// Record even when ctx ended (job timeout, shutdown): the attempt happened.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := pgx.BeginFunc(rctx, o.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(rctx, `
			INSERT INTO outbox_attempts (event_id, sink, started_at, duration_ms, status, error)
			VALUES ($1, $2, $3, $4, $5, $6)`, args.EventID, args.Sink, start, elapsed.Milliseconds(), status, msg); err != nil {
			return err
		}
		_, err := tx.Exec(rctx, `
			UPDATE outbox_deliveries SET attempts = attempts + 1, last_status = $3, last_error = $4,
				last_attempt_at = $5, state = $6,
				delivered_at = CASE WHEN $6 = 'delivered' THEN now() ELSE delivered_at END
			WHERE event_id = $1 AND sink = $2`, args.EventID, args.Sink, status, msg, start, newState)
		return err
	}); err != nil {
		o.log.ErrorContext(ctx, "outbox: cannot record attempt", "event", args.EventID, "sink", args.Sink, "err", err)
		if derr == nil {
			return database.QueryError(rctx, "outbox: record attempt", err) // deliver again: receivers dedup
		}
	}
	if derr != nil {
		o.log.InfoContext(ctx, "outbox: delivery failed", "event", args.EventID, "app", ev.App, "sink", args.Sink,
			"status", status, "err", msg, "dead", final)
		return derr
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// RetryPolicy is River's NextRetry for deliveries: the n-th failed attempt
// waits Schedule[n-1] (the last entry repeats) from the moment it failed.
type RetryPolicy struct {
	Schedule []time.Duration
	Now      func() time.Time // time.Now when nil
}

// NextRetry returns when job, which has just failed its job.Attempt-th
// attempt, runs again.
func (p *RetryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	return now().Add(p.Wait(job.Attempt))
}

// Wait returns the wait after the attempt-th failed attempt (1-based).
func (p *RetryPolicy) Wait(attempt int) time.Duration {
	s := p.Schedule
	if len(s) == 0 {
		s = Schedule()
	}
	i := min(max(attempt, 1), len(s)) - 1
	return s[i]
}
