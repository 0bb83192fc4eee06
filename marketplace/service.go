package marketplace

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"embed"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/database"
	"github.com/jifu-open/jifu/host/notify"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the marketplace's tables (all named mp_*).
var Migrations = database.MigrationSet{Name: "marketplace", FS: database.MustSub(migrationFiles, "migrations")}

// Role is what a staff account may do.
type Role string

// Roles of staff accounts. System is the platform itself (automatic
// rollback, seeding); it never logs in.
const (
	RoleDeveloper Role = "developer" // a developer's person: its own apps only
	RoleReviewer  Role = "reviewer"  // reviews versions
	RoleRisk      Role = "risk"      // sets users' levels (201-203 on request), sees audit
	RoleAdmin     Role = "admin"     // everything, approves developers and service levels
	RoleSystem    Role = "system"
)

// Actor is the staff party acting: taken from a Session, passed to every
// staff method.
type Actor struct {
	AccountID   int64
	Role        Role
	DeveloperID int64 // for RoleDeveloper: whose apps it may touch
	Name        string
}

// System is the Actor of the platform's own actions (automatic rollback,
// seeding).
var System = Actor{Role: RoleSystem, Name: "system"}

// Is reports whether a holds one of roles.
func (a Actor) Is(roles ...Role) bool {
	for _, r := range roles {
		if a.Role == r {
			return true
		}
	}
	return false
}

// Notifier sends the store's login codes (package notify's Notifier).
type Notifier interface {
	Send(ctx context.Context, m notify.Message) error
}

// AutoRollback configures EvaluateReleases: a gray release is rolled back
// when, over at least MinSample gray invocations, its error rate exceeds
// the stable version's by more than Margin (0.05 = five percentage points).
type AutoRollback struct {
	MinSample int64   // default 100
	Margin    float64 // default 0.05
}

// Config holds a Service's dependencies.
type Config struct {
	Pool      *pgxpool.Pool // migrated with Migrations (and notify's)
	Host      *host.Host    // validates, self-tests and precompiles versions
	MasterKey []byte        // 32 bytes: seals app secrets (AES-256-GCM)
	Artifacts Artifacts     // where modules are kept, by sha256
	Notifier  Notifier      // sends login codes
	Verifier  RealNameVerifier
	Consents  *Consents // the host's consent checker; self-tests register their synthetic user here
	Logger    *slog.Logger
	Now       func() time.Time
	// MaxUpload bounds an uploaded module; default host.DefaultMaxModuleSize.
	MaxUpload    int
	AutoRollback AutoRollback
	// AppConfig returns an app's operator configuration for a self-test run
	// (may be nil).
	AppConfig func(ctx context.Context, slug string) (map[string]string, error)
	// SessionTTL bounds staff sessions (default 12 h); UserSessionTTL store
	// sessions (default 30 days).
	SessionTTL, UserSessionTTL time.Duration
}

// Service is the marketplace. It is safe for concurrent use.
type Service struct {
	cfg     Config
	pool    *pgxpool.Pool
	host    *host.Host
	aead    cipher.AEAD
	log     *slog.Logger
	now     func() time.Time
	stats   *recorder
	changed func(slug string) // Serving's invalidation hook, set by NewServing

	sessions sync.Map // [32]byte token hash → *cachedSession
	sessionN atomic.Int64
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Pool == nil || cfg.Host == nil || cfg.Artifacts == nil {
		return nil, jifu.Errorf(jifu.CodeInvalid, "marketplace: Pool, Host and Artifacts are required")
	}
	if len(cfg.MasterKey) != 32 {
		return nil, jifu.Errorf(jifu.CodeInvalid, "marketplace: master key is %d bytes, want 32", len(cfg.MasterKey))
	}
	block, err := aes.NewCipher(cfg.MasterKey)
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeInternal, "marketplace: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeInternal, "marketplace: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxUpload <= 0 {
		cfg.MaxUpload = host.DefaultMaxModuleSize
	}
	if cfg.AutoRollback.MinSample <= 0 {
		cfg.AutoRollback.MinSample = 100
	}
	if cfg.AutoRollback.Margin <= 0 {
		cfg.AutoRollback.Margin = 0.05
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.UserSessionTTL <= 0 {
		cfg.UserSessionTTL = 30 * 24 * time.Hour
	}
	if cfg.Verifier == nil {
		cfg.Verifier = LocalVerifier{}
	}
	if cfg.Consents == nil {
		cfg.Consents = NewConsents(cfg.Pool)
	}
	s := &Service{cfg: cfg, pool: cfg.Pool, host: cfg.Host, aead: aead, log: cfg.Logger, now: cfg.Now, changed: func(string) {}}
	s.stats = newRecorder(s)
	return s, nil
}

// Close writes the statistics still held in memory.
func (s *Service) Close(ctx context.Context) error { return s.stats.close(ctx) }

// Consents returns the consent checker the Service grants into.
func (s *Service) Consents() *Consents { return s.cfg.Consents }

func (s *Service) dbErr(ctx context.Context, what string, err error) error {
	var je *jifu.Error
	if errors.As(err, &je) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return jifu.Errorf(jifu.CodeNotFound, "marketplace: %s: not found", what)
	}
	if database.IsCode(err, "23505") {
		return jifu.Errorf(jifu.CodeConflict, "marketplace: %s: already exists", what)
	}
	return database.QueryError(ctx, "marketplace: "+what, err)
}

// tx runs fn in a transaction.
func (s *Service) tx(ctx context.Context, what string, fn func(pgx.Tx) error) error {
	if err := pgx.BeginFunc(ctx, s.pool, fn); err != nil {
		return s.dbErr(ctx, what, err)
	}
	return nil
}

// audit records a staff action inside tx. System and developer actions on
// their own apps are recorded too when they change what users see
// (releases), so the trail of an app is complete.
func audit(ctx context.Context, tx pgx.Tx, a Actor, action, target, detail string) error {
	var id *int64
	if a.AccountID != 0 {
		id = &a.AccountID
	}
	_, err := tx.Exec(ctx, `INSERT INTO mp_audit (actor_id, actor_role, action, target, detail) VALUES ($1, $2, $3, $4, $5)`,
		id, string(a.Role), action, target, detail)
	return err
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("marketplace: crypto/rand failed: " + err.Error()) // the OS's CSPRNG never fails on Linux
	}
	return b
}

func denied(format string, args ...any) error {
	return jifu.Errorf(jifu.CodeDenied, "marketplace: "+format, args...)
}

func invalid(format string, args ...any) error {
	return jifu.Errorf(jifu.CodeInvalid, "marketplace: "+format, args...)
}

func asValidation(err error, target **host.ValidationError) bool { return errors.As(err, target) }

// nullID is NULL for the zero id (System acts without an account).
func nullID(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}
