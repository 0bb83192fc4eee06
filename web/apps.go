package web

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/abi"
	"github.com/jifu-open/jifu/marketplace"
	"github.com/jifu-open/jifu/web/respond"
	"github.com/jifu-open/jifu/web/session"
	"github.com/jifu-open/jifu/web/store"
)

// appHandler routes /apps/{slug}/rest to the handle_http of the app version
// serving the caller, with Path "/rest": the marketplace's releases first,
// then the apps loaded from a folder.
type appHandler struct {
	apps     Apps
	resolver Resolver
	user     func(*http.Request) string
	market   *marketplace.Service
	log      *slog.Logger
	dev      bool
	outbox   bool
}

// Request headers an app never sees: the platform's own credentials and
// hop-by-hop fields.
var hiddenRequestHeaders = map[string]bool{
	"Cookie": true, "Authorization": true, "X-Jifu-User": true, "X-Csrf-Token": true,
	"Connection": true, "Keep-Alive": true, "Proxy-Authorization": true, "Te": true, "Upgrade": true,
}

// Response headers an app may not set: cookies on the platform's origin and
// framing fields the server owns.
var forbiddenResponseHeaders = map[string]bool{
	"Set-Cookie": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Strict-Transport-Security": true,
}

func (h *appHandler) fail(w http.ResponseWriter, r *http.Request, err error) {
	if respond.WantsHTML(r) {
		back, label := "/store/", "Back to the store"
		if _, ok := session.UserID(r); ok {
			back, label = "/store/my", "My apps"
		}
		respond.Error(w, r, h.log, store.Page(r, "App error", h.outbox), err, back, label)
		return
	}
	respond.JSON(w, r, h.log, err)
}

// resolve finds the app version for the caller; done is nil for apps loaded
// from a folder. market reports whether the marketplace serves it.
func (h *appHandler) resolve(r *http.Request, slug, user string) (app *host.App, done func(int, error), market bool, err error) {
	if h.resolver != nil {
		app, done, err = h.resolver.Resolve(r.Context(), slug, user)
		if err == nil {
			return app, done, true, nil
		}
		if jifu.ErrorCode(err) != jifu.CodeNotFound {
			return nil, nil, false, err
		}
	}
	if h.apps != nil {
		if a, ok := h.apps.App(slug); ok {
			return a, nil, false, nil
		}
	}
	if err == nil {
		err = jifu.Errorf(jifu.CodeNotFound, "no app %q", slug)
	}
	return nil, nil, false, err
}

func (h *appHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	slug := chi.URLParam(r, "slug")
	user, _ := session.Identity(r)
	if h.user != nil && !h.dev {
		user = h.user(r)
	}
	app, done, market, err := h.resolve(r, slug, user)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	// A store user acts through an app only after granting it access on the
	// consent screen; after a revocation nothing reaches the app.
	if uid, ok := session.UserID(r); ok && market && h.market != nil {
		installed, err := h.market.Installed(r.Context(), uid, slug)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if !installed {
			h.refuseConsent(w, r, slug)
			return
		}
	}
	limit := int64(app.Limits().RequestBytes)
	body, err := readBody(w, r, limit)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			h.fail(w, r, jifu.Errorf(host.CodeRequestTooLarge, "request body over the app's %d bytes", limit))
			return
		}
		h.fail(w, r, jifu.Errorf(jifu.CodeInvalid, "reading the request body: %v", err))
		return
	}
	req := &abi.Request{
		Method:  r.Method,
		Path:    "/" + chi.URLParam(r, "*"),
		Query:   r.URL.RawQuery,
		Body:    body,
		Headers: make([]abi.Header, 0, len(r.Header)),
	}
	for name, values := range r.Header {
		if hiddenRequestHeaders[name] {
			continue
		}
		for _, v := range values {
			req.Headers = append(req.Headers, abi.Header{Name: name, Value: v})
		}
	}
	caller := host.Caller{RequestID: r.Header.Get("X-Request-Id"), User: user}
	resp, err := app.HandleHTTP(r.Context(), caller, req)
	if done != nil {
		st := 0
		if resp != nil {
			st = resp.Status
		}
		done(st, err)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	hdr := w.Header()
	for _, hd := range resp.Headers {
		name := http.CanonicalHeaderKey(hd.Name)
		if forbiddenResponseHeaders[name] || strings.ContainsAny(hd.Value, "\r\n") {
			continue
		}
		hdr.Add(name, hd.Value)
	}
	hdr.Set("X-Content-Type-Options", "nosniff")
	if hdr.Get("Content-Security-Policy") == "" {
		hdr.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'self'")
	}
	w.WriteHeader(resp.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(resp.Body)
	}
}

// readBody reads a request's body up to limit bytes. A request without one
// (most GETs) costs no buffer.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	return io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
}

func (h *appHandler) refuseConsent(w http.ResponseWriter, r *http.Request, slug string) {
	err := jifu.Errorf(jifu.CodeDenied, "you have not granted %s access, or you revoked it", slug)
	if !respond.WantsHTML(r) {
		respond.JSON(w, r, h.log, err)
		return
	}
	name := slug
	if l, lerr := h.market.Listing(r.Context(), slug); lerr == nil {
		name = l.App.Name
	}
	respond.Page(w, r, http.StatusForbidden, store.ConsentRequired(store.ConsentRequiredView{Page: store.Page(r, name+": no access", h.outbox),
		Slug: slug, Name: name}))
}
