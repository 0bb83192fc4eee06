package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/jifu-open/jifu/host/manifest"
)

// AppSet is the set of app versions currently serving, by slug. Replacing an
// entry (a release switch) is atomic for callers; the old version is closed
// after its in-flight invocations finish.
type AppSet struct {
	mu   sync.RWMutex
	apps map[string]*App
}

// NewAppSet returns an empty set.
func NewAppSet() *AppSet { return &AppSet{apps: map[string]*App{}} }

// App returns the serving version of slug.
func (s *AppSet) App(slug string) (*App, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.apps[slug]
	return a, ok
}

// Put makes app the serving version of its slug and returns the one it replaced.
func (s *AppSet) Put(app *App) (old *App) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old = s.apps[app.Slug()]
	s.apps[app.Slug()] = app
	return old
}

// Slugs returns the serving slugs in order.
func (s *AppSet) Slugs() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.apps))
	for k := range s.apps {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Close closes every app in the set.
func (s *AppSet) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for slug, a := range s.apps {
		errs = append(errs, a.Close(ctx))
		delete(s.apps, slug)
	}
	return errors.Join(errs...)
}

// ReadAppDir reads an app from a folder holding app.wasm and jifu.json, the
// layout `jifu app build` writes.
func ReadAppDir(dir string) (wasm []byte, m *manifest.Manifest, err error) {
	wasm, err = os.ReadFile(filepath.Join(dir, "app.wasm"))
	if err != nil {
		return nil, nil, err
	}
	raw, err := os.ReadFile(filepath.Join(dir, manifest.FileName))
	if err != nil {
		return nil, nil, err
	}
	m, ps := manifest.Parse(raw)
	if len(ps) > 0 {
		return nil, nil, &ValidationError{Problems: ps}
	}
	return wasm, m, nil
}

// LoadDir loads every app found in the subfolders of dir (each as ReadAppDir
// expects) into set, with the operator configuration config returns for its
// slug (config may be nil). It is how `jifu serve --dev-apps DIR` serves apps
// before the marketplace decides which versions run. The first folder that
// fails stops the load with an error naming it.
func (h *Host) LoadDir(ctx context.Context, dir string, set *AppSet, config func(ctx context.Context, slug string) (map[string]string, error)) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("host: dev apps: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		wasm, m, err := ReadAppDir(filepath.Join(dir, e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("host: dev app %s: %w", e.Name(), err)
		}
		spec := AppSpec{Wasm: wasm, Manifest: m}
		if config != nil {
			if spec.Config, err = config(ctx, m.Slug); err != nil {
				return fmt.Errorf("host: dev app %s: configuration: %w", e.Name(), err)
			}
		}
		app, err := h.Load(ctx, spec)
		if err != nil {
			return fmt.Errorf("host: dev app %s: %w", e.Name(), err)
		}
		if old := set.Put(app); old != nil {
			_ = old.Close(ctx)
		}
		h.log.InfoContext(ctx, "app loaded", "app", m.Slug, "version", m.Version, "scopes", m.Scopes)
	}
	return nil
}
