package page_test

import (
	"context"
	"errors"
	"github.com/jifu-open/jifu/web/respond"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/ledger"
	"github.com/jifu-open/jifu/host/payment"
	"github.com/jifu-open/jifu/host/payment/page"
	"github.com/jifu-open/jifu/host/payment/paymenttest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

var key = []byte("0123456789abcdef0123456789abcdef")

type world struct {
	t    *testing.T
	ctx  context.Context
	l    *ledger.Ledger
	svc  *payment.Service
	srv  *httptest.Server
	bank ledger.Account
}

func newWorld(t *testing.T) *world {
	pool := dbtest.Pool(t)
	w := &world{t: t, ctx: context.Background(), l: ledger.New(pool)}
	var err error
	w.svc, err = payment.New(payment.Config{Pool: pool, Ledger: w.l, Events: paymenttest.NewEvents(t, pool)})
	if err != nil {
		t.Fatal(err)
	}
	h, err := page.New(page.Config{Payments: w.svc, Identity: page.DevIdentity, Key: key, Status: respond.Status})
	if err != nil {
		t.Fatal(err)
	}
	w.srv = httptest.NewServer(h)
	t.Cleanup(w.srv.Close)
	w.bank, err = w.l.CreateAccount(w.ctx, ledger.AccountSpec{Owner: ledger.Owner{Type: ledger.OwnerBank, ID: "t"}, Name: "s"})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) fund(user string, amount int64) {
	wa, err := payment.OpenWallet(w.ctx, w.l, user)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.l.Transfer(w.ctx, "t", ledger.Transfer{ID: "fund-" + user, Debit: w.bank.ID, Credit: wa.ID, Amount: amount, Code: "topup"}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) intent(user string, amount int64, key string) payment.Intent {
	in, err := w.svc.Create(w.ctx, payment.CreateRequest{App: "shop", User: user, Amount: amount, Description: "订单 " + key, Key: key})
	if err != nil {
		w.t.Fatal(err)
	}
	return in
}

func (w *world) do(method, path, user string, form url.Values) (*http.Response, string) {
	w.t.Helper()
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	req, err := http.NewRequest(method, w.srv.URL+path, body)
	if err != nil {
		w.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if user != "" {
		req.Header.Set("X-Jifu-User", user)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp, sb.String()
}

func (w *world) available(user string) int64 {
	av, err := w.svc.Available(w.ctx, user)
	if err != nil {
		w.t.Fatal(err)
	}
	return av[payment.MethodBalance]
}

var tokenRE = regexp.MustCompile(`name="token" value="([^"]+)"`)

func TestConfirmationPage(t *testing.T) {
	w := newWorld(t)
	w.fund("amy", 10_000)
	in := w.intent("amy", 2_550, "p1")
	path := payment.ConfirmPath(in.ID)

	resp, body := w.do("GET", path, "amy", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET: %d %s", resp.StatusCode, body)
	}
	for name, want := range map[string]string{
		"X-Frame-Options":         "DENY",
		"Content-Security-Policy": "frame-ancestors 'none'",
		"Cache-Control":           "no-store",
	} {
		if !strings.Contains(resp.Header.Get(name), want) {
			t.Errorf("header %s = %q, want %q in it", name, resp.Header.Get(name), want)
		}
	}
	for _, want := range []string{`data-testid="amount">¥25.50<`, `data-testid="description">订单 p1<`, `data-testid="payee">shop<`,
		`data-testid="available-balance">（可用 available ¥100.00）<`, `data-testid="available-credit"`, `value="combined"`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	m := tokenRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no token in %s", body)
	}
	token := m[1]

	// Reading the page created no credit line.
	if _, err := w.l.FindAccount(w.ctx, ledger.Owner{Type: ledger.OwnerUser, ID: "amy"}, "credit_line"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("the page opened a credit line: %v", err)
	}

	for _, tc := range []struct {
		name   string
		user   string
		form   url.Values
		status int
	}{
		{"anonymous", "", url.Values{"token": {token}, "method": {"balance"}}, 403},
		{"another user", "bob", url.Values{"token": {token}, "method": {"balance"}}, 403},
		{"another user with their own token", "bob", url.Values{"token": {page.Token(key, in.ID, "bob")}, "method": {"balance"}}, 404},
		{"no token", "amy", url.Values{"method": {"balance"}}, 403},
		{"wrong token", "amy", url.Values{"token": {page.Token([]byte("another key of thirty-two bytes!!"), in.ID, "amy")}, "method": {"balance"}}, 403},
		{"token of another intent", "amy", url.Values{"token": {page.Token(key, "pi_other", "amy")}, "method": {"balance"}}, 403},
		{"unknown method", "amy", url.Values{"token": {token}, "method": {"gold"}}, 422},
		{"combined shares short", "amy", url.Values{"token": {token}, "method": {"combined"}, "share_balance": {"10.00"}, "share_credit": {"5"}}, 422},
		{"combined share not money", "amy", url.Values{"token": {token}, "method": {"combined"}, "share_balance": {"lots"}}, 422},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := w.do("POST", path, tc.user, tc.form)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if got, _ := w.svc.Intent(w.ctx, in.ID); got.State != payment.StateCreated {
				t.Fatalf("a refused confirmation changed the intent: %+v", got)
			}
			if w.available("amy") != 10_000 {
				t.Fatal("a refused confirmation moved money")
			}
		})
	}

	resp, body = w.do("POST", path, "amy", url.Values{"token": {token}, "method": {"balance"}})
	if resp.StatusCode != 200 || !strings.Contains(body, `data-state="succeeded"`) || !strings.Contains(body, `href="/apps/shop/"`) {
		t.Fatalf("confirm: %d %s", resp.StatusCode, body)
	}
	if w.available("amy") != 10_000-2_550 {
		t.Fatalf("wallet %d", w.available("amy"))
	}
	// A second submission (double click, replay) takes nothing more.
	resp, body = w.do("POST", path, "amy", url.Values{"token": {token}, "method": {"balance"}})
	if resp.StatusCode != 409 || !strings.Contains(body, `data-state="succeeded"`) || w.available("amy") != 10_000-2_550 {
		t.Fatalf("second submission: %d %s", resp.StatusCode, body)
	}
	// The page of a paid intent shows the outcome, no form.
	if resp, body := w.do("GET", path, "amy", nil); resp.StatusCode != 200 || strings.Contains(body, "<form") {
		t.Fatalf("paid page: %d %s", resp.StatusCode, body)
	}
	if resp, _ := w.do("GET", "/pay/pi_nope", "amy", nil); resp.StatusCode != 404 {
		t.Fatalf("unknown intent: %d", resp.StatusCode)
	}
	if resp, _ := w.do("GET", path, "bob", nil); resp.StatusCode != 404 {
		t.Fatalf("another user's intent: %d", resp.StatusCode)
	}
}

func TestConfirmCombinedOnPage(t *testing.T) {
	w := newWorld(t)
	w.fund("cat", 1_000)
	if _, err := w.svc.SetCreditLimit(w.ctx, "cat", 2_000); err != nil {
		t.Fatal(err)
	}
	in := w.intent("cat", 2_500, "c1")
	_, body := w.do("GET", payment.ConfirmPath(in.ID), "cat", nil)
	// Neither method covers it alone: combined is preselected and prefilled.
	for _, want := range []string{`value="combined" checked`, `name="share_balance" value="10.00"`, `name="share_credit" value="15.00"`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	token := tokenRE.FindStringSubmatch(body)[1]
	resp, body := w.do("POST", payment.ConfirmPath(in.ID), "cat", url.Values{"token": {token}, "method": {"combined"},
		"share_balance": {"10.00"}, "share_credit": {"15"}})
	if resp.StatusCode != 200 || !strings.Contains(body, `data-state="succeeded"`) {
		t.Fatalf("combined: %d %s", resp.StatusCode, body)
	}
	got, _ := w.svc.Intent(w.ctx, in.ID)
	if got.Method != payment.MethodCombined || len(got.Parts) != 2 || got.Parts[1].Amount != 1_500 {
		t.Fatalf("intent %+v", got)
	}
	if c, _ := w.svc.CreditLine(w.ctx, "cat"); c.Used != 1_500 {
		t.Fatalf("line %+v", c)
	}
}

func TestNewRefusesWeakKey(t *testing.T) {
	if _, err := page.New(page.Config{Payments: nil, Identity: page.DevIdentity, Key: key, Status: respond.Status}); err == nil {
		t.Fatal("no payments")
	}
	if _, err := page.New(page.Config{Payments: &payment.Service{}, Identity: page.DevIdentity, Key: []byte("short"), Status: respond.Status}); err == nil {
		t.Fatal("short key")
	}
	if _, err := page.New(page.Config{Payments: &payment.Service{}, Identity: page.DevIdentity, Key: key}); err == nil {
		t.Fatal("no status mapping")
	}
}
