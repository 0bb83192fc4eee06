// Package portal is the developer portal: registration and login, apps and
// their credentials (a secret is shown once), version upload with the
// automated check report, submission for review, release controls (target
// segment, gray percentage, promotion, rollback), statistics with
// server-rendered SVG charts, the audit log for staff and, in development
// mode, the SMS outbox. It is mounted at /portal; the staff login here also
// serves the reviewer pages (package review).
//
//	r.Mount("/portal", portal.New(portal.Deps{Market: svc, Sessions: m, Outbox: outbox}))
package portal

import (
	"errors"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/notify"
	"github.com/jifu-open/jifu/marketplace"
	"github.com/jifu-open/jifu/web/layout"
	"github.com/jifu-open/jifu/web/respond"
	"github.com/jifu-open/jifu/web/session"
)

// Deps are the portal's dependencies.
type Deps struct {
	Market   *marketplace.Service
	Sessions *session.Manager
	Outbox   *notify.Outbox // the local SMS channel: listed at /portal/outbox for staff
	Logger   *slog.Logger
	Dev      bool // development mode: the outbox is readable without a login
	// MaxUpload bounds an uploaded module (default host.DefaultMaxModuleSize);
	// the request body may be 1 MiB more for the manifest and the form.
	MaxUpload int64
}

type handler struct {
	Deps
}

// Flash notices, by the key a redirect carries in ?done=.
var flashes = map[string]string{
	"registered": "Welcome! Your developer account is ready.",
	"submitted":  "Submitted for review.",
	"released":   "Release started.",
	"percent":    "Gray percentage changed.",
	"segment":    "Target segment changed.",
	"promoted":   "Promoted to everyone.",
	"rolledback": "Rolled back.",
	"uploaded":   "Uploaded and checked.",
	"applied":    "Application sent; an admin will decide.",
	"decided":    "Decision recorded.",
	"user":       "User updated.",
}

// New returns the portal's handler, to be mounted at /portal behind the
// session middleware.
func New(d Deps) http.Handler {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.MaxUpload <= 0 {
		d.MaxUpload = host.DefaultMaxModuleSize
	}
	h := &handler{Deps: d}
	r := chi.NewRouter()
	r.Use(h.csrf)
	r.Get("/", h.home)
	r.Get("/register", h.registerForm)
	r.Post("/register", h.register)
	r.Get("/login", h.loginForm)
	r.Post("/login", h.login)
	r.Post("/logout", h.logout)
	r.Get("/apps", h.apps)
	r.Get("/apps/new", h.newAppForm)
	r.Post("/apps/new", h.createApp)
	r.Get("/apps/{id}", h.app)
	r.Post("/apps/{id}/rotate", h.rotate)
	r.Post("/apps/{id}/versions", h.upload)
	r.Post("/apps/{id}/percent", h.percent)
	r.Post("/apps/{id}/segment", h.segment)
	r.Post("/apps/{id}/promote", h.promote)
	r.Post("/apps/{id}/rollback", h.rollback)
	r.Get("/apps/{id}/stats", h.stats)
	r.Get("/versions/{id}", h.version)
	r.Post("/versions/{id}/submit", h.submit)
	r.Post("/versions/{id}/release", h.release)
	r.Get("/outbox", h.outbox)
	r.Get("/audit", h.audit)
	r.Get("/account", h.account)
	r.Post("/account/level", h.applyLevel)
	r.Get("/developers", h.developers)
	r.Post("/developers/{id}/decide", h.decideDeveloper)
	r.Get("/users", h.users)
	r.Post("/users/{id}", h.updateUser)
	return r
}

// StaffPage returns the page shell for a staff area as the request's viewer
// sees it. The reviewer pages use it too.
func StaffPage(r *http.Request, area, title string, outbox bool) layout.Page {
	s, _ := session.Staff(r)
	p := layout.Page{Title: title, Area: area, CSRF: session.CSRF(r, s), Outbox: outbox, Flash: flashes[r.URL.Query().Get("done")]}
	if s != nil {
		p.Who, p.Role = s.Actor.Name, string(s.Actor.Role)
	}
	return p
}

func (h *handler) page(r *http.Request, title string) layout.Page {
	return StaffPage(r, layout.AreaPortal, title, h.Outbox != nil)
}

