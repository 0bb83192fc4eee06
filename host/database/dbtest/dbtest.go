// Package dbtest gives the tests of each package a real PostgreSQL database
// of its own, migrated with every domain's schema (host/schema).
//
// A package opts in with a TestMain and asks for its pool in tests:
//
//	func TestMain(m *testing.M) { dbtest.Main(m) }
//
//	func TestPut(t *testing.T) {
//		kv := kvstore.New(dbtest.Pool(t))
//		...
//	}
//
// How the databases come to be:
//
//   - `jifu dev test -- go test ./...` (RunCommand) starts one throwaway,
//     non-durable cluster for the whole run, creates the database
//     jifu_template migrated with schema.Sets(), and runs the command with
//     JIFU_TEST_DATABASE_URL set to the cluster's admin URL (database
//     postgres).
//   - Main, in each test binary, clones jifu_template into a database
//     t_<random> the first time Pool or URL is called (CREATE DATABASE ...
//     TEMPLATE, fast: it copies files), applies any migration the template
//     lacks, and drops the clone when the tests end.
//   - A plain `go test` without JIFU_TEST_DATABASE_URL works too: the first
//     Pool or URL call then starts a private cluster in a temporary
//     directory for the package (about a second), which Main removes at
//     the end.
//
// Clusters are Ephemeral (see database.ClusterOptions): if a test binary or
// the wrapper dies without cleaning up, a reaper stops the server and
// deletes its directory.
//
// All tests of a package share its database: give each test its own keys,
// namespaces or app names (t.Name() is handy), and do not Close the pool.
//
// Import cycles: host/schema imports every domain package, and this package
// imports host/schema. So a domain package's tests that use dbtest must be
// an external test package (package kvstore_test, in kvstore_test.go
// files), never package kvstore itself.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/database"
	"github.com/jifu-open/jifu/host/schema"
)

// EnvURL names the environment variable holding the admin URL (a
// postgres:// URL of the database postgres) of a test cluster that already
// has TemplateName; RunCommand sets it.
const EnvURL = "JIFU_TEST_DATABASE_URL"

// TemplateName is the migrated database that each package's database is
// cloned from.
const TemplateName = "jifu_template"

// harness is one test binary's database: the cluster's admin URL and, once
// asked for, the package's cloned database.
type harness struct {
	adminURL string            // from EnvURL, or of the private cluster
	cluster  *database.Cluster // the private cluster, when there is one

	once sync.Once
	name string
	url  string
	pool *pgxpool.Pool
	err  error
}

// active is the harness of this test binary. It is the one piece of
// package state: Pool and URL receive only a testing.TB, so they must find
// what Main set up somewhere, and a test binary runs exactly one Main. Only
// Main writes it, before m.Run, so tests read it without a race; the
// harness guards its own fields with its sync.Once.
var active *harness

// Main runs the package's tests (m.Run) with a database available to Pool
// and URL, then removes it, and exits with m.Run's code. Call it from
// TestMain.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	h := &harness{adminURL: os.Getenv(EnvURL)}
	active = h
	defer h.close(context.Background())
	return m.Run()
}

// privateCluster starts a throwaway cluster for this test binary alone,
// with the template in it.
func privateCluster(ctx context.Context, log *slog.Logger) (*database.Cluster, error) {
	dir, err := os.MkdirTemp("", "jifu-dbtest-")
	if err != nil {
		return nil, err
	}
	c, err := database.StartCluster(ctx, database.ClusterOptions{Dir: dir, Ephemeral: true, Logger: log})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := prepareTemplate(ctx, c.URL("postgres")); err != nil {
		_ = c.Stop(ctx)
		return nil, err
	}
	return c, nil
}

// prepareTemplate creates TemplateName on the cluster at adminURL unless it
// exists, migrates it with schema.Sets(), and then marks it a template that
// accepts no connections, so that nothing connected to it can make a
// CREATE DATABASE ... TEMPLATE fail.
func prepareTemplate(ctx context.Context, adminURL string) error {
	if err := database.EnsureDatabase(ctx, adminURL, TemplateName); err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return jifu.Errorf(jifu.CodeUnavailable, "dbtest: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `ALTER DATABASE `+TemplateName+` WITH ALLOW_CONNECTIONS true`); err != nil {
		return jifu.Errorf(jifu.CodeUnavailable, "dbtest: open template: %w", err)
	}
	if err := database.Migrate(ctx, withDatabase(adminURL, TemplateName), schema.Sets()); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, `ALTER DATABASE `+TemplateName+` WITH IS_TEMPLATE true ALLOW_CONNECTIONS false`); err != nil {
		return jifu.Errorf(jifu.CodeUnavailable, "dbtest: seal template: %w", err)
	}
	return nil
}

