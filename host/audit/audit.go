// Package audit keeps the trail of every capability call an app makes: who
// (app, version, user), what (capability, function), when, how long and with
// which result code.
//
// Calls are frequent and on the hot path, so a Writer queues records and
// writes them in batches with PostgreSQL's COPY, every BatchSize records or
// every FlushInterval. It never drops a record while the process lives: when
// its queue is full, Record blocks (backpressure), and a failed write is
// logged and retried.
//
//	w := audit.New(pool, logger)
//	defer w.Close(context.WithoutCancel(ctx))
//	w.Record(audit.Record{InvocationID: inv, App: "acme-shop", Version: "1.4.0",
//		User: "u_123", Capability: "kv", Function: "get", Code: "", Duration: d})
//	recs, err := audit.Query(ctx, pool, audit.Filter{App: "acme-shop", Limit: 50})
package audit

import (
	"context"
	"embed"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/database"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the table audit_records.
var Migrations = database.MigrationSet{Name: "audit", FS: database.MustSub(migrationFiles, "migrations")}

// Tuning of the Writer.
const (
	BatchSize     = 500                    // records written by one COPY once this many are queued
	FlushInterval = 200 * time.Millisecond // queued records are written at least this often
	BufferSize    = 4096                   // records queued before Record blocks

	// maxPending bounds the records the writer holds while the database is
	// down; past it, it stops taking records and Record blocks.
	maxPending = 4 * BufferSize
	// writeTimeout bounds one background write.
	writeTimeout = 10 * time.Second
	// maxBackoff caps the wait between retries of a failed write.
	maxBackoff = 5 * time.Second
)

// Record is one capability call.
type Record struct {
	At           time.Time // when the call started; Writer.Record sets it to now if zero
	InvocationID string    // the invocation (request) that made the call
	App          string
	Version      string // the app's version
	User         string // the end user the invocation acts for, if any
	Capability   string // e.g. "kv", "http"
	Function     string // e.g. "get", "fetch"
	Code         string // jifu error code of the result; "" for success
	Duration     time.Duration
}

// LogValue logs a record as a group of its fields.
func (r Record) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Time("at", r.At),
		slog.String("invocation_id", r.InvocationID),
		slog.String("app", r.App),
		slog.String("version", r.Version),
		slog.String("user", r.User),
		slog.String("capability", r.Capability),
		slog.String("function", r.Function),
		slog.String("code", r.Code),
		slog.Duration("duration", r.Duration),
	)
}

// Writer writes records to PostgreSQL in the background. Its methods are
// safe for concurrent use.
type Writer struct {
	pool *pgxpool.Pool
	log  *slog.Logger

	in       chan Record
	flushReq chan flushRequest
	quit     chan struct{} // closed when Close begins
	sealed   chan struct{} // closed once no Record can send any more
	done     chan struct{} // closed when the loop has ended

	mu     sync.RWMutex // held shared by senders, exclusively to set closed
	closed bool

	closeOnce sync.Once
	closeCtx  context.Context // the first Close's, read by the loop after quit
	closeErr  error           // set by the loop before done
}

type flushRequest struct {
	ctx   context.Context
	reply chan error
}

// New starts a Writer writing into pool's database, which must be migrated
// with Migrations. Failed writes are logged to logger (slog.Default() if
// nil). Close it to write what is queued and stop.
func New(pool *pgxpool.Pool, logger *slog.Logger) *Writer {
	if logger == nil {
		logger = slog.Default()
	}
	w := &Writer{
		pool:     pool,
		log:      logger,
		in:       make(chan Record, BufferSize),
		flushReq: make(chan flushRequest),
		quit:     make(chan struct{}),
		sealed:   make(chan struct{}),
		done:     make(chan struct{}),
	}
	go w.run()
	return w
}

// Record queues r for writing. It blocks while the queue is full (the
// database is slow or down) rather than drop the record. After Close the
// record cannot be written any more: it is logged at error level instead.
func (w *Writer) Record(r Record) {
	if r.At.IsZero() {
		r.At = time.Now()
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		w.log.Error("audit: record after Close, not written", "record", r)
		return
	}
	w.in <- r
}

// Flush writes every record queued before the call and returns once they
// are stored, or the error of that attempt (the records stay queued and are
// retried in the background).
func (w *Writer) Flush(ctx context.Context) error {
	req := flushRequest{ctx: ctx, reply: make(chan error, 1)}
	select {
	case w.flushReq <- req:
	case <-w.done:
		return w.closeErr
	case <-ctx.Done():
		return jifu.Errorf(jifu.CodeTimeout, "audit: flush: %w", ctx.Err())
	}
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		return jifu.Errorf(jifu.CodeTimeout, "audit: flush: %w", ctx.Err())
	}
}

// Close stops taking records, writes every queued one (retrying failed
// writes until ctx ends) and stops the background writer. Records it could
// not write before ctx ended are logged, one error line each, and Close
// returns CodeUnavailable. Later calls return the first one's result.
func (w *Writer) Close(ctx context.Context) error {
	w.closeOnce.Do(func() {
		w.closeCtx = ctx
		close(w.quit) // the loop now takes records without bound, so blocked senders finish
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		close(w.sealed)
	})
	<-w.done
	return w.closeErr
}

