package session_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/marketplace"
	"github.com/jifu-open/jifu/web/session"
)

// tokens is a fixed token → session table standing in for the marketplace's
// sessions (which the web's flow tests exercise on PostgreSQL).
type tokens map[string]*marketplace.Session

func (m tokens) Authenticate(_ context.Context, token string) (*marketplace.Session, error) {
	if s, ok := m[token]; ok {
		return s, nil
	}
	return nil, jifu.Errorf(jifu.CodeDenied, "not logged in")
}

var known = tokens{
	"staff-tok": {Kind: marketplace.SessionStaff, Actor: marketplace.Actor{AccountID: 1, Role: marketplace.RoleDeveloper, Name: "D"}, CSRF: "staff-csrf"},
	"user-tok":  {Kind: marketplace.SessionUser, UserID: 5, CSRF: "user-csrf"},
}

type seen struct {
	identity string
	ok       bool
	staff    bool
	user     bool
	verify   error
	csrf     string
}

// serve runs one request through the middleware and reports what a handler saw.
func serve(t *testing.T, opt session.Options, r *http.Request) (seen, *httptest.ResponseRecorder) {
	t.Helper()
	var s seen
	h := session.New(known, opt).Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.identity, s.ok = session.Identity(r)
		st, okStaff := session.Staff(r)
		_, s.user = session.User(r)
		s.staff = okStaff
		if r.Method == http.MethodPost {
			s.verify = session.Verify(r, st)
		} else {
			s.csrf = session.CSRF(r, st)
		}
	}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return s, w
}

func TestIdentity(t *testing.T) {
	tests := []struct {
		name    string
		dev     bool
		cookies map[string]string
		header  string
		want    string
		ok      bool
	}{
		{"anonymous", false, nil, "", "", false},
		{"store session", false, map[string]string{session.UserCookie: "user-tok"}, "", "u5", true},
		{"header outside dev mode", false, nil, "mallory", "", false},
		{"header in dev mode", true, nil, "alice", "alice", true},
		{"session wins over the header", true, map[string]string{session.UserCookie: "user-tok"}, "alice", "u5", true},
		{"unknown token", false, map[string]string{session.UserCookie: "stolen"}, "", "", false},
		{"staff token in the store cookie", false, map[string]string{session.UserCookie: "staff-tok"}, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/apps/x/", nil)
			for k, v := range tt.cookies {
				r.AddCookie(&http.Cookie{Name: k, Value: v})
			}
			if tt.header != "" {
				r.Header.Set("X-Jifu-User", tt.header)
			}
			s, w := serve(t, session.Options{Dev: tt.dev}, r)
			if s.identity != tt.want || s.ok != tt.ok {
				t.Errorf("Identity = %q %v, want %q %v", s.identity, s.ok, tt.want, tt.ok)
			}
			if tt.name == "anonymous" && s.csrf == "" {
				t.Error("no pre-session token for a form")
			}
			_ = w
		})
	}
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name   string
		cookie map[string]string
		header string
		form   string // the csrf field; "-" for none
		ok     bool
	}{
		{"session token", map[string]string{session.StaffCookie: "staff-tok"}, "", "staff-csrf", true},
		{"session token in the header", map[string]string{session.StaffCookie: "staff-tok"}, "staff-csrf", "-", true},
		{"missing", map[string]string{session.StaffCookie: "staff-tok"}, "", "-", false},
		{"wrong", map[string]string{session.StaffCookie: "staff-tok"}, "", "staff-csrF", false},
		{"another session's", map[string]string{session.StaffCookie: "staff-tok"}, "", "user-csrf", false},
		{"the pre-session token once logged in", map[string]string{session.StaffCookie: "staff-tok", session.CSRFCookie: "pre-token-0123456789"}, "", "pre-token-0123456789", false},
		{"pre-session token", map[string]string{session.CSRFCookie: "pre-token-0123456789"}, "", "pre-token-0123456789", true},
		{"pre-session without its cookie", nil, "", "pre-token-0123456789", false},
		{"empty against an empty cookie", map[string]string{session.CSRFCookie: ""}, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := url.Values{}
			if tt.form != "-" {
				f.Set("csrf", tt.form)
			}
			r := httptest.NewRequest("POST", "/portal/apps/new", strings.NewReader(f.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.header != "" {
				r.Header.Set(session.HeaderName, tt.header)
			}
			for k, v := range tt.cookie {
				r.AddCookie(&http.Cookie{Name: k, Value: v})
			}
			s, _ := serve(t, session.Options{}, r)
			if (s.verify == nil) != tt.ok {
				t.Fatalf("Verify = %v, want ok=%v", s.verify, tt.ok)
			}
			if s.verify != nil && jifu.ErrorCode(s.verify) != jifu.CodeDenied {
				t.Errorf("code %q", jifu.ErrorCode(s.verify))
			}
		})
	}
}

func TestCookieFlags(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	tests := []struct {
		name       string
		opt        session.Options
		tls        bool
		wantSecure bool
	}{
		{"plain http", session.Options{}, false, false},
		{"configured secure", session.Options{Secure: true}, false, true},
		{"over TLS", session.Options{}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := session.New(known, tt.opt)
			r := httptest.NewRequest("POST", "/store/login/code", nil)
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			w := httptest.NewRecorder()
			m.StartUser(w, r, "user-tok", &marketplace.Session{Kind: marketplace.SessionUser, ExpiresAt: exp})
			cs := w.Result().Cookies()
			if len(cs) != 1 {
				t.Fatalf("cookies %v", cs)
			}
			c := cs[0]
			if c.Name != session.UserCookie || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure != tt.wantSecure || c.Path != "/" {
				t.Errorf("cookie %+v", c)
			}
			w = httptest.NewRecorder()
			m.End(w, r, session.UserCookie)
			if c := w.Result().Cookies()[0]; c.MaxAge >= 0 || c.Value != "" {
				t.Errorf("end: %+v", c)
			}
		})
	}
}

// Responses that render no form (apps, health) set no cookie.
func TestNoCookieWithoutForms(t *testing.T) {
	h := session.New(known, session.Options{}).Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/apps/hello/", nil))
	if c := w.Result().Cookies(); len(c) != 0 {
		t.Errorf("cookies %v", c)
	}
}

// counting counts lookups.
type counting struct {
	tokens
	n int
}

func (c *counting) Authenticate(ctx context.Context, token string) (*marketplace.Session, error) {
	c.n++
	return c.tokens.Authenticate(ctx, token)
}

// Sessions are looked up once, and only by requests that ask.
func TestLazyLookup(t *testing.T) {
	auth := &counting{tokens: known}
	m := session.New(auth, session.Options{})
	asks := false
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if asks {
			session.Identity(r)
			session.Staff(r)
			session.User(r)
		}
	}))
	r := httptest.NewRequest("GET", "/static/app.css", nil)
	r.AddCookie(&http.Cookie{Name: session.UserCookie, Value: "user-tok"})
	r.AddCookie(&http.Cookie{Name: session.StaffCookie, Value: "staff-tok"})
	h.ServeHTTP(httptest.NewRecorder(), r)
	if auth.n != 0 {
		t.Fatalf("%d lookups for a request that never asked", auth.n)
	}
	asks = true
	h.ServeHTTP(httptest.NewRecorder(), r)
	if auth.n != 2 {
		t.Fatalf("%d lookups, want one per cookie", auth.n)
	}
}
