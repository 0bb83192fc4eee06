package database_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/database"
)

// shared is the cluster TestMain starts for the tests that only need a
// server (migrations, EnsureDatabase, Open). The lifecycle tests start
// their own.
var shared *database.Cluster

func TestMain(m *testing.M) {
	if os.Getenv("JIFU_TEST_REAPER_HELPER") != "" {
		reaperHelper()
		return
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	ctx := context.Background()
	// The cluster owns the directory: Stop, or the reaper should this
	// process be killed, deletes it.
	dir, err := os.MkdirTemp("", "jifu-database-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	shared, err = database.StartCluster(ctx, database.ClusterOptions{Dir: dir, Ephemeral: true})
	if err != nil {
		os.RemoveAll(dir)
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer shared.Stop(ctx)
	return m.Run()
}

// reaperHelper runs in a child process: it starts an ephemeral cluster,
// prints its port and exits without stopping it, as a crashed test would.
func reaperHelper() {
	c, err := database.StartCluster(context.Background(), database.ClusterOptions{
		Dir: os.Getenv("JIFU_TEST_REAPER_HELPER"), Ephemeral: true,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(c.Port())
	os.Exit(0)
}

// tempDir returns a fresh directory that the postgres user can reach when
// the tests run as root (t.TempDir's parents are mode 0700).
func tempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "jifu-database-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func answers(ctx context.Context, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return false
	}
	conn.Close(ctx)
	return true
}

func TestClusterLifecycle(t *testing.T) {
	ctx := context.Background()
	opts := database.ClusterOptions{Dir: filepath.Join(tempDir(t), "pg"), Durable: true, Logger: testLogger(t)}

	c, err := database.StartCluster(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(context.Background()) })
	if !c.Started() {
		t.Fatal("first StartCluster: Started() = false")
	}
	want := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.Port())
	if got := c.TCPURL("postgres"); got != want {
		t.Fatalf("TCPURL = %q, want %q", got, want)
	}
	// URL goes through the Unix socket in the cluster's directory.
	want = fmt.Sprintf("postgres://postgres@/postgres?host=%s&port=%d&sslmode=disable", url.QueryEscape(opts.Dir), c.Port())
	if got := c.URL("postgres"); got != want {
		t.Fatalf("URL = %q, want %q", got, want)
	}
	exec1(t, c.URL("postgres"), `CREATE TABLE kept (v text); INSERT INTO kept VALUES ('hello')`)
	if !answers(ctx, c.TCPURL("postgres")) {
		t.Fatal("the server does not answer over TCP")
	}

	// A second start finds the running server and reuses it.
	again, err := database.StartCluster(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.Started() {
		t.Error("StartCluster on a running cluster: Started() = true, want reuse")
	}
	if again.Port() != c.Port() || again.URL("postgres") != c.URL("postgres") {
		t.Errorf("reused cluster at %s, want %s", again.URL("postgres"), c.URL("postgres"))
	}
	if err := again.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if !answers(ctx, c.URL("postgres")) {
		t.Fatal("Stop of a reused cluster stopped the server")
	}

	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if answers(ctx, c.URL("postgres")) {
		t.Fatal("server still answers after Stop")
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}

	// Restart: the data is still there.
	c2, err := database.StartCluster(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c2.Stop(context.Background()) })
	if !c2.Started() {
		t.Error("restart: Started() = false")
	}
	if got := queryString(t, c2.URL("postgres"), `SELECT v FROM kept`); got != "hello" {
		t.Errorf("after restart kept = %q, want hello", got)
	}
	if err := c2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(opts.Dir, "data", "PG_VERSION")); err != nil {
		t.Errorf("a non-ephemeral cluster lost its data dir: %v", err)
	}
}

