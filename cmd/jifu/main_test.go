package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/guesttest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// cmdEnv runs jifu commands in-process against the test database.
type cmdEnv struct {
	t       *testing.T
	dataDir string
	vars    map[string]string
}

func newCmdEnv(t *testing.T) *cmdEnv {
	return &cmdEnv{t: t, dataDir: t.TempDir(), vars: map[string]string{"DATABASE_URL": dbtest.URL(t)}}
}

func (c *cmdEnv) getenv(k string) string { return c.vars[k] }

// run runs a command to completion and returns its exit code and output.
func (c *cmdEnv) run(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"--data-dir", c.dataDir}, args...), c.getenv, &out, &errb)
	return code, out.String(), errb.String()
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serve starts `jifu serve` on a free port and returns its base URL and a
// stop function that waits for a clean exit.
func (c *cmdEnv) serve(args ...string) (string, func()) {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stderr := &lockedBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"--data-dir", c.dataDir, "serve", "--addr", "127.0.0.1:0"}, args...), c.getenv, pw, stderr)
		pw.Close()
	}()
	urlRE := regexp.MustCompile(`serving on (http://\S+)`)
	sc := bufio.NewScanner(pr)
	var base string
	for sc.Scan() {
		if m := urlRE.FindStringSubmatch(sc.Text()); m != nil {
			base = m[1]
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if base == "" {
		cancel()
		c.t.Fatalf("serve did not start: exit %d\n%s", <-done, stderr.String())
	}
	return base, func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				c.t.Errorf("serve exited %d\n%s", code, stderr.String())
			}
		case <-time.After(20 * time.Second):
			c.t.Error("serve did not stop within 20 s")
		}
	}
}

