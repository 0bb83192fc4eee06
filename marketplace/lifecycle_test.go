package marketplace_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/manifest"
	"github.com/jifu-open/jifu/marketplace"
)

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	app, cred := e.newApp(e.dev)
	if cred.Env != marketplace.EnvSandbox || cred.Secret == "" || !strings.HasPrefix(cred.AppKey, "sbx") {
		t.Fatalf("sandbox credential %v", cred)
	}
	v, err := e.svc.UploadVersion(ctx, e.dev, app.ID, helloWasm(t), helloManifest(app.Slug, "1.0.0", ""))
	if err != nil {
		t.Fatal(err, marketplace.Problems(err))
	}
	if v.Status != marketplace.StatusChecked || !v.Report.Passed || len(v.Report.SelfTests) != 1 || v.Report.SelfTests[0].Status != 200 {
		t.Fatalf("version %+v report %+v", v, v.Report)
	}
	if want := []string{"jifu_v1.kv_get", "jifu_v1.kv_put"}; fmt.Sprint(v.Imports) != fmt.Sprint(want) {
		t.Fatalf("imports %v, want %v", v.Imports, want)
	}
	q, err := e.svc.ReviewQueue(ctx, e.reviewer)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range q {
		if x.ID == v.ID {
			t.Fatal("an unsubmitted version is in the queue")
		}
	}
	if err := e.svc.SubmitVersion(ctx, e.dev, v.ID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, e.svc.SubmitVersion(ctx, e.dev, v.ID), jifu.CodeConflict)
	q, _ = e.svc.ReviewQueue(ctx, e.reviewer)
	found := false
	for _, x := range q {
		found = found || x.ID == v.ID
	}
	if !found {
		t.Fatal("submitted version not in the queue")
	}
	rev, err := e.svc.Review(ctx, e.reviewer, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rev.Previous != nil || fmt.Sprint(rev.Diff.ScopesAdded) != "[storage]" || len(rev.Diff.ImportsAdded) != 2 {
		t.Fatalf("first review diff %+v", rev.Diff)
	}
	prod, err := e.svc.Approve(ctx, e.reviewer, v.ID, "fine")
	if err != nil {
		t.Fatal(err)
	}
	if prod == nil || prod.Env != marketplace.EnvProduction || prod.Secret == "" {
		t.Fatalf("no production credential on first approval: %v", prod)
	}

	// Second version: more host calls; the diff shows the limit change.
	m2 := strings.Replace(string(helloManifest(app.Slug, "1.1.0", "")), `"timeout_ms":1000`, `"timeout_ms":1500`, 1)
	v2, err := e.svc.UploadVersion(ctx, e.dev, app.ID, helloWasm(t), []byte(m2))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.SubmitVersion(ctx, e.dev, v2.ID); err != nil {
		t.Fatal(err)
	}
	rev, err = e.svc.Review(ctx, e.reviewer, v2.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rev.Previous == nil || rev.Previous.ID != v.ID || len(rev.Diff.Limits) != 1 || rev.Diff.Limits[0] != (marketplace.LimitChange{Name: "timeout_ms", Old: 1000, New: 1500}) ||
		len(rev.Diff.ImportsAdded)+len(rev.Diff.ScopesAdded) != 0 {
		t.Fatalf("second review %+v", rev.Diff)
	}
	again, err := e.svc.Approve(ctx, e.reviewer, v2.ID, "")
	if err != nil || again != nil {
		t.Fatalf("second approval: credential %v, %v (want none: issued once)", again, err)
	}

	// Audit trail of the reviewer's actions.
	log, err := e.svc.AuditLog(ctx, e.admin, fmt.Sprintf("version:%d", v.ID), 10)
	if err != nil || len(log) != 1 || log[0].Action != "version.approve" || log[0].ActorID != e.reviewer.AccountID {
		t.Fatalf("audit %+v %v", log, err)
	}
}

func TestAuthorization(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	other := e.newDeveloper(marketplace.LevelBasic)
	app, _ := e.newApp(e.dev)

	// Another developer sees nothing of the app and can do nothing to it.
	_, err := e.svc.App(ctx, other, app.ID)
	wantCode(t, err, jifu.CodeNotFound)
	_, err = e.svc.UploadVersion(ctx, other, app.ID, helloWasm(t), helloManifest(app.Slug, "1.0.0", ""))
	wantCode(t, err, jifu.CodeNotFound)
	_, err = e.svc.AppKeys(ctx, other, app.ID)
	wantCode(t, err, jifu.CodeNotFound)
	_, err = e.svc.RotateSecret(ctx, other, app.ID, marketplace.EnvSandbox, 0)
	wantCode(t, err, jifu.CodeNotFound)
	_, err = e.svc.UpdateApp(ctx, other, app.ID, marketplace.AppInput{Name: "mine now"})
	wantCode(t, err, jifu.CodeNotFound)
	list, err := e.svc.Apps(ctx, other)
	if err != nil || len(list) != 0 {
		t.Fatalf("other developer lists %d apps, %v", len(list), err)
	}

	v, err := e.svc.UploadVersion(ctx, e.dev, app.ID, helloWasm(t), helloManifest(app.Slug, "1.0.0", ""))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Version(ctx, other, v.ID)
	wantCode(t, err, jifu.CodeNotFound)
	wantCode(t, e.svc.SubmitVersion(ctx, other, v.ID), jifu.CodeNotFound)
	_, err = e.svc.StartRelease(ctx, e.dev, v.ID, marketplace.ReleasePlan{Percent: 100})
	wantCode(t, err, jifu.CodeConflict) // unreviewed: never released
	if err := e.svc.SubmitVersion(ctx, e.dev, v.ID); err != nil {
		t.Fatal(err)
	}
	// Only reviewers (and admins) review; nobody reviews from outside.
	for _, who := range []marketplace.Actor{e.dev, other, {Role: marketplace.RoleRisk, AccountID: 1}} {
		_, err = e.svc.Approve(ctx, who, v.ID, "self-approved")
		wantCode(t, err, jifu.CodeDenied)
		wantCode(t, e.svc.Reject(ctx, who, v.ID, "no"), jifu.CodeDenied)
		_, err = e.svc.ReviewQueue(ctx, who)
		wantCode(t, err, jifu.CodeDenied)
	}
	_, err = e.svc.StartRelease(ctx, e.dev, v.ID, marketplace.ReleasePlan{Percent: 100})
	wantCode(t, err, jifu.CodeConflict) // in review: not yet
	wantCode(t, e.svc.Reject(ctx, e.reviewer, v.ID, ""), jifu.CodeInvalid)
	if err := e.svc.Reject(ctx, e.reviewer, v.ID, "the self-test page is empty"); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.StartRelease(ctx, e.dev, v.ID, marketplace.ReleasePlan{Percent: 100})
	wantCode(t, err, jifu.CodeConflict) // rejected: never released
	got, err := e.svc.Version(ctx, e.dev, v.ID)
	if err != nil || got.Status != marketplace.StatusRejected || got.ReviewComment != "the self-test page is empty" {
		t.Fatalf("developer sees %+v, %v", got, err)
	}

	// Nothing released: serving finds nothing for anyone.
	srv := marketplace.NewServing(e.svc, e.host, marketplace.ServingOptions{})
	t.Cleanup(func() { _ = srv.Close(ctx) })
	_, err = srv.Route(ctx, app.Slug, "u1")
	wantCode(t, err, jifu.CodeNotFound)

	// A developer cannot release or roll back another's approved version.
	v2 := e.approved(e.dev, app, "1.0.1")
	if _, err := e.svc.StartRelease(ctx, e.dev, v2.ID, marketplace.ReleasePlan{Percent: 100}); err != nil {
		t.Fatal(err)
	}
	// Later versions that are unreviewed, in review or rejected never serve
	// anyone: everyone stays on the released one.
	unreviewed, err := e.svc.UploadVersion(ctx, e.dev, app.ID, helloWasm(t), helloManifest(app.Slug, "1.1.0", ""))
	if err != nil {
		t.Fatal(err)
	}
	for _, plan := range []marketplace.ReleasePlan{{Percent: 100}, {Percent: 50}, {Percent: 100, Segment: marketplace.Segment{Whitelist: []string{"u1"}}}} {
		_, err = e.svc.StartRelease(ctx, e.dev, unreviewed.ID, plan)
		wantCode(t, err, jifu.CodeConflict)
	}
	for _, u := range []string{"u1", "u2", "u3", ""} {
		r, err := srv.Route(ctx, app.Slug, u)
		if err != nil || r.VersionID != v2.ID {
			t.Fatalf("user %q served %+v, %v; want the approved version", u, r, err)
		}
	}
	_, err = e.svc.StartRelease(ctx, other, v2.ID, marketplace.ReleasePlan{Percent: 100})
	wantCode(t, err, jifu.CodeNotFound)
	wantCode(t, e.svc.Rollback(ctx, other, app.ID, "sabotage"), jifu.CodeNotFound)
	wantCode(t, e.svc.Promote(ctx, other, app.ID), jifu.CodeNotFound)
	// Only admins approve developers.
	wantCode(t, e.svc.DecideDeveloper(ctx, e.reviewer, other.DeveloperID, true, ""), jifu.CodeDenied)
	wantCode(t, e.svc.DecideDeveloper(ctx, other, other.DeveloperID, true, ""), jifu.CodeDenied)
	_, err = e.svc.CreateStaff(ctx, e.reviewer, unique("x")+"@jifu.test", "X", "some password 1", marketplace.RoleAdmin)
	wantCode(t, err, jifu.CodeDenied)
}

func TestSessions(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	acct, err := e.svc.Account(ctx, e.dev, e.dev.AccountID)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = e.svc.Login(ctx, acct.Email, "wrong password!")
	wantCode(t, err, jifu.CodeDenied)
	_, _, err = e.svc.Login(ctx, "nobody@jifu.test", e.devPass)
	wantCode(t, err, jifu.CodeDenied)
	token, sess, err := e.svc.Login(ctx, strings.ToUpper(acct.Email), e.devPass)
	if err != nil {
		t.Fatal(err)
	}
	if sess.Actor != e.dev || sess.CSRF == "" || len(token) < 40 {
		t.Fatalf("session %+v", sess)
	}
	got, err := e.svc.Authenticate(ctx, token)
	if err != nil || got.Actor != e.dev || got.CSRF != sess.CSRF {
		t.Fatalf("authenticate %+v, %v", got, err)
	}
	_, err = e.svc.Authenticate(ctx, token+"x")
	wantCode(t, err, jifu.CodeDenied)
	if err := e.svc.Logout(ctx, token); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Authenticate(ctx, token)
	wantCode(t, err, jifu.CodeDenied)
	if err := e.svc.PurgeExpired(ctx); err != nil {
		t.Fatal(err)
	}

	// Registration input.
	bad := []marketplace.Registration{
		{Email: "not-an-email", Password: "long enough pw", Name: "A", Kind: marketplace.KindPartner},
		{Email: unique("a") + "@jifu.test", Password: "short", Name: "A", Kind: marketplace.KindPartner},
		{Email: unique("a") + "@jifu.test", Password: "long enough pw", Name: "A", Kind: "alien"},
		{Email: unique("a") + "@jifu.test", Password: "long enough pw", Name: "A", Kind: marketplace.KindPartner, Level: "platinum"},
		{Email: acct.Email, Password: "long enough pw", Name: "A", Kind: marketplace.KindPartner},
	}
	for i, r := range bad {
		_, err := e.svc.RegisterDeveloper(ctx, r)
		if c := jifu.ErrorCode(err); c != jifu.CodeInvalid && c != jifu.CodeConflict {
			t.Errorf("registration %d: %v", i, err)
		}
	}
}

func TestBadUploads(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(c *marketplace.Config) { c.MaxUpload = 4096 })
	app, _ := e.newApp(e.dev)
	wasm := helloWasm(t)
	good := helloManifest(app.Slug, "1.0.0", "")
	noScope := strings.Replace(string(good), `"scopes":["storage"]`, `"scopes":[]`, 1)
	tests := []struct {
		name     string
		wasm     []byte
		manifest []byte
		code     string
		problem  string
	}{
		{"oversized", append(append([]byte{}, wasm...), make([]byte, 5000)...), good, jifu.CodeTooLarge, ""},
		{"not wasm", []byte("MZ\x90\x00 this is an exe"), good, jifu.CodeInvalid, manifest.CodeModuleInvalid},
		{"empty", nil, good, jifu.CodeInvalid, manifest.CodeModuleInvalid},
		{"wasm header, garbage body", append([]byte("\x00asm\x01\x00\x00\x00"), 0xff, 0xff), good, jifu.CodeInvalid, manifest.CodeModuleInvalid},
		{"undeclared scope", wasm, []byte(noScope), jifu.CodeInvalid, manifest.CodeScopeMissing},
		{"unknown scope", wasm, helloManifest(app.Slug, "1.0.0", `,"teleport"`), jifu.CodeInvalid, manifest.CodeScopeUnknown},
		{"scope above level", wasm, helloManifest(app.Slug, "1.0.0", `,"user.basic"`), jifu.CodeInvalid, marketplace.CodeScopeNotAllowed},
		{"manifest not json", wasm, []byte("{"), jifu.CodeInvalid, manifest.CodeSyntax},
		{"other app's slug", wasm, helloManifest("someone-else", "1.0.0", ""), jifu.CodeInvalid, manifest.CodeField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.svc.UploadVersion(ctx, e.dev, app.ID, tt.wasm, tt.manifest)
			wantCode(t, err, tt.code)
			if tt.problem != "" {
				ps := marketplace.Problems(err)
				found := false
				for _, p := range ps {
					found = found || p.Code == tt.problem
				}
				if !found {
					t.Fatalf("problems %v lack %s", ps, tt.problem)
				}
			}
		})
	}
	vs, err := e.svc.Versions(ctx, e.dev, app.ID)
	if err != nil || len(vs) != 0 {
		t.Fatalf("refused uploads stored %d versions (%v)", len(vs), err)
	}
	if n := countFiles(t, e.artifacts); n != 0 {
		t.Fatalf("refused uploads left %d artifacts", n)
	}

	// Duplicate version number.
	if _, err := e.svc.UploadVersion(ctx, e.dev, app.ID, wasm, good); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.UploadVersion(ctx, e.dev, app.ID, wasm, good)
	wantCode(t, err, jifu.CodeConflict)
	if vs, _ := e.svc.Versions(ctx, e.dev, app.ID); len(vs) != 1 {
		t.Fatalf("%d versions after a duplicate", len(vs))
	}

	// Duplicate slug: nothing created.
	before, _ := e.svc.Apps(ctx, e.dev)
	_, _, err = e.svc.CreateApp(ctx, e.newDeveloper(marketplace.LevelBasic), marketplace.AppInput{Slug: app.Slug, Name: "Copy"})
	wantCode(t, err, jifu.CodeConflict)
	_, _, err = e.svc.CreateApp(ctx, e.dev, marketplace.AppInput{Slug: "Bad Slug!", Name: "X"})
	wantCode(t, err, jifu.CodeInvalid)
	_, _, err = e.svc.CreateApp(ctx, e.dev, marketplace.AppInput{Slug: unique("ok"), Name: "X", IPWhitelist: []string{"300.1.1.1"}})
	wantCode(t, err, jifu.CodeInvalid)
	_, _, err = e.svc.CreateApp(ctx, e.dev, marketplace.AppInput{Slug: unique("ok"), Name: "X", CallbackURL: "ftp://x"})
	wantCode(t, err, jifu.CodeInvalid)
	if after, _ := e.svc.Apps(ctx, e.dev); len(after) != len(before) {
		t.Fatalf("apps %d -> %d after refused creations", len(before), len(after))
	}

	// A failing self-test is stored with its report and cannot be submitted.
	failing := strings.Replace(string(helloManifest(app.Slug, "1.0.1", "")), `"expect_status":200`, `"expect_status":404`, 1)
	v, err := e.svc.UploadVersion(ctx, e.dev, app.ID, wasm, []byte(failing))
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != marketplace.StatusCheckFailed || v.Report.Passed || v.Report.SelfTests[0].Status != 200 {
		t.Fatalf("failing self-test: %+v", v.Report)
	}
	wantCode(t, e.svc.SubmitVersion(ctx, e.dev, v.ID), jifu.CodeConflict)
}

