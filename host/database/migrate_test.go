package database_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/database"
)

// freshDB creates a database of its own for a test on the shared cluster.
func freshDB(t *testing.T) string {
	t.Helper()
	name := "m_" + strings.ToLower(strings.NewReplacer("/", "_", "-", "_").Replace(t.Name()))
	if len(name) > 63 {
		name = name[:63]
	}
	if err := database.EnsureDatabase(context.Background(), shared.URL("postgres"), name); err != nil {
		t.Fatal(err)
	}
	return shared.URL(name)
}

func file(sql string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(sql)} }

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	url := freshDB(t)
	one := fstest.MapFS{
		"00001_widgets.sql": file("-- +goose Up\nCREATE TABLE widgets (id int PRIMARY KEY);\n-- +goose Down\nDROP TABLE widgets;\n"),
		"00002_gadgets.sql": file("-- +goose Up\nCREATE TABLE gadgets (id int PRIMARY KEY);\nINSERT INTO gadgets VALUES (1);\n-- +goose Down\nDROP TABLE gadgets;\n"),
		"README.md":         file("not a migration"),
	}
	// Set two numbers its migrations from 1 too.
	two := fstest.MapFS{
		"00001_sprockets.sql": file("-- +goose Up\nCREATE TABLE sprockets (id int);\n"),
	}
	sets := []database.MigrationSet{{Name: "one", FS: one}, {Name: "two", FS: two}}

	before := time.Now().Add(-time.Minute)
	if err := database.Migrate(ctx, url, sets); err != nil {
		t.Fatal(err)
	}
	exec1(t, url, `INSERT INTO widgets VALUES (1); INSERT INTO sprockets VALUES (1)`)
	// Up twice is a no-op (re-running 00001 would fail: the table exists).
	if err := database.Migrate(ctx, url, sets); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if got := queryString(t, url, `SELECT count(*)::text FROM goose_one WHERE version_id > 0`); got != "2" {
		t.Errorf("goose_one has %s applied rows, want 2", got)
	}
	if got := queryString(t, url, `SELECT count(*)::text FROM goose_two WHERE version_id > 0`); got != "1" {
		t.Errorf("goose_two has %s applied rows, want 1", got)
	}

	// A new file shows as pending, then gets applied.
	one["00003_more.sql"] = file("-- +goose Up\nALTER TABLE widgets ADD COLUMN name text;\n")
	st, err := database.Status(ctx, url, sets)
	if err != nil {
		t.Fatal(err)
	}
	want := []database.MigrationStatus{
		{Set: "one", Version: 1, File: "00001_widgets.sql", Applied: true},
		{Set: "one", Version: 2, File: "00002_gadgets.sql", Applied: true},
		{Set: "one", Version: 3, File: "00003_more.sql", Applied: false},
		{Set: "two", Version: 1, File: "00001_sprockets.sql", Applied: true},
	}
	if len(st) != len(want) {
		t.Fatalf("Status = %+v, want %d entries", st, len(want))
	}
	for i, w := range want {
		g := st[i]
		if g.Set != w.Set || g.Version != w.Version || g.File != w.File || g.Applied != w.Applied {
			t.Errorf("Status[%d] = %+v, want %+v", i, g, w)
		}
		if g.Applied && g.AppliedAt.Before(before) {
			t.Errorf("Status[%d].AppliedAt = %v, want recent", i, g.AppliedAt)
		}
		if !g.Applied && !g.AppliedAt.IsZero() {
			t.Errorf("Status[%d].AppliedAt = %v for a pending migration", i, g.AppliedAt)
		}
	}
	if err := database.Migrate(ctx, url, sets); err != nil {
		t.Fatal(err)
	}
	exec1(t, url, `UPDATE widgets SET name = 'x'`)
}

