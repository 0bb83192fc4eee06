package wallet_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/jifu-open/jifu/host/bank"
	"github.com/jifu-open/jifu/host/bank/banktest"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/funding"
	"github.com/jifu-open/jifu/host/ledger"
	"github.com/jifu-open/jifu/web/wallet"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

var key = []byte("0123456789abcdef0123456789abcdef")

type page struct {
	t   *testing.T
	srv *httptest.Server
}

func (p page) do(method, path, user string, form url.Values) (int, string) {
	p.t.Helper()
	req, _ := http.NewRequest(method, p.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.Header.Set("X-Jifu-User", user)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var (
	keyField   = regexp.MustCompile(`name="key" value="([^"]+)"`)
	tokenField = regexp.MustCompile(`name="token" value="([^"]+)"`)
)

// form returns the key and token of a freshly rendered page.
func (p page) form(user string) url.Values {
	p.t.Helper()
	_, body := p.do("GET", "/wallet", user, nil)
	k, tk := keyField.FindStringSubmatch(body), tokenField.FindStringSubmatch(body)
	if k == nil || tk == nil {
		p.t.Fatalf("no form fields in %s", body)
	}
	return url.Values{"key": {k[1]}, "token": {tk[1]}}
}

func testid(body, id string) string {
	m := regexp.MustCompile(`data-testid="` + id + `"[^>]*>([^<]*)<`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return m[1]
}

func TestWalletPage(t *testing.T) {
	pool := dbtest.Pool(t)
	b := banktest.Start(t, pool, banktest.Options{})
	svc, err := funding.New(funding.Config{Pool: pool, Ledger: ledger.New(pool), Bank: b.Client, BankName: b.Merchant})
	if err != nil {
		t.Fatal(err)
	}
	h, err := wallet.New(wallet.Config{Funding: svc, Key: key, Identity: func(r *http.Request) string { return r.Header.Get("X-Jifu-User") }})
	if err != nil {
		t.Fatal(err)
	}
	p := page{t: t, srv: httptest.NewServer(h)}
	defer p.srv.Close()
	u := "wallet-" + b.Merchant
	acct := b.Account(t, 1_000_00)

	if code, _ := p.do("GET", "/wallet", "", nil); code != http.StatusForbidden {
		t.Fatalf("anonymous: %d", code)
	}
	code, body := p.do("GET", "/wallet", u, nil)
	if code != 200 || testid(body, "available") != "¥0.00" || !strings.Contains(body, "history-empty") || strings.Contains(body, "topup-form") {
		t.Fatalf("empty wallet: %d %s", code, body)
	}
	with := func(v url.Values, k, val string) url.Values { v.Set(k, val); return v }

	steps := []struct {
		name      string
		path      string
		form      func() url.Values
		code      int
		notice    string // data-testid of the notice expected
		available string
	}{
		{"bind a malformed account", "/wallet/account", func() url.Values { return with(p.form(u), "account", "12ab") }, 400, "notice-error", "¥0.00"},
		{"bind", "/wallet/account", func() url.Values { return with(p.form(u), "account", acct) }, 200, "notice-ok", "¥0.00"},
		{"top up without a token", "/wallet/topup", func() url.Values { return url.Values{"key": {"k1"}, "amount": {"10"}} }, 403, "notice-error", "¥0.00"},
		{"top up with another user's token", "/wallet/topup", func() url.Values { return with(p.form("someone-else"), "amount", "10") }, 403, "notice-error", "¥0.00"},
		{"top up a malformed amount", "/wallet/topup", func() url.Values { return with(p.form(u), "amount", "ten") }, 400, "notice-error", "¥0.00"},
		{"top up", "/wallet/topup", func() url.Values { return with(p.form(u), "amount", "250.50") }, 200, "notice-ok", "¥250.50"},
		{"withdraw beyond the wallet", "/wallet/withdraw", func() url.Values { return with(p.form(u), "amount", "300") }, 409, "notice-error", "¥250.50"},
		{"withdraw", "/wallet/withdraw", func() url.Values { return with(p.form(u), "amount", "50.50") }, 200, "notice-ok", "¥200.00"},
	}
	for _, s := range steps {
		code, body := p.do("POST", s.path, u, s.form())
		if code != s.code || testid(body, s.notice) == "" || testid(body, "available") != s.available {
			t.Fatalf("%s: HTTP %d, notice %q, available %q; want %d, %s, %s\n%s", s.name, code, testid(body, s.notice),
				testid(body, "available"), s.code, s.notice, s.available, body)
		}
	}
	// A double submission of one form moves money once.
	f := with(p.form(u), "amount", "20")
	p.do("POST", "/wallet/topup", u, f)
	_, body = p.do("POST", "/wallet/topup", u, f)
	if got := testid(body, "available"); got != "¥220.00" {
		t.Fatalf("after a double submission: %s", got)
	}
	if got := testid(body, "account"); got != bank.Mask(acct) || strings.Contains(body, acct) {
		t.Fatalf("the page shows the account as %q (full number present: %v)", got, strings.Contains(body, acct))
	}
	if n := strings.Count(body, `data-testid="history-row"`); n != 3 {
		t.Fatalf("history rows: %d", n)
	}
	if code, _ := p.do("GET", "/wallet/nothing", u, nil); code != 404 {
		t.Fatalf("unknown page: %d", code)
	}
	if code, _ := p.do("DELETE", "/wallet", u, nil); code != 405 {
		t.Fatalf("DELETE: %d", code)
	}
	if code, _ := p.do("POST", "/wallet/topup", u, url.Values{"x": {strings.Repeat("a", 8<<10)}}); code != 400 {
		t.Fatalf("oversized form: %d", code)
	}
}
