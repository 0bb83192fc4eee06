// Package session keeps the web's logins in cookies and guards its forms.
//
// Two sessions live side by side, each in its own HttpOnly, SameSite=Lax
// cookie (Secure when serving https or when configured): the staff session
// of the developer portal and the reviewer pages, and the store session of
// an end user. The Middleware resolves both once per request through the
// marketplace; handlers read them with Staff and User, and any feature (the
// store, /apps/{slug}/, the payment pages) learns who the end user is with
// Identity.
//
// Every form carries a CSRF token: the session's own token once logged in,
// before that the token of a pre-session cookie (double submit). Verify
// refuses a state-changing request whose token is missing or wrong.
//
//	m := session.New(svc, session.Options{Secure: true})
//	h := m.Middleware(router)
//	// in a handler:
//	if ref, ok := session.Identity(r); ok { ... }
package session

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/marketplace"
)

// Cookie names.
const (
	StaffCookie = "jifu_staff" // the portal's and reviewers' session token
	UserCookie  = "jifu_user"  // the store's session token
	CSRFCookie  = "jifu_csrf"  // the pre-session CSRF token (login and register forms)
	// FormField is the name of the CSRF field of every form; HeaderName
	// carries it for scripted requests.
	FormField  = "csrf"
	HeaderName = "X-CSRF-Token"
)

// Authenticator resolves a session token (the marketplace Service).
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (*marketplace.Session, error)
}

// Options configure a Manager.
type Options struct {
	// Secure marks cookies Secure even on plain http (behind a TLS proxy).
	// Requests that arrive over TLS always get Secure cookies.
	Secure bool
	// Dev trusts the X-Jifu-User header as the end user's identity when
	// there is no store session. Never in production.
	Dev bool
}

// Manager reads and writes the session cookies.
type Manager struct {
	auth Authenticator
	opt  Options
}

// New returns a Manager. auth may be nil: then nobody is ever logged in.
func New(auth Authenticator, opt Options) *Manager { return &Manager{auth: auth, opt: opt} }

type ctxKey struct{}

// state is what the middleware learned about a request. The sessions are
// looked up on first use, so requests that never ask (static files, health
// checks, metrics) cost no database round trip.
type state struct {
	once        sync.Once
	resolve     func()
	staff, user *marketplace.Session
	preCSRF     string
	setPre      func(string) // sets the pre-session cookie, once
	dev         bool
	devUser     string
}

func from(ctx context.Context) *state {
	s, _ := ctx.Value(ctxKey{}).(*state)
	if s == nil {
		return &state{}
	}
	if s.resolve != nil {
		s.once.Do(s.resolve)
	}
	return s
}

// Middleware resolves the request's sessions and makes sure a pre-session
// CSRF cookie exists. A cookie whose session ended is simply ignored.
func (m *Manager) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := &state{dev: m.opt.Dev}
		if m.auth != nil {
			ctx := r.Context()
			staff, _ := r.Cookie(StaffCookie)
			user, _ := r.Cookie(UserCookie)
			st.resolve = func() {
				if staff != nil && staff.Value != "" {
					if s, err := m.auth.Authenticate(ctx, staff.Value); err == nil && s.Kind == marketplace.SessionStaff {
						st.staff = s
					}
				}
				if user != nil && user.Value != "" {
					if s, err := m.auth.Authenticate(ctx, user.Value); err == nil && s.Kind == marketplace.SessionUser {
						st.user = s
					}
				}
			}
		}
		if m.opt.Dev {
			st.devUser = r.Header.Get("X-Jifu-User")
		}
		if c, err := r.Cookie(CSRFCookie); err == nil && len(c.Value) >= 16 && len(c.Value) <= 64 {
			st.preCSRF = c.Value
		} else {
			// Made when a page first asks for it, so that app responses,
			// health checks and metrics carry no cookie.
			st.setPre = func(tok string) { m.setCookie(w, r, CSRFCookie, tok, time.Time{}) }
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, st)))
	})
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // never fails on Linux
	return base64.RawURLEncoding.EncodeToString(b)
}

func (m *Manager) secure(r *http.Request) bool { return m.opt.Secure || r.TLS != nil }

func (m *Manager) setCookie(w http.ResponseWriter, r *http.Request, name, value string, expires time.Time) {
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: m.secure(r)}
	if !expires.IsZero() {
		c.Expires = expires
		c.MaxAge = int(time.Until(expires).Seconds())
	}
	http.SetCookie(w, c)
}

func (m *Manager) clearCookie(w http.ResponseWriter, r *http.Request, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: m.secure(r)})
}

// StartStaff sets the staff session cookie after a login.
func (m *Manager) StartStaff(w http.ResponseWriter, r *http.Request, token string, s *marketplace.Session) {
	m.setCookie(w, r, StaffCookie, token, s.ExpiresAt)
}

// StartUser sets the store session cookie after an SMS-code login.
func (m *Manager) StartUser(w http.ResponseWriter, r *http.Request, token string, s *marketplace.Session) {
	m.setCookie(w, r, UserCookie, token, s.ExpiresAt)
}

// Token returns the raw token of the session cookie name ("" without one),
// for logging out.
func Token(r *http.Request, name string) string {
	if c, err := r.Cookie(name); err == nil {
		return c.Value
	}
	return ""
}

// End clears the cookie name (StaffCookie or UserCookie).
func (m *Manager) End(w http.ResponseWriter, r *http.Request, name string) { m.clearCookie(w, r, name) }

// Staff returns the request's staff session.
func Staff(r *http.Request) (*marketplace.Session, bool) {
	s := from(r.Context()).staff
	return s, s != nil
}

// User returns the request's store session.
func User(r *http.Request) (*marketplace.Session, bool) {
	s := from(r.Context()).user
	return s, s != nil
}

// Identity returns the end user a request acts for, as apps and the host
// see it (a marketplace.UserRef such as "u42"): the store session's user,
// or in dev mode the X-Jifu-User header when there is no store session.
// ok is false for an anonymous visitor.
func Identity(r *http.Request) (userRef string, ok bool) {
	st := from(r.Context())
	if st.user != nil {
		return marketplace.UserRef(st.user.UserID), true
	}
	if st.dev && st.devUser != "" {
		return st.devUser, true
	}
	return "", false
}

// UserID returns the store user's id of a request with a store session.
func UserID(r *http.Request) (int64, bool) {
	st := from(r.Context())
	if st.user == nil {
		return 0, false
	}
	return st.user.UserID, true
}

// CSRF returns the token forms must carry in the area of sess: sess's own
// token, or the pre-session token when sess is nil.
func CSRF(r *http.Request, sess *marketplace.Session) string {
	if sess != nil {
		return sess.CSRF
	}
	st := from(r.Context())
	if st.preCSRF == "" && st.setPre != nil {
		st.preCSRF = randomToken()
		st.setPre(st.preCSRF)
		st.setPre = nil
	}
	return st.preCSRF
}

// Verify checks the CSRF token of a state-changing request against the
// token of sess (the pre-session token when sess is nil): CodeDenied when it
// is missing or wrong. The form must already be parsed (or the token sent
// in the X-CSRF-Token header).
func Verify(r *http.Request, sess *marketplace.Session) error {
	got := r.Header.Get(HeaderName)
	if got == "" {
		got = r.PostFormValue(FormField)
	}
	want := from(r.Context()).preCSRF
	if sess != nil {
		want = sess.CSRF
	}
	if got == "" || want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return jifu.Errorf(jifu.CodeDenied, "the form's security token is missing or stale; reload the page and try again")
	}
	return nil
}
