package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/notify"
	"github.com/jifu-open/jifu/marketplace"
)

// consentMode says whose consent the host asks before a scoped call.
type consentMode int

const (
	// consentAll treats every scope as consented: `jifu app run`, where the
	// developer is its own test user.
	consentAll consentMode = iota
	// consentStore asks the store's grants (marketplace.Consents).
	consentStore
	// consentStoreDev asks the store's grants for store users and allows
	// every scope for other identities (dev mode's X-Jifu-User).
	consentStoreDev
)

func (m consentMode) checker(c *marketplace.Consents) host.ConsentChecker {
	switch m {
	case consentStore:
		return c
	case consentStoreDev:
		return devConsents{c}
	}
	return host.AllowAll{}
}

// devConsents answers for store users (and self-test users) from the
// store, and allows everything to dev identities.
type devConsents struct{ store *marketplace.Consents }

func (d devConsents) Consented(ctx context.Context, app, user, scope string) (bool, error) {
	if _, ok := marketplace.ParseUserRef(user); ok || strings.HasPrefix(user, marketplace.SelfTestPrefix) {
		return d.store.Consented(ctx, app, user, scope)
	}
	return true, nil
}

// market is the marketplace serve runs: the Service, the serving of
// released versions, the SMS channel and the release evaluator.
type market struct {
	svc     *marketplace.Service
	serving *marketplace.Serving
	outbox  *notify.Outbox
	stop    context.CancelFunc
	done    chan struct{}
}

// EvaluateEvery is how often gray releases are checked for an automatic
// rollback.
const evaluateEvery = 30 * time.Second

// startMarket builds the marketplace over the platform's database and host.
func startMarket(ctx context.Context, e *env, p *platform) error {
	pool, ok := p.pool.(*pgxpool.Pool)
	if !ok {
		return jifu.Errorf(jifu.CodeInternal, "the platform database is not a pgx pool")
	}
	key, err := masterKey(e)
	if err != nil {
		return err
	}
	outbox := notify.NewOutbox(pool)
	svc, err := marketplace.New(marketplace.Config{
		Pool: pool, Host: p.host, MasterKey: key, Logger: e.log,
		Artifacts: marketplace.NewFSArtifacts(filepath.Join(e.cli.DataDir, "artifacts")),
		Notifier:  notify.New(pool, outbox, notify.Options{}),
		Consents:  p.consents,
		AppConfig: p.appConfig,
	})
	if err != nil {
		return err
	}
	m := &market{svc: svc, outbox: outbox, done: make(chan struct{}),
		serving: marketplace.NewServing(svc, p.host, marketplace.ServingOptions{Config: p.appConfig})}
	p.market = m
	if err := m.serving.Preload(ctx); err != nil {
		e.log.Warn("preloading released app versions failed; they load on first use", "err", err)
	}
	ectx, stop := context.WithCancel(context.WithoutCancel(ctx))
	m.stop = stop
	go func() {
		defer close(m.done)
		t := time.NewTicker(evaluateEvery)
		defer t.Stop()
		for {
			select {
			case <-ectx.Done():
				return
			case <-t.C:
				if _, err := svc.EvaluateReleases(ectx); err != nil && ectx.Err() == nil {
					e.log.Warn("evaluating gray releases failed", "err", err)
				}
			}
		}
	}()
	return nil
}

// Close stops the evaluator, writes pending statistics and unloads apps.
func (m *market) Close(ctx context.Context) {
	if m.stop != nil {
		m.stop()
		<-m.done
	}
	_ = m.svc.Close(ctx)
	_ = m.serving.Close(ctx)
}

// Demo logins `make run` (serve --dev) seeds and prints. Development only:
// the passwords are public.
const (
	seedPassword  = "jifu-demo-2026"
	seedAdmin     = "admin@jifu.local"
	seedReviewer  = "reviewer@jifu.local"
	seedRisk      = "risk@jifu.local"
	seedDeveloper = "developer@jifu.local"
)