func TestMigrateConcurrent(t *testing.T) {
	ctx := context.Background()
	url := freshDB(t)
	sets := []database.MigrationSet{{Name: "conc", FS: fstest.MapFS{
		"00001_a.sql": file("-- +goose Up\nCREATE TABLE conc_a (id int);\n"),
		"00002_b.sql": file("-- +goose Up\nCREATE TABLE conc_b (id int);\n"),
	}}}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = database.Migrate(ctx, url, sets) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Migrate #%d: %v", i, err)
		}
	}
}

func TestMigrateErrors(t *testing.T) {
	ctx := context.Background()
	good := fstest.MapFS{"00001_ok.sql": file("-- +goose Up\nCREATE TABLE ok_table (id int);\n")}
	tests := []struct {
		name     string
		sets     []database.MigrationSet
		code     string
		contains []string
	}{
		{
			name: "bad SQL names set and file",
			sets: []database.MigrationSet{{Name: "broken", FS: fstest.MapFS{
				"00001_ok.sql":    file("-- +goose Up\nCREATE TABLE fine (id int);\n"),
				"00002_oops.sql":  file("-- +goose Up\nCREATE TABLE nope (id intt);\n"),
				"00003_never.sql": file("-- +goose Up\nCREATE TABLE never (id int);\n"),
			}}},
			code:     jifu.CodeInternal,
			contains: []string{`"broken"`, "00002_oops.sql", "intt"},
		},
		{
			name: "missing goose annotation",
			sets: []database.MigrationSet{{Name: "noanno", FS: fstest.MapFS{
				"00001_plain.sql": file("CREATE TABLE plain (id int);\n"),
			}}},
			code:     jifu.CodeInternal,
			contains: []string{`"noanno"`, "00001_plain.sql"},
		},
		{
			name:     "invalid set name",
			sets:     []database.MigrationSet{{Name: "Bad-Name", FS: good}},
			code:     jifu.CodeInvalid,
			contains: []string{"Bad-Name"},
		},
		{
			name:     "duplicate set",
			sets:     []database.MigrationSet{{Name: "dup", FS: good}, {Name: "dup", FS: good}},
			code:     jifu.CodeInvalid,
			contains: []string{"twice"},
		},
		{
			name:     "nil FS",
			sets:     []database.MigrationSet{{Name: "nilfs"}},
			code:     jifu.CodeInvalid,
			contains: []string{"nilfs"},
		},
		{
			name:     "no migrations",
			sets:     []database.MigrationSet{{Name: "empty", FS: fstest.MapFS{"README": file("x")}}},
			code:     jifu.CodeInternal,
			contains: []string{`"empty"`, "no migrations"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := freshDB(t)
			err := database.Migrate(ctx, url, tt.sets)
			if jifu.ErrorCode(err) != tt.code {
				t.Fatalf("err = %v, want code %s", err, tt.code)
			}
			for _, s := range tt.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("err = %q, want it to mention %s", err, s)
				}
			}
		})
	}

	t.Run("earlier migrations stay applied", func(t *testing.T) {
		url := freshDB(t)
		err := database.Migrate(ctx, url, []database.MigrationSet{{Name: "half", FS: fstest.MapFS{
			"00001_ok.sql":  file("-- +goose Up\nCREATE TABLE half_ok (id int);\n"),
			"00002_bad.sql": file("-- +goose Up\nSELEC 1;\n"),
		}}})
		if err == nil {
			t.Fatal("no error")
		}
		exec1(t, url, `INSERT INTO half_ok VALUES (1)`)
	})

	t.Run("unreachable server", func(t *testing.T) {
		err := database.Migrate(ctx, "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", []database.MigrationSet{{Name: "x", FS: good}})
		if jifu.ErrorCode(err) != jifu.CodeUnavailable {
			t.Fatalf("err = %v, want CodeUnavailable", err)
		}
	})
}

