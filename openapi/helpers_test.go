package openapi_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/guesttest"
	"github.com/jifu-open/jifu/host/kvstore"
	"github.com/jifu-open/jifu/host/ledger"
	"github.com/jifu-open/jifu/host/nonce"
	"github.com/jifu-open/jifu/host/notify"
	"github.com/jifu-open/jifu/host/outbox"
	"github.com/jifu-open/jifu/host/payment"
	"github.com/jifu-open/jifu/host/payment/paymenttest"
	"github.com/jifu-open/jifu/marketplace"
	"github.com/jifu-open/jifu/openapi"
	"github.com/jifu-open/jifu/sdk/opensign"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is one test's platform: the marketplace, payments, outbox and the
// open API server on a real listener (so requests come from 127.0.0.1).
type env struct {
	t      *testing.T
	pool   *pgxpool.Pool
	svc    *marketplace.Service
	pay    *payment.Service
	ledger *ledger.Ledger
	ob     *outbox.Outbox
	events *paymenttest.Events
	srv    *httptest.Server
	api    *openapi.Server
	clock  *clock
	admin  marketplace.Actor
	sms    *notify.Outbox
}

type option func(*openapi.Config)

func newEnv(t *testing.T, opts ...option) *env {
	t.Helper()
	ctx := context.Background()
	pool := dbtest.Pool(t)
	consents := marketplace.NewConsents(pool)
	h, err := host.New(ctx, host.Config{KV: kvstore.New(pool), Consent: consents, ExtraScopes: []host.Scope{
		{Name: "user.basic", Description: "Your phone number (masked) and region", NeedsConsent: true},
		{Name: "user.realname", Description: "Your real name (masked)", NeedsConsent: true}}})
	if err != nil {
		t.Fatal(err)
	}
	sms := notify.NewOutbox(pool)
	svc, err := marketplace.New(marketplace.Config{Pool: pool, Host: h, MasterKey: []byte("0123456789abcdef0123456789abcdef"),
		Artifacts: marketplace.NewFSArtifacts(t.TempDir()), Notifier: notify.New(pool, sms, notify.Options{}), Consents: consents})
	if err != nil {
		t.Fatal(err)
	}
	l := ledger.New(pool)
	events := paymenttest.NewEvents(t, pool)
	pay, err := payment.New(payment.Config{Pool: pool, Ledger: l, Events: events})
	if err != nil {
		t.Fatal(err)
	}
	ob, err := outbox.New(outbox.Config{Pool: pool, Sinks: map[string]outbox.Sink{
		"webhook": outbox.SinkFunc(func(context.Context, outbox.Event) (int, error) { return 200, nil })}})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now()}
	cfg := openapi.Config{Market: svc, Pool: pool, Payments: pay, Deliveries: ob, Nonces: nonce.New(pool),
		Now: clk.Now, OAuthSecret: []byte("an oauth hmac secret of 32 bytes!!")}
	for _, o := range opts {
		o(&cfg)
	}
	api, err := openapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler(nil))
	t.Cleanup(func() {
		srv.Close()
		_ = svc.Close(ctx)
		_ = h.Close(ctx)
	})
	admin, err := svc.CreateStaff(ctx, marketplace.System, unique("admin")+"@jifu.test", "Admin", "admin password 1", marketplace.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, pool: pool, svc: svc, pay: pay, ledger: l, ob: ob, events: events, srv: srv, api: api, clock: clk,
		admin: admin.Actor(), sms: sms}
}

func unique(prefix string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// app is a developer's app with its sandbox key.
type app struct {
	dev  marketplace.Actor
	app  *marketplace.App
	key  opensign.Key
	prod opensign.Key // set once a version was approved
}

// newApp registers a developer at level, creates an app whitelisting
// whitelist, and returns it with its sandbox key.
func (e *env) newApp(level string, whitelist ...string) *app {
	e.t.Helper()
	ctx := context.Background()
	acct, err := e.svc.RegisterDeveloper(ctx, marketplace.Registration{Email: unique("dev") + "@jifu.test",
		Password: "correct horse battery", Name: "Dev", Kind: marketplace.KindIndividual, Level: level})
	if err != nil {
		e.t.Fatal(err)
	}
	if level != marketplace.LevelBasic {
		if err := e.svc.DecideDeveloper(ctx, e.admin, acct.DeveloperID, true, "ok"); err != nil {
			e.t.Fatal(err)
		}
	}
	dev := acct.Actor()
	a, cred, err := e.svc.CreateApp(ctx, dev, marketplace.AppInput{Slug: unique("app"), Name: "Test app", Category: "tools",
		IPWhitelist: whitelist})
	if err != nil {
		e.t.Fatal(err)
	}
	return &app{dev: dev, app: a, key: opensign.Key{AppKey: cred.AppKey, Secret: []byte(cred.Secret)}}
}

func helloManifest(slug, version string, scopes string) []byte {
	return fmt.Appendf(nil, `{"abi":1,"slug":%q,"name":"Hello","version":%q,"scopes":["storage"%s],"entry_points":["handle_http"],
		"limits":{"timeout_ms":1000},"self_test":[{"method":"GET","path":"/","expect_status":200}]}`, slug, version, scopes)
}

func helloWasm(t testing.TB) []byte { return guesttest.ReadFile(t, "host/testdata/wat/hello.wasm") }

// release uploads, approves and releases a version of a to everyone, and
// sets a.prod to the production key issued on approval.
func (e *env) release(a *app, scopes string) {
	e.t.Helper()
	ctx := context.Background()
	v, err := e.svc.UploadVersion(ctx, a.dev, a.app.ID, helloWasm(e.t), helloManifest(a.app.Slug, "1.0.0", scopes))
	if err != nil {
		e.t.Fatalf("upload: %v %v", err, marketplace.Problems(err))
	}
	if err := e.svc.SubmitVersion(ctx, a.dev, v.ID); err != nil {
		e.t.Fatal(err)
	}
	cred, err := e.svc.Approve(ctx, e.admin, v.ID, "ok")
	if err != nil {
		e.t.Fatal(err)
	}
	if cred != nil {
		a.prod = opensign.Key{AppKey: cred.AppKey, Secret: []byte(cred.Secret)}
	}
	if _, err := e.svc.StartRelease(ctx, a.dev, v.ID, marketplace.ReleasePlan{Percent: 100}); err != nil {
		e.t.Fatal(err)
	}
}

// login logs a store user in by SMS code and returns the session token.
func (e *env) login(phone string) (string, *marketplace.User) {
	e.t.Helper()
	ctx := context.Background()
	if err := e.svc.RequestLoginCode(ctx, phone); err != nil {
		e.t.Fatal(err)
	}
	msgs, err := e.sms.List(ctx, notify.Filter{To: phone})
	if err != nil || len(msgs) == 0 {
		e.t.Fatalf("no SMS to %s: %v", phone, err)
	}
	code := lastCode(msgs[0].Body)
	tok, _, u, err := e.svc.LoginWithCode(ctx, phone, code)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok, u
}

func lastCode(body string) string {
	for i := 0; i+6 <= len(body); i++ {
		ok := true
		for j := i; j < i+6; j++ {
			if body[j] < '0' || body[j] > '9' {
				ok = false
				break
			}
		}
		if ok {
			return body[i : i+6]
		}
	}
	return ""
}

// client returns a plain HTTP client (no redirects followed).
func noRedirect() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
