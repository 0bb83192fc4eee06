// Package ledger is the host's money core: a double-entry ledger in
// PostgreSQL, amounts in int64 fen.
//
// Accounts belong to an owner (a user, an app, a merchant, an escrow party,
// the platform, an external bank) and may refuse overdrafts with flags. A
// transfer moves an amount from a debit account to a credit account, at once
// or as a hold (pending, later posted in full or in part, voided, or voided by
// expiry, exactly once). Every request carries a caller-chosen key: the same
// key with the same content returns the original result, with other content
// it fails with ErrIdempotencyConflict; a failed request leaves no trace.
// Submit applies a batch of transfers atomically, checking flags on its net
// effect. History is append-only (database triggers refuse UPDATE and DELETE
// of transfers and entries); corrections are new reversing transfers.
//
//	l := ledger.New(pool)
//	bank, _ := l.CreateAccount(ctx, ledger.AccountSpec{Owner: ledger.Owner{Type: ledger.OwnerBank, ID: "icbc"}, Name: "settlement"})
//	wallet, _ := l.CreateAccount(ctx, ledger.AccountSpec{Owner: ledger.Owner{Type: ledger.OwnerUser, ID: "u1"}, Name: "wallet",
//		Flags: ledger.DebitsMustNotExceedCredits})
//	res, err := l.Transfer(ctx, "funding", ledger.Transfer{ID: "topup-42", Debit: bank.ID, Credit: wallet.ID, Amount: 10000, Code: "topup"})
//	if errors.Is(err, ledger.ErrInsufficientFunds) { ... }
//
// Each request is one round trip to one of three PL/pgSQL functions
// (ledger_submit, ledger_resolve, ledger_expire) which lock the accounts it
// touches in id order; serialization failures and deadlocks are retried with
// jittered backoff and counted (Stats, and the Prometheus counter
// jifu_ledger_retries_total when WithMetrics is given). Another domain keeps
// its own records and the money they move atomic by running the ledger in
// its transaction: l.WithTx(tx).Transfer(...).
//
// Errors are *jifu.Error with a generic code (CodeInvalid, CodeNotFound,
// CodeConflict, CodeUnavailable, CodeTimeout) wrapping a Reason, the
// ledger's stable code (insufficient_funds, idempotency_conflict, ...):
// test them with errors.Is(err, ledger.ErrX) or ReasonOf(err).
//
// Check verifies every invariant of the books; Report gives a day's totals
// per account type and code; Yuan formats fen for people.
package ledger

import (
	"context"
	"embed"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/database"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the ledger's tables and functions.
var Migrations = database.MigrationSet{Name: "ledger", FS: database.MustSub(migrationFiles, "migrations")}

// Currency is the one currency the platform books; accounts carry it so that
// a second one needs no migration.
const Currency = "CNY"

// SystemCaller is the caller the ledger itself uses for the voids its expiry
// sweep writes; no other caller may use it.
const SystemCaller = "ledger"

// Reason is a ledger-specific failure reason: a stable string, like the
// jifu codes, carried inside a *jifu.Error.
type Reason string

func (r Reason) Error() string { return string(r) }

// The ledger's failure reasons. Never rename one.
const (
	ErrInvalid             = Reason("invalid")              // malformed request (CodeInvalid)
	ErrNotFound            = Reason("not_found")            // no such account or hold (CodeNotFound)
	ErrCurrencyMismatch    = Reason("currency_mismatch")    // debit and credit accounts differ in currency (CodeInvalid)
	ErrInsufficientFunds   = Reason("insufficient_funds")   // an account's debits would exceed its credits (CodeConflict)
	ErrExceedsCredits      = Reason("exceeds_credits")      // an account's credits would exceed its debits (CodeConflict)
	ErrAccountClosed       = Reason("account_closed")       // the account is closed (CodeConflict)
	ErrIdempotencyConflict = Reason("idempotency_conflict") // the key was used for a different request (CodeConflict)
	ErrHoldExpired         = Reason("hold_expired")         // a post at or after the hold's timeout (CodeConflict)
	ErrHoldResolved        = Reason("hold_resolved")        // the hold was already posted, voided or expired (CodeConflict)
	ErrExceedsHold         = Reason("exceeds_hold")         // a post of more than the held amount (CodeInvalid)
	ErrAccountConflict     = Reason("account_conflict")     // CreateAccount: the account exists with other settings (CodeConflict)
	ErrRetry               = Reason("retry")                // WithTx only: a concurrent request won a key; retry the transaction (CodeConflict)
)

// code returns the generic jifu code of reason r ("" for an unknown one).
func (r Reason) code() string {
	switch r {
	case ErrInvalid, ErrCurrencyMismatch, ErrExceedsHold:
		return jifu.CodeInvalid
	case ErrNotFound:
		return jifu.CodeNotFound
	case ErrInsufficientFunds, ErrExceedsCredits, ErrAccountClosed, ErrIdempotencyConflict,
		ErrHoldExpired, ErrHoldResolved, ErrAccountConflict, ErrRetry:
		return jifu.CodeConflict
	}
	return ""
}

// ReasonOf returns the ledger reason in err's chain, or "" when there is none.
func ReasonOf(err error) Reason {
	var r Reason
	if errors.As(err, &r) {
		return r
	}
	return ""
}

// fail returns a *jifu.Error for reason r: "ledger: <r>: <detail>".
func fail(r Reason, format string, args ...any) error {
	code := r.code()
	if code == "" {
		code = jifu.CodeInternal
	}
	return jifu.Errorf(code, "ledger: %w: "+format, append([]any{r}, args...)...)
}

// querier is what both a pool and a transaction offer.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Ledger books transfers in one PostgreSQL database migrated with
// Migrations. It is safe for concurrent use.
type Ledger struct {
	db      querier
	inTx    bool // db is a caller's transaction: no retries of our own
	now     func() time.Time
	log     *slog.Logger
	stats   *counters
	retries *prometheus.CounterVec
}

type counters struct {
	retries   atomic.Int64
	deadlocks atomic.Int64
}

// Option configures New.
type Option func(*Ledger)

// WithClock sets the clock that stamps transfers and hold timeouts (tests
// move it forward to expire holds); the default is time.Now.
func WithClock(now func() time.Time) Option { return func(l *Ledger) { l.now = now } }

// WithLogger sets where retries are logged (debug level); the default
// discards.
func WithLogger(log *slog.Logger) Option { return func(l *Ledger) { l.log = log } }

// WithMetrics registers the counter jifu_ledger_retries_total{reason} (reason
// "deadlock" or "serialization") with reg. Registering twice with one
// registry reuses the first counter.
func WithMetrics(reg prometheus.Registerer) Option {
	return func(l *Ledger) {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jifu_ledger_retries_total",
			Help: "Ledger requests retried after a deadlock or serialization failure.",
		}, []string{"reason"})
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				c = are.ExistingCollector.(*prometheus.CounterVec)
			}
		}
		l.retries = c
	}
}