// seedUsers are the store's demo end users: phone, level, channel, region.
var seedUsers = []struct {
	phone   string
	level   int
	channel string
	region  string
}{
	{"13800000101", 101, "natural", "310000"},
	{"13800000102", 102, "natural", "110000"},
	{"13800000201", 201, "diversion", "440000"},
	{"13800000301", 301, "diversion", "310000"},
}

// seedMarket creates, once, the demo staff, a developer with the hello app
// published (from the built plugins in appsDir) and store users, and
// returns the lines to print.
func seedMarket(ctx context.Context, p *platform, appsDir string) ([]string, error) {
	svc := p.market.svc
	ignoreTaken := func(err error) error {
		if jifu.ErrorCode(err) == jifu.CodeConflict {
			return nil
		}
		return err
	}
	for _, s := range []struct {
		email, name string
		role        marketplace.Role
	}{{seedAdmin, "Ada Admin", marketplace.RoleAdmin}, {seedReviewer, "Rui Reviewer", marketplace.RoleReviewer}, {seedRisk, "Rong Risk", marketplace.RoleRisk}} {
		if _, err := svc.CreateStaff(ctx, marketplace.System, s.email, s.name, seedPassword, s.role); ignoreTaken(err) != nil {
			return nil, err
		}
	}
	acct, err := svc.RegisterDeveloper(ctx, marketplace.Registration{Email: seedDeveloper, Password: seedPassword, Name: "Dai Developer",
		Organisation: "Jifu Labs", Kind: marketplace.KindPartner, Phone: "13900000000", Level: marketplace.LevelStandard})
	switch {
	case err == nil:
		if err := svc.DecideDeveloper(ctx, marketplace.System, acct.DeveloperID, true, "demo developer"); err != nil {
			return nil, err
		}
		if err := publishHello(ctx, svc, acct.Actor(), appsDir); err != nil {
			return nil, err
		}
	case jifu.ErrorCode(err) != jifu.CodeConflict:
		return nil, err
	}
	var users []string
	for _, u := range seedUsers {
		usr, err := svc.EnsureUser(ctx, marketplace.System, u.phone)
		if err != nil {
			return nil, err
		}
		lvl, ch, rg := u.level, u.channel, u.region
		if err := svc.UpdateUser(ctx, marketplace.System, usr.ID, marketplace.UserUpdate{Level: &lvl, Channel: &ch, Region: &rg}); err != nil {
			return nil, err
		}
		users = append(users, fmt.Sprintf("%s (level %d)", u.phone, u.level))
	}
	return []string{
		"demo logins (password " + seedPassword + "):",
		"  admin     " + seedAdmin,
		"  reviewer  " + seedReviewer,
		"  risk      " + seedRisk,
		"  developer " + seedDeveloper + " (owns the hello app)",
		"  store users sign in by SMS code (read it in the outbox): " + strings.Join(users, ", "),
	}, nil
}

// publishHello takes the built hello plugin through upload, review and a
// full release.
func publishHello(ctx context.Context, svc *marketplace.Service, dev marketplace.Actor, appsDir string) error {
	if appsDir == "" {
		return nil
	}
	wasm, err := os.ReadFile(filepath.Join(appsDir, "hello", "app.wasm"))
	if errors.Is(err, os.ErrNotExist) {
		return nil // nothing built: no app to publish
	}
	if err != nil {
		return err
	}
	man, err := os.ReadFile(filepath.Join(appsDir, "hello", "jifu.json"))
	if err != nil {
		return err
	}
	app, _, err := svc.CreateApp(ctx, dev, marketplace.AppInput{Slug: "hello", Name: "Hello", Icon: "👋", Category: "tools",
		Description: "A greeting page with a visit counter kept in the app's own store."})
	if err != nil {
		return err
	}
	v, err := svc.UploadVersion(ctx, dev, app.ID, wasm, man)
	if err != nil {
		return err
	}
	if err := svc.SubmitVersion(ctx, dev, v.ID); err != nil {
		return err
	}
	if _, err := svc.Approve(ctx, marketplace.System, v.ID, "first-party demo app"); err != nil {
		return err
	}
	_, err = svc.StartRelease(ctx, dev, v.ID, marketplace.ReleasePlan{Percent: 100})
	return err
}
