package dbtest_test

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu/host/database/dbtest"
)

// helperEnv makes this test binary act as a helper child process.
const helperEnv = "JIFU_DBTEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "nomain" {
		os.Exit(m.Run()) // as a package that forgot dbtest.Main
	}
	dbtest.Main(m)
}

func TestPool(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Pool(t)
	if pool != dbtest.Pool(t) {
		t.Error("Pool returned a different pool the second time")
	}
	var db string
	if err := pool.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(db, "t_") {
		t.Errorf("database = %q, want a t_ clone", db)
	}
	u, err := url.Parse(dbtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	if u.Path != "/"+db {
		t.Errorf("URL path = %q, want /%s", u.Path, db)
	}
	// The schema of every domain is there.
	for _, table := range []string{"kv_entries", "audit_records", "config_entries", "goose_kv", "goose_audit", "goose_config"} {
		var ok bool
		if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&ok); err != nil || !ok {
			t.Errorf("table %s missing (err %v)", table, err)
		}
	}
}

// TestHelperProcess is not a test: child processes run it.
func TestHelperProcess(t *testing.T) {
	switch os.Getenv(helperEnv) {
	case "":
		t.Skip("helper for other tests")
	case "nomain":
		dbtest.Pool(t) // must fail the test with advice
	case "wrapped":
		// Under RunCommand: the template is sealed and the package got a clone.
		if os.Getenv(dbtest.EnvURL) == "" {
			t.Fatal(dbtest.EnvURL + " not set")
		}
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, os.Getenv(dbtest.EnvURL))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var isTemplate, allowConn bool
		if err := conn.QueryRow(ctx, `SELECT datistemplate, datallowconn FROM pg_database WHERE datname = $1`, dbtest.TemplateName).
			Scan(&isTemplate, &allowConn); err != nil {
			t.Fatal(err)
		}
		if !isTemplate || allowConn {
			t.Errorf("template: datistemplate = %v, datallowconn = %v; want true, false", isTemplate, allowConn)
		}
		var n int
		if err := dbtest.Pool(t).QueryRow(ctx, `SELECT count(*) FROM kv_entries`).Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPoolWithoutMain(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"=nomain")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("helper passed; output:\n%s", out)
	}
	if !bytes.Contains(out, []byte("func TestMain(m *testing.M) { dbtest.Main(m) }")) {
		t.Errorf("failure does not tell how to fix it:\n%s", out)
	}
}

// runDir returns a directory for RunCommand that the postgres user can
// reach when running as root (t.TempDir's parents are 0700).
func runDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "jifu-dbtest-run-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestRunCommand(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"exit code passes through", []string{"/bin/sh", "-c", `echo "url=$` + dbtest.EnvURL + `"; exit 3`}, 3, "url=postgres://postgres@/postgres?host="},
		{"a test binary gets its clone", []string{os.Args[0], "-test.run=^TestHelperProcess$", "-test.v"}, 0, "--- PASS: TestHelperProcess"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := runDir(t)
			var stdout, stderr bytes.Buffer
			t.Setenv(helperEnv, "wrapped")
			code, err := dbtest.RunCommand(ctx, dir, tt.args, &stdout, &stderr)
			if err != nil {
				t.Fatalf("RunCommand: %v\nstderr:\n%s", err, stderr.String())
			}
			if code != tt.code {
				t.Errorf("exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.out) {
				t.Errorf("stdout = %q, want it to contain %q", stdout.String(), tt.out)
			}
			assertCleanedUp(t, dir)
		})
	}

	t.Run("missing command", func(t *testing.T) {
		dir := runDir(t)
		code, err := dbtest.RunCommand(ctx, dir, []string{"/does/not/exist"}, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || code == 0 {
			t.Errorf("RunCommand = %d, %v; want an error", code, err)
		}
		assertCleanedUp(t, dir)
	})
	t.Run("no args", func(t *testing.T) {
		if _, err := dbtest.RunCommand(ctx, runDir(t), nil, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Error("RunCommand with no args: no error")
		}
	})
}

// TestRunCommandSignal sends this process SIGTERM while RunCommand runs a
// command: the command gets it, and the cluster is still cleaned up.
func TestRunCommandSignal(t *testing.T) {
	dir := runDir(t)
	started := make(chan struct{})
	stdout := &signalWriter{match: "started", ch: started}
	go func() {
		select {
		case <-started:
			_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
		case <-time.After(60 * time.Second):
		}
	}()
	code, err := dbtest.RunCommand(context.Background(), dir,
		[]string{"/bin/sh", "-c", "echo started; exec sleep 30"}, stdout, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if want := 128 + int(syscall.SIGTERM); code != want {
		t.Errorf("exit code = %d, want %d", code, want)
	}
	assertCleanedUp(t, dir)
}

func TestRunCommandCancel(t *testing.T) {
	dir := runDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	go func() {
		<-started
		cancel()
	}()
	code, err := dbtest.RunCommand(ctx, dir,
		[]string{"/bin/sh", "-c", "echo started; exec sleep 30"}, &signalWriter{match: "started", ch: started}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if want := 128 + int(syscall.SIGINT); code != want {
		t.Errorf("exit code = %d, want %d", code, want)
	}
	assertCleanedUp(t, dir)
}

func assertCleanedUp(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, ".data")); !os.IsNotExist(err) {
		entries, _ := os.ReadDir(filepath.Join(dir, ".data"))
		t.Errorf("%s/.data still exists (%d entries, err %v)", dir, len(entries), err)
	}
}

// signalWriter closes ch the first time match is written.
type signalWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	match string
	ch    chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.ch != nil && strings.Contains(w.buf.String(), w.match) {
		close(w.ch)
		w.ch = nil
	}
	return len(p), nil
}
