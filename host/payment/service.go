package payment

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/database"
	"github.com/jifu-open/jifu/host/ledger"
)

// Limits on requests.
const (
	MaxAmount         = 10_000_000_000 // fen (one hundred million yuan) per intent
	MaxKeyBytes       = 64
	MaxDescription    = 256 // bytes of UTF-8
	MaxPayeeBytes     = 64
	MaxAppBytes       = 64
	DefaultIntentTTL  = 15 * time.Minute
	DefaultHoldExpiry = 10 * time.Minute
	DefaultLease      = 30 * time.Second
)

// Config holds a Service's dependencies. Pool, Ledger and Events are
// required.
type Config struct {
	Pool    *pgxpool.Pool // migrated with Migrations and ledger.Migrations
	Ledger  *ledger.Ledger
	Events  Events
	Methods []Method // default: Balance, Credit (in the order the page offers them)
	Clock   func() time.Time
	Logger  *slog.Logger
	Rand    io.Reader // intent and refund ids; default crypto/rand
	// IntentTTL is how long an intent waits for confirmation (default 15 min).
	IntentTTL time.Duration
	// HoldTimeout is how long an authorization holds money before the ledger
	// releases it by itself (default 10 min).
	HoldTimeout time.Duration
	// Lease is how long a confirmed intent belongs to the process working
	// on it before Resume may take it over (default 30 s).
	Lease time.Duration
}

// Service is the payment domain over PostgreSQL. It is safe for concurrent
// use.
type Service struct {
	cfg     Config
	pool    *pgxpool.Pool
	ledger  *ledger.Ledger
	events  Events
	methods map[string]Method
	order   []string
	now     func() time.Time
	log     *slog.Logger
	rand    io.Reader
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Pool == nil || cfg.Ledger == nil || cfg.Events == nil {
		return nil, jifu.Errorf(jifu.CodeInvalid, "payment: Pool, Ledger and Events are required")
	}
	s := &Service{cfg: cfg, pool: cfg.Pool, ledger: cfg.Ledger, events: cfg.Events, methods: map[string]Method{},
		now: cfg.Clock, log: cfg.Logger, rand: cfg.Rand}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	if s.cfg.IntentTTL <= 0 {
		s.cfg.IntentTTL = DefaultIntentTTL
	}
	if s.cfg.HoldTimeout <= 0 {
		s.cfg.HoldTimeout = DefaultHoldExpiry
	}
	if s.cfg.Lease <= 0 {
		s.cfg.Lease = DefaultLease
	}
	ms := cfg.Methods
	if len(ms) == 0 {
		ms = []Method{Balance{}, Credit{}}
	}
	for _, m := range ms {
		if _, dup := s.methods[m.Name()]; dup || m.Name() == MethodCombined || m.Name() == "" {
			return nil, jifu.Errorf(jifu.CodeInvalid, "payment: method name %q is taken", m.Name())
		}
		s.methods[m.Name()] = m
		s.order = append(s.order, m.Name())
	}
	return s, nil
}

// Methods lists the method names, in the order the page offers them.
func (s *Service) Methods() []string { return append([]string(nil), s.order...) }

// ConfirmPath is where the host's confirmation page of intent id lives.
func ConfirmPath(id string) string { return "/pay/" + id }

// CreateRequest asks for an intent. App and User are set by the host from
// the invocation, never by the app.
type CreateRequest struct {
	App         string
	User        string
	Payee       string // "" for the app itself, or a merchant id with a settlement account
	Amount      int64  // fen
	Description string
	Key         string // the app's idempotency key
}

