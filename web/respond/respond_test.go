package respond_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/web/layout"
	"github.com/jifu-open/jifu/web/respond"
)

func TestLocalPath(t *testing.T) {
	tests := map[string]string{
		"/store/my":                 "/store/my",
		"/store/apps/x/consent?a=1": "/store/apps/x/consent?a=1",
		"":                          "",
		"store":                     "",
		"//evil.example":            "",
		"/\\evil.example":           "",
		"/\t/evil.example":          "",
		"/\n/evil.example":          "",
		"https://evil.example/":     "",
		"/ /x":                      "",
	}
	for in, want := range tests {
		if got := respond.LocalPath(in); got != want {
			t.Errorf("LocalPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzLocalPath: whatever comes in, what comes out stays on this site.
func FuzzLocalPath(f *testing.F) {
	for _, s := range []string{"/store/", "//x", "/\\x", "/\t/x", "http://x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := respond.LocalPath(in)
		if out == "" {
			return
		}
		if out != in || !strings.HasPrefix(out, "/") || strings.HasPrefix(out, "//") || strings.ContainsAny(out, "\\\t\r\n ") {
			t.Fatalf("LocalPath(%q) = %q", in, out)
		}
	})
}

func TestStatus(t *testing.T) {
	tests := map[string]int{
		jifu.CodeInvalid: 400, jifu.CodeDenied: 403, jifu.CodeNotFound: 404, jifu.CodeConflict: 409, jifu.CodeTooLarge: 413,
		jifu.CodeLimit: 429, host.CodeTimeout: 504, jifu.CodeUnavailable: 503, host.CodeTrap: 502, jifu.CodeInternal: 500, "": 500,
	}
	for code, want := range tests {
		if got := respond.Status(code); got != want {
			t.Errorf("Status(%q) = %d, want %d", code, got, want)
		}
	}
}

func TestErrorPage(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		status  int
		message string
	}{
		{"coded", jifu.Errorf(jifu.CodeConflict, "marketplace: the slug %q is taken", "x"), 409, `the slug &#34;x&#34; is taken`},
		{"internal hides its cause", errString("pq: password authentication failed"), 500, "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			respond.Error(w, httptest.NewRequest("GET", "/x", nil), nil, layout.Page{Area: layout.AreaPortal}, tt.err, "/", "Back")
			body := w.Body.String()
			if w.Code != tt.status || !strings.Contains(body, tt.message) || strings.Contains(body, "password authentication") {
				t.Fatalf("%d %s", w.Code, body)
			}
			if w.Header().Get("X-Frame-Options") != "DENY" || !strings.Contains(w.Header().Get("Content-Security-Policy"), "frame-ancestors 'none'") {
				t.Errorf("headers %v", w.Header())
			}
		})
	}
	w := httptest.NewRecorder()
	respond.JSON(w, httptest.NewRequest("GET", "/x", nil), nil, jifu.Errorf(jifu.CodeDenied, "no"))
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), `"code":"denied"`) {
		t.Fatalf("JSON %d %s", w.Code, w.Body.String())
	}
}

type errString string

func (e errString) Error() string { return string(e) }
