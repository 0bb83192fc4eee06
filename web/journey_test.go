package web_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/jifu-open/jifu/host/guesttest"
	"github.com/jifu-open/jifu/marketplace"
)

// chromium finds the browser `make tools` installs.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if testing.Short() {
		t.Skip("no Chromium (run `make tools`); skipped in -short")
	}
	t.Fatal("no Chromium on PATH: run `make tools` (apt-get install chromium)")
	return ""
}

// outputDir is where screenshots go: $TEST_OUTPUT/<test> when set, else
// the test's temporary folder. Never the repository.
func outputDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if o := os.Getenv("TEST_OUTPUT"); o != "" {
		dir = filepath.Join(o, t.Name())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func tid(id string) chromedp.CSS { return chromedp.CSS(fmt.Sprintf(`[data-testid=%q]`, id)) }

// TestFlowBrowserJourney drives the whole marketplace lifecycle in headless
// Chromium against the real handler, PostgreSQL and host: a developer
// registers, creates an app, uploads the hello plugin and submits it; a
// reviewer approves; the developer releases to 10% and promotes; an end user
// signs in with the SMS code from the outbox, consents and opens the app,
// then revokes consent and the next call is refused.
func TestFlowBrowserJourney(t *testing.T) {
	p := newPlatform(t)
	exe := chromium(t)
	out := outputDir(t)
	if _, err := p.svc.CreateStaff(context.Background(), marketplace.System, "reviewer@journey.test", "Rita Reviewer", staffPassword, marketplace.RoleReviewer); err != nil {
		t.Fatal(err)
	}
	files := t.TempDir()
	wasmPath, manifestPath := filepath.Join(files, "app.wasm"), filepath.Join(files, "jifu.json")
	if err := os.WriteFile(wasmPath, hello(t), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(manifestPath, guesttest.ReadFile(t, "plugins/hello/jifu.json"), 0o644); err != nil {
		t.Fatal(err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1200, 900))
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
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
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("main")))
			t.Fatalf("step %q at %s: %v\n%.1500s", name, loc, err, html)
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
	waitText := func(id, want string) chromedp.Action[chromedp.Void] {
		expr := fmt.Sprintf(`(document.querySelector('[data-testid=%q]')?.innerText ?? '').includes(%q)`, id, want)
		return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			// Evaluate until true: a page may still be navigating.
			deadline := time.Now().Add(20 * time.Second)
			for {
				ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
				if err == nil && ok {
					return nil
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("%s never showed %q (last error %v)", id, want, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
	login := func(name, email string) {
		step(name,
			chromedp.Navigate(base+"/portal/login"),
			chromedp.SendKeys(tid("login-email"), email),
			chromedp.SendKeys(tid("login-password"), staffPassword),
			chromedp.Click(tid("login-submit")),
			chromedp.WaitVisible(tid("logout")))
	}

	// The developer registers and creates the app: the secret is shown once.
	step("register",
		chromedp.Navigate(base+"/portal/register"),
		chromedp.SendKeys(tid("reg-email"), "dev@journey.test"),
		chromedp.SendKeys(tid("reg-password"), staffPassword),
		chromedp.SendKeys(tid("reg-name"), "Dana Developer"),
		chromedp.SendKeys(tid("reg-org"), "Dana Apps"),
		chromedp.SetValue(tid("reg-kind"), "individual"),
		chromedp.Click(tid("reg-submit")),
		chromedp.WaitVisible(tid("new-app")))
	step("create-app",
		chromedp.Click(tid("new-app")),
		chromedp.WaitVisible(tid("app-slug")),
		chromedp.SendKeys(tid("app-slug"), "hello"),
		chromedp.SendKeys(tid("app-name"), "Hello"),
		chromedp.SendKeys(tid("app-icon"), "👋"),
		chromedp.SetValue(tid("app-category"), "tools"),
		chromedp.SendKeys(tid("app-description"), "A greeting page with a visit counter."),
		chromedp.Click(tid("app-submit")),
		chromedp.WaitVisible(tid("secret")))
	if s := text("secret"); len(s) < 32 {
		t.Fatalf("secret shown = %q", s)
	}
	step("upload",
		chromedp.Click(tid("to-app")),
		chromedp.WaitVisible(tid("upload-form")),
		chromedp.SetUploadFiles(tid("upload-wasm"), []string{wasmPath}),
		chromedp.SetUploadFiles(tid("upload-manifest"), []string{manifestPath}),
		chromedp.Click(tid("upload-submit")),
		chromedp.WaitVisible(tid("check-report")))
	if !strings.Contains(text("check-report"), "passed") {
		t.Fatalf("check report: %s", text("check-report"))
	}
	step("submit", chromedp.Click(tid("submit-version")), waitText("status", "in_review"))
	step("developer-logout", chromedp.Click(tid("logout")), chromedp.WaitVisible(tid("login-form")))

	// The reviewer approves with a comment.
	login("reviewer-login", "reviewer@journey.test")
	step("review-queue", chromedp.WaitVisible(tid("queue-hello-1.0.0")), chromedp.Click(tid("review-link-hello")), chromedp.WaitVisible(tid("decision")))
	if !strings.Contains(text("diff"), "storage") || !strings.Contains(text("check-report"), "passed") {
		t.Fatalf("review page misses the diff or the report:\n%s\n%s", text("diff"), text("check-report"))
	}
	step("approve",
		chromedp.SendKeys(tid("review-comment-input"), "Looks good."),
		chromedp.Click(tid("approve")),
		chromedp.WaitVisible(tid("queue-empty")))
	step("reviewer-logout", chromedp.Click(tid("logout")), chromedp.WaitVisible(tid("login-form")))

	// The developer releases to 10%, then promotes.
	login("developer-login", "dev@journey.test")
	step("release-10",
		chromedp.Click(tid("app-link-hello")),
		chromedp.WaitVisible(tid("release-form-1.0.0")),
		chromedp.SetValue(tid("release-percent-1.0.0"), "10"),
		chromedp.Click(tid("release-1.0.0")),
		chromedp.WaitVisible(tid("gray-percent")))
	if got := text("gray-percent"); got != "10%" {
		t.Fatalf("gray percent = %q", got)
	}
	step("promote", chromedp.Click(tid("promote")), waitText("stable", "1.0.0"), waitText("gray", "none"))
	step("developer-logout-2", chromedp.Click(tid("logout")), chromedp.WaitVisible(tid("login-form")))

	// An end user finds the app, signs in with the SMS code, consents and
	// opens it.
	const phone = "13800138000"
	step("catalog", chromedp.Navigate(base+"/store/"), chromedp.WaitVisible(tid("listing-hello")))
	step("app-page", chromedp.Click(tid("listing-link-hello")), chromedp.WaitVisible(tid("login-to-get")))
	// The developer console's SMS outbox, open in another tab, shows the
	// code as it arrives (htmx refreshes the table in place).
	outboxTab, closeTab := chromedp.NewContext(ctx)
	defer closeTab()
	if err := chromedp.Do(outboxTab, chromedp.Navigate(base+"/portal/outbox?to="+phone), chromedp.WaitVisible(tid("outbox"))); err != nil {
		t.Fatalf("outbox: %v", err)
	}
	if ok, err := chromedp.Run(outboxTab, chromedp.Evaluate[bool](`typeof htmx === 'object'`)); err != nil || !ok {
		t.Fatalf("htmx did not load under the page's CSP: %v %v", ok, err)
	}
	step("send-code",
		chromedp.Click(tid("login-to-get")),
		chromedp.WaitVisible(tid("phone")),
		chromedp.SendKeys(tid("phone"), phone),
		chromedp.Click(tid("send-code")),
		chromedp.WaitVisible(tid("code")))
	if err := chromedp.Do(outboxTab, chromedp.WaitVisible(tid("outbox-body"))); err != nil {
		t.Fatalf("the outbox never showed the SMS: %v", err)
	}
	sms, err := chromedp.Run(outboxTab, chromedp.Text(tid("outbox-body")))
	if err != nil {
		t.Fatal(err)
	}
	if png, err := chromedp.Run(outboxTab, chromedp.FullScreenshot(100)); err == nil {
		_ = os.WriteFile(filepath.Join(out, "00-sms-outbox.png"), png, 0o644)
	}
	closeTab()
	code := regexp.MustCompile(`\d{6}`).FindString(sms)
	if code == "" {
		t.Fatalf("no code in the SMS %q", sms)
	}
	step("consent-screen",
		chromedp.SendKeys(tid("code"), code),
		chromedp.Click(tid("verify-code")),
		chromedp.WaitVisible(tid("consent-scopes")))
	step("open-app", chromedp.Click(tid("allow")), chromedp.WaitVisible(tid("greeting")))
	if g := text("greeting"); !strings.Contains(g, "u") || strings.Contains(g, "guest") {
		t.Fatalf("the app did not see the signed-in user: %q", g)
	}
	step("use-app", chromedp.Click(chromedp.CSS(`button[type=submit]`)), waitText("visits", "1"))

	// The user revokes access: the next call is refused with a clear page.
	step("my-apps", chromedp.Navigate(base+"/store/my"), chromedp.WaitVisible(tid("revoke-hello")))
	step("revoke", chromedp.Click(tid("revoke-hello")), chromedp.WaitVisible(tid("my-empty")))
	step("refused", chromedp.Navigate(base+"/apps/hello/"), chromedp.WaitVisible(tid("consent-required")))
	if msg := text("error-message"); !strings.Contains(msg, "revoked") {
		t.Fatalf("refusal page says %q", msg)
	}
	t.Logf("screenshots in %s", out)
}
