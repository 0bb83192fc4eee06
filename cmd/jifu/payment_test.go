package main

import (
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jifu-open/jifu/host/guesttest"
)

// A bill paid through `jifu serve`: the utility app asks for the payment,
// the host's page takes the demo user's confirmation, the outcome reaches
// the app's on_event, and the books still check.
func TestServePayment(t *testing.T) {
	c := newCmdEnv(t)
	apps := t.TempDir()
	code, out, errs := c.run("app", "build", filepath.Join(guesttest.Root(t), "plugins/utility"), "-o", filepath.Join(apps, "utility", "app.wasm"))
	if code != 0 {
		t.Fatalf("app build: exit %d\n%s\n%s", code, out, errs)
	}
	base, stop := c.serve("--dev-apps", apps, "--dev")
	defer stop()

	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(path string, form url.Values) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Jifu-User", "u1")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, _ := post("/apps/utility/pay", url.Values{"kind": {"bill"}, "type": {"gas"}, "account": {"G3001"}})
	loc := resp.Header.Get("Location")
	if resp.StatusCode != 303 || !strings.HasPrefix(loc, "/pay/pi_") {
		t.Fatalf("pay: %d %q", resp.StatusCode, loc)
	}
	st, page := httpDo(t, "GET", base+loc, map[string]string{"X-Jifu-User": "u1"})
	m := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(page)
	if st != 200 || m == nil || !strings.Contains(page, "¥60.75") {
		t.Fatalf("confirmation page: %d\n%s", st, page)
	}
	if st, _ := httpDo(t, "GET", base+loc, map[string]string{"X-Jifu-User": "u2"}); st != 404 {
		t.Fatalf("another user's confirmation page: %d", st)
	}
	resp, body := post(loc, url.Values{"token": {m[1]}, "method": {"balance"}})
	if resp.StatusCode != 200 || !strings.Contains(body, `data-state="succeeded"`) {
		t.Fatalf("confirm: %d\n%s", resp.StatusCode, body)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, orders := httpDo(t, "GET", base+"/apps/utility/orders", map[string]string{"X-Jifu-User": "u1"})
		if strings.Contains(orders, `"status":"paid"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the app never learnt of the payment: %s", orders)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, out, errs := c.run("ledger", "check"); code != 0 {
		t.Fatalf("ledger check: exit %d\n%s\n%s", code, out, errs)
	}
}
