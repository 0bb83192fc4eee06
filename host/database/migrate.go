package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for goose
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/jifu-open/jifu"
)

// MigrationSet is one domain's schema history: goose SQL files
// (NNNNN_name.sql with "-- +goose Up" / "-- +goose Down" sections) at the
// root of FS. Each set records its progress in its own table goose_<Name>,
// so domains number their migrations independently. A domain package
// exports its set, built from an embedded directory:
//
//	//go:embed migrations/*.sql
//	var migrationFiles embed.FS
//
//	var Migrations = database.MigrationSet{Name: "kv", FS: must(fs.Sub(migrationFiles, "migrations"))}
type MigrationSet struct {
	Name string // [a-z][a-z0-9_]*, at most 40 bytes; unique among the sets applied together
	FS   fs.FS
}

// MigrationStatus is the state of one migration file of a set.
type MigrationStatus struct {
	Set       string
	Version   int64
	File      string    // file name within the set's FS
	Applied   bool      // false: pending
	AppliedAt time.Time // zero when pending
}

var setName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)

// Migrate applies every pending migration of each set, set after set in
// slice order, each migration in its own transaction. Running it again is a
// no-op. Concurrent Migrate calls on one database wait for each other (an
// advisory lock). A failing migration stops everything with a CodeInternal
// error naming the set and the file; migrations before it stay applied.
// Each applied file is logged at debug level to slog.Default(); to report
// what changed at a higher level, compare Status before and after.
func Migrate(ctx context.Context, url string, sets []MigrationSet) error {
	db, err := openSQL(ctx, url, sets)
	if err != nil {
		return err
	}
	defer db.Close()
	log := slog.Default()
	for _, set := range sets {
		p, err := newProvider(db, set)
		if err != nil {
			return err
		}
		results, err := p.Up(ctx)
		for _, r := range results {
			log.DebugContext(ctx, "database: applied migration", "set", set.Name, "file", path.Base(r.Source.Path), "duration", r.Duration)
		}
		if err != nil {
			return migrationError(ctx, set, err)
		}
	}
	return nil
}

// Status lists every migration of each set, in set order then version order,
// with whether and when it was applied.
func Status(ctx context.Context, url string, sets []MigrationSet) ([]MigrationStatus, error) {
	db, err := openSQL(ctx, url, sets)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var out []MigrationStatus
	for _, set := range sets {
		p, err := newProvider(db, set)
		if err != nil {
			return nil, err
		}
		st, err := p.Status(ctx)
		if err != nil {
			return nil, migrationError(ctx, set, err)
		}
		for _, s := range st {
			out = append(out, MigrationStatus{
				Set:       set.Name,
				Version:   s.Source.Version,
				File:      path.Base(s.Source.Path),
				Applied:   s.State == goose.StateApplied,
				AppliedAt: s.AppliedAt,
			})
		}
	}
	return out, nil
}

// openSQL validates the sets and opens a database/sql handle (what goose
// needs) to url, checking the server answers.
func openSQL(ctx context.Context, url string, sets []MigrationSet) (*sql.DB, error) {
	seen := make(map[string]bool, len(sets))
	for _, s := range sets {
		if !setName.MatchString(s.Name) {
			return nil, jifu.Errorf(jifu.CodeInvalid, "database: invalid migration set name %q (want [a-z][a-z0-9_]*, at most 40 bytes)", s.Name)
		}
		if seen[s.Name] {
			return nil, jifu.Errorf(jifu.CodeInvalid, "database: migration set %q listed twice", s.Name)
		}
		if s.FS == nil {
			return nil, jifu.Errorf(jifu.CodeInvalid, "database: migration set %q has no FS", s.Name)
		}
		seen[s.Name] = true
	}
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeInvalid, "database: malformed connection URL: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		db.Close()
		return nil, jifu.Errorf(jifu.CodeUnavailable, "database: cannot reach the database to migrate: %w", err)
	}
	return db, nil
}

func newProvider(db *sql.DB, set MigrationSet) (*goose.Provider, error) {
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeInternal, "database: migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, set.FS,
		goose.WithTableName("goose_"+set.Name),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
		goose.WithLogger(goose.NopLogger()),
		// Work on one domain lands from parallel branches, so a migration
		// numbered below one already applied can arrive later: apply it
		// rather than refuse to start (each migration stands on its own
		// set's earlier ones, which are applied first either way).
		goose.WithAllowOutofOrder(true),
	)
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeInternal, "database: migration set %q: %w", set.Name, err)
	}
	return p, nil
}

// migrationError turns a goose failure into a coded error naming the set
// and, when goose tells, the file.
func migrationError(ctx context.Context, set MigrationSet, err error) error {
	if ctx.Err() != nil {
		return jifu.Errorf(jifu.CodeUnavailable, "database: migration set %q: %w", set.Name, err)
	}
	var pe *goose.PartialError
	if errors.As(err, &pe) && pe.Failed != nil && pe.Failed.Source != nil {
		return jifu.Errorf(jifu.CodeInternal, "database: migration set %q: %s: %w", set.Name, path.Base(pe.Failed.Source.Path), pe.Err)
	}
	return jifu.Errorf(jifu.CodeInternal, "database: migration set %q: %w", set.Name, err)
}

// MustSub is fs.Sub for a directory embedded at build time, which cannot be
// missing: it panics on error. Domain packages use it to build their
// MigrationSet from an embed.FS.
func MustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(fmt.Sprintf("database: fs.Sub(%q): %v", dir, err))
	}
	return sub
}
