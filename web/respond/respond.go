// Package respond writes the web's answers: rendered pages, redirects, and
// errors, either as an HTML page for people or as a JSON body for programs,
// always with the error's stable code. Status maps codes to HTTP statuses:
// the one place in the web where that happens.
//
//	if err != nil {
//		respond.Error(w, r, log, page, err)
//		return
//	}
//	respond.Page(w, r, http.StatusOK, view.Apps(page, apps))
package respond

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"

	"github.com/a-h/templ"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/ratelimit"
	"github.com/jifu-open/jifu/sdk/opensign"
	"github.com/jifu-open/jifu/web/layout"
)

// Status maps an error code to its HTTP status.
func Status(code string) int {
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

// securityHeaders are set on every page the platform renders itself.
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'; form-action 'self'")
	h.Set("Cache-Control", "no-store")
}

// Page renders a component with status.
func Page(w http.ResponseWriter, r *http.Request, status int, c templ.Component) {
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	_ = c.Render(r.Context(), w)
}

// Redirect answers 303 See Other: the way on after a form.
func Redirect(w http.ResponseWriter, r *http.Request, to string) {
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// WantsHTML reports whether the client is a browser asking for a page.
func WantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func logIfServer(r *http.Request, log *slog.Logger, st int, code string, err error) {
	if st >= 500 && log != nil {
		log.WarnContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "code", code, "err", err)
	}
}

// JSON answers with the error's status and a JSON body holding its stable
// code and user-safe message. Internal errors are logged, not shown.
func JSON(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var body errorBody
	body.Error.Code = jifu.ErrorCode(err)
	body.Error.Message = jifu.ErrorMessage(err)
	st := Status(body.Error.Code)
	logIfServer(r, log, st, body.Error.Code, err)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(st)
	_ = json.NewEncoder(w).Encode(body)
}

// Error answers with an HTML error page in p's shell, offering back (a URL
// and its label; none when back is "").
func Error(w http.ResponseWriter, r *http.Request, log *slog.Logger, p layout.Page, err error, back, label string) {
	code := jifu.ErrorCode(err)
	st := Status(code)
	logIfServer(r, log, st, code, err)
	if p.Title == "" {
		p.Title = "Error"
	}
	Page(w, r, st, layout.ErrorPage(p, st, code, Message(err), back, label))
}

// Message is the user-safe text of err without the package prefix the
// domain adds ("marketplace: ").
func Message(err error) string {
	m := jifu.ErrorMessage(err)
	if i := strings.Index(m, ": "); i > 0 && !strings.Contains(m[:i], " ") {
		m = m[i+2:]
	}
	return m
}

// LocalPath returns next when it is a path on this site, safe to redirect
// to after a login, and "" otherwise: it must start with one "/", and hold
// no backslash, control character or space (browsers drop tabs and
// newlines, which could turn "/\t/evil.example" into "//evil.example").
func LocalPath(next string) string {
	if len(next) == 0 || len(next) > 2048 || next[0] != '/' {
		return ""
	}
	for i := 0; i < len(next); i++ {
		if c := next[i]; c < 0x21 || c == 0x7f || c == '\\' {
			return ""
		}
	}
	if strings.HasPrefix(next, "//") {
		return ""
	}
	return next
}
