package marketplace_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/guesttest"
	"github.com/jifu-open/jifu/host/kvstore"
	"github.com/jifu-open/jifu/host/notify"
	"github.com/jifu-open/jifu/marketplace"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// env is one test's marketplace: a Service over the package's database, a
// real host, and accounts of each role.
type env struct {
	t         testing.TB
	svc       *marketplace.Service
	host      *host.Host
	consents  *marketplace.Consents
	outbox    *notify.Outbox
	artifacts string
	admin     marketplace.Actor
	reviewer  marketplace.Actor
	dev       marketplace.Actor
	devPass   string
}

type envOption func(*marketplace.Config)

func newEnv(t *testing.T, opts ...envOption) *env { return newBenchEnv(t, opts...) }

// newBenchEnv is newEnv for tests and benchmarks.
func newBenchEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	ctx := context.Background()
	pool := dbtest.Pool(t)
	consents := marketplace.NewConsents(pool)
	h, err := host.New(ctx, host.Config{KV: kvstore.New(pool), Consent: consents,
		ExtraScopes: []host.Scope{{Name: "user.basic", Description: "Your profile", NeedsConsent: true}}})
	if err != nil {
		t.Fatal(err)
	}
	outbox := notify.NewOutbox(pool)
	cfg := marketplace.Config{
		Pool:      pool,
		Host:      h,
		MasterKey: []byte("0123456789abcdef0123456789abcdef"),
		Artifacts: marketplace.NewFSArtifacts(t.TempDir()),
		Notifier:  notify.New(pool, outbox, notify.Options{}),
		Consents:  consents,
	}
	for _, o := range opts {
		o(&cfg)
	}
	svc, err := marketplace.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = svc.Close(ctx)
		_ = h.Close(ctx)
	})
	e := &env{t: t, svc: svc, host: h, consents: consents, outbox: outbox, devPass: "correct horse battery"}
	if fs, ok := cfg.Artifacts.(*marketplace.FSArtifacts); ok {
		e.artifacts = fs.Dir
	}
	admin, err := svc.CreateStaff(ctx, marketplace.System, unique("admin")+"@jifu.test", "Admin", "admin password 1", marketplace.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	e.admin = admin.Actor()
	rev, err := svc.CreateStaff(ctx, e.admin, unique("rev")+"@jifu.test", "Reviewer", "review password 1", marketplace.RoleReviewer)
	if err != nil {
		t.Fatal(err)
	}
	e.reviewer = rev.Actor()
	e.dev = e.newDeveloper(marketplace.LevelBasic)
	return e
}

func (e *env) newDeveloper(level string) marketplace.Actor {
	e.t.Helper()
	acct, err := e.svc.RegisterDeveloper(context.Background(), marketplace.Registration{
		Email: unique("dev") + "@jifu.test", Password: e.devPass, Name: "Dev", Kind: marketplace.KindIndividual, Level: level})
	if err != nil {
		e.t.Fatal(err)
	}
	return acct.Actor()
}

// unique returns a fresh lower-case name: every test of the package shares
// one database.
func unique(prefix string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// helloWasm is the WAT hello fixture: handle_http with kv_put and kv_get
// (scope storage), answering 200 "neutral".
func helloWasm(t testing.TB) []byte {
	return guesttest.ReadFile(t, "host/testdata/wat/hello.wasm")
}

func helloManifest(slug, version string, extra string) []byte {
	return fmt.Appendf(nil, `{"abi":1,"slug":%q,"name":"Hello","version":%q,"scopes":["storage"%s],"entry_points":["handle_http"],
		"limits":{"timeout_ms":1000},"self_test":[{"method":"GET","path":"/","expect_status":200}]}`, slug, version, extra)
}

// newApp creates an app for dev.
func (e *env) newApp(dev marketplace.Actor) (*marketplace.App, *marketplace.Credential) {
	e.t.Helper()
	app, cred, err := e.svc.CreateApp(context.Background(), dev, marketplace.AppInput{Slug: unique("app"), Name: "Test app", Category: "tools"})
	if err != nil {
		e.t.Fatal(err)
	}
	return app, cred
}

// approved uploads, submits and approves a version of app.
func (e *env) approved(dev marketplace.Actor, app *marketplace.App, version string) *marketplace.Version {
	e.t.Helper()
	ctx := context.Background()
	v, err := e.svc.UploadVersion(ctx, dev, app.ID, helloWasm(e.t), helloManifest(app.Slug, version, ""))
	if err != nil {
		e.t.Fatalf("upload: %v %v", err, marketplace.Problems(err))
	}
	if v.Status != marketplace.StatusChecked {
		e.t.Fatalf("status %s, report %+v", v.Status, v.Report)
	}
	if err := e.svc.SubmitVersion(ctx, dev, v.ID); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.svc.Approve(ctx, e.reviewer, v.ID, "ok"); err != nil {
		e.t.Fatal(err)
	}
	return v
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := jifu.ErrorCode(err); got != code {
		t.Fatalf("error code %q (%v), want %q", got, err, code)
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n++
		}
		return nil
	})
	return n
}

func hostCaller(user string) host.Caller { return host.Caller{User: user} }

// uniquePhone returns a fresh mobile number.
func uniquePhone() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	n := (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])) % 100000000
	return fmt.Sprintf("139%08d", n)
}
