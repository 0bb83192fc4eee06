package outbox

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/database"
)

// Delivery states.
const (
	StatePending   = "pending"   // being tried, or waiting for its next try
	StateDelivered = "delivered" // acknowledged by the sink
	StateDead      = "dead"      // every attempt failed: waits for a Replay
)

// Delivery is one event's delivery to one sink, as the portal lists it.
type Delivery struct {
	EventID       string
	Sink          string
	App           string
	Type          string
	State         string
	Attempts      int    // attempts made so far, replays included
	LastStatus    int    // the sink's last answer (HTTP status), 0 when none
	LastError     string // "" after a success
	LastAttemptAt time.Time
	DeliveredAt   time.Time
	CreatedAt     time.Time
}

// Attempt is one recorded delivery attempt.
type Attempt struct {
	StartedAt time.Time
	Duration  time.Duration
	Status    int
	Error     string // "" when the attempt succeeded
}

// ListFilter selects deliveries for List. App is required.
type ListFilter struct {
	App   string
	State string // one of the states, or "" for all
	Sink  string // "" for all
	Limit int    // 1..500, default 50
	// Before pages backwards: only deliveries created before it (the
	// CreatedAt of the previous page's last row).
	Before time.Time
}

// List returns an app's deliveries, newest first.
func (o *Outbox) List(ctx context.Context, f ListFilter) ([]Delivery, error) {
	if f.App == "" {
		return nil, jifu.Errorf(jifu.CodeInvalid, "outbox: list: app is required")
	}
	switch f.State {
	case "", StatePending, StateDelivered, StateDead:
	default:
		return nil, jifu.Errorf(jifu.CodeInvalid, "outbox: list: unknown state %q", f.State)
	}
	if f.Limit <= 0 {
		f.Limit = 50
	}
	f.Limit = min(f.Limit, 500)
	if err := o.reconcile(ctx, f.App); err != nil {
		return nil, err
	}
	var before any
	if !f.Before.IsZero() {
		before = f.Before
	}
	rows, err := o.pool.Query(ctx, `
		SELECT d.event_id, d.sink, d.app, e.type, d.state, d.attempts, d.last_status, d.last_error,
			d.last_attempt_at, d.delivered_at, d.created_at
		FROM outbox_deliveries d JOIN outbox_events e ON e.id = d.event_id
		WHERE d.app = $1 AND ($2 = '' OR d.state = $2) AND ($3 = '' OR d.sink = $3)
			AND ($4::timestamptz IS NULL OR d.created_at < $4)
		ORDER BY d.created_at DESC, d.event_id, d.sink
		LIMIT $5`, f.App, f.State, f.Sink, before, f.Limit)
	if err != nil {
		return nil, database.QueryError(ctx, "outbox: list", err)
	}
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		var (
			d        Delivery
			last, at *time.Time
		)
		if err := rows.Scan(&d.EventID, &d.Sink, &d.App, &d.Type, &d.State, &d.Attempts, &d.LastStatus,
			&d.LastError, &last, &at, &d.CreatedAt); err != nil {
			return nil, database.QueryError(ctx, "outbox: list", err)
		}
		if last != nil {
			d.LastAttemptAt = *last
		}
		if at != nil {
			d.DeliveredAt = *at
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, database.QueryError(ctx, "outbox: list", err)
	}
	return out, nil
}

// Attempts returns the recorded attempts of one delivery, oldest first.
func (o *Outbox) Attempts(ctx context.Context, eventID, sink string) ([]Attempt, error) {
	rows, err := o.pool.Query(ctx, `
		SELECT started_at, duration_ms, status, error FROM outbox_attempts
		WHERE event_id = $1 AND sink = $2 ORDER BY id`, eventID, sink)
	if err != nil {
		return nil, database.QueryError(ctx, "outbox: attempts", err)
	}
	defer rows.Close()
	var out []Attempt
	for rows.Next() {
		var (
			a  Attempt
			ms int64
		)
		if err := rows.Scan(&a.StartedAt, &ms, &a.Status, &a.Error); err != nil {
			return nil, database.QueryError(ctx, "outbox: attempts", err)
		}
		a.Duration = time.Duration(ms) * time.Millisecond
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, database.QueryError(ctx, "outbox: attempts", err)
	}
	return out, nil
}

// Event returns a stored event; CodeNotFound when there is none.
func (o *Outbox) Event(ctx context.Context, id string) (Event, error) {
	ev := Event{ID: id}
	err := o.pool.QueryRow(ctx, `SELECT app, type, user_id, payload, created_at FROM outbox_events WHERE id = $1`, id).
		Scan(&ev.App, &ev.Type, &ev.User, &ev.Payload, &ev.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Event{}, jifu.Errorf(jifu.CodeNotFound, "outbox: no event %s", id)
	}
	if err != nil {
		return Event{}, database.QueryError(ctx, "outbox: event", err)
	}
	return ev, nil
}

// Replay sends a dead (or already delivered) delivery of app again, with a
// fresh set of attempts on the schedule. Replaying a delivery still pending
// is CodeConflict (it is already on its way); one of another app, or none,
// is CodeNotFound.
func (o *Outbox) Replay(ctx context.Context, app, eventID, sink string) error {
	return pgx.BeginFunc(ctx, o.pool, func(tx pgx.Tx) error {
		var state string
		err := tx.QueryRow(ctx, `SELECT state FROM outbox_deliveries WHERE event_id = $1 AND sink = $2 AND app = $3 FOR UPDATE`,
			eventID, sink, app).Scan(&state)
		if errors.Is(err, pgx.ErrNoRows) {
			return jifu.Errorf(jifu.CodeNotFound, "outbox: app %s has no %s delivery of event %s", app, sink, eventID)
		}
		if err != nil {
			return database.QueryError(ctx, "outbox: replay", err)
		}
		if state == StatePending {
			return jifu.Errorf(jifu.CodeConflict, "outbox: the %s delivery of event %s is still pending", sink, eventID)
		}
		res, err := o.client.InsertTx(ctx, tx, DeliverArgs{EventID: eventID, Sink: sink}, o.insertOpts())
		if err != nil {
			return jifu.Errorf(jifu.CodeUnavailable, "outbox: replay: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE outbox_deliveries SET state = 'pending', job_id = $3 WHERE event_id = $1 AND sink = $2`,
			eventID, sink, res.Job.ID); err != nil {
			return database.QueryError(ctx, "outbox: replay", err)
		}
		return nil
	})
}

// LostMessage is the last error of a delivery whose job River gave up on
// without a recorded final attempt.
const LostMessage = "outbox: the worker was lost during the last attempt"

// reconcile marks dead the pending deliveries of app whose River job ended
// without the worker recording the end: River's rescuer discards a job
// whose worker died (crash, kill) during its last attempt, and its cleaner
// later deletes the row. A delivery whose job is done (or gone) cannot be
// pending any more.
func (o *Outbox) reconcile(ctx context.Context, app string) error {
	_, err := o.pool.Exec(ctx, `
		UPDATE outbox_deliveries d SET state = 'dead', last_error = $2
		WHERE d.app = $1 AND d.state = 'pending' AND d.job_id IS NOT NULL
			AND NOT EXISTS (SELECT 1 FROM river_job j WHERE j.id = d.job_id
				AND j.state NOT IN ('completed', 'discarded', 'cancelled'))`, app, LostMessage)
	if err != nil {
		return database.QueryError(ctx, "outbox: reconcile", err)
	}
	return nil
}
