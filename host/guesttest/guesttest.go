// Package guesttest builds and loads guest modules for tests: Go guests from
// source with the standard toolchain, WAT fixtures with their committed .wasm.
//
//	wasm := guesttest.BuildGo(t, "plugins/hello")
package guesttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var rootOnce = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
})

// Root returns the repository root (the directory of go.mod).
func Root(t testing.TB) string {
	t.Helper()
	root, err := rootOnce()
	if err != nil {
		t.Fatalf("guesttest: finding the module root: %v", err)
	}
	return root
}

// BuildGo compiles the Go guest in dir (relative to the repository root) to
// wasip1/wasm as a reactor and returns the module's bytes.
func BuildGo(t testing.TB, dir string) []byte {
	t.Helper()
	root := Root(t)
	out := filepath.Join(t.TempDir(), "app.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./"+filepath.ToSlash(dir))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("guesttest: building %s: %v\n%s", dir, err, b)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

// ReadFile reads a file relative to the repository root.
func ReadFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(Root(t), path))
	if err != nil {
		t.Fatalf("guesttest: %v", err)
	}
	return b
}