func validText(s string, max int) bool {
	return s != "" && len(s) <= max && utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// Validate reports the first problem of r as a CodeInvalid error.
func (r *CreateRequest) Validate() error {
	switch {
	case !validText(r.App, MaxAppBytes):
		return jifu.Errorf(jifu.CodeInvalid, "payment: app must be 1..%d bytes", MaxAppBytes)
	case !validText(r.User, ledger.MaxOwnerIDBytes):
		return jifu.Errorf(jifu.CodeDenied, "payment: a payment needs a signed-in user")
	case r.Payee != "" && !validText(r.Payee, MaxPayeeBytes):
		return jifu.Errorf(jifu.CodeInvalid, "payment: payee must be at most %d bytes of printable UTF-8", MaxPayeeBytes)
	case r.Amount <= 0 || r.Amount > MaxAmount:
		return jifu.Errorf(jifu.CodeInvalid, "payment: amount must be 1..%d fen", int64(MaxAmount))
	case !validText(r.Description, MaxDescription):
		return jifu.Errorf(jifu.CodeInvalid, "payment: description must be 1..%d bytes of printable UTF-8", MaxDescription)
	case !validText(r.Key, MaxKeyBytes):
		return jifu.Errorf(jifu.CodeInvalid, "payment: idempotency key must be 1..%d bytes of printable UTF-8", MaxKeyBytes)
	}
	return nil
}

func (r *CreateRequest) digest() []byte {
	h := sha256.New()
	for _, s := range []string{"jifu.payment.intent.v1", r.User, r.Payee, fmt.Sprint(r.Amount), r.Description} {
		fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	return h.Sum(nil)
}

func (s *Service) newID(prefix string) (string, error) {
	b := make([]byte, 12)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return "", jifu.Errorf(jifu.CodeUnavailable, "payment: random id: %w", err)
	}
	return prefix + hex.EncodeToString(b), nil
}

// payeeAccount resolves (and for the app itself opens) the payee's ledger
// account: the app's "receivable" account, or a merchant's existing
// "settlement" account. Both refuse overdrafts, so a refund never takes
// more than the payee holds.
func (s *Service) payeeAccount(ctx context.Context, app, payee string) (int64, error) {
	if payee == "" {
		a, err := s.ledger.CreateAccount(ctx, ledger.AccountSpec{Owner: ledger.Owner{Type: ledger.OwnerApp, ID: app},
			Name: "receivable", Flags: ledger.DebitsMustNotExceedCredits})
		return a.ID, err
	}
	a, err := s.ledger.FindAccount(ctx, ledger.Owner{Type: ledger.OwnerMerchant, ID: payee}, "settlement")
	if errors.Is(err, ledger.ErrNotFound) {
		return 0, jifu.Errorf(jifu.CodeNotFound, "payment: no payee %q", payee)
	}
	return a.ID, err
}

// Create records a new intent waiting for the user's confirmation, or
// returns the intent the app created earlier with the same key and content
// (Replayed); the same key with other content is CodeConflict.
func (s *Service) Create(ctx context.Context, r CreateRequest) (Intent, error) {
	if err := r.Validate(); err != nil {
		return Intent{}, err
	}
	if in, found, err := s.byKey(ctx, s.pool, r); found || err != nil {
		return in, err
	}
	payee, err := s.payeeAccount(ctx, r.App, r.Payee)
	if err != nil {
		return Intent{}, err
	}
	id, err := s.newID("pi_")
	if err != nil {
		return Intent{}, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO payment_intents (id, app, app_key, digest, user_id, payee, payee_account, amount, description,
		                             state, created_at, expires_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'created', $10, $11, $10)
		ON CONFLICT (app, app_key) DO NOTHING`,
		id, r.App, r.Key, r.digest(), r.User, r.Payee, payee, r.Amount, r.Description, now, now.Add(s.cfg.IntentTTL))
	if err != nil {
		return Intent{}, database.QueryError(ctx, "payment: create", err)
	}
	if tag.RowsAffected() == 0 { // the same key, concurrently
		in, _, err := s.byKey(ctx, s.pool, r)
		return in, err
	}
	return s.load(ctx, s.pool, id, false)
}

func (s *Service) byKey(ctx context.Context, q querier, r CreateRequest) (Intent, bool, error) {
	var id string
	var digest []byte
	err := q.QueryRow(ctx, `SELECT id, digest FROM payment_intents WHERE app = $1 AND app_key = $2`, r.App, r.Key).Scan(&id, &digest)
	if errors.Is(err, pgx.ErrNoRows) {
		return Intent{}, false, nil
	}
	if err != nil {
		return Intent{}, false, database.QueryError(ctx, "payment: create", err)
	}
	if string(digest) != string(r.digest()) {
		return Intent{}, true, jifu.Errorf(jifu.CodeConflict, "payment: key %q was used for another payment", r.Key)
	}
	in, err := s.load(ctx, q, id, false)
	in.Replayed = true
	return in, true, err
}

// Get returns the intent id of app; CodeNotFound for another app's.
func (s *Service) Get(ctx context.Context, app, id string) (Intent, error) {
	in, err := s.load(ctx, s.pool, id, false)
	if err == nil && in.App != app {
		return Intent{}, jifu.Errorf(jifu.CodeNotFound, "payment: no intent %q", id)
	}
	return in, err
}

// Intent returns the intent id whoever created it (for the host's page).
func (s *Service) Intent(ctx context.Context, id string) (Intent, error) {
	return s.load(ctx, s.pool, id, false)
}

// Available returns what user can pay now with each method, without
// creating any account.
func (s *Service) Available(ctx context.Context, user string) (map[string]int64, error) {
	out := make(map[string]int64, len(s.order))
	for _, name := range s.order {
		v, err := s.methods[name].Available(ctx, s.ledger, user)
		if err != nil {
			return nil, err
		}
		out[name] = v
	}
	return out, nil
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

const intentColumns = `id, app, app_key, user_id, payee, payee_account, amount, description, state, method, refunded,
	failure, created_at, expires_at, confirmed_at, updated_at`

// load reads an intent and its parts; lock takes the intent's row lock.
func (s *Service) load(ctx context.Context, q querier, id string, lock bool) (Intent, error) {
	in, _, err := s.loadRow(ctx, q, id, lock)
	return in, err
}

func (s *Service) loadRow(ctx context.Context, q querier, id string, lock bool) (Intent, int64, error) {
	sql := `SELECT ` + intentColumns + ` FROM payment_intents WHERE id = $1`
	if lock {
		sql += ` FOR UPDATE`
	}
	var in Intent
	var payee int64
	var state string
	var confirmed *time.Time
	err := q.QueryRow(ctx, sql, id).Scan(&in.ID, &in.App, &in.Key, &in.User, &in.Payee, &payee, &in.Amount,
		&in.Description, &state, &in.Method, &in.Refunded, &in.Failure, &in.CreatedAt, &in.ExpiresAt, &confirmed, &in.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Intent{}, 0, jifu.Errorf(jifu.CodeNotFound, "payment: no intent %q", id)
	}
	if err != nil {
		return Intent{}, 0, database.QueryError(ctx, "payment: load intent", err)
	}
	in.State = State(state)
	if confirmed != nil {
		in.ConfirmedAt = *confirmed
	}
	parts, err := s.loadParts(ctx, q, id)
	if err != nil {
		return Intent{}, 0, err
	}
	in.Parts = parts
	return in, payee, nil
}

func (s *Service) loadParts(ctx context.Context, q querier, id string) ([]Part, error) {
	rows, err := q.Query(ctx, `SELECT idx, method, amount, state, holds, refunded, failure FROM payment_parts
		WHERE intent_id = $1 ORDER BY idx`, id)
	if err != nil {
		return nil, database.QueryError(ctx, "payment: load parts", err)
	}
	defer rows.Close()
	var parts []Part
	for rows.Next() {
		var p Part
		if err := rows.Scan(&p.Index, &p.Method, &p.Amount, &p.State, &p.holds, &p.Refunded, &p.Failure); err != nil {
			return nil, database.QueryError(ctx, "payment: load parts", err)
		}
		parts = append(parts, p)
	}
	if err := rows.Err(); err != nil {
		return nil, database.QueryError(ctx, "payment: load parts", err)
	}
	return parts, nil
}

// inTx runs fn in a transaction, retrying the whole of it after a deadlock,
// a serialization failure, a lost unique-key race or the ledger's ErrRetry.
func (s *Service) inTx(ctx context.Context, what string, fn func(tx pgx.Tx) error) error {
	pause := 2 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, s.pool, fn)
		if err == nil {
			return nil
		}
		if !retryable(err) || attempt == 10 {
			var je *jifu.Error
			if errors.As(err, &je) {
				return err
			}
			return database.QueryError(ctx, "payment: "+what, err)
		}
		s.log.DebugContext(ctx, "payment: retrying", "op", what, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return database.QueryError(ctx, "payment: "+what, ctx.Err())
		case <-time.After(pause/2 + mrand.N(pause)):
		}
		pause = min(2*pause, 200*time.Millisecond)
	}
}

func retryable(err error) bool {
	return database.IsCode(err, "40001") || database.IsCode(err, "40P01") || database.IsCode(err, "23505") ||
		errors.Is(err, ledger.ErrRetry)
}

// refusal reports whether err is a method's or the ledger's refusal of a
// request (insufficient funds, hold expired, ...), as opposed to a failure
// to reach the database, which leaves the step to be retried.
func refusal(err error) bool {
	if err == nil || retryable(err) {
		return false
	}
	switch jifu.ErrorCode(err) {
	case jifu.CodeConflict, jifu.CodeInvalid, jifu.CodeNotFound:
		return true
	}
	return false
}

// publish sends an event about in (and r, for a refund) inside tx.
func (s *Service) publish(ctx context.Context, tx pgx.Tx, typ string, in Intent, r *Refund) error {
	id := in.ID + "/" + typ
	if r != nil {
		id = r.ID
	}
	payload, err := EventPayload(typ, in, r)
	if err != nil {
		return jifu.Errorf(jifu.CodeInternal, "payment: event payload: %w", err)
	}
	ev := Event{ID: id, Type: typ, App: in.App, User: in.User, IntentID: in.ID, Payload: payload}
	if err := s.events.Publish(ctx, tx, ev); err != nil {
		return err
	}
	return nil
}
