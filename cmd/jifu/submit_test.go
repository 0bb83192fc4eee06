package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/guesttest"
	"github.com/jifu-open/jifu/marketplace"
)

// TestAppSubmit: `jifu app submit` uploads a version through the signed
// open API of a running `jifu serve`, which checks it and puts it in the
// review queue; a wrong secret is refused with its code and stores nothing.
func TestAppSubmit(t *testing.T) {
	ctx := context.Background()
	c := newCmdEnv(t)
	key := make([]byte, 32)
	key[0] = 9
	c.vars["JIFU_MASTER_KEY"] = hex.EncodeToString(key)
	base, stop := c.serve("--no-seed")
	defer stop()

	pool := dbtest.Pool(t)
	h, err := host.New(ctx, host.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	svc, err := marketplace.New(marketplace.Config{Pool: pool, Host: h, MasterKey: key, Artifacts: marketplace.NewFSArtifacts(t.TempDir())})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close(ctx)
	acct, err := svc.RegisterDeveloper(ctx, marketplace.Registration{Email: "submit@jifu.test", Password: "correct horse battery",
		Name: "Dev", Kind: marketplace.KindIndividual})
	if err != nil {
		t.Fatal(err)
	}
	app, cred, err := svc.CreateApp(ctx, acct.Actor(), marketplace.AppInput{Slug: "submitted", Name: "Submitted",
		IPWhitelist: []string{"127.0.0.1/32", "::1/128"}})
	if err != nil {
		t.Fatal(err)
	}
	if st, body := httpDo(t, "GET", base+"/openapi.json", nil); st != 200 || !strings.Contains(body, `"openapi"`) {
		t.Fatalf("/openapi.json = %d", st)
	}
	if st, body := httpDo(t, "GET", base+"/openapi/v1/app", nil); st != 401 || !strings.Contains(body, "signature_missing") {
		t.Fatalf("unsigned call = %d %s", st, body)
	}
	dir := t.TempDir()
	wasm := filepath.Join(dir, "app.wasm")
	if err := os.WriteFile(wasm, guesttest.ReadFile(t, "host/testdata/wat/hello.wasm"), 0o644); err != nil {
		t.Fatal(err)
	}
	manifest := fmt.Sprintf(`{"abi":1,"slug":%q,"name":"Hello","version":"1.2.3","scopes":["storage"],"entry_points":["handle_http"],
		"limits":{"timeout_ms":1000},"self_test":[{"method":"GET","path":"/","expect_status":200}]}`, app.Slug)
	if err := os.WriteFile(filepath.Join(dir, "jifu.json"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}

	c.vars["JIFU_APP_SECRET"] = "not the secret"
	code, _, stderr := c.run("app", "submit", wasm, "--url", base, "--app-key", cred.AppKey)
	if code == 0 || !strings.Contains(stderr, "signature_mismatch") {
		t.Fatalf("wrong secret: exit %d, %s", code, stderr)
	}
	c.vars["JIFU_APP_SECRET"] = cred.Secret
	code, stdout, stderr := c.run("app", "submit", wasm, "--url", base, "--app-key", cred.AppKey)
	if code != 0 || !strings.Contains(stdout, "submitted for review") {
		t.Fatalf("submit: exit %d\n%s\n%s", code, stdout, stderr)
	}
	vs, err := svc.Versions(ctx, acct.Actor(), app.ID)
	if err != nil || len(vs) != 1 || vs[0].Version != "1.2.3" || vs[0].Status != marketplace.StatusInReview {
		t.Fatalf("versions %+v %v", vs, err)
	}
}
