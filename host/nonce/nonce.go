// Package nonce is the PostgreSQL store of spent open-API request nonces
// (opensign.Nonces): a nonce is kept until its request's timestamp leaves
// the verification window, and a second use before then is refused with
// opensign.CodeReplay. Expired rows are reused in place and swept by Run.
//
//	nonces := nonce.New(pool)
//	go nonces.Run(ctx, time.Minute) // sweep expired nonces
//	v := &opensign.Verifier{Secrets: keys, Nonces: nonces}
package nonce

import (
	"context"
	"embed"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/database"
	"github.com/jifu-open/jifu/sdk/opensign"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the table opensign_nonces.
var Migrations = database.MigrationSet{Name: "nonce", FS: database.MustSub(migrationFiles, "migrations")}

// Store records spent nonces. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a Store over pool's database, migrated with Migrations.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Use spends nonce for appKey until expires. It fails with
// opensign.CodeReplay when the nonce is already spent and unexpired;
// concurrent uses of one nonce let exactly one through.
func (s *Store) Use(ctx context.Context, appKey, nonce string, expires time.Time) error {
	if appKey == "" || nonce == "" || len(appKey) > opensign.MaxAppKeyLen || len(nonce) > opensign.MaxNonceLen {
		return jifu.Errorf(jifu.CodeInvalid, "nonce: app key and nonce must be 1..%d and 1..%d bytes", opensign.MaxAppKeyLen, opensign.MaxNonceLen)
	}
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO opensign_nonces (app_key, nonce, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (app_key, nonce) DO UPDATE SET expires_at = EXCLUDED.expires_at
		WHERE opensign_nonces.expires_at <= now()`, appKey, nonce, expires)
	if err != nil {
		return database.QueryError(ctx, "nonce: use", err)
	}
	if tag.RowsAffected() == 0 {
		return jifu.Errorf(opensign.CodeReplay, "nonce: nonce %s was already used by %s within the window", nonce, appKey)
	}
	return nil
}

// Sweep deletes expired nonces and returns how many.
func (s *Store) Sweep(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM opensign_nonces WHERE expires_at <= now()`)
	if err != nil {
		return 0, database.QueryError(ctx, "nonce: sweep", err)
	}
	return tag.RowsAffected(), nil
}

// Run sweeps every interval until ctx is done, logging failures to log
// (slog.Default() when nil).
func (s *Store) Run(ctx context.Context, interval time.Duration, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
				log.WarnContext(ctx, "nonce: sweep failed", "err", err)
			}
		}
	}
}