func TestEnsureDatabase(t *testing.T) {
	ctx := context.Background()
	admin := shared.URL("postgres")
	tests := []struct {
		name   string
		dbname string
		code   string
	}{
		{"new", "ensure_new", ""},
		{"existing", "postgres", ""},
		{"again", "ensure_new", ""},
		{"underscore start", "_under", ""},
		{"63 bytes", strings.Repeat("a", 63), ""},
		{"empty", "", jifu.CodeInvalid},
		{"upper case", "Ensure", jifu.CodeInvalid},
		{"digit first", "1db", jifu.CodeInvalid},
		{"dash", "a-b", jifu.CodeInvalid},
		{"quote", `a"b`, jifu.CodeInvalid},
		{"64 bytes", strings.Repeat("a", 64), jifu.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := database.EnsureDatabase(ctx, admin, tt.dbname)
			if jifu.ErrorCode(err) != tt.code {
				t.Fatalf("EnsureDatabase(%q) = %v, want code %q", tt.dbname, err, tt.code)
			}
			if tt.code == "" && !answers(ctx, shared.URL(tt.dbname)) {
				t.Errorf("database %q not reachable", tt.dbname)
			}
		})
	}

	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make([]error, 6)
		for i := range errs {
			wg.Go(func() { errs[i] = database.EnsureDatabase(ctx, admin, "ensure_race") })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("#%d: %v", i, err)
			}
		}
	})
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		url  string
		code string
	}{
		{"ok", shared.URL("postgres"), ""},
		{"no such database", shared.URL("does_not_exist"), jifu.CodeUnavailable},
		{"nothing listening", "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable", jifu.CodeUnavailable},
		{"malformed", "postgres://%zz", jifu.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, err := database.Open(ctx, tt.url)
			if jifu.ErrorCode(err) != tt.code {
				t.Fatalf("Open = %v, want code %q", err, tt.code)
			}
			if err != nil {
				return
			}
			defer pool.Close()
			var one int
			if err := pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
				t.Fatalf("SELECT 1 = %d, %v", one, err)
			}
		})
	}
}

func ExampleMigrate() {
	ctx := context.Background()
	sets := []database.MigrationSet{{Name: "example", FS: fstest.MapFS{
		"00001_notes.sql": {Data: []byte("-- +goose Up\nCREATE TABLE notes (body text);\n-- +goose Down\nDROP TABLE notes;\n")},
	}}}
	url := shared.URL("postgres")
	if err := database.EnsureDatabase(ctx, url, "example"); err != nil {
		fmt.Println(err)
		return
	}
	if err := database.Migrate(ctx, shared.URL("example"), sets); err != nil {
		fmt.Println(err)
		return
	}
	st, _ := database.Status(ctx, shared.URL("example"), sets)
	fmt.Println(st[0].Set, st[0].File, st[0].Applied)
	// Output: example 00001_notes.sql true
}

// TestMigrateOutOfOrder: a migration merged after a higher-numbered one was
// applied (parallel branches of one domain) is applied on the next run.
func TestMigrateOutOfOrder(t *testing.T) {
	ctx := context.Background()
	url := freshDB(t)
	early := fstest.MapFS{
		"00001_a.sql": file("-- +goose Up\nCREATE TABLE ooo_a (id int);\n"),
		"00003_c.sql": file("-- +goose Up\nCREATE TABLE ooo_c (id int);\n"),
	}
	if err := database.Migrate(ctx, url, []database.MigrationSet{{Name: "ooo", FS: early}}); err != nil {
		t.Fatal(err)
	}
	late := fstest.MapFS{
		"00001_a.sql": early["00001_a.sql"],
		"00002_b.sql": file("-- +goose Up\nCREATE TABLE ooo_b (id int);\n"),
		"00003_c.sql": early["00003_c.sql"],
	}
	if err := database.Migrate(ctx, url, []database.MigrationSet{{Name: "ooo", FS: late}}); err != nil {
		t.Fatalf("Migrate with 00002 merged late: %v", err)
	}
	exec1(t, url, `INSERT INTO ooo_b VALUES (1)`)
	if got := queryString(t, url, `SELECT string_agg(version_id::text, ',' ORDER BY id) FROM goose_ooo WHERE version_id > 0`); got != "1,3,2" {
		t.Errorf("applied in order %s, want 1,3,2", got)
	}
}
