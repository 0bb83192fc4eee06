package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/cardpay/acquirer"
	"github.com/jifu-open/jifu/host/cardpay/acquirersim"
	"github.com/jifu-open/jifu/host/cardpay/dukpt"
	"github.com/jifu-open/jifu/host/database"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/kvstore"
	"github.com/jifu-open/jifu/host/notify"
	"github.com/jifu-open/jifu/marketplace"
	"github.com/jifu-open/jifu/sdk/cardreader"
	"github.com/jifu-open/jifu/web"
)

// riskPlatform is the web stack with the risk desk over a real card core:
// PostgreSQL, the acquirer simulator over TCP, one merchant with one mPOS
// reader.
type riskPlatform struct {
	*platform
	card   *cardpay.Service
	desk   *cardpay.RiskDesk
	reader *cardreader.Reader
	org    string // the reader's merchant
	mid    string
}

var (
	riskSeq    atomic.Int64
	riskBDK, _ = dukpt.ParseKey("0123456789ABCDEFFEDCBA9876543210")
	riskTMK, _ = dukpt.ParseKey("70F2A84CCBC2AE8625CBB0F2C22AB923")
)

func newRiskPlatform(t *testing.T) *riskPlatform {
	t.Helper()
	if raceEnabled {
		t.Skip("end-to-end flow: run without -race (make test does, in its non-race pass)")
	}
	ctx := context.Background()
	pool := dbtest.Pool(t)
	if err := database.Migrate(ctx, dbtest.URL(t), []database.MigrationSet{acquirersim.Migrations}); err != nil {
		t.Fatal(err)
	}
	sim := acquirersim.New(pool, acquirersim.Config{TMK: riskTMK, Rules: acquirersim.DefaultRules()})
	if err := sim.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	simCtx, stopSim := context.WithCancel(ctx)
	go func() { _ = sim.Serve(simCtx) }()
	acq, err := acquirer.New(acquirer.Config{Addr: sim.Addr(), TMK: riskTMK, TerminalID: "JIFU0001", MerchantID: "898310048990001",
		Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	card, err := cardpay.New(pool, make([]byte, 32), acq, cardpay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The tests of the package share a database: each platform has its
	// own BDK, merchant and reader.
	n := riskSeq.Add(1)
	ksn, _ := dukpt.ParseKSN(fmt.Sprintf("FFFF7654%04X00000000", n))
	bdkID, mid := fmt.Sprintf("bdk-risk-%d", n), fmt.Sprintf("RISK%d", n)
	if err := card.RegisterBDK(ctx, bdkID, "tdes", riskBDK); err != nil {
		t.Fatal(err)
	}
	if err := card.RegisterMerchant(ctx, cardpay.Merchant{OrgID: "ORG1", MerchantID: mid, Name: "风控测试商户",
		PaySecret: "pay-secret-risk-0001", AcquirerMID: "898310048990001"}); err != nil {
		t.Fatal(err)
	}
	if err := card.RegisterTerminal(ctx, cardpay.Terminal{KSN: ksn.String(), OrgID: "ORG1", MerchantID: mid, Type: cardpay.TerminalMPOS,
		BDKID: bdkID, AcquirerTID: fmt.Sprintf("T%07d", n)}); err != nil {
		t.Fatal(err)
	}
	reader, err := cardreader.New(cardreader.Config{OrgID: "ORG1", MerchantID: mid, PaySecret: "pay-secret-risk-0001",
		IPEK: dukpt.IPEK(riskBDK, ksn), KSN: ksn})
	if err != nil {
		t.Fatal(err)
	}

	h, err := host.New(ctx, host.Config{KV: kvstore.New(pool)})
	if err != nil {
		t.Fatal(err)
	}
	outbox := notify.NewOutbox(pool)
	svc, err := marketplace.New(marketplace.Config{Pool: pool, Host: h, MasterKey: make([]byte, 32),
		Artifacts: marketplace.NewFSArtifacts(t.TempDir()), Notifier: notify.New(pool, outbox, notify.Options{}),
		Consents: marketplace.NewConsents(pool)})
	if err != nil {
		t.Fatal(err)
	}
	desk := card.RiskDesk()
	srv := httptest.NewServer(web.New(web.Deps{Market: svc, Outbox: outbox, Risk: desk, RiskCases: card.Desk(), Ready: pool.Ping}))
	t.Cleanup(func() {
		srv.Close()
		_ = svc.Close(ctx)
		_ = h.Close(ctx)
		acq.Close()
		stopSim()
	})
	return &riskPlatform{platform: &platform{srv: srv, svc: svc, outbox: outbox}, card: card, desk: desk, reader: reader, org: "ORG1", mid: mid}
}

// pay makes one card payment of amount fen at the merchant's reader.
func (p *riskPlatform) pay(t *testing.T, order string, amount int64) cardpay.Result {
	t.Helper()
	req, err := p.reader.Build(cardreader.Payment{OrderID: order, Amount: amount, ProductName: "茶叶",
		Track2: "6222021234567890128=30121011234567890", PIN: "123456"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.card.Authorize(context.Background(), req)
	if err != nil {
		t.Fatalf("pay %s: %v", order, err)
	}
	return res
}

// Only risk staff and admins reach the desk: visitors are sent to log in,
// reviewers and developers are refused (403) on every page and form.
func TestFlowRiskDeskAccess(t *testing.T) {
	p := newRiskPlatform(t)
	before, err := p.desk.Rules(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	anon := p.browser(t)
	if pg := anon.get("/risk/"); pg.status != http.StatusSeeOther || !strings.HasPrefix(pg.loc, "/portal/login?next=") {
		t.Fatalf("anonymous: %d %q", pg.status, pg.loc)
	}
	rev := p.staff(t, "rev@risk.test", marketplace.RoleReviewer)
	dev := p.developer(t, "dev@risk.test")
	for name, b := range map[string]*browser{"reviewer": rev, "developer": dev} {
		for _, path := range []string{"/risk/", "/risk/history", "/risk/terminals/mpos", "/risk/classes/" + url.PathEscape("红卡1"), "/risk/levels/201",
			"/risk/errors", "/risk/errors/new", "/risk/errors/1", "/risk/merchants?org=ORG1&merchant=RISK1"} {
			wantStatus(t, name+" GET "+path, b.get(path), http.StatusForbidden, `data-code="denied"`)
		}
		pg := b.form("/risk/", "/risk/terminals/mpos", "version", "1", "per_tx", "1.00", "per_day", "2.00", "per_month", "3.00", "reason", "x")
		wantStatus(t, name+" POST", pg, http.StatusForbidden, `data-code="denied"`)
		wantStatus(t, name+" POST level", b.form("/risk/", "/risk/merchants/level", "org", p.org, "merchant", p.mid, "level", "203", "reason", "x"),
			http.StatusForbidden, `data-code="denied"`)
		wantStatus(t, name+" POST case", b.form("/risk/", "/risk/errors", "kind", "long", "org", p.org, "merchant", p.mid, "note", "x"),
			http.StatusForbidden, `data-code="denied"`)
		if strings.Contains(b.get("/risk/").body, `data-testid="nav-risk"`) {
			t.Errorf("%s sees the risk link", name)
		}
	}
	risk := p.staff(t, "risk@risk.test", marketplace.RoleRisk)
	admin := p.staff(t, "admin@risk.test", marketplace.RoleAdmin)
	for name, b := range map[string]*browser{"risk": risk, "admin": admin} {
		wantStatus(t, name, b.get("/risk/"), http.StatusOK, `data-testid="terminal-mpos"`)
		wantStatus(t, name+" nav", b.get("/risk/history"), http.StatusOK, `data-testid="nav-risk"`)
	}
	// A form without the session's CSRF token is refused before it runs.
	pg := risk.post("/risk/terminals/mpos", url.Values{"version": {"1"}, "per_tx": {"1.00"}, "per_day": {"2.00"}, "per_month": {"3.00"}, "reason": {"x"}})
	wantStatus(t, "no CSRF", pg, http.StatusForbidden, `data-code="denied"`)
	pg = risk.post("/risk/terminals/mpos", url.Values{"csrf": {dev.csrf("/risk/")}, "version": {"1"}, "per_tx": {"1.00"}, "per_day": {"2.00"},
		"per_month": {"3.00"}, "reason": {"x"}})
	wantStatus(t, "another session's CSRF", pg, http.StatusForbidden, `data-code="denied"`)
	after, err := p.desk.Rules(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(before.TerminalTypes, after.TerminalTypes) {
		t.Fatalf("refused requests changed the rules: %+v", after.TerminalTypes)
	}
}

var versionRE = regexp.MustCompile(`name="version" value="(\d+)"`)

// Edits through plain forms (no script): each refusal answers its status
// with the stable code and the field's problem inline, and changes
// nothing; a stale form gets conflict with the stored values; a good one
// is stored, in the history, with who and why.
func TestFlowRiskDeskEdits(t *testing.T) {
	p := newRiskPlatform(t)
	ctx := context.Background()
	risk := p.staff(t, "risk2@risk.test", marketplace.RoleRisk)
	path := "/risk/terminals/audio"
	version := func() string {
		m := versionRE.FindStringSubmatch(risk.get(path).body)
		if m == nil {
			t.Fatal("no version on the editor")
		}
		return m[1]
	}
	v1 := version()
	post := func(v string, kv ...string) page {
		return risk.form(path, path, append([]string{"version", v}, kv...)...)
	}
	before, _ := p.desk.TerminalType(ctx, "audio")
	refusals := []struct {
		name     string
		kv       []string
		status   int
		contains []string
	}{
		{"three decimals", []string{"per_tx", "12.345", "per_day", "40000.00", "per_month", "60000.00", "reason", "r"}, 400,
			[]string{`data-testid="problem-per_tx"`, "at most two decimals", `data-code="invalid"`, `value="12.345"`}},
		{"negative", []string{"per_tx", "-1", "per_day", "40000.00", "per_month", "60000.00", "reason", "r"}, 400,
			[]string{`data-testid="problem-per_tx"`}},
		{"per_tx over per_day", []string{"per_tx", "50000.00", "per_day", "40000.00", "per_month", "60000.00", "reason", "r"}, 400,
			[]string{`data-testid="problem-per_day"`, "must be at least the per-transaction limit"}},
		{"per_day over per_month", []string{"per_tx", "100.00", "per_day", "70000", "per_month", "60000.00", "reason", "r"}, 400,
			[]string{`data-testid="problem-per_month"`}},
		{"no reason", []string{"per_tx", "100.00", "per_day", "40000.00", "per_month", "60000.00", "reason", " "}, 400,
			[]string{`data-testid="problem-reason"`}},
		{"stale version", []string{"per_tx", "100.00", "per_day", "40000.00", "per_month", "60000.00", "reason", "r"}, 0, nil},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			v := v1
			if tt.status == 0 { // a version the row never had
				v, tt.status, tt.contains = "99", 409, []string{`data-code="conflict"`, `data-testid="stored-per_tx"`, "stored now: 20000.00", `data-testid="reload"`}
			}
			pg := post(v, tt.kv...)
			if pg.status != tt.status {
				t.Fatalf("status %d, want %d: %.600s", pg.status, tt.status, pg.body)
			}
			for _, c := range tt.contains {
				if !strings.Contains(pg.body, c) {
					t.Errorf("no %q in %.3000s", c, pg.body)
				}
			}
		})
	}
	if now, _ := p.desk.TerminalType(ctx, "audio"); now != before {
		t.Fatalf("refusals changed the row: %+v", now)
	}
	if cs, _ := p.desk.Changes(ctx, cardpay.RiskChangeFilter{Table: cardpay.RiskTableTerminalType, Key: "audio"}); len(cs) != 0 {
		t.Fatalf("refusals left history: %+v", cs)
	}

	// A good edit: stored in fen, in the history with who and why.
	pg := post(v1, "per_tx", "15000.5", "per_day", "40000.00", "per_month", "60000.00", "reason", "工单 31: audio fraud wave")
	if pg.status != http.StatusSeeOther || pg.loc != path+"?done=saved" {
		t.Fatalf("save: %d %q %.500s", pg.status, pg.loc, pg.body)
	}
	got, _ := p.desk.TerminalType(ctx, "audio")
	if got.PerTx != 1_500_050 || got.Version != before.Version+1 || !strings.HasPrefix(got.UpdatedBy, "risk#") {
		t.Fatalf("stored %+v", got)
	}
	wantStatus(t, "after save", risk.get(path+"?done=saved"), 200, `data-testid="saved"`)
	hist := risk.get("/risk/history?table=terminal_type&key=audio").body
	for _, want := range []string{"工单 31: audio fraud wave", "20,000.00", "15,000.50", "risk#"} {
		if !strings.Contains(hist, want) {
			t.Errorf("history lacks %q", want)
		}
	}
	// The same form again: its version is stale now.
	wantStatus(t, "second save of the same form", post(v1, "per_tx", "14000.00", "per_day", "40000.00", "per_month", "60000.00", "reason", "again"),
		http.StatusConflict, "stored now: 15000.50")
	// Unchanged values store nothing.
	pg = post(version(), "per_tx", "15000.50", "per_day", "40000", "per_month", "60000.00", "reason", "no-op")
	if pg.status != http.StatusSeeOther || pg.loc != path+"?done=unchanged" {
		t.Fatalf("no-op: %d %q", pg.status, pg.loc)
	}

	// htmx answers the editor fragment, 200 even for a refusal.
	req, _ := http.NewRequest("POST", risk.base+path, strings.NewReader(url.Values{"csrf": {risk.csrf(path)}, "version": {version()},
		"per_tx": {"1.005"}, "per_day": {"1"}, "per_month": {"1"}, "reason": {"x"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("HX-Request", "true")
	pg = risk.do(req)
	if pg.status != 200 || !strings.HasPrefix(strings.TrimSpace(pg.body), `<section id="rule-editor"`) || !strings.Contains(pg.body, `data-testid="problem-per_tx"`) {
		t.Fatalf("htmx refusal: %d %.500s", pg.status, pg.body)
	}

	// A class: checkboxes and the card kind.
	cpath := "/risk/classes/" + url.PathEscape("IC卡2")
	cv := versionRE.FindStringSubmatch(risk.get(cpath).body)[1]
	pg = risk.form(cpath, cpath, "version", cv, "priority", "40", "per_tx", "100000.00", "per_day", "200000.00", "per_month", "300000.00",
		"t0_per_day", "200000.00", "need_chip", "on", "need_kind", "debit", "min_cumulative", "0.00", "min_clean_days", "30",
		"how", "IC卡, 30天无差错", "reason", "pilot")
	if pg.status != http.StatusSeeOther {
		t.Fatalf("class save: %d %.800s", pg.status, pg.body)
	}
	c, _ := p.desk.Class(ctx, "IC卡2")
	if !c.NeedChip || c.NeedBound || c.NeedKind != "debit" || c.MinCleanDays != 30 || c.How != "IC卡, 30天无差错" {
		t.Fatalf("class %+v", c)
	}
	wantStatus(t, "priority taken", risk.form(cpath, cpath, "version", itoa(c.Version), "priority", "10", "per_tx", "1.00", "per_day", "1.00",
		"per_month", "1.00", "t0_per_day", "1.00", "min_cumulative", "0", "min_clean_days", "0", "reason", "x"),
		http.StatusBadRequest, `data-testid="problem-priority"`)
	wantStatus(t, "unknown class", risk.form(cpath, "/risk/classes/"+url.PathEscape("金卡"), "version", "1", "priority", "77", "per_tx", "1.00",
		"per_day", "1.00", "per_month", "1.00", "t0_per_day", "1.00", "min_cumulative", "0", "min_clean_days", "0", "reason", "x"),
		http.StatusNotFound, `data-code="not_found"`)
	wantStatus(t, "unknown level page", risk.get("/risk/levels/999"), http.StatusNotFound, `data-code="not_found"`)
	lpath := "/risk/levels/103"
	lv := versionRE.FindStringSubmatch(risk.get(lpath).body)[1]
	wantStatus(t, "upgrade cycle", risk.form(lpath, lpath, "version", lv, "t0_per_day", "15000.00", "how", "x", "upgrade_from", "103",
		"min_t0_cumulative", "30000.00", "min_clean_days", "15", "reason", "x"), http.StatusBadRequest, `data-testid="problem-upgrade_from"`)
	pg = risk.form(lpath, lpath, "version", lv, "t0_per_day", "15000.00", "how", "T0累计达2.5", "upgrade_from", "102",
		"min_t0_cumulative", "25000.00", "min_clean_days", "10", "reason", "faster upgrades")
	if l, _ := p.desk.UserLevel(ctx, "103"); pg.status != http.StatusSeeOther || l.MinT0Cumulative != 2_500_000 || l.MinCleanDays != 10 {
		t.Fatalf("level save: %d %+v", pg.status, l)
	}
}

// TestFlowRiskDeskBrowser: in headless Chromium a risk officer lowers the
// mPOS per-transaction limit through the htmx form (first meeting an
// inline refusal), and the next card payment is judged by the new limit:
// over it declined naming the rule, at it approved; then a reviewer is
// refused the desk (403, denied).
func TestFlowRiskDeskBrowser(t *testing.T) {
	p := newRiskPlatform(t)
	exe := chromium(t)
	out := outputDir(t)
	for email, role := range map[string]marketplace.Role{"risk@browser.test": marketplace.RoleRisk, "rev@browser.test": marketplace.RoleReviewer} {
		if _, err := p.svc.CreateStaff(context.Background(), marketplace.System, email, string(role), staffPassword, role); err != nil {
			t.Fatal(err)
		}
	}
	// The service has read (and cached) the seed's rules: 30,000 元 per
	// transaction on mPOS.
	if res := p.pay(t, "rb-1", 20_000); !res.Approved() {
		t.Fatalf("first payment: %+v", res)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1200, 900))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(ctx)
	defer cancelTab()
	base := p.srv.URL
	shot := 0
	step := func(name string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("main")))
			t.Fatalf("step %q: %v\n%.1500s", name, err, html)
		}
		shot++
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot of %q: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(out, fmt.Sprintf("%02d-%s.png", shot, name)), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text := func(id string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(tid(id)))
		if err != nil {
			t.Fatalf("text of %s: %v", id, err)
		}
		return strings.TrimSpace(s)
	}
	setFields := func(kv ...string) []chromedp.Action[chromedp.Void] {
		var as []chromedp.Action[chromedp.Void]
		for i := 0; i+1 < len(kv); i += 2 {
			as = append(as, chromedp.SetValue(tid("input-"+kv[i]), kv[i+1]))
		}
		return as
	}

	step("login",
		chromedp.Navigate(base+"/portal/login"),
		chromedp.SendKeys(tid("login-email"), "risk@browser.test"),
		chromedp.SendKeys(tid("login-password"), staffPassword),
		chromedp.Click(tid("login-submit")),
		chromedp.WaitVisible(tid("nav-risk")))
	step("rules",
		chromedp.Click(tid("nav-risk")),
		chromedp.WaitVisible(tid("terminal-mpos")))
	if got := text("terminal-mpos-per_tx"); got != "30,000.00 (3 万)" {
		t.Fatalf("mpos per transaction shows %q", got)
	}
	step("editor",
		chromedp.Click(tid("edit-terminal-mpos")),
		chromedp.WaitVisible(tid("rule-form")))
	// htmx is what submits: the answer replaces the editor in place.
	if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`typeof htmx === 'object'`)); err != nil || !ok {
		t.Fatalf("htmx not loaded: %v %v", ok, err)
	}
	refused := append(setFields("per_tx", "70000.00"),
		chromedp.SendKeys(tid("reason"), "工单 88: mPOS fraud"),
		chromedp.Click(tid("save")),
		chromedp.WaitVisible(tid("problem-per_day")))
	step("refused", refused...)
	if code, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('[data-testid=form-error]').dataset.code`)); err != nil || code != "invalid" {
		t.Fatalf("inline error code %q %v", code, err)
	}
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasSuffix(loc, "/risk/terminals/mpos") {
		t.Fatalf("the page navigated to %s: htmx did not swap in place", loc)
	}
	step("saved", append(setFields("per_tx", "150.00"),
		chromedp.Click(tid("save")),
		chromedp.WaitVisible(tid("saved")))...)
	if got := text("change-field-per_tx"); got != "per_tx 30,000.00 → 150.00" {
		t.Fatalf("history shows %q", got)
	}
	step("rules-after",
		chromedp.Click(tid("risk-home")),
		chromedp.WaitVisible(tid("terminal-mpos")))
	if got := text("terminal-mpos-per_tx"); got != "150.00 (0.015 万)" {
		t.Fatalf("mpos per transaction shows %q after the change", got)
	}

	// The next payments, in this process, are judged by the new limit at
	// once (the desk dropped the service's cached rules).
	if res := p.pay(t, "rb-2", 15_001); res.Status != cardpay.StatusDeclined || res.Rule != "terminal_type:mpos:per_tx" {
		t.Fatalf("150.01 元 after the change: %+v", res)
	}
	if res := p.pay(t, "rb-3", 15_000); !res.Approved() {
		t.Fatalf("150.00 元 after the change: %+v", res)
	}

	// A reviewer is refused the desk, in the browser too.
	step("reviewer",
		chromedp.Click(tid("logout")),
		chromedp.WaitVisible(tid("nav-login")),
		chromedp.Navigate(base+"/portal/login"),
		chromedp.SendKeys(tid("login-email"), "rev@browser.test"),
		chromedp.SendKeys(tid("login-password"), staffPassword),
		chromedp.Click(tid("login-submit")),
		chromedp.WaitVisible(tid("logout")),
		chromedp.Navigate(base+"/risk/terminals/mpos"),
		chromedp.WaitVisible(tid("error-page")))
	if code, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('[data-testid=error-page]').dataset.code`)); err != nil || code != "denied" {
		t.Fatalf("reviewer on the desk: code %q %v", code, err)
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('[data-testid=nav-risk], [data-testid=rule-form]').length`)); err != nil || n != 0 {
		t.Fatalf("reviewer sees %d risk elements (%v)", n, err)
	}
}

var caseRE = regexp.MustCompile(`^/risk/errors/(\d+)\?done=opened$`)

// The 差错 queue: a risk officer records a chargeback raised by the
// acquirer against a payment, finds it with the filters, closes it with a
// note (refusals inline with their codes, changing nothing), and raises a
// merchant to an on-request level.
func TestFlowRiskDeskCases(t *testing.T) {
	p := newRiskPlatform(t)
	ctx := context.Background()
	risk := p.staff(t, "risk3@risk.test", marketplace.RoleRisk)
	res := p.pay(t, "rc-1", 12_345)
	if !res.Approved() {
		t.Fatalf("payment: %+v", res)
	}
	wantStatus(t, "empty queue", risk.get("/risk/errors?org="+p.org+"&merchant="+p.mid), http.StatusOK, `data-testid="no-cases"`)

	// Refused openings record nothing.
	for name, kv := range map[string][]string{
		"unknown kind":           {"kind", "lost", "rrn", res.RRN, "note", "x"},
		"chargeback, no payment": {"kind", "chargeback", "note", "x"},
		"unknown RRN":            {"kind", "chargeback", "rrn", "999999999999", "note", "x"},
		"three decimals":         {"kind", "chargeback", "rrn", res.RRN, "amount", "1.234", "note", "x"},
		"bad day":                {"kind", "chargeback", "rrn", res.RRN, "day", "1/12/2026", "note", "x"},
		"future":                 {"kind", "chargeback", "rrn", res.RRN, "day", time.Now().AddDate(0, 0, 3).Format(time.DateOnly), "note", "x"},
	} {
		pg := risk.form("/risk/errors/new", "/risk/errors", kv...)
		if pg.status != http.StatusBadRequest && pg.status != http.StatusNotFound || !strings.Contains(pg.body, `data-testid="form-error"`) ||
			!strings.Contains(pg.body, `data-testid="open-form"`) {
			t.Errorf("%s: %d %.400s", name, pg.status, pg.body)
		}
	}
	if page, _ := p.card.Desk().ListErrors(ctx, cardpay.ErrorFilter{OrgID: p.org, MerchantID: p.mid}); page.Total != 0 {
		t.Fatalf("refused openings recorded %d cases", page.Total)
	}

	pg := risk.form("/risk/errors/new", "/risk/errors", "kind", "chargeback", "rrn", res.RRN, "ref", "CB-0042", "amount", "100.50",
		"note", "issuer chargeback, reason 4837")
	m := caseRE.FindStringSubmatch(pg.loc)
	if pg.status != http.StatusSeeOther || m == nil {
		t.Fatalf("open: %d %q %.500s", pg.status, pg.loc, pg.body)
	}
	cpath := "/risk/errors/" + m[1]
	body := risk.get(pg.loc).body
	for _, want := range []string{`data-testid="resolve-form"`, "100.50", "rc-1", "拒付", `data-testid="event-opened"`} {
		if !strings.Contains(body, want) {
			t.Errorf("case page lacks %q", want)
		}
	}
	for _, q := range []string{"", "?kind=chargeback", "?status=open&org=" + p.org + "&merchant=" + p.mid, "?status=&from=2020-01-01"} {
		wantStatus(t, "queue "+q, risk.get("/risk/errors"+q), http.StatusOK, `data-testid="case-`+m[1]+`"`)
	}
	wantStatus(t, "other kind", risk.get("/risk/errors?kind=dispute&org="+p.org+"&merchant="+p.mid), http.StatusOK, `data-testid="no-cases"`)
	for _, q := range []string{"?kind=bogus", "?status=gone", "?from=2026-12-02&to=2026-12-01", "?from=yesterday", "?merchant=RISK1", "?page=0"} {
		wantStatus(t, "bad filter "+q, risk.get("/risk/errors"+q), http.StatusBadRequest, `data-code="invalid"`)
	}
	wantStatus(t, "no such case", risk.get("/risk/errors/999999"), http.StatusNotFound, `data-code="not_found"`)

	// Closing: a note is required; then closed once, and only once.
	wantStatus(t, "no note", risk.form(cpath, cpath+"/resolve", "status", "resolved", "note", " "), http.StatusBadRequest, `data-code="invalid"`)
	wantStatus(t, "bad status", risk.form(cpath, cpath+"/resolve", "status", "open", "note", "x"), http.StatusBadRequest, `data-code="invalid"`)
	if c, _, _ := p.card.Desk().GetError(ctx, mustID(t, m[1])); c.Status != cardpay.ErrorOpen {
		t.Fatalf("refused closes changed the case: %+v", c)
	}
	pg = risk.form(cpath, cpath+"/resolve", "status", "resolved", "not_at_fault", "on", "note", "slip provided, chargeback withdrawn")
	if pg.status != http.StatusSeeOther || pg.loc != cpath+"?done=closed" {
		t.Fatalf("close: %d %q %.500s", pg.status, pg.loc, pg.body)
	}
	body = risk.get(cpath).body
	for _, want := range []string{"slip provided, chargeback withdrawn", "not at fault", `data-testid="event-resolved"`, "risk#"} {
		if !strings.Contains(body, want) {
			t.Errorf("closed case lacks %q", want)
		}
	}
	if strings.Contains(body, `data-testid="resolve-form"`) {
		t.Error("a closed case offers the close form")
	}
	wantStatus(t, "close twice", risk.form(cpath, cpath+"/resolve", "status", "written_off", "note", "again"), http.StatusConflict, `data-code="conflict"`)
	wantStatus(t, "resolved are off the queue", risk.get("/risk/errors?org="+p.org+"&merchant="+p.mid), http.StatusOK, `data-testid="no-cases"`)

	// User levels: 201–203 on request, with a reason, in the history.
	mpath := "/risk/merchants?org=" + p.org + "&merchant=" + p.mid
	wantStatus(t, "merchant", risk.get(mpath), http.StatusOK, `<strong>101</strong>`)
	wantStatus(t, "unknown merchant", risk.get("/risk/merchants?org=ORG1&merchant=NOBODY"), http.StatusNotFound, `data-code="not_found"`)
	set := func(level, reason string) page {
		return risk.form(mpath, "/risk/merchants/level", "org", p.org, "merchant", p.mid, "level", level, "reason", reason)
	}
	wantStatus(t, "automatic level", set("102", "x"), http.StatusBadRequest, `data-code="invalid"`)
	wantStatus(t, "no reason", set("202", ""), http.StatusBadRequest, `data-code="invalid"`)
	if l, _ := p.card.Desk().UserLevel(ctx, p.org, p.mid); l != "101" {
		t.Fatalf("refusals set level %s", l)
	}
	pg = set("202", "large orders, request #88")
	if pg.status != http.StatusSeeOther {
		t.Fatalf("set level: %d %.500s", pg.status, pg.body)
	}
	body = risk.get(pg.loc).body
	for _, want := range []string{`<strong>202</strong>`, "large orders, request #88", `data-testid="flash"`} {
		if !strings.Contains(body, want) {
			t.Errorf("merchant page lacks %q", want)
		}
	}
	if l, _ := p.card.Desk().UserLevel(ctx, p.org, p.mid); l != "202" {
		t.Fatalf("level %s, want 202", l)
	}
}

func mustID(t *testing.T, s string) int64 {
	t.Helper()
	var id int64
	if _, err := fmt.Sscan(s, &id); err != nil {
		t.Fatal(err)
	}
	return id
}
