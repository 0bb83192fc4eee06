package web_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/guesttest"
	"github.com/jifu-open/jifu/host/kvstore"
	"github.com/jifu-open/jifu/host/notify"
	"github.com/jifu-open/jifu/marketplace"
	"github.com/jifu-open/jifu/web"
)

// platform is the whole web stack over the real PostgreSQL and host: the
// marketplace, its serving, the local SMS outbox.
type platform struct {
	srv     *httptest.Server
	svc     *marketplace.Service
	outbox  *notify.Outbox
	serving *marketplace.Serving
}

const staffPassword = "correct-horse-9"

// The TestFlow tests use it; they are skipped under -race (see raceEnabled)
// and `make test` runs them in its non-race pass.
func newPlatform(t *testing.T) *platform {
	t.Helper()
	if raceEnabled {
		t.Skip("end-to-end flow: run without -race (make test does, in its non-race pass)")
	}
	ctx := context.Background()
	pool := dbtest.Pool(t)
	cache := filepath.Join(os.TempDir(), "jifu-test-wazero-cache")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	consents := marketplace.NewConsents(pool)
	h, err := host.New(ctx, host.Config{KV: kvstore.New(pool), CacheDir: cache, Consent: consents})
	if err != nil {
		t.Fatal(err)
	}
	outbox := notify.NewOutbox(pool)
	// OTPInterval 1 ns: tests send several codes to one number in a row.
	n := notify.New(pool, outbox, notify.Options{OTPInterval: 1, OTPPerHour: 1000, OTPPerDay: 1000})
	svc, err := marketplace.New(marketplace.Config{Pool: pool, Host: h, MasterKey: make([]byte, 32),
		Artifacts: marketplace.NewFSArtifacts(t.TempDir()), Notifier: n, Consents: consents})
	if err != nil {
		t.Fatal(err)
	}
	serving := marketplace.NewServing(svc, h, marketplace.ServingOptions{})
	srv := httptest.NewServer(web.New(web.Deps{Market: svc, Resolver: serving, Outbox: outbox, DevMode: true, Ready: pool.Ping}))
	t.Cleanup(func() {
		srv.Close()
		_ = serving.Close(ctx)
		_ = svc.Close(ctx)
		_ = h.Close(ctx)
	})
	return &platform{srv: srv, svc: svc, outbox: outbox, serving: serving}
}

var (
	helloMu    sync.Mutex
	helloBytes []byte
)

// hello returns the hello plugin: the one `make plugins` built, else built
// here once.
func hello(t *testing.T) []byte {
	t.Helper()
	helloMu.Lock()
	defer helloMu.Unlock()
	if helloBytes == nil {
		if b, err := os.ReadFile(filepath.Join(guesttest.Root(t), "build/apps/hello/app.wasm")); err == nil {
			helloBytes = b
		} else {
			helloBytes = guesttest.BuildGo(t, "plugins/hello")
		}
	}
	return helloBytes
}

// helloManifest is hello's manifest with another slug and version.
func helloManifest(t *testing.T, slug, version string) []byte {
	t.Helper()
	m := string(guesttest.ReadFile(t, "plugins/hello/jifu.json"))
	m = strings.Replace(m, `"slug": "hello"`, `"slug": "`+slug+`"`, 1)
	return []byte(strings.Replace(m, `"version": "1.0.0"`, `"version": "`+version+`"`, 1))
}

// browser is an HTTP client with its own cookies, like one browser.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func (p *platform) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: p.srv.URL, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	status int
	loc    string
	body   string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	req.Header.Set("Accept", "text/html")
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, loc: resp.Header.Get("Location"), body: string(body)}
}

func (b *browser) get(path string) page {
	b.t.Helper()
	req, _ := http.NewRequest("GET", b.base+path, nil)
	return b.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the token of the forms of the page at path.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	p := b.get(path)
	m := csrfRE.FindStringSubmatch(p.body)
	if m == nil {
		b.t.Fatalf("no CSRF token on %s (%d): %.300s", path, p.status, p.body)
	}
	return m[1]
}

// post submits a form; a "csrf" of "" sends none.
func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// form posts with the CSRF token of the page at from.
func (b *browser) form(from, path string, kv ...string) page {
	b.t.Helper()
	f := url.Values{"csrf": {b.csrf(from)}}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Add(kv[i], kv[i+1])
	}
	return b.post(path, f)
}

// staff creates a staff account and returns a browser logged in as it.
func (p *platform) staff(t *testing.T, email string, role marketplace.Role) *browser {
	t.Helper()
	if _, err := p.svc.CreateStaff(context.Background(), marketplace.System, email, string(role), staffPassword, role); err != nil {
		t.Fatal(err)
	}
	b := p.browser(t)
	if pg := b.form("/portal/login", "/portal/login", "email", email, "password", staffPassword); pg.status != http.StatusSeeOther {
		t.Fatalf("login %s: %d %.300s", email, pg.status, pg.body)
	}
	return b
}

// developer registers a developer and returns its logged-in browser.
func (p *platform) developer(t *testing.T, email string) *browser {
	t.Helper()
	b := p.browser(t)
	pg := b.form("/portal/register", "/portal/register", "email", email, "password", staffPassword, "name", "Dev "+email,
		"kind", "individual", "level", "basic")
	if pg.status != http.StatusSeeOther {
		t.Fatalf("register %s: %d %.300s", email, pg.status, pg.body)
	}
	return b
}

// endUser signs a phone in with the code from the outbox.
func (p *platform) endUser(t *testing.T, phone string) *browser {
	t.Helper()
	b := p.browser(t)
	if pg := b.form("/store/login", "/store/login", "phone", phone); pg.status != 200 || !strings.Contains(pg.body, `data-testid="code-form"`) {
		t.Fatalf("send code: %d %.300s", pg.status, pg.body)
	}
	code := p.code(t, phone)
	if pg := b.form("/store/login", "/store/login/code", "phone", phone, "code", code); pg.status != http.StatusSeeOther {
		t.Fatalf("sign in: %d %.300s", pg.status, pg.body)
	}
	return b
}

var codeRE = regexp.MustCompile(`\b(\d{6})\b`)

// code reads the newest login code sent to phone from the outbox.
func (p *platform) code(t *testing.T, phone string) string {
	t.Helper()
	es, err := p.outbox.List(context.Background(), notify.Filter{To: phone, Limit: 1})
	if err != nil || len(es) == 0 {
		t.Fatalf("no SMS to %s: %v", phone, err)
	}
	m := codeRE.FindStringSubmatch(es[0].Body)
	if m == nil {
		t.Fatalf("no code in %q", es[0].Body)
	}
	return m[1]
}