// New returns a Ledger over pool, whose database must be migrated with
// Migrations.
func New(pool *pgxpool.Pool, opts ...Option) *Ledger {
	l := &Ledger{db: pool, now: time.Now, log: slog.New(slog.DiscardHandler), stats: &counters{}}
	for _, o := range opts {
		o(l)
	}
	return l
}

// WithTx returns a Ledger that runs every request inside tx, the caller's
// transaction, so that the caller's own writes and the money they move
// commit or roll back together. Refusals (insufficient funds, conflicts,
// ...) write nothing and leave tx usable. Nothing is retried: a deadlock or
// serialization failure aborts tx and is returned as CodeConflict (retry
// the whole transaction), as is ErrRetry (a concurrent request with the same
// key committed first). The returned Ledger must not outlive tx.
func (l *Ledger) WithTx(tx pgx.Tx) *Ledger {
	c := *l
	c.db = tx
	c.inTx = true
	return &c
}

// Stats are the ledger's counters since New.
type Stats struct {
	Retries   int64 // requests retried (deadlocks included)
	Deadlocks int64 // of which deadlocks (SQLSTATE 40P01)
}

// Stats returns the retry counters.
func (l *Ledger) Stats() Stats {
	return Stats{Retries: l.stats.retries.Load(), Deadlocks: l.stats.deadlocks.Load()}
}

const maxAttempts = 12

// retry runs fn until it succeeds, fails for a reason other than a deadlock
// or a serialization failure, or maxAttempts is reached; it sleeps a
// jittered, growing pause between attempts. In a caller's transaction it
// runs fn once.
func (l *Ledger) retry(ctx context.Context, what string, fn func() error) error {
	if l.inTx {
		err := fn()
		if errors.Is(err, errRetryInternal) {
			// Nothing was written and tx is intact: the concurrent request has
			// committed, so a second call replays it or reports the conflict.
			err = fn()
		}
		if errors.Is(err, errRetryInternal) {
			return fail(ErrRetry, "%s: a concurrent request with the same key committed first", what)
		}
		if err != nil && retryable(err) {
			return jifu.Errorf(jifu.CodeConflict, "ledger: %s: transaction aborted, retry it: %w", what, err)
		}
		return err
	}
	pause := time.Millisecond
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || !retryable(err) || attempt == maxAttempts {
			if err != nil && retryable(err) {
				return jifu.Errorf(jifu.CodeUnavailable, "ledger: %s: gave up after %d attempts: %w", what, attempt, err)
			}
			return err
		}
		reason := "serialization"
		if database.IsCode(err, "40P01") {
			reason = "deadlock"
			l.stats.deadlocks.Add(1)
		}
		l.stats.retries.Add(1)
		if l.retries != nil {
			l.retries.WithLabelValues(reason).Inc()
		}
		l.log.DebugContext(ctx, "ledger: retrying", "op", what, "reason", reason, "attempt", attempt)
		d := pause/2 + rand.N(pause)
		select {
		case <-ctx.Done():
			return database.QueryError(ctx, "ledger: "+what, ctx.Err())
		case <-time.After(d):
		}
		if pause < 100*time.Millisecond {
			pause *= 2
		}
	}
}

// retryable reports a deadlock, a serialization failure, or a concurrent
// request that won one of our keys.
func retryable(err error) bool {
	if database.IsCode(err, "40001") || database.IsCode(err, "40P01") || errors.Is(err, errRetryInternal) {
		return true
	}
	// ledger_submit: a concurrent request took one of the batch's keys.
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "ledger_transfers_caller_key_key"
}

// errRetryInternal is what the functions' 'retry' result becomes before
// retry sees it.
var errRetryInternal = errors.New("ledger: a concurrent request with the same key committed first")

// dbError codes a failed query.
func dbError(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	var je *jifu.Error
	if errors.As(err, &je) {
		return err
	}
	if errors.Is(err, errRetryInternal) {
		return err
	}
	if retryable(err) {
		return err // retry decides
	}
	return database.QueryError(ctx, "ledger: "+what, err)
}