// Pool returns the package's database pool, creating the database on first
// use. It fails the test when the package has no TestMain calling Main.
// The pool is shared by every test of the package: do not Close it.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return ready(t).pool
}

// URL returns the connection URL of the package's database, creating the
// database on first use, for code that opens its own connections.
func URL(t testing.TB) string {
	t.Helper()
	return ready(t).url
}

func ready(t testing.TB) *harness {
	t.Helper()
	h := active
	if h == nil {
		t.Fatal("dbtest: no database: the package's tests need\n\tfunc TestMain(m *testing.M) { dbtest.Main(m) }\n" +
			"(in an external test package, e.g. package kvstore_test)")
	}
	h.once.Do(func() { h.err = h.setup(context.Background()) })
	if h.err != nil {
		t.Fatalf("dbtest: %v", h.err)
	}
	return h
}

// setup clones the template into the package's database and opens a pool,
// first starting a private cluster when not run under RunCommand. It runs
// on the first Pool or URL call, so that test runs that need no database
// (go test -run matching nothing, -list) do not pay for a cluster.
func (h *harness) setup(ctx context.Context) error {
	if h.adminURL == "" {
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		c, err := privateCluster(ctx, log)
		if err != nil {
			return err
		}
		h.cluster, h.adminURL = c, c.URL("postgres")
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	if err := cloneTemplate(ctx, h.adminURL, name); err != nil {
		return err
	}
	h.name = name
	h.url = withDatabase(h.adminURL, name)
	// A no-op unless the template predates a migration (a wrapper built
	// from older code): then the clone catches up.
	if err := database.Migrate(ctx, h.url, schema.Sets()); err != nil {
		return err
	}
	pool, err := database.Open(ctx, h.url)
	if err != nil {
		return err
	}
	h.pool = pool
	return nil
}

// cloneTemplate creates database name from the template. PostgreSQL refuses
// while another session is connected to the template (SQLSTATE 55006),
// which can briefly happen right after prepareTemplate: retry for a while.
func cloneTemplate(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return jifu.Errorf(jifu.CodeUnavailable, "dbtest: connect to %s: %w", EnvURL, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	stmt := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize() + " TEMPLATE " + TemplateName
	deadline := time.Now().Add(30 * time.Second)
	for delay := 50 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		_, err = conn.Exec(ctx, stmt)
		if err == nil {
			return nil
		}
		if !database.IsCode(err, "55006") || time.Now().After(deadline) {
			return jifu.Errorf(jifu.CodeUnavailable, "dbtest: clone %s: %w", TemplateName, err)
		}
		select {
		case <-ctx.Done():
			return jifu.Errorf(jifu.CodeUnavailable, "dbtest: clone %s: %w", TemplateName, ctx.Err())
		case <-time.After(delay):
		}
	}
}

// close drops the package's database, if it was created, and stops the
// private cluster, if one was started.
func (h *harness) close(ctx context.Context) {
	if h.pool != nil {
		h.pool.Close()
	}
	if h.cluster != nil {
		// Dropping the database first would be wasted work.
		if err := h.cluster.Stop(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "dbtest: %v\n", err)
		}
		return
	}
	if h.name == "" {
		return
	}
	conn, err := pgx.Connect(ctx, h.adminURL)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dbtest: drop %s: %v\n", h.name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{h.name}.Sanitize()+" WITH (FORCE)"); err != nil {
		fmt.Fprintf(os.Stderr, "dbtest: drop %s: %v\n", h.name, err)
	}
}

// withDatabase returns adminURL (a postgres:// URL) with its database
// replaced by name.
func withDatabase(adminURL, name string) string {
	u, err := url.Parse(adminURL)
	if err != nil || u.Scheme == "" {
		return adminURL // not a URL: the connection attempt reports it
	}
	u.Path, u.RawPath = "/"+name, ""
	return u.String()
}
