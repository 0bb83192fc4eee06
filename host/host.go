package host

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tetratelabs/wazero"

	"github.com/jifu-open/jifu/host/audit"
)

// ConsentChecker answers whether a user has granted an app a scope. The
// marketplace implements it; until then DenyAll (or AllowAll in dev mode).
type ConsentChecker interface {
	Consented(ctx context.Context, app, user, scope string) (bool, error)
}

// Auditor receives one record per capability call (package audit's Writer).
type Auditor interface {
	Record(audit.Record)
}

// DenyAll is the default consent checker: no user has consented to anything.
type DenyAll struct{}

// Consented implements ConsentChecker.
func (DenyAll) Consented(context.Context, string, string, string) (bool, error) { return false, nil }

// AllowAll treats every scope as consented. For dev mode and tests only.
type AllowAll struct{}

// Consented implements ConsentChecker.
func (AllowAll) Consented(context.Context, string, string, string) (bool, error) { return true, nil }

// PoolOptions size each app version's pool of warm instances.
type PoolOptions struct {
	Max             int    // most live instances per app version (concurrency bound); default 8
	Warm            int    // instances created at load; default 1
	RecycleAfter    int    // invocations before an instance is replaced; default 10000
	MemoryHighWater uint32 // bytes of guest memory above which an instance is replaced; default 3/4 of its limit
}

// Config holds a Host's dependencies. Only KV is required for apps with the
// storage scope; everything else has a safe default.
type Config struct {
	CacheDir      string // on-disk compilation cache; "" keeps compiled code in memory only
	Logger        *slog.Logger
	KV            KVStore
	Payments      Payments      // the payment capability; nil: its functions answer unavailable
	Escrow        EscrowService // the escrow capability's service (package escrow)
	Audit         Auditor
	Consent       ConsentChecker        // default DenyAll
	Metrics       prometheus.Registerer // default: not registered anywhere
	Clock         func() time.Time      // default time.Now; guests' clocks read it too
	Rand          io.Reader             // default crypto/rand
	Pool          PoolOptions
	MaxModuleSize int     // bytes; default 32 MiB
	ExtraScopes   []Scope // scopes registered by later capabilities
	// CloseOnContextDone makes wall-clock limits stop a running guest. It is on
	// unless DisableInterrupt is set; see docs/RATIONALE.md for its cost.
	DisableInterrupt bool
}

// Host compiles, validates and runs apps. It is safe for concurrent use.
type Host struct {
	cfg       Config
	log       *slog.Logger
	cache     wazero.CompilationCache
	registry  *Registry
	kv        KVStore
	escrow    EscrowService
	auditor   Auditor
	consent   ConsentChecker
	metrics   *metrics
	now       func() time.Time
	rand      io.Reader
	validator wazero.Runtime // compiles modules for validation only
}

// DefaultMaxModuleSize bounds an uploaded module.
const DefaultMaxModuleSize = 32 << 20

// New creates a Host.
func New(ctx context.Context, cfg Config) (*Host, error) {
	h := &Host{cfg: cfg, log: cfg.Logger, kv: cfg.KV, escrow: cfg.Escrow, auditor: cfg.Audit, consent: cfg.Consent, now: cfg.Clock, rand: cfg.Rand}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.consent == nil {
		h.consent = DenyAll{}
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.rand == nil {
		h.rand = rand.Reader
	}
	if h.cfg.MaxModuleSize <= 0 {
		h.cfg.MaxModuleSize = DefaultMaxModuleSize
	}
	if cfg.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("host: compilation cache %s: %w", cfg.CacheDir, err)
		}
		h.cache = c
	} else {
		h.cache = wazero.NewCompilationCache()
	}
	h.registry = newRegistry(cfg.ExtraScopes)
	h.metrics = newMetrics(cfg.Metrics)
	// The validator compiles with the apps' interrupt setting, which wazero
	// hashes into the cache key, so a Validate at upload leaves in the on-disk
	// cache the compiled module a later Load uses.
	h.validator = wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(h.cache).
		WithCloseOnContextDone(!h.cfg.DisableInterrupt))
	return h, nil
}

// Registry returns the host's capability registry.
func (h *Host) Registry() *Registry { return h.registry }

// Close releases the compilation cache and the validation runtime. Apps loaded
// from h must be closed first.
func (h *Host) Close(ctx context.Context) error {
	err := h.validator.Close(ctx)
	if cerr := h.cache.Close(ctx); err == nil {
		err = cerr
	}
	return err
}

func (h *Host) runtimeConfig(memoryPages uint32) wazero.RuntimeConfig {
	return wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(h.cache).
		WithMemoryLimitPages(memoryPages).
		WithCloseOnContextDone(!h.cfg.DisableInterrupt)
}
