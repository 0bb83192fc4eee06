package database

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/jifu-open/jifu"
)

// serverBinaries returns the directory holding initdb, pg_ctl and postgres.
// When none is found and this process is root it installs Debian's
// postgresql package (which, on Debian, also creates and may start a system
// cluster "main" on port 5432: harmless, ours use other ports).
func serverBinaries(ctx context.Context, log *slog.Logger) (string, error) {
	if dir := findServerBinaries(ctx); dir != "" {
		return dir, nil
	}
	if os.Geteuid() != 0 {
		return "", jifu.Errorf(jifu.CodeUnavailable,
			"database: PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: install PostgreSQL "+
				"(Debian/Ubuntu: `sudo apt-get install postgresql`; macOS: `brew install postgresql`) "+
				"or put its pg_config on PATH")
	}
	log.InfoContext(ctx, "database: PostgreSQL not found; installing it with apt-get")
	if err := aptInstall(ctx); err != nil {
		log.InfoContext(ctx, "database: apt-get install failed; updating package lists", "err", err)
		if out, err := aptGet(ctx, "update"); err != nil {
			return "", jifu.Errorf(jifu.CodeUnavailable, "database: apt-get update: %w: %s", err, tail(out, 2000))
		}
		if err := aptInstall(ctx); err != nil {
			return "", err
		}
	}
	if dir := findServerBinaries(ctx); dir != "" {
		return dir, nil
	}
	return "", jifu.Errorf(jifu.CodeUnavailable, "database: installed postgresql but found no initdb/pg_ctl under /usr/lib/postgresql/*/bin")
}

func aptInstall(ctx context.Context) error {
	if out, err := aptGet(ctx, "install", "-y", "postgresql"); err != nil {
		return jifu.Errorf(jifu.CodeUnavailable, "database: apt-get install -y postgresql: %w: %s", err, tail(out, 2000))
	}
	return nil
}

func aptGet(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	return cmd.CombinedOutput()
}

// findServerBinaries tries pg_config --bindir, then the newest
// /usr/lib/postgresql/<major>/bin; "" when neither has the server.
func findServerBinaries(ctx context.Context) string {
	if out, err := exec.CommandContext(ctx, "pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); hasServer(dir) {
			return dir
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	major := func(d string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64) // "15", "9.6"
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int {
		switch ma, mb := major(a), major(b); {
		case ma > mb:
			return -1
		case ma < mb:
			return 1
		}
		return 0
	})
	for _, d := range dirs {
		if hasServer(d) {
			return d
		}
	}
	return ""
}

func hasServer(dir string) bool {
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}