func httpDo(t *testing.T, method, url string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// buildHello builds plugins/hello into DIR/hello as `make` does.
func buildHello(t *testing.T, c *cmdEnv) string {
	t.Helper()
	apps := t.TempDir()
	code, out, errs := c.run("app", "build", filepath.Join(guesttest.Root(t), "plugins/hello"), "-o", filepath.Join(apps, "hello", "app.wasm"))
	if code != 0 || !strings.Contains(out, "check passed") {
		t.Fatalf("app build: exit %d\n%s\n%s", code, out, errs)
	}
	return apps
}

// The hello app serves through `jifu serve`, and its kv state persists
// across requests and restarts.
func TestServeHelloPersists(t *testing.T) {
	c := newCmdEnv(t)
	apps := buildHello(t, c)

	base, stop := c.serve("--dev-apps", apps, "--dev")
	if st, body := httpDo(t, "GET", base+"/healthz", nil); st != 200 || body != "ok\n" {
		t.Fatalf("healthz = %d %q", st, body)
	}
	if st, _ := httpDo(t, "GET", base+"/readyz", nil); st != 200 {
		t.Fatalf("readyz = %d", st)
	}
	st, page := httpDo(t, "GET", base+"/apps/hello/", map[string]string{"X-Jifu-User": "u_demo"})
	if st != 200 || !strings.Contains(page, "你好, u_demo!") || !strings.Contains(page, `data-testid="visits">0<`) {
		t.Fatalf("hello page = %d\n%s", st, page)
	}
	for i := range 2 {
		st, body := httpDo(t, "POST", base+"/apps/hello/visits", map[string]string{"Accept": "application/json"})
		if want := []string{`{"visits":1}`, `{"visits":2}`}[i]; st != 200 || body != want {
			t.Fatalf("visit %d = %d %q, want %q", i, st, body, want)
		}
	}
	if st, body := httpDo(t, "GET", base+"/apps/nope/", nil); st != 404 || !strings.Contains(body, `"code":"not_found"`) {
		t.Fatalf("unknown app = %d %q", st, body)
	}
	if st, body := httpDo(t, "GET", base+"/metrics", nil); st != 200 || !strings.Contains(body, `jifu_invocations_total{app="hello",code="ok",entry="handle_http"}`) {
		t.Fatalf("metrics = %d, no invocation counter", st)
	}
	stop()

	base, stop = c.serve("--dev-apps", apps)
	defer stop()
	if st, body := httpDo(t, "GET", base+"/apps/hello/api/visits", nil); st != 200 || body != `{"visits":2}` {
		t.Fatalf("after restart: %d %q, want the 2 visits kept", st, body)
	}
	// Without --dev the platform does not trust X-Jifu-User.
	if _, page := httpDo(t, "GET", base+"/apps/hello/", map[string]string{"X-Jifu-User": "mallory"}); !strings.Contains(page, "你好, guest!") {
		t.Fatalf("X-Jifu-User trusted outside dev mode:\n%s", page)
	}
}

// The developer loop: init, build, check, run.
func TestAppInitBuildCheckRun(t *testing.T) {
	c := newCmdEnv(t)
	dir := t.TempDir()
	code, out, errs := c.run("app", "init", "my-app", "--dir", dir, "--sdk", guesttest.Root(t))
	if code != 0 {
		t.Fatalf("init: %d %s %s", code, out, errs)
	}
	app := filepath.Join(dir, "my-app")
	if code, _, _ := c.run("app", "init", "my-app", "--dir", dir); code != 4 {
		t.Fatalf("init over an existing folder: exit %d, want 4 (conflict)", code)
	}
	if code, out, errs := c.run("app", "build", app); code != 0 || !strings.Contains(out, "check passed") {
		t.Fatalf("build: %d\n%s\n%s", code, out, errs)
	}
	wasm := filepath.Join(app, "build", "app.wasm")
	if code, out, _ := c.run("app", "check", wasm); code != 0 || !strings.Contains(out, "check passed") {
		t.Fatalf("check: %d\n%s", code, out)
	}
	for i, want := range []string{"my-app: visit 1", "my-app: visit 2"} {
		code, out, errs := c.run("app", "run", wasm, "--request", "GET /", "--user", "dev1")
		if code != 0 || !strings.Contains(out, "HTTP 200") || !strings.Contains(out, want) {
			t.Fatalf("run %d: %d\n%s\n%s", i, code, out, errs)
		}
	}
	if code, out, _ := c.run("app", "run", wasm, "--request", "GET /missing"); code != 0 || !strings.Contains(out, "HTTP 404") {
		t.Fatalf("run 404: %d\n%s", code, out)
	}
}

func TestAppCheckAndRunFailures(t *testing.T) {
	c := newCmdEnv(t)
	root := guesttest.Root(t)
	dir := t.TempDir()
	forbidden := filepath.Join(dir, "app.wasm")
	if err := os.WriteFile(forbidden, guesttest.ReadFile(t, "host/testdata/wat/forbidden.wasm"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "jifu.json"), []byte(`{"abi":1,"slug":"forbidden","name":"F","version":"1.0.0","entry_points":["handle_http"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := c.run("app", "check", forbidden)
	if code != 2 || !strings.Contains(out, "check failed, 6 problems") || !strings.Contains(out, "import_not_allowed (env.system)") {
		t.Fatalf("check forbidden: exit %d\n%s", code, out)
	}
	if code, _, errs := c.run("app", "run", forbidden); code != 2 || !strings.Contains(errs, "scope_not_declared") {
		t.Fatalf("run forbidden: exit %d\n%s", code, errs)
	}

	faults := filepath.Join(dir, "faults")
	if code, out, errs := c.run("app", "build", filepath.Join(root, "host/testdata/faults"), "-o", filepath.Join(faults, "app.wasm")); code != 0 {
		t.Fatalf("build faults: %d %s %s", code, out, errs)
	}
	code, _, errs := c.run("app", "run", filepath.Join(faults, "app.wasm"), "--request", "GET /loop")
	if code != 1 || !strings.Contains(errs, "guest_timeout") {
		t.Fatalf("run /loop: exit %d\n%s", code, errs)
	}
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"bad request line", []string{"app", "run", filepath.Join(faults, "app.wasm"), "--request", "nonsense"}, 2, "must look like"},
		{"missing module", []string{"app", "check", filepath.Join(dir, "nope.wasm")}, 2, "nope.wasm"},
		{"bad app name", []string{"app", "init", "X!"}, 2, "app name"},
		{"unknown command", []string{"frobnicate"}, 2, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errs := c.run(tt.args...)
			if code != tt.code || !strings.Contains(errs, tt.msg) {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.code, errs)
			}
		})
	}
}

// Without DATABASE_URL the commands start (and stop) a private cluster in
// the data folder.
func TestMigrateWithPrivateCluster(t *testing.T) {
	c := newCmdEnv(t)
	c.vars = map[string]string{}
	// The server runs as the postgres user when tests run as root, so the
	// folder must be reachable by it (t.TempDir's parent is 0700).
	dir, err := os.MkdirTemp("", "jifu-cmd-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c.dataDir = dir
	if code, out, errs := c.run("migrate", "up"); code != 0 || !strings.Contains(out, "migrations applied") {
		t.Fatalf("migrate up: %d\n%s\n%s", code, out, errs)
	}
	code, out, errs := c.run("migrate", "status")
	if code != 0 || !strings.Contains(out, "kv") || !strings.Contains(out, "applied") || strings.Contains(out, "pending") {
		t.Fatalf("migrate status: %d\n%s\n%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(c.dataDir, "pg", "data", "postmaster.pid")); !os.IsNotExist(err) {
		t.Fatalf("the private cluster is still running after the command (postmaster.pid: %v)", err)
	}
}