func TestClusterStalePIDFile(t *testing.T) {
	ctx := context.Background()
	opts := database.ClusterOptions{Dir: filepath.Join(tempDir(t), "pg"), Logger: testLogger(t)}
	c, err := database.StartCluster(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	// A pid that surely is dead: a process we ran and reaped.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid
	pidFile := filepath.Join(opts.Dir, "data", "postmaster.pid")
	stale := fmt.Sprintf("%d\n%s\n1700000000\n%d\n%s\n127.0.0.1\n  1234 5678\nready   \n", dead, filepath.Join(opts.Dir, "data"), 1, opts.Dir)
	if err := os.WriteFile(pidFile, []byte(stale), 0o600); err != nil {
		t.Fatal(err)
	}

	c, err = database.StartCluster(ctx, opts)
	if err != nil {
		t.Fatalf("StartCluster with a stale postmaster.pid: %v", err)
	}
	t.Cleanup(func() { c.Stop(context.Background()) })
	if !c.Started() {
		t.Error("Started() = false after a stale postmaster.pid")
	}
	if !answers(ctx, c.URL("postgres")) {
		t.Error("server does not answer")
	}
}

func TestClusterDeepDirAndEphemeral(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(tempDir(t), strings.Repeat("deep-directory-name/", 6), "pg")
	if len(dir) < 108 {
		t.Fatalf("test dir %q is not deep enough", dir)
	}
	c, err := database.StartCluster(ctx, database.ClusterOptions{Dir: dir, Ephemeral: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(context.Background()) })
	socketDir := pidFileLine(t, filepath.Join(dir, "data", "postmaster.pid"), 5)
	if !strings.HasPrefix(socketDir, "/tmp/jifu-pg-") {
		t.Errorf("socket dir = %q, want a short dir under /tmp", socketDir)
	}
	if !answers(ctx, c.URL("postgres")) {
		t.Fatal("server does not answer")
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{socketDir, dir} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still exists after Stop of an ephemeral cluster (err %v)", p, err)
		}
	}
}

// TestClusterReaper checks that an ephemeral cluster whose process dies
// without Stop is stopped and deleted anyway.
func TestClusterReaper(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(tempDir(t), "pg")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "JIFU_TEST_REAPER_HELPER="+dir)
	cmd.Stderr = tWriter{t}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	port, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("helper printed %q", out)
	}
	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, statErr := os.Stat(dir)
		if os.IsNotExist(statErr) && !answers(ctx, url) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after the process died: dir exists = %v, server answers = %v", statErr == nil, answers(ctx, url))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestClusterUnreachableDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root hands the directory to the postgres user")
	}
	parent := tempDir(t)
	if err := os.Chmod(parent, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := database.StartCluster(context.Background(), database.ClusterOptions{Dir: filepath.Join(parent, "pg")})
	if jifu.ErrorCode(err) != jifu.CodeInvalid || !strings.Contains(err.Error(), "chmod o+x "+parent) {
		t.Fatalf("err = %v, want CodeInvalid naming %s", err, parent)
	}
}

func TestStartClusterInvalid(t *testing.T) {
	_, err := database.StartCluster(context.Background(), database.ClusterOptions{})
	if jifu.ErrorCode(err) != jifu.CodeInvalid {
		t.Fatalf("empty Dir: err = %v, want CodeInvalid", err)
	}
}

func pidFileLine(t *testing.T, path string, n int) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < n {
		t.Fatalf("%s has %d lines", path, len(lines))
	}
	return strings.TrimSpace(lines[n-1])
}

func exec1(t *testing.T, url, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}

func queryString(t *testing.T, url, sql string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestClusterConcurrentStart starts one directory's cluster from several
// goroutines at once: exactly one starts it, the others reuse it.
func TestClusterConcurrentStart(t *testing.T) {
	ctx := context.Background()
	opts := database.ClusterOptions{Dir: filepath.Join(tempDir(t), "pg"), Logger: testLogger(t)}
	const n = 3
	clusters := make([]*database.Cluster, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { clusters[i], errs[i] = database.StartCluster(ctx, opts) })
	}
	wg.Wait()
	started := 0
	for i, c := range clusters {
		if errs[i] != nil {
			t.Fatalf("StartCluster #%d: %v", i, errs[i])
		}
		t.Cleanup(func() { c.Stop(context.Background()) })
		if c.Started() {
			started++
		}
		if c.Port() != clusters[0].Port() {
			t.Errorf("cluster #%d on port %d, #0 on %d", i, c.Port(), clusters[0].Port())
		}
	}
	if started != 1 {
		t.Errorf("%d of %d calls started the server, want 1", started, n)
	}
}
