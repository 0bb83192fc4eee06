// Package devkit holds what the `jifu app` developer commands do: scaffold a
// new app, build it to wasip1/wasm with the standard Go toolchain, and locate
// the module and manifest a command should act on.
//
//	err := devkit.Init("myapp", devkit.InitOptions{Dir: ".", SDKPath: "/src/jifu"})
//	wasm, err := devkit.Build(ctx, "myapp", devkit.BuildOptions{})
package devkit

import (
	"bytes"
	"context"
	"embed"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/manifest"
)

// ModulePath is the platform's Go module, which holds the guest SDK.
const ModulePath = "github.com/jifu-open/jifu"

//go:embed template/*
var templates embed.FS

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{1,38}[a-z0-9]$`)

// InitOptions configure Init.
type InitOptions struct {
	Dir     string // parent folder; the app goes to Dir/NAME
	SDKPath string // local checkout of ModulePath for a replace directive; "" if the SDK comes from the module proxy
}

// Init scaffolds a working app named name: main.go (a handler using kv and
// log), jifu.json, go.mod and a README. It refuses to overwrite a folder.
func Init(name string, opts InitOptions) (string, error) {
	if !nameRE.MatchString(name) {
		return "", jifu.Errorf(jifu.CodeInvalid, "app name %q must be 3-40 characters of a-z, 0-9 and -, starting with a letter", name)
	}
	if opts.Dir == "" {
		opts.Dir = "."
	}
	dir := filepath.Join(opts.Dir, name)
	if _, err := os.Stat(dir); err == nil {
		return "", jifu.Errorf(jifu.CodeConflict, "%s already exists", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	data := map[string]string{"Name": name, "Module": ModulePath, "SDKPath": opts.SDKPath, "GoVersion": goVersion()}
	files := map[string]string{"main.go.tmpl": "main.go", "jifu.json.tmpl": manifest.FileName, "go.mod.tmpl": "go.mod", "README.md.tmpl": "README.md"}
	for src, dst := range files {
		t, err := template.ParseFS(templates, "template/"+src)
		if err != nil {
			return "", err
		}
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, dst), b.Bytes(), 0o644); err != nil {
			return "", err
		}
	}
	// Resolve the SDK's own requirements into go.sum now, so the first build
	// works offline from the module cache.
	tidy := exec.Command("go", "mod", "tidy")
	tidy.Dir = dir
	if out, err := tidy.CombinedOutput(); err != nil {
		return dir, jifu.Errorf(jifu.CodeUnavailable, "%s created, but go mod tidy failed (run it there): %v\n%s", dir, err, out)
	}
	return dir, nil
}

func goVersion() string {
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	v := strings.TrimPrefix(strings.TrimSpace(string(out)), "go")
	if err != nil || v == "" {
		return "1.24"
	}
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return v
	}
	return parts[0] + "." + parts[1]
}

// BuildOptions configure Build.
type BuildOptions struct {
	Output string // default DIR/build/app.wasm
}

// Build compiles the app in dir to a wasip1 reactor module, copies its
// manifest beside it, and returns the output path. The caller validates it.
func Build(ctx context.Context, dir string, opts BuildOptions) (string, error) {
	raw, err := os.ReadFile(filepath.Join(dir, manifest.FileName))
	if err != nil {
		return "", jifu.Errorf(jifu.CodeInvalid, "%s: no %s: %w", dir, manifest.FileName, err)
	}
	if _, ps := manifest.Parse(raw); len(ps) > 0 {
		return "", jifu.Errorf(jifu.CodeInvalid, "%s: %s", manifest.FileName, ps[0])
	}
	out := opts.Output
	if out == "" {
		out = filepath.Join(dir, "build", "app.wasm")
	}
	out, err = filepath.Abs(out)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-buildmode=c-shared", "-trimpath", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", jifu.Errorf(jifu.CodeInvalid, "go build failed: %v\n%s", err, stderr.String())
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(out), manifest.FileName), raw, 0o644); err != nil {
		return "", err
	}
	return out, nil
}

// ManifestFor returns the manifest path for a module: --manifest if given,
// else jifu.json beside the module.
func ManifestFor(wasmPath, flag string) string {
	if flag != "" {
		return flag
	}
	return filepath.Join(filepath.Dir(wasmPath), manifest.FileName)
}

// FindSDK looks upward from dir for a checkout of ModulePath (a go.mod whose
// module line names it) and returns its folder, or "".
func FindSDK(dir string) string {
	dir, _ = filepath.Abs(dir)
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module "+ModulePath+"\n") {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// ParseRequestLine parses "METHOD /path?query" as `jifu app run --request` takes it.
func ParseRequestLine(s string) (method, path, query string, err error) {
	method, target, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok || method == "" || !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \t") {
		return "", "", "", jifu.Errorf(jifu.CodeInvalid, "request %q must look like 'GET /path?query'", s)
	}
	path, query, _ = strings.Cut(target, "?")
	return strings.ToUpper(method), path, query, nil
}
