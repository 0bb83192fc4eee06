// Package web is the platform's one HTTP handler stack: health and metrics,
// the developer portal (/portal), the reviewer pages (/review), the risk
// staff's desk (/risk), the app store (/store), static assets (/static), and
// the route from /apps/{slug}/... to the app version that serves the
// caller. Both the local server and the Lambda adapter serve the same
// handler.
//
// Feature folders hold the pages: portal, review, risk and store (each a
// handler, its models and its templ views), with layout (the shell), session
// (cookie sessions, CSRF, Identity) and respond (pages, errors, the code →
// status map) shared between them.
//
//	h := web.New(web.Deps{Market: svc, Resolver: serving, Outbox: outbox, Ready: pool.Ping, Metrics: reg})
//	http.ListenAndServe(":8080", h)
package web

import (
	"context"
	"embed"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/notify"
	"github.com/jifu-open/jifu/marketplace"
	"github.com/jifu-open/jifu/web/portal"
	"github.com/jifu-open/jifu/web/respond"
	"github.com/jifu-open/jifu/web/review"
	"github.com/jifu-open/jifu/web/risk"
	"github.com/jifu-open/jifu/web/session"
	"github.com/jifu-open/jifu/web/store"
)

//go:embed static
var staticFiles embed.FS

// Apps resolves a slug to its serving app version (the apps loaded from a
// folder with --dev-apps).
type Apps interface {
	App(slug string) (*host.App, bool)
}

// Resolver picks the app version serving a user and returns a done
// function to call with the response status and error once the request is
// over (the release statistics). marketplace.Serving implements it.
type Resolver interface {
	Resolve(ctx context.Context, slug, user string) (app *host.App, done func(status int, err error), err error)
}

// Deps are the handler's dependencies. Without Market the portal, the
// reviewer pages and the store are not served.
type Deps struct {
	Apps   Apps
	Market *marketplace.Service
	// Resolver, when set, picks the version serving each user through the
	// marketplace's releases (gray, segment, sticky); Apps serves the slugs
	// it does not know.
	Resolver Resolver
	// User, when set, returns the store user (marketplace.UserRef) a
	// request acts for instead of the store session (for embedding the
	// stack without the marketplace's sessions). Unused in DevMode.
	User func(*http.Request) string
	// Outbox is the local SMS channel: listed at /portal/outbox for staff
	// (for anyone in DevMode), since no phone receives its messages.
	Outbox  *notify.Outbox
	Ready   func(context.Context) error // nil means always ready
	Metrics prometheus.Gatherer         // served at /metrics when set
	Logger  *slog.Logger
	// DevMode trusts the X-Jifu-User header as the caller's identity when
	// there is no store session, and shows the SMS outbox. Never enable it
	// where the server is reachable by others.
	DevMode bool
	// SecureCookies marks session cookies Secure on plain http (behind a
	// TLS-terminating proxy); requests over TLS always get Secure cookies.
	SecureCookies bool
	// MaxUpload bounds an uploaded module (default host.DefaultMaxModuleSize).
	MaxUpload int64
	// Risk, when set with Market, serves the risk staff's desk at /risk
	// (the card core's risk rules; cardpay.RiskDesk implements it).
	Risk risk.Desk
	// RiskCases, with Risk, adds the 差错 queue and the user-level form to
	// the desk (cardpay.Desk implements it).
	RiskCases risk.Cases
	// Mount adds feature handlers under their path prefix (for example
	// "/pay"), behind the session middleware: they call session.Identity.
	Mount map[string]http.Handler
}

// Identity returns the end user a request acts for (a marketplace.UserRef
// such as "u42"): the store session's user, or in dev mode the X-Jifu-User
// header. ok is false for anonymous visitors. It works for every handler
// served by New, Mount ones included.
func Identity(r *http.Request) (userRef string, ok bool) { return session.Identity(r) }

// New builds the handler.
func New(d Deps) http.Handler {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	var auth session.Authenticator
	if d.Market != nil {
		auth = d.Market
	}
	sessions := session.New(auth, session.Options{Secure: d.SecureCookies, Dev: d.DevMode})
	r := chi.NewRouter()
	r.Use(sessions.Middleware)
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	r.Get("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if d.Ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := d.Ready(ctx); err != nil {
				respond.JSON(w, r, d.Logger, jifu.Errorf(jifu.CodeUnavailable, "not ready: %v", err))
				return
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ready\n"))
	})
	if d.Metrics != nil {
		r.Handle("/metrics", promhttp.HandlerFor(d.Metrics, promhttp.HandlerOpts{}))
	}
	static, _ := fs.Sub(staticFiles, "static")
	r.Handle("/static/*", http.StripPrefix("/static/", staticHandler(http.FileServerFS(static))))
	if d.Market != nil {
		r.Mount("/portal", portal.New(portal.Deps{Market: d.Market, Sessions: sessions, Outbox: d.Outbox, Logger: d.Logger,
			Dev: d.DevMode, MaxUpload: d.MaxUpload}))
		r.Mount("/review", review.New(review.Deps{Market: d.Market, Logger: d.Logger, Outbox: d.Outbox != nil}))
		if d.Risk != nil {
			r.Mount("/risk", risk.New(risk.Deps{Desk: d.Risk, Cases: d.RiskCases, Logger: d.Logger, Outbox: d.Outbox != nil}))
		}
		r.Mount("/store", store.New(store.Deps{Market: d.Market, Sessions: sessions, Logger: d.Logger, Outbox: d.Outbox != nil}))
		r.Get("/", func(w http.ResponseWriter, r *http.Request) { respond.Redirect(w, r, "/store/") })
	}
	for prefix, h := range d.Mount {
		r.Mount(prefix, h)
	}
	ah := &appHandler{apps: d.Apps, resolver: d.Resolver, user: d.User, market: d.Market, log: d.Logger, dev: d.DevMode,
		outbox: d.Outbox != nil}
	r.Get("/apps/{slug}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Path+"/", http.StatusMovedPermanently)
	})
	r.Handle("/apps/{slug}/*", ah)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		err := jifu.Errorf(jifu.CodeNotFound, "no such page: %s", r.URL.Path)
		if respond.WantsHTML(r) {
			respond.Error(w, r, d.Logger, store.Page(r, "Not found", d.Outbox != nil), err, "/", "Home")
			return
		}
		respond.JSON(w, r, d.Logger, err)
	})
	return r
}

func staticHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}
