package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/manifest"
	"github.com/jifu-open/jifu/host/notify"
	"github.com/jifu-open/jifu/marketplace"
)

// releaseEvaluationInterval is how often serve checks gray releases for an
// automatic rollback.
const releaseEvaluationInterval = 30 * time.Second

// marketplaceParts is the marketplace as serve runs it.
type marketplaceParts struct {
	svc      *marketplace.Service
	serving  *marketplace.Serving
	notifier *notify.Notifier
	outbox   *notify.Outbox
	key      []byte // the master key, for the demo passwords
}

// startMarketplace builds the marketplace over the platform's database and
// host: artifacts on the filesystem (DATA_DIR/artifacts) or in S3 when
// JIFU_ARTIFACTS_BUCKET is set (JIFU_S3_ENDPOINT for an S3-compatible peer),
// SMS through the local outbox.
func (p *platform) startMarketplace(ctx context.Context, e *env) error {
	key, err := masterKey(e)
	if err != nil {
		return err
	}
	arts, err := artifactStore(ctx, e)
	if err != nil {
		return err
	}
	outbox := notify.NewOutbox(p.pgpool)
	n := notify.New(p.pgpool, outbox, notify.Options{})
	svc, err := marketplace.New(marketplace.Config{
		Pool:      p.pgpool,
		Host:      p.host,
		MasterKey: key,
		Artifacts: arts,
		Notifier:  n,
		Consents:  p.consents,
		Logger:    e.log,
		AppConfig: p.appConfig,
	})
	if err != nil {
		return err
	}
	p.market = &marketplaceParts{svc: svc, notifier: n, outbox: outbox, key: key,
		serving: marketplace.NewServing(svc, p.host, marketplace.ServingOptions{Config: p.appConfig})}
	p.link.set(p.market)
	return nil
}

func artifactStore(ctx context.Context, e *env) (marketplace.Artifacts, error) {
	bucket := e.getenv("JIFU_ARTIFACTS_BUCKET")
	if bucket == "" {
		return marketplace.NewFSArtifacts(filepath.Join(e.cli.DataDir, "artifacts")), nil
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeInvalid, "artifacts: AWS configuration: %w", err)
	}
	endpoint := e.getenv("JIFU_S3_ENDPOINT")
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			o.UsePathStyle = true
		}
	})
	return &marketplace.S3Artifacts{Client: client, Bucket: bucket, Prefix: "artifacts/"}, nil
}

func (m *marketplaceParts) close(ctx context.Context) {
	_ = m.serving.Close(ctx)
	_ = m.svc.Close(ctx)
}

// evaluateReleases runs the automatic-rollback check every interval until
// ctx ends.
func (m *marketplaceParts) evaluateReleases(ctx context.Context, e *env, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := m.svc.EvaluateReleases(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("evaluating gray releases failed", "err", err)
		}
		if err := m.svc.PurgeExpired(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("purging expired sessions failed", "err", err)
		}
	}
}

// released lists the slugs released to everyone.
func (m *marketplaceParts) released(ctx context.Context) []string {
	cat, err := m.svc.Catalog(ctx, "")
	if err != nil {
		return nil
	}
	out := make([]string, len(cat))
	for i, l := range cat {
		out[i] = l.App.Slug
	}
	return out
}

// demoPassword derives a stable password for a seeded account from the
// master key: the same on every start, unknown to anyone without the key.
func (m *marketplaceParts) demoPassword(email string) string {
	mac := hmac.New(sha256.New, m.key)
	mac.Write([]byte("jifu/demo-password\x00" + email))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))[:16]
}

// Seeded accounts and users.
const (
	seedDeveloperEmail = "dev@jifu.local"
	seedDomain         = "@jifu.local"
)

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