func TestSecretsShownOnceAndRotation(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	app, cred := e.newApp(e.dev)
	keys, err := e.svc.AppKeys(ctx, e.dev, app.ID)
	if err != nil || len(keys) != 1 || keys[0].AppKey != cred.AppKey || keys[0].ExpiresAt != nil {
		t.Fatalf("keys %+v %v", keys, err)
	}
	if s := fmt.Sprintf("%v %+v", cred, *cred); strings.Contains(s, cred.Secret) {
		t.Fatal("a credential prints its secret")
	}
	info, err := e.svc.LookupKey(ctx, cred.AppKey)
	if err != nil || len(info.Secrets) != 1 || info.Secrets[0] != cred.Secret || info.Slug != app.Slug {
		t.Fatalf("lookup %+v %v", info, err)
	}
	// Rotation with an overlap: both secrets work until it ends.
	next, err := e.svc.RotateSecret(ctx, e.dev, app.ID, marketplace.EnvSandbox, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if next.AppKey != cred.AppKey || next.Secret == cred.Secret {
		t.Fatalf("rotated %v", next)
	}
	info, err = e.svc.LookupKey(ctx, cred.AppKey)
	if err != nil || len(info.Secrets) != 2 || info.Secrets[0] != next.Secret || info.Secrets[1] != cred.Secret {
		t.Fatalf("during overlap: %d secrets, %v", len(info.Secrets), err)
	}
	// Rotation without overlap: only the newest works.
	last, err := e.svc.RotateSecret(ctx, e.dev, app.ID, marketplace.EnvSandbox, 0)
	if err != nil {
		t.Fatal(err)
	}
	info, err = e.svc.LookupKey(ctx, cred.AppKey)
	if err != nil || len(info.Secrets) != 1 || info.Secrets[0] != last.Secret {
		t.Fatalf("after immediate rotation: %d secrets, %v", len(info.Secrets), err)
	}
	_, err = e.svc.RotateSecret(ctx, e.dev, app.ID, marketplace.EnvProduction, 0)
	wantCode(t, err, jifu.CodeNotFound) // no production key before approval
	_, err = e.svc.RotateSecret(ctx, e.dev, app.ID, marketplace.EnvSandbox, 365*24*time.Hour)
	wantCode(t, err, jifu.CodeInvalid)
	_, err = e.svc.LookupKey(ctx, "sbx-nope")
	wantCode(t, err, jifu.CodeNotFound)
	log, _ := e.svc.AuditLog(ctx, e.admin, fmt.Sprintf("app:%d", app.ID), 10)
	if len(log) != 2 || log[0].Action != "app.rotate_secret" {
		t.Fatalf("rotations audited: %+v", log)
	}
}

func TestSessionExpiry(t *testing.T) {
	ctx := context.Background()
	var offset time.Duration
	e := newEnv(t, func(c *marketplace.Config) { c.Now = func() time.Time { return time.Now().Add(offset) } })
	acct, _ := e.svc.Account(ctx, e.dev, e.dev.AccountID)
	token, sess, err := e.svc.Login(ctx, acct.Email, e.devPass)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(sess.ExpiresAt); d < 11*time.Hour || d > 13*time.Hour {
		t.Fatalf("staff session lasts %v, want 12 h", d)
	}
	offset = 11 * time.Hour
	if _, err := e.svc.Authenticate(ctx, token); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	offset = 13 * time.Hour
	_, err = e.svc.Authenticate(ctx, token)
	wantCode(t, err, jifu.CodeDenied)
}
