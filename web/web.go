// Package web is the platform's one HTTP handler stack: health and metrics,
// the route from /apps/{slug}/... to each app's handle_http, and (in later
// issues) the developer portal and the app store. Both the local server and the
// Lambda adapter serve the same handler.
//
//	h := web.New(web.Deps{Apps: set, Ready: pool.Ping, Metrics: reg})
//	http.ListenAndServe(":8080", h)
package web

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/ratelimit"
	"github.com/jifu-open/jifu/sdk/opensign"
)

// Apps resolves a slug to its serving app version.
type Apps interface {
	App(slug string) (*host.App, bool)
}

// Deps are the handler's dependencies.
type Deps struct {
	Apps    Apps
	Ready   func(context.Context) error // nil means always ready
	Metrics prometheus.Gatherer         // served at /metrics when set
	Logger  *slog.Logger
	// DevMode trusts the X-Jifu-User header as the caller's identity. Never
	// enable it where the server is reachable by others; the store's session
	// replaces it (marketplace issue).
	DevMode bool
	// Resolver, when set, picks the version serving each user through the
	// marketplace's releases (gray, segment, sticky) instead of Apps.
	Resolver Resolver
	// User returns the store user (marketplace.UserRef) a request acts for,
	// from its session; "" for an anonymous visitor. Unused in DevMode.
	User func(*http.Request) string
}

// Resolver picks the app version serving a user and returns a done
// function to call with the response status and error once the request is
// over (the release statistics). marketplace.Serving implements it.
type Resolver interface {
	Resolve(ctx context.Context, slug, user string) (app *host.App, done func(status int, err error), err error)
}

// New builds the handler.
func New(d Deps) http.Handler {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	r := chi.NewRouter()
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	r.Get("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if d.Ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := d.Ready(ctx); err != nil {
				writeError(w, r, d.Logger, jifu.Errorf(jifu.CodeUnavailable, "not ready: %v", err))
				return
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ready\n"))
	})
	if d.Metrics != nil {
		r.Handle("/metrics", promhttp.HandlerFor(d.Metrics, promhttp.HandlerOpts{}))
	}
	ah := &appHandler{apps: d.Apps, resolver: d.Resolver, user: d.User, log: d.Logger, dev: d.DevMode}
	r.Get("/apps/{slug}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Path+"/", http.StatusMovedPermanently)
	})
	r.Handle("/apps/{slug}/*", ah)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, d.Logger, jifu.Errorf(jifu.CodeNotFound, "no such page: %s", r.URL.Path))
	})
	return r
}

// status maps error codes to HTTP statuses: the one place this happens.
func status(code string) int {
	if st := opensign.Status(code); st != 0 { // 401 for the signature's problems, 409 for a replayed nonce
		return st
	}
	switch code {
	case jifu.CodeInvalid:
		return http.StatusBadRequest
	case jifu.CodeNotFound:
		return http.StatusNotFound
	case jifu.CodeConflict:
		return http.StatusConflict
	case jifu.CodeDenied:
		return http.StatusForbidden
	case jifu.CodeTooLarge, host.CodeRequestTooLarge:
		return http.StatusRequestEntityTooLarge
	case jifu.CodeLimit, ratelimit.CodeLimited:
		return http.StatusTooManyRequests
	case jifu.CodeTimeout, host.CodeTimeout:
		return http.StatusGatewayTimeout
	case jifu.CodeUnavailable, host.CodeAppClosed:
		return http.StatusServiceUnavailable
	case jifu.CodeGuestFault, host.CodeTrap, host.CodePanic, host.CodeMemoryLimit, host.CodeBadPointer,
		host.CodeHostCallLimit, host.CodeResponseTooLarge, host.CodeBadResponse, host.CodeNoEntryPoint:
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// writeError answers with the error's status and a JSON body holding its
// stable code and user-safe message. Internal errors are logged, not shown.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var body errorBody
	body.Error.Code = jifu.ErrorCode(err)
	body.Error.Message = jifu.ErrorMessage(err)
	st := status(body.Error.Code)
	if st >= 500 {
		log.WarnContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "code", body.Error.Code, "err", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(st)
	_ = json.NewEncoder(w).Encode(body)
}
