// Package store is the app store for end users: sign-in with an SMS code,
// the catalog by category, each app's page, the consent screen with the
// scopes an app asks for, and "my apps" with revocation. Mounted at /store.
// The store session it opens is the user's identity for /apps/{slug}/ (see
// package session's Identity); Gate keeps apps from acting for a user who
// has not granted (or has revoked) access.
//
//	r.Mount("/store", store.New(store.Deps{Market: svc, Sessions: m}))
package store

import (
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/marketplace"
	"github.com/jifu-open/jifu/web/layout"
	"github.com/jifu-open/jifu/web/respond"
	"github.com/jifu-open/jifu/web/session"
)

// Deps are the store's dependencies.
type Deps struct {
	Market   *marketplace.Service
	Sessions *session.Manager
	Logger   *slog.Logger
	Outbox   bool // the local SMS outbox is in use: point to it
}

type handler struct{ Deps }

// New returns the store's handler, to be mounted at /store behind the
// session middleware.
func New(d Deps) http.Handler {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{Deps: d}
	r := chi.NewRouter()
	r.Use(h.csrf)
	r.Get("/", h.catalog)
	r.Get("/login", h.loginForm)
	r.Post("/login", h.sendCode)
	r.Post("/login/code", h.login)
	r.Post("/logout", h.logout)
	r.Get("/apps/{slug}", h.app)
	r.Get("/apps/{slug}/consent", h.consentForm)
	r.Post("/apps/{slug}/consent", h.consent)
	r.Get("/my", h.myApps)
	r.Post("/my/{slug}/revoke", h.revoke)
	r.Post("/me/realname", h.realName)
	return r
}

var flashes = map[string]string{
	"revoked":  "Access revoked. The app can no longer act for you.",
	"loggedin": "Signed in.",
	"verified": "Real name verified.",
}

// Page returns the store's page shell as the request's viewer sees it.
func Page(r *http.Request, title string, outbox bool) layout.Page {
	s, _ := session.User(r)
	p := layout.Page{Title: title, Area: layout.AreaStore, CSRF: session.CSRF(r, s), Outbox: outbox, Flash: flashes[r.URL.Query().Get("done")]}
	if s != nil {
		p.Who = marketplace.UserRef(s.UserID)
	}
	return p
}

func (h *handler) page(r *http.Request, title string) layout.Page { return Page(r, title, h.Outbox) }

func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	respond.Error(w, r, h.Logger, h.page(r, "Error"), err, "/store/", "Back to the store")
}

