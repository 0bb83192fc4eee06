package web_test

import (
	"bytes"
	"context"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/jifu-open/jifu/marketplace"
)

var (
	appIDRE     = regexp.MustCompile(`/portal/apps/(\d+)`)
	versionIDRE = regexp.MustCompile(`^/portal/versions/(\d+)`)
)

// createApp creates an app from the portal and returns its id.
func createApp(t *testing.T, dev *browser, slug string) int64 {
	t.Helper()
	pg := dev.form("/portal/apps/new", "/portal/apps/new", "slug", slug, "name", "App "+slug, "icon", "👋", "category", "tools",
		"description", "A test app")
	if pg.status != http.StatusCreated || !strings.Contains(pg.body, `data-testid="secret"`) {
		t.Fatalf("create %s: %d %.400s", slug, pg.status, pg.body)
	}
	m := appIDRE.FindStringSubmatch(pg.body)
	id, _ := strconv.ParseInt(m[1], 10, 64)
	return id
}

// upload posts a module and manifest to an app; csrf "" uses the page's.
func upload(t *testing.T, b *browser, appID int64, csrf string, wasm, manifest []byte) page {
	t.Helper()
	if csrf == "" {
		csrf = b.csrf("/portal/apps/" + itoa(appID))
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("csrf", csrf)
	fw, _ := mw.CreateFormFile("wasm", "app.wasm")
	_, _ = fw.Write(wasm)
	fw, _ = mw.CreateFormFile("manifest", "jifu.json")
	_, _ = fw.Write(manifest)
	_ = mw.Close()
	req, _ := http.NewRequest("POST", b.base+"/portal/apps/"+itoa(appID)+"/versions", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return b.do(req)
}

// uploadOK uploads and returns the new version's id.
func uploadOK(t *testing.T, b *browser, appID int64, wasm, manifest []byte) int64 {
	t.Helper()
	pg := upload(t, b, appID, "", wasm, manifest)
	m := versionIDRE.FindStringSubmatch(pg.loc)
	if pg.status != http.StatusSeeOther || m == nil {
		t.Fatalf("upload: %d %q %.600s", pg.status, pg.loc, pg.body)
	}
	id, _ := strconv.ParseInt(m[1], 10, 64)
	return id
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func wantStatus(t *testing.T, what string, pg page, status int, contains string) {
	t.Helper()
	if pg.status != status || !strings.Contains(pg.body, contains) {
		t.Fatalf("%s = %d (Location %q) %.500s\nwant %d containing %q", what, pg.status, pg.loc, pg.body, status, contains)
	}
}

// publish takes a new app from creation to a full release.
func publish(t *testing.T, dev, reviewer *browser, slug string) (appID, versionID int64) {
	t.Helper()
	appID = createApp(t, dev, slug)
	versionID = uploadOK(t, dev, appID, hello(t), helloManifest(t, slug, "1.0.0"))
	vp := "/portal/versions/" + itoa(versionID)
	wantStatus(t, "submit", dev.form(vp, vp+"/submit"), http.StatusSeeOther, "")
	rp := "/review/versions/" + itoa(versionID)
	wantStatus(t, "approve", reviewer.form(rp, rp+"/decide", "decision", "approve", "comment", "fine"), http.StatusSeeOther, "")
	wantStatus(t, "release", dev.form(vp, vp+"/release", "percent", "100"), http.StatusSeeOther, "")
	return appID, versionID
}

// A developer never sees or acts on another developer's app; only
// reviewers decide; a version that is not approved never serves a user.
func TestFlowAuthorization(t *testing.T) {
	p := newPlatform(t)
	ctx := context.Background()
	alice := p.developer(t, "alice@authz.test")
	bob := p.developer(t, "bob@authz.test")
	rev := p.staff(t, "rev@authz.test", marketplace.RoleReviewer)
	user := p.endUser(t, "13900000001")

	appID := createApp(t, alice, "authz-app")
	ap := "/portal/apps/" + itoa(appID)
	wantStatus(t, "alice sees her app", alice.get(ap), 200, `data-testid="upload-form"`)
	wantStatus(t, "bob reads alice's app", bob.get(ap), 404, `data-testid="error-page"`)
	wantStatus(t, "bob's stats of alice's app", bob.get(ap+"/stats"), 404, `data-testid="error-page"`)
	wantStatus(t, "bob rotates alice's secret", bob.form("/portal/apps", ap+"/rotate", "env", "sandbox", "overlap_hours", "0"), 404, "")
	wantStatus(t, "bob uploads to alice's app", upload(t, bob, appID, bob.csrf("/portal/apps"), hello(t), helloManifest(t, "authz-app", "1.0.0")), 404, "")
	if vs, _ := p.svc.Versions(ctx, marketplace.System, appID); len(vs) != 0 {
		t.Fatalf("bob's upload stored %d versions", len(vs))
	}
	if strings.Contains(bob.get("/portal/apps").body, "authz-app") {
		t.Fatal("bob's app list shows alice's app")
	}

	vid := uploadOK(t, alice, appID, hello(t), helloManifest(t, "authz-app", "1.0.0"))
	vp := "/portal/versions/" + itoa(vid)
	wantStatus(t, "bob reads alice's version", bob.get(vp), 404, "")
	wantStatus(t, "checked version page", alice.get(vp), 200, `data-testid="checks-passed"`)
	// Not yet submitted, then submitted but not approved: never released,
	// never served.
	wantStatus(t, "release a checked version", alice.form(vp, vp+"/release", "percent", "100"), 409, `data-code="conflict"`)
	wantStatus(t, "submit", alice.form(vp, vp+"/submit"), http.StatusSeeOther, "")
	wantStatus(t, "release a version in review", alice.form(vp, vp+"/release", "percent", "100"), 409, "")
	wantStatus(t, "an unreviewed app is not served", user.get("/apps/authz-app/"), 404, `data-testid="error-page"`)

	rp := "/review/versions/" + itoa(vid)
	wantStatus(t, "alice approves her own version", alice.form(ap, rp+"/decide", "decision", "approve"), 403, `data-code="denied"`)
	wantStatus(t, "bob approves", bob.form("/portal/apps", rp+"/decide", "decision", "approve"), 403, `data-code="denied"`)
	wantStatus(t, "alice opens the review page", alice.get(rp), 403, "")
	wantStatus(t, "the queue refuses developers", alice.get("/review/"), 403, "")
	wantStatus(t, "the reviewer's queue", rev.get("/review/"), 200, `data-testid="queue-authz-app-1.0.0"`)
	wantStatus(t, "reject without a comment", rev.form(rp, rp+"/decide", "decision", "reject"), 400, "comment")
	wantStatus(t, "reject", rev.form(rp, rp+"/decide", "decision", "reject", "comment", "asks for too much"), http.StatusSeeOther, "")
	wantStatus(t, "alice sees the outcome", alice.get(vp), 200, "asks for too much")
	wantStatus(t, "release a rejected version", alice.form(vp, vp+"/release", "percent", "100"), 409, "")
	wantStatus(t, "a rejected version is not served", user.get("/apps/authz-app/"), 404, "")

	// Audited: the rejection is in the log staff read.
	wantStatus(t, "audit log", rev.get("/portal/audit"), 200, "version.reject")
	wantStatus(t, "developers do not read the audit log", alice.get("/portal/audit"), 403, "")
	// Anonymous visitors are sent to log in.
	anon := p.browser(t)
	if pg := anon.get(ap); pg.status != http.StatusSeeOther || !strings.HasPrefix(pg.loc, "/portal/login?next=") {
		t.Fatalf("anonymous app page = %d %q", pg.status, pg.loc)
	}
}

// Every form refuses a missing, wrong or another session's CSRF token and
// changes nothing.
func TestFlowCSRF(t *testing.T) {
	p := newPlatform(t)
	ctx := context.Background()
	dev := p.developer(t, "csrf@csrf.test")
	other := p.developer(t, "other@csrf.test")
	rev := p.staff(t, "rev@csrf.test", marketplace.RoleReviewer)
	_, _ = publish(t, dev, rev, "csrf-app")
	user := p.endUser(t, "13900000002")
	wantStatus(t, "consent", user.form("/store/apps/csrf-app/consent", "/store/apps/csrf-app/consent"), http.StatusSeeOther, "")
	userID := mustUserID(t, p, "13900000002")

	tokens := []struct {
		name  string
		token func(b *browser) string
	}{
		{"missing", func(*browser) string { return "" }},
		{"wrong", func(*browser) string { return "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }},
		{"another session's", func(*browser) string { return other.csrf("/portal/apps") }},
	}
	for _, tk := range tokens {
		t.Run(tk.name, func(t *testing.T) {
			f := url.Values{"slug": {"csrf-new"}, "name": {"X"}, "category": {"tools"}}
			if v := tk.token(dev); v != "" {
				f.Set("csrf", v)
			}
			wantStatus(t, "create app", dev.post("/portal/apps/new", f), 403, `data-code="denied"`)
			if _, err := p.svc.AppBySlug(ctx, marketplace.System, "csrf-new"); err == nil {
				t.Fatal("an app was created without a valid token")
			}
			f = url.Values{}
			if v := tk.token(dev); v != "" {
				f.Set("csrf", v)
			}
			wantStatus(t, "revoke", user.post("/store/my/csrf-app/revoke", f), 403, `data-code="denied"`)
			if ok, _ := p.svc.Installed(ctx, userID, "csrf-app"); !ok {
				t.Fatal("revoked without a valid token")
			}
			f.Set("email", "csrf@csrf.test")
			f.Set("password", staffPassword)
			wantStatus(t, "login", p.browser(t).post("/portal/login", f), 403, "")
			f = url.Values{"phone": {"13900000003"}}
			if v := tk.token(dev); v != "" {
				f.Set("csrf", v)
			}
			wantStatus(t, "send code", p.browser(t).post("/store/login", f), 403, "")
		})
	}
}

func mustUserID(t *testing.T, p *platform, phone string) int64 {
	t.Helper()
	u, err := p.svc.EnsureUser(context.Background(), marketplace.System, phone)
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// Bad uploads and duplicate slugs get clear errors and store nothing.
func TestFlowBadInput(t *testing.T) {
	p := newPlatform(t)
	ctx := context.Background()
	dev := p.developer(t, "bad@bad.test")
	appID := createApp(t, dev, "bad-app")
	good := helloManifest(t, "bad-app", "1.0.0")
	noScope := bytes.Replace(good, []byte(`"scopes": ["storage"],`), nil, 1)
	if bytes.Equal(noScope, good) {
		t.Fatal("the manifest fixture changed: cannot drop its scopes")
	}
	big := append([]byte("\x00asm\x01\x00\x00\x00"), make([]byte, 40<<20)...)
	tests := []struct {
		name           string
		wasm, manifest []byte
		status         int
		contains       string
	}{
		{"not WebAssembly", []byte("MZ\x90\x00 this is an exe"), good, 400, `data-testid="problem"`},
		{"empty module", nil, good, 400, "choose the module"},
		{"manifest missing", hello(t), nil, 400, "manifest"},
		{"manifest not JSON", hello(t), []byte("{nope"), 400, `data-testid="problem"`},
		{"undeclared scope", hello(t), noScope, 400, "storage"},
		{"manifest of another app", hello(t), helloManifest(t, "other-app", "1.0.0"), 400, "another app"},
		{"over the upload limit", big, good, 413, `data-code="too_large"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pg := upload(t, dev, appID, "", tt.wasm, tt.manifest)
			wantStatus(t, "upload", pg, tt.status, tt.contains)
			if vs, err := p.svc.Versions(ctx, marketplace.System, appID); err != nil || len(vs) != 0 {
				t.Fatalf("a refused upload stored %d versions (%v)", len(vs), err)
			}
		})
	}
	uploadOK(t, dev, appID, hello(t), good)
	wantStatus(t, "the same version again", upload(t, dev, appID, "", hello(t), good), 409, "raise the version")
	pg := dev.form("/portal/apps/new", "/portal/apps/new", "slug", "bad-app", "name", "Again", "category", "tools")
	wantStatus(t, "a taken slug", pg, 409, "taken")
	wantStatus(t, "a bad slug", dev.form("/portal/apps/new", "/portal/apps/new", "slug", "Bad Slug!", "name", "X"), 400, "slug")
	apps, _ := p.svc.Apps(ctx, marketplace.System)
	for _, a := range apps {
		if a.DeveloperID == apps[0].DeveloperID && a.Slug != "bad-app" && strings.HasPrefix(a.Slug, "bad") {
			t.Fatalf("a refused creation stored %s", a.Slug)
		}
	}
	if a, err := p.svc.AppBySlug(ctx, marketplace.System, "bad-app"); err != nil || a.Name != "App bad-app" {
		t.Fatalf("the taken slug's app changed: %+v %v", a, err)
	}
	wantStatus(t, "gray percent over 100", dev.form("/portal/apps/"+itoa(appID), "/portal/apps/"+itoa(appID)+"/percent", "percent", "101"), 400, "0..100")
	wantStatus(t, "unknown app id", dev.get("/portal/apps/999999"), 404, "")
	wantStatus(t, "not an id", dev.get("/portal/apps/x"), 404, "")
}

// A store user reaches an app only after consenting; after revoking, the
// next call is refused with a clear page and no app code runs.
func TestFlowConsentGate(t *testing.T) {
	p := newPlatform(t)
	dev := p.developer(t, "gate@gate.test")
	rev := p.staff(t, "rev@gate.test", marketplace.RoleReviewer)
	publish(t, dev, rev, "gate-app")
	user := p.endUser(t, "13900000004")

	wantStatus(t, "anonymous catalog", p.browser(t).get("/store/"), 200, `data-testid="listing-gate-app"`)
	wantStatus(t, "before consent", user.get("/apps/gate-app/"), 403, `data-testid="consent-required"`)
	wantStatus(t, "consent screen", user.get("/store/apps/gate-app/consent"), 200, `data-testid="scope-storage"`)
	pg := user.form("/store/apps/gate-app/consent", "/store/apps/gate-app/consent")
	if pg.status != http.StatusSeeOther || pg.loc != "/apps/gate-app/" {
		t.Fatalf("consent = %d %q", pg.status, pg.loc)
	}
	wantStatus(t, "open", user.get("/apps/gate-app/"), 200, "u")
	wantStatus(t, "visit", user.form("/store/my", "/apps/gate-app/visits"), http.StatusSeeOther, "")
	wantStatus(t, "my apps", user.get("/store/my"), 200, `data-testid="my-gate-app"`)
	wantStatus(t, "revoke", user.form("/store/my", "/store/my/gate-app/revoke"), http.StatusSeeOther, "")
	wantStatus(t, "after revoking", user.get("/apps/gate-app/"), 403, `data-testid="consent-required"`)
	req, _ := http.NewRequest("POST", user.base+"/apps/gate-app/visits", nil)
	resp, err := user.c.Do(req) // a program (no text/html): JSON
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(resp.Header.Get("Content-Type"), "json") {
		t.Fatalf("scoped call after revoking = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	wantStatus(t, "anonymous visitor", p.browser(t).get("/apps/gate-app/"), 200, "guest")

	// Real-name verification: a bad ID number changes nothing; a good one
	// raises the user to level 101.
	wantStatus(t, "bad ID number", user.form("/store/my", "/store/me/realname", "name", "张三", "id_number", "110105194912310021"), 400, `data-testid="realname-form"`)
	wantStatus(t, "verify", user.form("/store/my", "/store/me/realname", "name", "张三", "id_number", "11010519491231002x"), http.StatusSeeOther, "")
	wantStatus(t, "verified", user.get("/store/my"), 200, "110105********002X")
	wantStatus(t, "level", user.get("/store/my"), 200, "level 101")

	// The invocations reach the developer's statistics, per version and stage.
	a, err := p.svc.AppBySlug(context.Background(), marketplace.System, "gate-app")
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, "statistics", dev.get("/portal/apps/"+itoa(a.ID)+"/stats"), 200, `data-testid="stage-1.0.0-full"`)
	wantStatus(t, "installs", dev.get("/portal/apps/"+itoa(a.ID)+"/stats"), 200, `data-testid="chart-invocations"`)
	wantStatus(t, "release health", dev.get("/portal/apps/"+itoa(a.ID)), 200, `data-testid="health-1.0.0-full"`)
}

// Service levels: a developer applies, only an admin grants, the decision
// is audited; only risk staff and admins change store users' levels.
func TestFlowStaffDecisions(t *testing.T) {
	p := newPlatform(t)
	ctx := context.Background()
	dev := p.browser(t)
	pg := dev.form("/portal/register", "/portal/register", "email", "lvl@staff.test", "password", staffPassword, "name", "Lev",
		"organisation", "Lev Ltd", "kind", "merchant", "level", "standard")
	wantStatus(t, "register", pg, http.StatusSeeOther, "")
	wantStatus(t, "account", dev.get("/portal/account"), 200, `data-testid="dev-status">pending`)
	admin := p.staff(t, "admin@staff.test", marketplace.RoleAdmin)
	rev := p.staff(t, "rev@staff.test", marketplace.RoleReviewer)
	risk := p.staff(t, "risk@staff.test", marketplace.RoleRisk)

	ds, err := p.svc.Developers(ctx, marketplace.System, "pending")
	if err != nil || len(ds) == 0 {
		t.Fatalf("pending developers: %v %v", ds, err)
	}
	var devID int64
	for _, d := range ds {
		if d.Name == "Lev Ltd" {
			devID = d.ID
		}
	}
	path := "/portal/developers/" + itoa(devID) + "/decide"
	wantStatus(t, "the developer grants itself", dev.form("/portal/account", path, "decision", "approve"), 403, "")
	wantStatus(t, "a reviewer grants", rev.form("/review/", path, "decision", "approve"), 403, "")
	wantStatus(t, "the admin's list", admin.get("/portal/developers?status=pending"), 200, `data-testid="approve-developer-`+itoa(devID)+`"`)
	wantStatus(t, "the admin grants", admin.form("/portal/developers", path, "decision", "approve", "comment", "papers checked"), http.StatusSeeOther, "")
	wantStatus(t, "granted", dev.get("/portal/account"), 200, `data-testid="dev-level">standard`)
	wantStatus(t, "audited", admin.get("/portal/audit"), 200, "developer.approve")

	u, err := p.svc.EnsureUser(ctx, marketplace.System, "13900000009")
	if err != nil {
		t.Fatal(err)
	}
	up := "/portal/users/" + itoa(u.ID)
	wantStatus(t, "a developer changes a user", dev.form("/portal/account", up, "level", "203"), 403, "")
	wantStatus(t, "a reviewer changes a user", rev.form("/review/", up, "level", "203"), 403, "")
	wantStatus(t, "risk's list", risk.get("/portal/users"), 200, `data-testid="user-`+u.Ref()+`"`)
	wantStatus(t, "risk raises the level", risk.form("/portal/users", up, "level", "203", "channel", "natural", "region", "310000"), http.StatusSeeOther, "")
	if got, _ := p.svc.User(ctx, u.ID); got.Level != 203 || got.Region != "310000" {
		t.Fatalf("user after the update: %+v", got)
	}
	wantStatus(t, "a level that is no number", risk.form("/portal/users", up, "level", "vip"), 400, "")
	wantStatus(t, "audited", risk.get("/portal/audit"), 200, "user.update")
}