// CSRF guards every state-changing request of the staff areas: the token
// of the staff session, or the pre-session token for login and register. A
// multipart body is parsed here, bounded by max.
func CSRF(log *slog.Logger, outbox bool, max int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				next.ServeHTTP(w, r)
				return
			}
			p := StaffPage(r, layout.AreaPortal, "Refused", outbox)
			r.Body = http.MaxBytesReader(w, r.Body, max)
			var err error
			if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
				err = r.ParseMultipartForm(8 << 20)
			} else {
				err = r.ParseForm()
			}
			if err != nil {
				var mbe *http.MaxBytesError
				if errors.As(err, &mbe) {
					err = jifu.Errorf(jifu.CodeTooLarge, "the request is over %d bytes", max)
				} else {
					err = jifu.Errorf(jifu.CodeInvalid, "the form could not be read: %v", err)
				}
				respond.Error(w, r, log, p, err, "/portal/", "Back")
				return
			}
			s, _ := session.Staff(r)
			if err := session.Verify(r, s); err != nil {
				respond.Error(w, r, log, p, err, r.URL.Path, "Back")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func (h *handler) csrf(next http.Handler) http.Handler {
	return CSRF(h.Logger, h.Outbox != nil, h.MaxUpload+1<<20)(next)
}

// actor returns the logged-in staff actor, or answers: a redirect to the
// login page for a page, a refusal for a form.
func (h *handler) actor(w http.ResponseWriter, r *http.Request) (marketplace.Actor, bool) {
	s, ok := session.Staff(r)
	if ok {
		return s.Actor, true
	}
	if r.Method == http.MethodGet {
		respond.Redirect(w, r, "/portal/login?next="+url.QueryEscape(r.URL.RequestURI()))
		return marketplace.Actor{}, false
	}
	h.fail(w, r, jifu.Errorf(jifu.CodeDenied, "please log in first"))
	return marketplace.Actor{}, false
}

func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	back, label := "/portal/", "Back to the portal"
	if jifu.ErrorCode(err) == jifu.CodeDenied {
		if _, ok := session.Staff(r); !ok {
			back, label = "/portal/login", "Log in"
		}
	}
	respond.Error(w, r, h.Logger, h.page(r, "Error"), err, back, label)
}

func idParam(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, jifu.Errorf(jifu.CodeNotFound, "no such page")
	}
	return id, nil
}

func homeOf(a marketplace.Actor) string {
	switch a.Role {
	case marketplace.RoleDeveloper:
		return "/portal/apps"
	case marketplace.RoleReviewer:
		return "/review/"
	case marketplace.RoleAdmin:
		return "/portal/developers?status=pending"
	}
	return "/portal/users"
}

func (h *handler) home(w http.ResponseWriter, r *http.Request) {
	if s, ok := session.Staff(r); ok {
		respond.Redirect(w, r, homeOf(s.Actor))
		return
	}
	respond.Redirect(w, r, "/portal/login")
}

func (h *handler) registerView(r *http.Request, form marketplace.Registration) RegisterView {
	if form.Kind == "" {
		form.Kind = marketplace.KindIndividual
	}
	return RegisterView{Page: h.page(r, "Register"), Form: form, Kinds: marketplace.DeveloperKinds, Levels: marketplace.ServiceLevels}
}

func (h *handler) registerForm(w http.ResponseWriter, r *http.Request) {
	respond.Page(w, r, http.StatusOK, Register(h.registerView(r, marketplace.Registration{})))
}

func (h *handler) register(w http.ResponseWriter, r *http.Request) {
	f := marketplace.Registration{
		Email: r.PostFormValue("email"), Password: r.PostFormValue("password"), Name: r.PostFormValue("name"),
		Organisation: r.PostFormValue("organisation"), Kind: marketplace.DeveloperKind(r.PostFormValue("kind")),
		Phone: strings.TrimSpace(r.PostFormValue("phone")), Level: r.PostFormValue("level"),
	}
	if _, err := h.Market.RegisterDeveloper(r.Context(), f); err != nil {
		f.Password = ""
		v := h.registerView(r, f)
		v.Page.Error = respond.Message(err)
		respond.Page(w, r, respond.Status(jifu.ErrorCode(err)), Register(v))
		return
	}
	token, sess, err := h.Market.Login(r.Context(), f.Email, f.Password)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.Sessions.StartStaff(w, r, token, sess)
	respond.Redirect(w, r, "/portal/apps?done=registered")
}