// seedMarketplace makes sure the demo marketplace exists (idempotent): an
// admin, a reviewer, risk staff, the first-party developer with every
// plugin in pluginsDir published (uploaded, checked, approved, released to
// everyone), and store users of levels 101, 102, 201 and 301. It returns
// the login lines to print.
func (p *platform) seedMarketplace(ctx context.Context, e *env, pluginsDir string) ([]string, error) {
	m := p.market
	svc := m.svc
	var lines []string
	staff := []struct {
		name string
		role marketplace.Role
	}{{"admin", marketplace.RoleAdmin}, {"reviewer", marketplace.RoleReviewer}, {"risk", marketplace.RoleRisk}}
	for _, st := range staff {
		email := st.name + seedDomain
		pw := m.demoPassword(email)
		if _, err := svc.AccountByEmail(ctx, marketplace.System, email); jifu.ErrorCode(err) == jifu.CodeNotFound {
			if _, err := svc.CreateStaff(ctx, marketplace.System, email, "Demo "+st.name, pw, st.role); err != nil {
				return nil, err
			}
		} else if err != nil {
			return nil, err
		}
		lines = append(lines, fmt.Sprintf("%-9s login  %s / %s", st.name, email, pw))
	}
	pw := m.demoPassword(seedDeveloperEmail)
	acct, err := svc.AccountByEmail(ctx, marketplace.System, seedDeveloperEmail)
	if jifu.ErrorCode(err) == jifu.CodeNotFound {
		acct, err = svc.RegisterDeveloper(ctx, marketplace.Registration{Email: seedDeveloperEmail, Password: pw, Name: "Demo developer",
			Organisation: "即付 first-party apps", Kind: marketplace.KindInstitution, Level: marketplace.LevelFull})
		if err == nil {
			err = svc.DecideDeveloper(ctx, marketplace.System, acct.DeveloperID, true, "first-party")
		}
	}
	if err != nil {
		return nil, err
	}
	lines = append(lines, fmt.Sprintf("%-9s login  %s / %s", "developer", seedDeveloperEmail, pw))
	if err := publishPlugins(ctx, e, svc, acct.Actor(), pluginsDir); err != nil {
		return nil, err
	}
	for _, su := range seedUsers {
		u, err := svc.EnsureUser(ctx, marketplace.System, su.phone)
		if err != nil {
			return nil, err
		}
		level, ch, rg := su.level, su.channel, su.region
		if u.Level != level || u.Channel != ch || u.Region != rg {
			if err := svc.UpdateUser(ctx, marketplace.System, u.ID, marketplace.UserUpdate{Level: &level, Channel: &ch, Region: &rg}); err != nil {
				return nil, err
			}
		}
		lines = append(lines, fmt.Sprintf("store user level %d  phone %s (SMS code: see the outbox in the developer console)", su.level, su.phone))
	}
	return lines, nil
}

// publishPlugins publishes every plugin in dir through the marketplace as
// the first-party developer: create the app, upload, submit, approve and
// release the version to everyone, each step only when not done before.
func publishPlugins(ctx context.Context, e *env, svc *marketplace.Service, dev marketplace.Actor, dir string) error {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		e.log.Warn("no plugins to publish (run make build first)", "dir", dir)
		return nil
	}
	if err != nil {
		return err
	}
	for _, ent := range entries {
		if !ent.IsDir() {
			continue
		}
		sub := filepath.Join(dir, ent.Name())
		wasm, err := os.ReadFile(filepath.Join(sub, "app.wasm"))
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(sub, manifest.FileName))
		if err != nil {
			continue
		}
		if err := publishPlugin(ctx, e, svc, dev, wasm, raw); err != nil {
			return fmt.Errorf("plugin %s: %w", ent.Name(), err)
		}
	}
	return nil
}

func publishPlugin(ctx context.Context, e *env, svc *marketplace.Service, dev marketplace.Actor, wasm, raw []byte) error {
	m, ps := manifest.Parse(raw)
	if len(ps) > 0 {
		return &host.ValidationError{Problems: ps}
	}
	app, err := svc.AppBySlug(ctx, dev, m.Slug)
	if jifu.ErrorCode(err) == jifu.CodeNotFound {
		app, _, err = svc.CreateApp(ctx, dev, marketplace.AppInput{Slug: m.Slug, Name: m.Name, Category: orDefault(m.Category, "other"),
			Description: m.Description, Icon: "✦"})
	}
	if err != nil {
		return err
	}
	versions, err := svc.Versions(ctx, dev, app.ID)
	if err != nil {
		return err
	}
	var v *marketplace.Version
	for _, x := range versions {
		if x.Version == m.Version {
			v = x
		}
	}
	if v == nil {
		if v, err = svc.UploadVersion(ctx, dev, app.ID, wasm, raw); err != nil {
			return err
		}
		e.log.Info("first-party version uploaded", "app", m.Slug, "version", m.Version, "status", v.Status)
	} else if v.SHA256 != marketplace.SHA256(wasm) {
		e.log.Warn("plugin changed without a new version number; keeping the published one (raise the version to publish)", "app", m.Slug, "version", m.Version)
	}
	if v.Status == marketplace.StatusCheckFailed {
		e.log.Warn("first-party version failed its checks; not published", "app", m.Slug, "version", v.Version)
		return nil
	}
	if v.Status == marketplace.StatusChecked {
		if err := svc.SubmitVersion(ctx, dev, v.ID); err != nil {
			return err
		}
		v.Status = marketplace.StatusInReview
	}
	if v.Status == marketplace.StatusInReview {
		if _, err := svc.Approve(ctx, marketplace.System, v.ID, "first-party app, approved at seeding"); err != nil {
			return err
		}
		v.Status = marketplace.StatusApproved
	}
	if v.Status != marketplace.StatusApproved {
		return nil
	}
	full, gray, err := svc.ActiveReleases(ctx, dev, app.ID)
	if err != nil {
		return err
	}
	if (full != nil && full.VersionID == v.ID) || (gray != nil) {
		return nil
	}
	if full != nil && full.VersionID > v.ID {
		return nil // a newer version is out
	}
	_, err = svc.StartRelease(ctx, dev, v.ID, marketplace.ReleasePlan{Percent: 100})
	return err
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