func (h *handler) csrf(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			if err := r.ParseForm(); err != nil {
				h.fail(w, r, jifu.Errorf(jifu.CodeInvalid, "the form could not be read"))
				return
			}
			s, _ := session.User(r)
			if err := session.Verify(r, s); err != nil {
				h.fail(w, r, err)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// user returns the signed-in user's id, or sends the visitor to sign in.
func (h *handler) user(w http.ResponseWriter, r *http.Request) (int64, bool) {
	if id, ok := session.UserID(r); ok {
		return id, true
	}
	if r.Method == http.MethodGet {
		respond.Redirect(w, r, "/store/login?next="+url.QueryEscape(r.URL.RequestURI()))
	} else {
		h.fail(w, r, jifu.Errorf(jifu.CodeDenied, "please sign in first"))
	}
	return 0, false
}

func (h *handler) catalog(w http.ResponseWriter, r *http.Request) {
	cat := r.URL.Query().Get("category")
	if cat != "" && !slices.Contains(marketplace.Categories, cat) {
		h.fail(w, r, jifu.Errorf(jifu.CodeNotFound, "no category %q", cat))
		return
	}
	ls, err := h.Market.Catalog(r.Context(), cat)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	respond.Page(w, r, http.StatusOK, Catalog(CatalogView{Page: h.page(r, "App store"), Category: cat, Categories: marketplace.Categories, Listings: ls}))
}

func (h *handler) loginForm(w http.ResponseWriter, r *http.Request) {
	respond.Page(w, r, http.StatusOK, Login(LoginView{Page: h.page(r, "Sign in"), Next: respond.LocalPath(r.URL.Query().Get("next")), Outbox: h.Outbox}))
}

func (h *handler) sendCode(w http.ResponseWriter, r *http.Request) {
	phone := strings.TrimSpace(r.PostFormValue("phone"))
	v := LoginView{Page: h.page(r, "Sign in"), Phone: phone, Next: respond.LocalPath(r.PostFormValue("next")), Outbox: h.Outbox}
	if err := h.Market.RequestLoginCode(r.Context(), phone); err != nil {
		v.Page.Error = respond.Message(err)
		respond.Page(w, r, respond.Status(jifu.ErrorCode(err)), Login(v))
		return
	}
	v.CodeSent = true
	respond.Page(w, r, http.StatusOK, Login(v))
}

func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	phone := strings.TrimSpace(r.PostFormValue("phone"))
	next := respond.LocalPath(r.PostFormValue("next"))
	token, sess, _, err := h.Market.LoginWithCode(r.Context(), phone, strings.TrimSpace(r.PostFormValue("code")))
	if err != nil {
		v := LoginView{Page: h.page(r, "Sign in"), Phone: phone, Next: next, CodeSent: true, Outbox: h.Outbox}
		v.Page.Error = respond.Message(err)
		respond.Page(w, r, respond.Status(jifu.ErrorCode(err)), Login(v))
		return
	}
	if old := session.Token(r, session.UserCookie); old != "" {
		_ = h.Market.Logout(r.Context(), old)
	}
	h.Sessions.StartUser(w, r, token, sess)
	if next == "" {
		next = "/store/my?done=loggedin"
	}
	respond.Redirect(w, r, next)
}

func (h *handler) logout(w http.ResponseWriter, r *http.Request) {
	if t := session.Token(r, session.UserCookie); t != "" {
		if err := h.Market.Logout(r.Context(), t); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	h.Sessions.End(w, r, session.UserCookie)
	respond.Redirect(w, r, "/store/")
}

func (h *handler) app(w http.ResponseWriter, r *http.Request) {
	slug := chi.URLParam(r, "slug")
	l, err := h.Market.Listing(r.Context(), slug)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v := AppView{Page: h.page(r, l.App.Name), Listing: l}
	if id, ok := session.UserID(r); ok {
		v.LoggedIn = true
		if v.Installed, err = h.Market.Installed(r.Context(), id, slug); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	respond.Page(w, r, http.StatusOK, App(v))
}

func (h *handler) consentForm(w http.ResponseWriter, r *http.Request) {
	id, ok := h.user(w, r)
	if !ok {
		return
	}
	cs, err := h.Market.ConsentScreen(r.Context(), id, chi.URLParam(r, "slug"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	respond.Page(w, r, http.StatusOK, Consent(ConsentView{Page: h.page(r, cs.App.Name+": access"), Screen: cs}))
}

func (h *handler) consent(w http.ResponseWriter, r *http.Request) {
	id, ok := h.user(w, r)
	if !ok {
		return
	}
	slug := chi.URLParam(r, "slug")
	if err := h.Market.Install(r.Context(), id, slug, r.PostForm["scope"]); err != nil {
		h.fail(w, r, err)
		return
	}
	respond.Redirect(w, r, "/apps/"+slug+"/")
}

func (h *handler) myApps(w http.ResponseWriter, r *http.Request) {
	id, ok := h.user(w, r)
	if !ok {
		return
	}
	v, err := h.myAppsView(r, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	respond.Page(w, r, http.StatusOK, MyApps(v))
}

func (h *handler) myAppsView(r *http.Request, id int64) (MyAppsView, error) {
	v := MyAppsView{Page: h.page(r, "My apps")}
	var err error
	if v.User, err = h.Market.User(r.Context(), id); err != nil {
		return v, err
	}
	v.Apps, err = h.Market.MyApps(r.Context(), id)
	return v, err
}

func (h *handler) realName(w http.ResponseWriter, r *http.Request) {
	id, ok := h.user(w, r)
	if !ok {
		return
	}
	if _, err := h.Market.VerifyRealName(r.Context(), id, r.PostFormValue("name"), r.PostFormValue("id_number")); err != nil {
		v, verr := h.myAppsView(r, id)
		if verr != nil {
			h.fail(w, r, verr)
			return
		}
		v.Page.Error = respond.Message(err)
		respond.Page(w, r, respond.Status(jifu.ErrorCode(err)), MyApps(v))
		return
	}
	respond.Redirect(w, r, "/store/my?done=verified")
}

func (h *handler) revoke(w http.ResponseWriter, r *http.Request) {
	id, ok := h.user(w, r)
	if !ok {
		return
	}
	if err := h.Market.Revoke(r.Context(), id, chi.URLParam(r, "slug"), nil, true); err != nil {
		h.fail(w, r, err)
		return
	}
	respond.Redirect(w, r, "/store/my?done=revoked")
}
