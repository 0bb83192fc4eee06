package openapi_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jifu-open/jifu/marketplace"
)

// docScript returns the bash block of docs/OPENAPI.md starting with "# name".
func docScript(t *testing.T, name string) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "docs", "OPENAPI.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```bash\n# "+name+"\n")
	script, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatalf("docs/OPENAPI.md has no %s script", name)
	}
	return script
}

// TestDocsScripts runs the curl and openssl scripts of docs/OPENAPI.md
// against the real server with a fresh app's credentials.
func TestDocsScripts(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (make tools installs it): %v", tool, err)
		}
	}
	e := newEnv(t)
	a := e.newApp(marketplace.LevelBasic, "127.0.0.1/32", "::1/128")
	run := func(name string) map[string]any {
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", docScript(t, name))
		cmd.Env = append(os.Environ(), "BASE="+e.srv.URL, "APPKEY="+a.key.AppKey, "SECRET="+string(a.key.Secret))
		out, err := cmd.CombinedOutput()
		var v map[string]any
		if err != nil || json.Unmarshal(out, &v) != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		return v
	}
	if v := run("app-info"); v["slug"] != a.app.Slug || v["environment"] != "sandbox" {
		t.Fatalf("app-info answered %v", v)
	}
	if v := run("create-payment"); v["state"] != "created" || v["amount"] != 1999.0 || v["sandbox"] != true {
		t.Fatalf("create-payment answered %v", v)
	}
}