// run is the background loop: it owns the records taken from w.in until
// they are written.
func (w *Writer) run() {
	defer close(w.done)
	ticker := time.NewTicker(FlushInterval)
	defer ticker.Stop()
	var (
		pending  []Record
		failures int       // consecutive failed writes
		retryAt  time.Time // no automatic write before this after a failure
	)
	write := func(ctx context.Context) error {
		err := w.write(ctx, pending)
		if err != nil {
			failures++
			backoff := min(FlushInterval<<min(failures, 10), maxBackoff)
			retryAt = time.Now().Add(backoff)
			w.log.Error("audit: writing records failed; will retry", "records", len(pending), "attempt", failures, "retry_in", backoff, "err", err)
			return err
		}
		if failures > 0 {
			w.log.Info("audit: writing records works again", "records", len(pending), "after_attempts", failures)
		}
		pending, failures, retryAt = pending[:0], 0, time.Time{}
		return nil
	}
	background := func() {
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		defer cancel()
		_ = write(ctx)
	}

	for {
		in := w.in
		if len(pending) >= maxPending {
			in = nil // stop taking records: Record blocks until a write succeeds
		}
		select {
		case r := <-in:
			pending = append(pending, r)
			if len(pending) >= BatchSize && !time.Now().Before(retryAt) {
				background()
			}
		case <-ticker.C:
			if len(pending) > 0 && !time.Now().Before(retryAt) {
				background()
			}
		case req := <-w.flushReq:
			for n := len(w.in); n > 0; n-- { // what was queued before the request
				pending = append(pending, <-w.in)
			}
			var err error
			if len(pending) > 0 {
				ctx, cancel := context.WithTimeout(req.ctx, writeTimeout)
				err = write(ctx)
				cancel()
			}
			if err != nil {
				err = jifu.Errorf(jifu.CodeUnavailable, "audit: flush %d records: %w", len(pending), err)
			}
			req.reply <- err
		case <-w.quit:
			w.closeErr = w.finish(&pending, write)
			return
		}
	}
}

// finish takes the last records and writes them, retrying until the
// Close context ends; what remains then is logged.
func (w *Writer) finish(pending *[]Record, write func(context.Context) error) error {
	for sealed := false; !sealed; {
		select {
		case r := <-w.in:
			*pending = append(*pending, r)
		case <-w.sealed:
			sealed = true
		}
	}
	for n := len(w.in); n > 0; n-- {
		*pending = append(*pending, <-w.in)
	}
	ctx := w.closeCtx
	for len(*pending) > 0 {
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		err := write(wctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			for _, r := range *pending {
				w.log.Error("audit: record not written before Close's deadline", "record", r)
			}
			return jifu.Errorf(jifu.CodeUnavailable, "audit: close: %d records not written (logged instead): %w", len(*pending), err)
		case <-time.After(min(FlushInterval<<3, maxBackoff)):
		}
	}
	return nil
}

var columns = []string{"at", "invocation_id", "app", "app_version", "user_id", "capability", "function_name", "code", "duration_ns"}

// write stores recs with one COPY, which is atomic: all or none.
func (w *Writer) write(ctx context.Context, recs []Record) error {
	n, err := w.pool.CopyFrom(ctx, pgx.Identifier{"audit_records"}, columns,
		pgx.CopyFromSlice(len(recs), func(i int) ([]any, error) {
			r := recs[i]
			return []any{r.At, r.InvocationID, r.App, r.Version, r.User, r.Capability, r.Function, r.Code, int64(r.Duration)}, nil
		}))
	if err != nil {
		return err
	}
	if n != int64(len(recs)) {
		return fmt.Errorf("copied %d of %d records", n, len(recs))
	}
	return nil
}

// Query limits.
const (
	DefaultQueryLimit = 100
	MaxQueryLimit     = 1000
)

// Filter selects records for Query. Empty fields match everything.
type Filter struct {
	App          string
	InvocationID string
	Limit        int // 0 means DefaultQueryLimit; at most MaxQueryLimit
}

// Query returns the stored records matching f, newest first.
func Query(ctx context.Context, pool *pgxpool.Pool, f Filter) ([]Record, error) {
	limit := f.Limit
	switch {
	case limit == 0:
		limit = DefaultQueryLimit
	case limit < 0 || limit > MaxQueryLimit:
		return nil, jifu.Errorf(jifu.CodeInvalid, "audit: query limit %d is not within 1..%d", f.Limit, MaxQueryLimit)
	}
	q := `SELECT at, invocation_id, app, app_version, user_id, capability, function_name, code, duration_ns
		FROM audit_records WHERE true`
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.App != "" {
		q += ` AND app = ` + arg(f.App)
	}
	if f.InvocationID != "" {
		q += ` AND invocation_id = ` + arg(f.InvocationID)
	}
	q += ` ORDER BY at DESC, id DESC LIMIT ` + arg(limit)
	rows, err := pool.Query(ctx, q, args...)
	if err != nil {
		return nil, queryError(ctx, err)
	}
	recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Record, error) {
		var r Record
		var ns int64
		err := row.Scan(&r.At, &r.InvocationID, &r.App, &r.Version, &r.User, &r.Capability, &r.Function, &r.Code, &ns)
		r.Duration = time.Duration(ns)
		return r, err
	})
	if err != nil {
		return nil, queryError(ctx, err)
	}
	return recs, nil
}

func queryError(ctx context.Context, err error) error {
	return database.QueryError(ctx, "audit: query", err)
}
