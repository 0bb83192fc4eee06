package openapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/storage"
	"github.com/chromedp/chromedp"

	"github.com/jifu-open/jifu/openapi"
)

// browser starts a headless Chromium for the test (`make tools` installs
// it; JIFU_CHROMIUM names another binary).
func browser(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("JIFU_CHROMIUM")
	if path == "" {
		for _, p := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if lp, err := exec.LookPath(p); err == nil {
				path = lp
				break
			}
		}
	}
	if path == "" {
		t.Fatal("no Chromium installed (make tools installs it)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return ctx
}

// TestQRLoginInBrowsers: a desktop browser shows the QR code; a second
// browser context (the phone), already logged in to the store, opens the
// code's link and approves; the desktop page learns it by polling and is
// logged in as the same user.
func TestQRLoginInBrowsers(t *testing.T) {
	e := newEnv(t)
	b := browser(t)
	session, u := e.login("13800138010")

	desktop, cancelD := chromedp.NewContext(b, chromedp.WithNewBrowserContext())
	defer cancelD()
	phone, cancelP := chromedp.NewContext(b, chromedp.WithNewBrowserContext())
	defer cancelP()
	desktop, cancelT := context.WithTimeout(desktop, 60*time.Second)
	defer cancelT()
	phone, cancelT2 := context.WithTimeout(phone, 60*time.Second)
	defer cancelT2()

	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	if err := chromedp.Do(desktop,
		chromedp.Navigate(e.srv.URL+"/login/qr?next=/openapi.json"),
		chromedp.WaitVisible(css(`[data-testid=qr]`)),
	); err != nil {
		t.Fatal(err)
	}
	img, err := chromedp.Run(desktop, chromedp.AttributeValue(css(`[data-testid=qr]`), "src"))
	if err != nil {
		t.Fatal(err)
	}
	link, err := chromedp.Run(desktop, chromedp.Text(css(`[data-testid=qr-link]`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(img.Value, "data:image/png;base64,") || len(img.Value) < 500 {
		t.Fatalf("QR image %.60q", img.Value)
	}
	if !regexp.MustCompile(`^http://127\.0\.0\.1:\d+/login/qr/[0-9a-f]{32}$`).MatchString(link) {
		t.Fatalf("QR link %q", link)
	}
	if _, err := chromedp.Call(phone, network.SetCookie, network.SetCookieParams{Name: "jifu_session", Value: session, URL: e.srv.URL}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(phone,
		chromedp.Navigate(link),
		chromedp.Click(css(`[data-testid=qr-approve]`)),
		chromedp.WaitVisible(css(`[data-testid=qr-message]`)),
	); err != nil {
		t.Fatal(err)
	}
	msg, err := chromedp.Run(phone, chromedp.Text(css(`[data-testid=qr-message]`)))
	if err != nil || !strings.HasPrefix(msg, "Approved") {
		t.Fatalf("phone says %q %v", msg, err)
	}
	// The waiting page polls once a second and then navigates by itself.
	deadline := time.Now().Add(20 * time.Second)
	for {
		loc, err := chromedp.Run(desktop, chromedp.Location())
		if u, perr := url.Parse(loc); err == nil && perr == nil && u.Path == "/openapi.json" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the waiting page is at %q (%v)", loc, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	res, err := chromedp.CallBrowser(desktop, storage.GetCookies, storage.GetCookiesParams{BrowserContextID: chromedp.FromContext(desktop).BrowserContextID})
	if err != nil {
		t.Fatal(err)
	}
	cookies := res.Cookies
	var desktopSession string
	for _, c := range cookies {
		if c.Name == "jifu_session" {
			desktopSession = c.Value
		}
	}
	if desktopSession == "" || desktopSession == session {
		for _, c := range cookies {
			t.Logf("cookie %s path %s domain %s", c.Name, c.Path, c.Domain)
		}
		t.Fatalf("desktop cookies %+v", cookies)
	}
	s, err := e.svc.Authenticate(context.Background(), desktopSession)
	if err != nil || s.UserID != u.ID {
		t.Fatalf("desktop session %+v %v, want user %d", s, err, u.ID)
	}
}

// qrStart opens a waiting page with jar and returns the code's id.
func (e *env) qrStart(jar http.CookieJar) string {
	e.t.Helper()
	resp, err := (&http.Client{Jar: jar}).Get(e.srv.URL + "/login/qr?next=//evil.example/")
	if err != nil {
		e.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`/login/qr/([0-9a-f]{32})"`).FindSubmatch(b)
	if m == nil {
		e.t.Fatalf("no code in %s", b)
	}
	return string(m[1])
}

func (e *env) qrPoll(jar http.CookieJar, id string) (openapi.QRStatus, int) {
	e.t.Helper()
	resp, err := (&http.Client{Jar: jar}).Get(e.srv.URL + "/login/qr/" + id + "/status")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var st openapi.QRStatus
	_ = json.NewDecoder(resp.Body).Decode(&st)
	return st, resp.StatusCode
}

func (e *env) qrDecide(session, id, decision string) int {
	e.t.Helper()
	s, err := e.svc.Authenticate(context.Background(), session)
	if err != nil {
		e.t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", e.srv.URL+"/login/qr/"+id, strings.NewReader(url.Values{"csrf": {s.CSRF}, "decision": {decision}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "jifu_session", Value: session})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestQRLoginRules(t *testing.T) {
	e := newEnv(t, func(c *openapi.Config) { c.QRLifespan = time.Minute })
	session, _ := e.login("13800138011")
	newJar := func() http.CookieJar { j, _ := cookiejar.New(nil); return j }

	t.Run("only the waiting page polls, the session is handed out once, next stays on the site", func(t *testing.T) {
		jar := newJar()
		id := e.qrStart(jar)
		if st, _ := e.qrPoll(jar, id); st.State != "pending" {
			t.Fatalf("before approval: %+v", st)
		}
		if _, code := e.qrPoll(newJar(), id); code != 403 {
			t.Fatalf("a stranger polled: %d", code)
		}
		if st := e.qrDecide(session, id, "approve"); st != 200 {
			t.Fatalf("approve: %d", st)
		}
		st, _ := e.qrPoll(jar, id)
		if st.State != "approved" || st.Next != "/" {
			t.Fatalf("after approval: %+v", st)
		}
		u, _ := url.Parse(e.srv.URL)
		got := false
		for _, c := range jar.Cookies(u) {
			got = got || (c.Name == "jifu_session" && c.Value != "")
		}
		if !got {
			t.Fatal("no session cookie")
		}
		qu, _ := url.Parse(e.srv.URL + "/login/qr/" + id)
		if st, _ := e.qrPoll(newJarWith(jar, qu), id); st.State != "claimed" {
			t.Fatalf("second claim: %+v", st)
		}
		if st := e.qrDecide(session, id, "approve"); st != 410 {
			t.Fatalf("approving a used code: %d", st)
		}
	})
	t.Run("denied", func(t *testing.T) {
		jar := newJar()
		id := e.qrStart(jar)
		if st := e.qrDecide(session, id, "deny"); st != 200 {
			t.Fatalf("deny: %d", st)
		}
		if st, _ := e.qrPoll(jar, id); st.State != "denied" {
			t.Fatalf("after denial: %+v", st)
		}
	})
	t.Run("expired", func(t *testing.T) {
		jar := newJar()
		id := e.qrStart(jar)
		e.clock.Add(61 * time.Second)
		if st := e.qrDecide(session, id, "approve"); st != 410 {
			t.Fatalf("approving an expired code: %d", st)
		}
		if st, _ := e.qrPoll(jar, id); st.State != "expired" {
			t.Fatalf("expired: %+v", st)
		}
	})
	t.Run("approval needs a logged-in session", func(t *testing.T) {
		id := e.qrStart(newJar())
		resp, err := http.PostForm(e.srv.URL+"/login/qr/"+id, url.Values{"decision": {"approve"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("anonymous approval: %d", resp.StatusCode)
		}
	})
}

// newJarWith returns a jar holding only the QR cookie of jar (a second
// tab of the waiting page).
func newJarWith(jar http.CookieJar, u *url.URL) http.CookieJar {
	j, _ := cookiejar.New(nil)
	j.SetCookies(u, jar.Cookies(u))
	return j
}