func (h *handler) loginForm(w http.ResponseWriter, r *http.Request) {
	respond.Page(w, r, http.StatusOK, Login(LoginView{Page: h.page(r, "Log in"), Next: respond.LocalPath(r.URL.Query().Get("next"))}))
}

func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	email := r.PostFormValue("email")
	token, sess, err := h.Market.Login(r.Context(), email, r.PostFormValue("password"))
	if err != nil {
		v := LoginView{Page: h.page(r, "Log in"), Email: email, Next: respond.LocalPath(r.PostFormValue("next"))}
		v.Page.Error = respond.Message(err)
		respond.Page(w, r, respond.Status(jifu.ErrorCode(err)), Login(v))
		return
	}
	// A fresh session replaces any other staff session of this browser.
	if old := session.Token(r, session.StaffCookie); old != "" {
		_ = h.Market.Logout(r.Context(), old)
	}
	h.Sessions.StartStaff(w, r, token, sess)
	to := respond.LocalPath(r.PostFormValue("next"))
	if to == "" {
		to = homeOf(sess.Actor)
	}
	respond.Redirect(w, r, to)
}

func (h *handler) logout(w http.ResponseWriter, r *http.Request) {
	if t := session.Token(r, session.StaffCookie); t != "" {
		if err := h.Market.Logout(r.Context(), t); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	h.Sessions.End(w, r, session.StaffCookie)
	respond.Redirect(w, r, "/portal/login")
}

func (h *handler) apps(w http.ResponseWriter, r *http.Request) {
	a, ok := h.actor(w, r)
	if !ok {
		return
	}
	apps, err := h.Market.Apps(r.Context(), a)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	respond.Page(w, r, http.StatusOK, Apps(AppsView{Page: h.page(r, "My apps"), Apps: apps}))
}

func (h *handler) newAppForm(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.actor(w, r); !ok {
		return
	}
	respond.Page(w, r, http.StatusOK, NewApp(NewAppView{Page: h.page(r, "Create an app"), Categories: marketplace.Categories,
		Form: AppForm{AppInput: marketplace.AppInput{Category: "tools"}}}))
}

func (h *handler) createApp(w http.ResponseWriter, r *http.Request) {
	a, ok := h.actor(w, r)
	if !ok {
		return
	}
	f := AppForm{AppInput: marketplace.AppInput{
		Slug: strings.TrimSpace(r.PostFormValue("slug")), Name: r.PostFormValue("name"), Icon: strings.TrimSpace(r.PostFormValue("icon")),
		Category: r.PostFormValue("category"), Description: r.PostFormValue("description"),
		CallbackURL: strings.TrimSpace(r.PostFormValue("callback_url")), QualificationURL: strings.TrimSpace(r.PostFormValue("qualification_url")),
	}, Whitelist: r.PostFormValue("ip_whitelist")}
	f.IPWhitelist = splitList(f.Whitelist)
	app, cred, err := h.Market.CreateApp(r.Context(), a, f.AppInput)
	if err != nil {
		v := NewAppView{Page: h.page(r, "Create an app"), Categories: marketplace.Categories, Form: f}
		v.Page.Error = respond.Message(err)
		respond.Page(w, r, respond.Status(jifu.ErrorCode(err)), NewApp(v))
		return
	}
	respond.Page(w, r, http.StatusCreated, Credential(CredentialView{Page: h.page(r, app.Name+" credential"), App: app, Cred: cred}))
}

func (h *handler) app(w http.ResponseWriter, r *http.Request) {
	a, ok := h.actor(w, r)
	if !ok {
		return
	}
	id, err := idParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v, err := h.appView(r, a, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	respond.Page(w, r, http.StatusOK, App(v))
}

func (h *handler) appView(r *http.Request, a marketplace.Actor, id int64) (AppView, error) {
	ctx := r.Context()
	v := AppView{}
	var err error
	if v.App, err = h.Market.App(ctx, a, id); err != nil {
		return v, err
	}
	if v.Keys, err = h.Market.AppKeys(ctx, a, id); err != nil {
		return v, err
	}
	if v.Versions, err = h.Market.Versions(ctx, a, id); err != nil {
		return v, err
	}
	if v.Full, v.Gray, err = h.Market.ActiveReleases(ctx, a, id); err != nil {
		return v, err
	}
	if v.Releases, err = h.Market.Releases(ctx, a, id); err != nil {
		return v, err
	}
	since := time.Now().Add(-24 * time.Hour)
	if v.Gray != nil {
		since = v.Gray.CreatedAt.Truncate(time.Minute)
	}
	st, err := h.Market.Stats(ctx, a, id, since)
	if err != nil {
		return v, err
	}
	v.Health = st.Stages
	v.Page = h.page(r, v.App.Name)
	return v, nil
}

func (h *handler) rotate(w http.ResponseWriter, r *http.Request) {
	a, ok := h.actor(w, r)
	if !ok {
		return
	}
	id, err := idParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	hours, err := strconv.Atoi(r.PostFormValue("overlap_hours"))
	if err != nil {
		h.fail(w, r, jifu.Errorf(jifu.CodeInvalid, "the overlap must be a whole number of hours"))
		return
	}
	cred, err := h.Market.RotateSecret(r.Context(), a, id, r.PostFormValue("env"), time.Duration(hours)*time.Hour)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	app, err := h.Market.App(r.Context(), a, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	respond.Page(w, r, http.StatusOK, Credential(CredentialView{Page: h.page(r, app.Name+" credential"), App: app, Cred: cred}))
}

func readPart(r *http.Request, field string, max int64) ([]byte, bool, error) {
	f, _, err := r.FormFile(field)
	if errors.Is(err, http.ErrMissingFile) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, jifu.Errorf(jifu.CodeInvalid, "reading %s: %v", field, err)
	}
	defer func(f multipart.File) { _ = f.Close() }(f)
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, false, jifu.Errorf(jifu.CodeInvalid, "reading %s: %v", field, err)
	}
	return b, true, nil
}

func (h *handler) upload(w http.ResponseWriter, r *http.Request) {
	a, ok := h.actor(w, r)
	if !ok {
		return
	}
	id, err := idParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	app, err := h.Market.App(r.Context(), a, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	refuse := func(err error) {
		code := jifu.ErrorCode(err)
		st := respond.Status(code)
		respond.Page(w, r, st, UploadRefused(UploadRefusedView{Page: h.page(r, "Upload refused"), App: app, Status: st, Code: code,
			Message: respond.Message(err), Problems: marketplace.Problems(err)}))
	}
	wasm, ok, err := readPart(r, "wasm", h.MaxUpload)
	if err != nil {
		refuse(err)
		return
	}
	if !ok || len(wasm) == 0 {
		refuse(jifu.Errorf(jifu.CodeInvalid, "choose the module (.wasm) to upload"))
		return
	}
	man, ok, err := readPart(r, "manifest", 1<<20)
	if err != nil {
		refuse(err)
		return
	}
	if !ok || len(man) == 0 {
		man = []byte(r.PostFormValue("manifest_json"))
	}
	if len(strings.TrimSpace(string(man))) == 0 {
		refuse(jifu.Errorf(jifu.CodeInvalid, "add the manifest (jifu.json): as a file or pasted"))
		return
	}
	v, err := h.Market.UploadVersion(r.Context(), a, id, wasm, man)
	if err != nil {
		refuse(err)
		return
	}
	respond.Redirect(w, r, "/portal/versions/"+Itoa(v.ID)+"?done=uploaded")
}

func (h *handler) version(w http.ResponseWriter, r *http.Request) {
	a, ok := h.actor(w, r)
	if !ok {
		return
	}
	id, err := idParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	rv, err := h.Market.Review(r.Context(), a, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	respond.Page(w, r, http.StatusOK, Version(VersionView{Page: h.page(r, rv.App.Name+" "+rv.Version.Version), Review: rv,
		Owner: a.Role == marketplace.RoleDeveloper, Reviewer: a.Is(marketplace.RoleReviewer, marketplace.RoleAdmin)}))
}

func (h *handler) submit(w http.ResponseWriter, r *http.Request) {
	a, ok := h.actor(w, r)
	if !ok {
		return
	}
	id, err := idParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.Market.SubmitVersion(r.Context(), a, id); err != nil {
		h.fail(w, r, err)
		return
	}
	respond.Redirect(w, r, "/portal/versions/"+Itoa(id)+"?done=submitted")
}

func formSegment(r *http.Request) (marketplace.Segment, error) {
	g, err := ParseSegment(r.PostFormValue("levels"), r.PostFormValue("channels"), r.PostFormValue("regions"), r.PostFormValue("whitelist"))
	if err != nil {
		return g, jifu.Errorf(jifu.CodeInvalid, "%v", err)
	}
	return g, nil
}

func formPercent(r *http.Request) (float64, error) {
	p, err := strconv.ParseFloat(strings.TrimSpace(r.PostFormValue("percent")), 64)
	if err != nil {
		return 0, jifu.Errorf(jifu.CodeInvalid, "the percentage must be a number from 0 to 100")
	}
	return p, nil
}

func (h *handler) release(w http.ResponseWriter, r *http.Request) {
	a, ok := h.actor(w, r)
	if !ok {
		return
	}
	id, err := idParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p, err := formPercent(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	g, err := formSegment(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	rel, err := h.Market.StartRelease(r.Context(), a, id, marketplace.ReleasePlan{Percent: p, Segment: g})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	respond.Redirect(w, r, "/portal/apps/"+Itoa(rel.AppID)+"?done=released")
}

// appAction runs one release control of an app and returns to its page.
func (h *handler) appAction(w http.ResponseWriter, r *http.Request, done string, fn func(a marketplace.Actor, id int64) error) {
	a, ok := h.actor(w, r)
	if !ok {
		return
	}
	id, err := idParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := fn(a, id); err != nil {
		h.fail(w, r, err)
		return
	}
	respond.Redirect(w, r, "/portal/apps/"+Itoa(id)+"?done="+done)
}

func (h *handler) percent(w http.ResponseWriter, r *http.Request) {
	h.appAction(w, r, "percent", func(a marketplace.Actor, id int64) error {
		p, err := formPercent(r)
		if err != nil {
			return err
		}
		return h.Market.SetGrayPercent(r.Context(), a, id, p)
	})
}

func (h *handler) segment(w http.ResponseWriter, r *http.Request) {
	h.appAction(w, r, "segment", func(a marketplace.Actor, id int64) error {
		g, err := formSegment(r)
		if err != nil {
			return err
		}
		return h.Market.SetSegment(r.Context(), a, id, g)
	})
}

func (h *handler) promote(w http.ResponseWriter, r *http.Request) {
	h.appAction(w, r, "promoted", func(a marketplace.Actor, id int64) error { return h.Market.Promote(r.Context(), a, id) })
}

func (h *handler) rollback(w http.ResponseWriter, r *http.Request) {
	h.appAction(w, r, "rolledback", func(a marketplace.Actor, id int64) error {
		reason := strings.TrimSpace(r.PostFormValue("reason"))
		if reason == "" {
			reason = "rolled back from the portal"
		}
		return h.Market.Rollback(r.Context(), a, id, reason)
	})
}

func (h *handler) stats(w http.ResponseWriter, r *http.Request) {
	a, ok := h.actor(w, r)
	if !ok {
		return
	}
	id, err := idParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	days := 14
	if d, err := strconv.Atoi(r.URL.Query().Get("days")); err == nil && d >= 1 && d <= 365 {
		days = d
	}
	app, err := h.Market.App(r.Context(), a, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	since := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -(days - 1))
	st, err := h.Market.Stats(r.Context(), a, id, since)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	respond.Page(w, r, http.StatusOK, Stats(StatsView{Page: h.page(r, app.Name+" statistics"), App: app, Stats: st, Days: days, Charts: DayCharts(st)}))
}

func (h *handler) outbox(w http.ResponseWriter, r *http.Request) {
	if h.Outbox == nil {
		h.fail(w, r, jifu.Errorf(jifu.CodeNotFound, "there is no local SMS outbox: messages go to a carrier"))
		return
	}
	if !h.Dev {
		if _, ok := h.actor(w, r); !ok {
			return
		}
	}
	to := strings.TrimSpace(r.URL.Query().Get("to"))
	es, err := h.Outbox.List(r.Context(), notify.Filter{To: to, Limit: 100})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	respond.Page(w, r, http.StatusOK, Outbox(OutboxView{Page: h.page(r, "SMS outbox"), To: to, Entries: es}))
}

func (h *handler) audit(w http.ResponseWriter, r *http.Request) {
	a, ok := h.actor(w, r)
	if !ok {
		return
	}
	target := r.URL.Query().Get("target")
	es, err := h.Market.AuditLog(r.Context(), a, target, 200)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	respond.Page(w, r, http.StatusOK, Audit(AuditView{Page: h.page(r, "Audit log"), Target: target, Entries: es}))
}
