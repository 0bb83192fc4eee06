// Package database runs and reaches the platform's PostgreSQL: it starts a
// private cluster in a directory of the project (for `jifu dev`, `make run`
// and the tests), opens connection pools, creates databases and applies each
// domain's embedded goose migrations.
//
// A typical start of the host:
//
//	c, err := database.StartCluster(ctx, database.ClusterOptions{Dir: ".data/pg", Durable: true, Logger: log})
//	if err != nil { ... }
//	defer c.Stop(context.WithoutCancel(ctx))
//	if err := database.EnsureDatabase(ctx, c.URL("postgres"), "jifu"); err != nil { ... }
//	if err := database.Migrate(ctx, c.URL("jifu"), schema.Sets()); err != nil { ... }
//	pool, err := database.Open(ctx, c.URL("jifu"))
//
// Every error this package returns is a *jifu.Error: CodeUnavailable when the
// server cannot be started or reached, CodeInvalid for bad arguments,
// CodeInternal for failed migrations (a bug in a migration file).
package database

import (
	"context"
	"errors"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu"
)

// Open returns a pool of connections to url, after checking with a ping that
// the server answers. Settings given in the URL (pool_max_conns and the like)
// win over this package's defaults.
func Open(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The parse error may echo the URL; it holds no password here, but keep
		// the message generic anyway.
		return nil, jifu.Errorf(jifu.CodeInvalid, "database: malformed connection URL: %w", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "jifu"
	}
	cfg.MaxConnIdleTime = 5 * time.Minute
	cfg.MaxConnLifetime = time.Hour
	cfg.HealthCheckPeriod = 30 * time.Second

	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeUnavailable, "database: cannot open pool: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, jifu.Errorf(jifu.CodeUnavailable, "database: server at %s:%d does not answer: %w",
			cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	return pool, nil
}

var databaseName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// ValidDatabaseName reports whether name is acceptable to EnsureDatabase:
// lower-case letters, digits and underscores, not starting with a digit, at
// most 63 bytes (PostgreSQL's identifier limit).
func ValidDatabaseName(name string) bool { return databaseName.MatchString(name) }

// EnsureDatabase creates the database name on the server at adminURL unless
// it exists. It is safe to call concurrently for the same name.
func EnsureDatabase(ctx context.Context, adminURL, name string) error {
	if !ValidDatabaseName(name) {
		return jifu.Errorf(jifu.CodeInvalid, "database: invalid database name %q (want [a-z_][a-z0-9_]*, at most 63 bytes)", name)
	}
	conn, err := connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return jifu.Errorf(jifu.CodeUnavailable, "database: look up database %q: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	// A concurrent creator may win the race: 42P04 duplicate_database, or a
	// unique violation on pg_database when both pass the existence check.
	if err != nil && !IsCode(err, "42P04") && !IsCode(err, "23505") {
		return jifu.Errorf(jifu.CodeUnavailable, "database: create database %q: %w", name, err)
	}
	return nil
}

// connect opens a single connection to url, for administrative statements.
func connect(ctx context.Context, url string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeInvalid, "database: malformed connection URL: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeUnavailable, "database: cannot connect to %s:%d: %w", cfg.Host, cfg.Port, err)
	}
	return conn, nil
}

// IsCode reports whether err carries the PostgreSQL SQLSTATE code (for
// example "23505" for a unique violation).
func IsCode(err error, sqlstate string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == sqlstate
}

// QueryError codes a failed query for a store's callers: the deadline passing
// is CodeTimeout, an error reported by the server CodeInternal (a bug of
// ours), anything else (the connection) CodeUnavailable. what names the store
// and operation, as "kvstore: get".
func QueryError(ctx context.Context, what string, err error) error {
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return jifu.Errorf(jifu.CodeTimeout, "%s: %w", what, err)
	case errors.As(err, &pgErr):
		return jifu.Errorf(jifu.CodeInternal, "%s: %w", what, err)
	default:
		return jifu.Errorf(jifu.CodeUnavailable, "%s: %w", what, err)
	}
}
