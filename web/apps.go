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
)

// appHandler routes /apps/{slug}/rest to the app's handle_http with Path "/rest".
type appHandler struct {
	apps     Apps
	resolver Resolver
	user     func(*http.Request) string
	log      *slog.Logger
	dev      bool
}

// Request headers an app never sees: the platform's own credentials and
// hop-by-hop fields.
var hiddenRequestHeaders = map[string]bool{
	"Cookie": true, "Authorization": true, "X-Jifu-User": true,
	"Connection": true, "Keep-Alive": true, "Proxy-Authorization": true, "Te": true, "Upgrade": true,
}

// Response headers an app may not set: cookies on the platform's origin and
// framing fields the server owns.
var forbiddenResponseHeaders = map[string]bool{
	"Set-Cookie": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Strict-Transport-Security": true,
}

func (h *appHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	slug := chi.URLParam(r, "slug")
	var user string
	switch {
	case h.dev:
		user = r.Header.Get("X-Jifu-User")
	case h.user != nil:
		user = h.user(r)
	}
	var (
		app  *host.App
		done func(status int, err error)
	)
	if h.resolver != nil {
		var err error
		if app, done, err = h.resolver.Resolve(r.Context(), slug, user); err != nil {
			writeError(w, r, h.log, err)
			return
		}
	} else {
		var ok bool
		if app, ok = h.apps.App(slug); !ok {
			writeError(w, r, h.log, jifu.Errorf(jifu.CodeNotFound, "no app %q", slug))
			return
		}
	}
	limit := int64(app.Limits().RequestBytes)
	body, err := readBody(w, r, limit)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, r, h.log, jifu.Errorf(host.CodeRequestTooLarge, "request body over the app's %d bytes", limit))
			return
		}
		writeError(w, r, h.log, jifu.Errorf(jifu.CodeInvalid, "reading the request body: %v", err))
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
		status := 0
		if resp != nil {
			status = resp.Status
		}
		done(status, err)
	}
	if err != nil {
		writeError(w, r, h.log, err)
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
