package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jifu-open/jifu/marketplace"
	"github.com/jifu-open/jifu/web/layout"
	"github.com/jifu-open/jifu/web/store"
	"github.com/jifu-open/jifu/web/webtest"
)

var (
	at    = time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)
	hello = &marketplace.App{ID: 7, Slug: "hello", Name: "Hello", Icon: "👋", Category: "tools", Description: "A greeting page", CreatedAt: at}
	loan  = &marketplace.App{ID: 8, Slug: "loan", Name: "Credit line", Icon: "💳", Category: "credit", Description: "Your revolving limit", CreatedAt: at}
)

func userPage(title string) layout.Page {
	return layout.Page{Title: title, Area: layout.AreaStore, Who: "u42", CSRF: "tok-9"}
}

func TestCatalog(t *testing.T) {
	v := store.CatalogView{Page: layout.Page{Title: "App store", Area: layout.AreaStore, CSRF: "pre"}, Category: "credit",
		Categories: marketplace.Categories, Listings: []marketplace.Listing{{App: loan, Version: "2.0.0", Scopes: []string{"credit.line"}}}}
	doc := webtest.Render(t, store.Catalog(v))
	webtest.One(t, doc, "listing-loan")
	if got := webtest.Attr(webtest.One(t, doc, "category-credit"), "class"); got != "current" {
		t.Errorf("current category class = %q", got)
	}
	webtest.One(t, doc, "nav-store-login") // anonymous: a sign-in link, no logout
	if len(webtest.ByTestID(doc, "logout")) != 0 {
		t.Error("logout shown to a visitor")
	}
	webtest.Golden(t, "catalog", webtest.HTML(t, store.Catalog(v)))

	v.Listings = nil
	webtest.One(t, webtest.Render(t, store.Catalog(v)), "catalog-empty")
}

func TestConsentScreen(t *testing.T) {
	cs := &marketplace.ConsentScreen{App: loan, Version: "2.0.0", Scopes: []marketplace.ScopeInfo{
		{Name: "storage", Description: "Keep the app's own data", NeedsConsent: false, Granted: true},
		{Name: "credit.line", Description: "Use your credit line", NeedsConsent: true},
	}}
	v := store.ConsentView{Page: userPage("Credit line: access"), Screen: cs}
	doc := webtest.Render(t, store.Consent(v))
	box := webtest.One(t, doc, "grant-credit.line")
	if webtest.Attr(box, "name") != "scope" || webtest.Attr(box, "value") != "credit.line" {
		t.Errorf("checkbox %v", box.Attr)
	}
	if len(webtest.ByTestID(doc, "grant-storage")) != 0 {
		t.Error("storage needs no grant but has a checkbox")
	}
	if !strings.Contains(webtest.Text(webtest.One(t, doc, "scope-storage")), "granted by review") {
		t.Error("storage not marked as granted by review")
	}
	webtest.Golden(t, "consent", webtest.HTML(t, store.Consent(v)))
}

func TestMyApps(t *testing.T) {
	v := store.MyAppsView{Page: userPage("My apps"), User: &marketplace.User{ID: 42, Phone: "13800138000"},
		Apps: []marketplace.InstalledApp{{App: hello, InstalledAt: at, Granted: nil}, {App: loan, InstalledAt: at, Granted: []string{"credit.line"}}}}
	doc := webtest.Render(t, store.MyApps(v))
	webtest.One(t, doc, "revoke-hello")
	webtest.One(t, doc, "revoke-loan")
	if got := webtest.Attr(webtest.One(t, doc, "open-loan"), "href"); got != "/apps/loan/" {
		t.Errorf("open link %q", got)
	}
	if !strings.Contains(webtest.Text(webtest.One(t, doc, "my-loan")), "granted credit.line") {
		t.Error("grants not listed")
	}
	webtest.One(t, doc, "realname-form")
	v.Apps = nil
	v.User = &marketplace.User{ID: 42, Phone: "13800138000", Level: 101, RealName: "张三", IDNumberMasked: "110105********002X", VerifiedAt: &at}
	doc = webtest.Render(t, store.MyApps(v))
	webtest.One(t, doc, "my-empty")
	if got := webtest.Text(webtest.One(t, doc, "verified")); got != "Real name verified: 张三 · 110105********002X" {
		t.Errorf("verified = %q", got)
	}
	if len(webtest.ByTestID(doc, "realname-form")) != 0 {
		t.Error("the form stays after verification")
	}
}

func TestLoginSteps(t *testing.T) {
	p := layout.Page{Title: "Sign in", Area: layout.AreaStore, CSRF: "pre"}
	doc := webtest.Render(t, store.Login(store.LoginView{Page: p}))
	webtest.One(t, doc, "phone-form")
	if len(webtest.ByTestID(doc, "code-form")) != 0 {
		t.Error("code form before a code was sent")
	}
	doc = webtest.Render(t, store.Login(store.LoginView{Page: p, Phone: "13800138000", CodeSent: true, Outbox: true}))
	webtest.One(t, doc, "code-form")
	if got := webtest.Attr(webtest.One(t, doc, "outbox-link"), "href"); got != "/portal/outbox?to=13800138000" {
		t.Errorf("outbox link %q", got)
	}
	doc = webtest.Render(t, store.Login(store.LoginView{Page: p, Phone: "13800138000", CodeSent: true}))
	if len(webtest.ByTestID(doc, "outbox-link")) != 0 {
		t.Error("outbox link without a local outbox")
	}
}

func TestConsentRequired(t *testing.T) {
	doc := webtest.Render(t, store.ConsentRequired(store.ConsentRequiredView{Page: userPage("Hello: no access"), Slug: "hello", Name: "Hello"}))
	if got := webtest.Attr(webtest.One(t, doc, "consent-required"), "data-code"); got != "denied" {
		t.Errorf("code %q", got)
	}
	if got := webtest.Attr(webtest.One(t, doc, "regrant"), "href"); got != "/store/apps/hello/consent" {
		t.Errorf("regrant link %q", got)
	}
}
