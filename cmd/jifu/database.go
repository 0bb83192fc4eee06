package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu/host/database"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/schema"
)

// platformDB is the platform's database: DATABASE_URL when set, otherwise the
// private cluster under DATA_DIR/pg, started if needed.
type platformDB struct {
	URL     string
	cluster *database.Cluster
}

const databaseName = "jifu"

func openPlatformDB(ctx context.Context, e *env) (*platformDB, error) {
	if u := e.getenv("DATABASE_URL"); u != "" {
		return &platformDB{URL: u}, nil
	}
	c, err := database.StartCluster(ctx, database.ClusterOptions{
		Dir:     filepath.Join(e.cli.DataDir, "pg"),
		Durable: true,
		Logger:  e.log,
	})
	if err != nil {
		return nil, err
	}
	if err := database.EnsureDatabase(ctx, c.URL("postgres"), databaseName); err != nil {
		_ = c.Stop(context.Background())
		return nil, err
	}
	if c.Started() {
		e.log.Info("private PostgreSQL started", "dir", filepath.Join(e.cli.DataDir, "pg"), "port", c.Port())
	}
	return &platformDB{URL: c.URL(databaseName), cluster: c}, nil
}

// Close stops the private cluster if this process started it.
func (db *platformDB) Close() error {
	if db.cluster == nil {
		return nil
	}
	return db.cluster.Stop(context.Background())
}

// migrateAndOpen applies every migration and opens a pool.
func (db *platformDB) migrateAndOpen(ctx context.Context) (*pgxpool.Pool, error) {
	if err := database.Migrate(ctx, db.URL, schema.Sets()); err != nil {
		return nil, err
	}
	return database.Open(ctx, db.URL)
}

type migrateCmd struct {
	Up     migrateUpCmd     `cmd:"" help:"Apply every pending migration."`
	Status migrateStatusCmd `cmd:"" help:"List migrations and whether they are applied."`
}

type migrateUpCmd struct{}

func (migrateUpCmd) Run(ctx context.Context, e *env) error {
	db, err := openPlatformDB(ctx, e)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := database.Migrate(ctx, db.URL, schema.Sets()); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "migrations applied")
	return nil
}

type migrateStatusCmd struct{}

func (migrateStatusCmd) Run(ctx context.Context, e *env) error {
	db, err := openPlatformDB(ctx, e)
	if err != nil {
		return err
	}
	defer db.Close()
	st, err := database.Status(ctx, db.URL, schema.Sets())
	if err != nil {
		return err
	}
	for _, s := range st {
		state, at := "pending", ""
		if s.Applied {
			state, at = "applied", s.AppliedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(e.stdout, "%-8s %5d %-40s %-8s %s\n", s.Set, s.Version, s.File, state, at)
	}
	return nil
}

type devCmd struct {
	Test devTestCmd `cmd:"" help:"Run a command (normally go test) with a private, migrated test cluster."`
}

type devTestCmd struct {
	Command []string `arg:"" passthrough:"" help:"The command and its arguments, after --."`
}

func (c devTestCmd) Run(ctx context.Context, e *env) error {
	args := c.Command
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		return fmt.Errorf("jifu dev test: no command given")
	}
	code, err := dbtest.RunCommand(ctx, ".", args, e.stdout, e.stderr)
	if err != nil {
		return err
	}
	if code != 0 {
		return exitError{code: code}
	}
	return nil
}
