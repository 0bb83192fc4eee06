package host

import (
	"context"
	"errors"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/abi"
	"github.com/jifu-open/jifu/host/audit"
)

// Scope is a permission an app asks for in its manifest. Functions behind a
// scope are linked into an app only when its manifest declares the scope; a
// scope that touches a user's data also needs that user's consent per call.
type Scope struct {
	Name         string
	Description  string // shown to reviewers and on the consent screen
	NeedsConsent bool
}

// hostFunc is one host function of namespace abi.Module.
type hostFunc struct {
	name       string
	capability string // audit and metrics label: log, clock, random, config, kv
	scope      string // "" for functions every app gets
	params     []api.ValueType
	paramNames []string
	result     api.ValueType // i32 or i64
	// call runs the function. It reads its arguments from c.stack and returns a
	// non-negative result or a negative abi error code. It never panics except
	// through c.abort, which stops the invocation.
	call func(ctx context.Context, c *call) int64
}

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// scopes lists every scope this host offers. Later capabilities add theirs.
var scopes = []Scope{
	{Name: "storage", Description: "Keep the app's own data (a key-value store no other app can read)"},
	ScopePaymentCreate, ScopePaymentRefund,
	scopeEscrow,
}

// functions is the registration table of every host function.
var functions = []*hostFunc{
	fnLog, fnClockNow, fnRandom, fnConfigGet, fnResultTake,
	fnKVGet, fnKVPut, fnKVDelete, fnKVCAS, fnKVScan,
	fnPaymentCreate, fnPaymentGet, fnPaymentRefund,
	fnEscrowCall,
}

// Registry maps scopes to host functions. It is immutable once built.
type Registry struct {
	scopes    map[string]Scope
	functions map[string]*hostFunc
}

func newRegistry(extra []Scope) *Registry {
	r := &Registry{scopes: map[string]Scope{}, functions: map[string]*hostFunc{}}
	for _, s := range append(append([]Scope(nil), scopes...), extra...) {
		r.scopes[s.Name] = s
	}
	for _, f := range functions {
		r.functions[f.name] = f
	}
	return r
}

// Scope returns a known scope.
func (r *Registry) Scope(name string) (Scope, bool) {
	s, ok := r.scopes[name]
	return s, ok
}

// link instantiates, in rt, the host module holding exactly the functions app
// may call: those without a scope and those whose scope the app was granted.
func (h *Host) link(ctx context.Context, rt wazero.Runtime, granted func(scope string) bool) error {
	b := rt.NewHostModuleBuilder(abi.Module)
	for _, f := range h.registry.functions {
		if f.scope != "" && !granted(f.scope) {
			continue
		}
		b.NewFunctionBuilder().
			WithGoModuleFunction(h.wrap(f), f.params, []api.ValueType{f.result}).
			WithParameterNames(f.paramNames...).
			Export(f.name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

// wrap turns a hostFunc into the wazero callback that enforces the
// per-invocation rules every host call shares: it acts only inside an
// invocation, counts against the host-call limit, checks consent for scopes
// that need it, and audits the call.
func (h *Host) wrap(f *hostFunc) api.GoModuleFunc {
	encode := func(v int64) uint64 { return api.EncodeI64(v) }
	if f.result == i32 {
		encode = func(v int64) uint64 { return api.EncodeI32(int32(v)) }
	}
	scope, _ := h.registry.Scope(f.scope)
	return func(ctx context.Context, mod api.Module, stack []uint64) {
		inv := invocationFrom(ctx)
		if inv == nil {
			// Called outside an invocation (for example from a guest's
			// initialiser): there is no app or user to act for.
			stack[0] = encode(abi.ErrDenied)
			return
		}
		start := time.Now()
		inv.calls++
		if f != fnResultTake {
			inv.pending = nil // a pending result lives until the next host call
		}
		c := &call{inv: inv, mod: mod, stack: stack, fn: f}
		if inv.calls > inv.app.limits.HostCalls {
			h.audit(inv, f, abi.ErrLimit, start)
			c.abort(CodeHostCallLimit, "more than %d host calls in one invocation", inv.app.limits.HostCalls)
		}
		var res int64
		if scope.NeedsConsent {
			res = h.checkConsent(ctx, inv, scope.Name)
		}
		if res == 0 {
			res = f.call(ctx, c)
		}
		h.audit(inv, f, res, start)
		stack[0] = encode(res)
	}
}

func (h *Host) checkConsent(ctx context.Context, inv *invocation, scope string) int64 {
	if inv.user == "" {
		return abi.ErrDenied
	}
	ok, err := h.consent.Consented(ctx, inv.app.spec.Slug, inv.user, scope)
	switch {
	case err != nil:
		h.log.WarnContext(ctx, "consent check failed", "app", inv.app.spec.Slug, "scope", scope, "err", err)
		return abi.ErrUnavailable
	case !ok:
		return abi.ErrDenied
	}
	return 0
}

func (h *Host) audit(inv *invocation, f *hostFunc, res int64, start time.Time) {
	code := "ok"
	if res < 0 {
		code = abi.ErrorName(res)
	}
	h.metrics.hostCalls.WithLabelValues(inv.app.spec.Slug, f.name, code).Inc()
	if h.auditor == nil {
		return
	}
	h.auditor.Record(audit.Record{
		At:           start,
		InvocationID: inv.id,
		App:          inv.app.spec.Slug,
		Version:      inv.app.spec.Manifest.Version,
		User:         inv.user,
		Capability:   f.capability,
		Function:     f.name,
		Code:         code,
		Duration:     time.Since(start),
	})
}

// errorResult maps a store error to its ABI result code.
func errorResult(err error) int64 {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return abi.ErrUnavailable
	}
	switch jifu.ErrorCode(err) {
	case jifu.CodeNotFound:
		return abi.ErrNotFound
	case jifu.CodeConflict:
		return abi.ErrConflict
	case jifu.CodeInvalid:
		return abi.ErrInvalid
	case jifu.CodeTooLarge:
		return abi.ErrTooLarge
	case jifu.CodeUnavailable:
		return abi.ErrUnavailable
	case jifu.CodeDenied:
		return abi.ErrDenied
	}
	return abi.ErrInternal
}
