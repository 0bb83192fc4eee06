package web_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/guesttest"
	"github.com/jifu-open/jifu/host/kvstore"
	"github.com/jifu-open/jifu/host/manifest"
	"github.com/jifu-open/jifu/web"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func newServer(t *testing.T, dev bool, ready func(context.Context) error) *httptest.Server {
	t.Helper()
	ctx := context.Background()
	// Share the test run's compilation cache: compiling a Go guest under
	// -race takes a minute.
	cache := filepath.Join(os.TempDir(), "jifu-test-wazero-cache")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	h, err := host.New(ctx, host.Config{KV: kvstore.New(dbtest.Pool(t)), CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	m, ps := manifest.Parse([]byte(`{"abi":1,"slug":"faults","name":"F","version":"1.0.0","scopes":["storage"],
		"entry_points":["handle_http"],"limits":{"request_bytes":4096,"timeout_ms":500}}`))
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	app, err := h.Load(ctx, host.AppSpec{Wasm: guesttest.BuildGo(t, "host/testdata/faults"), Manifest: m})
	if err != nil {
		t.Fatal(err)
	}
	set := host.NewAppSet()
	set.Put(app)
	srv := httptest.NewServer(web.New(web.Deps{Apps: set, DevMode: dev, Ready: ready}))
	t.Cleanup(func() {
		srv.Close()
		_ = set.Close(ctx)
		_ = h.Close(ctx)
	})
	return srv
}

func do(t *testing.T, srv *httptest.Server, method, path string, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestAppRouting(t *testing.T) {
	srv := newServer(t, true, nil)
	tests := []struct {
		name, method, path, body string
		hdr                      map[string]string
		status                   int
		contains                 string
	}{
		{"ok", "GET", "/apps/faults/ok", "", nil, 200, "ok"},
		{"dev user", "GET", "/apps/faults/whoami", "", map[string]string{"X-Jifu-User": "u7"}, 200, "u7"},
		{"unknown app", "GET", "/apps/none/", "", nil, 404, `"code":"not_found"`},
		{"unknown page", "GET", "/nowhere", "", nil, 404, `"code":"not_found"`},
		{"body over the app's limit", "POST", "/apps/faults/ok", strings.Repeat("x", 5000), nil, 413, `"code":"request_too_large"`},
		{"timeout", "GET", "/apps/faults/loop", "", nil, 504, `"code":"guest_timeout"`},
		{"panic", "GET", "/apps/faults/panic", "", nil, 502, `"code":"guest_panic"`},
		{"response over the limit", "GET", "/apps/faults/big", "", nil, 502, `"code":"guest_response_too_large"`},
		{"healthz", "GET", "/healthz", "", nil, 200, "ok"},
		{"readyz", "GET", "/readyz", "", nil, 200, "ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, srv, tt.method, tt.path, tt.body, tt.hdr)
			if resp.StatusCode != tt.status || !strings.Contains(body, tt.contains) {
				t.Fatalf("%s %s = %d %.200q, want %d containing %q", tt.method, tt.path, resp.StatusCode, body, tt.status, tt.contains)
			}
		})
	}
	resp, _ := do(t, srv, "GET", "/apps/faults", "", nil)
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/apps/faults/" {
		t.Fatalf("/apps/faults = %d %q, want a redirect to /apps/faults/", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// The platform's credentials never reach an app, and an app cannot set
// cookies on the platform's origin or inject headers.
func TestHeaderBoundaries(t *testing.T) {
	srv := newServer(t, false, nil)
	resp, body := do(t, srv, "POST", "/apps/faults/headers?x=1", "payload", map[string]string{
		"Cookie": "jifu_session=secret", "Authorization": "Bearer secret", "X-Jifu-User": "mallory", "X-Custom": "kept",
	})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	for _, leaked := range []string{"secret", "mallory"} {
		if strings.Contains(body, leaked) {
			t.Errorf("the app saw %q:\n%s", leaked, body)
		}
	}
	if !strings.Contains(body, "X-Custom=kept") || !strings.Contains(body, "body=payload") {
		t.Errorf("ordinary headers or body lost:\n%s", body)
	}
	if resp.Header.Get("Set-Cookie") != "" || resp.Header.Get("Injected") != "" || resp.Header.Get("X-Split") != "" {
		t.Errorf("forbidden response headers passed: %v", resp.Header)
	}
	if resp.Header.Get("X-App") != "yes" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers: %v", resp.Header)
	}
	// Outside dev mode X-Jifu-User is not an identity.
	if _, body := do(t, srv, "GET", "/apps/faults/whoami", "", map[string]string{"X-Jifu-User": "mallory"}); body != "" {
		t.Errorf("whoami = %q outside dev mode, want anonymous", body)
	}
}

func TestNotReady(t *testing.T) {
	srv := newServer(t, false, func(context.Context) error { return jifu.Errorf(jifu.CodeUnavailable, "database down") })
	resp, body := do(t, srv, "GET", "/readyz", "", nil)
	if resp.StatusCode != 503 || !strings.Contains(body, `"code":"unavailable"`) {
		t.Fatalf("readyz = %d %s", resp.StatusCode, body)
	}
}
