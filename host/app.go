package host

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"log/slog"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/abi"
	"github.com/jifu-open/jifu/host/manifest"
)

// AppSpec is one version of an app to load.
type AppSpec struct {
	Slug      string             // routing name; must equal Manifest.Slug
	Namespace string             // kv namespace; default Slug (the marketplace separates sandbox and production)
	Wasm      []byte             // the module
	Manifest  *manifest.Manifest // parsed manifest
	Config    map[string]string  // operator values and secrets, over the manifest's defaults
	Granted   []string           // scopes granted by review; default all the manifest declares
}

// ValidationError lists every reason a module was refused.
type ValidationError struct{ Problems []manifest.Problem }

func (e *ValidationError) Error() string {
	s := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		s[i] = p.String()
	}
	return "module refused: " + strings.Join(s, "; ")
}

// App is a loaded app version: its own wazero runtime (holding its memory
// limit and its linked host functions), its compiled module and its pool.
type App struct {
	host      *Host
	spec      AppSpec
	limits    manifest.Limits
	namespace string
	config    map[string]string
	log       *slog.Logger
	rt        wazero.Runtime
	compiled  wazero.CompiledModule
	hasInit   bool
	pool      *pool
	metrics   *appMetrics
}

// Load validates, compiles and links an app version and warms its pool.
func (h *Host) Load(ctx context.Context, spec AppSpec) (*App, error) {
	refused := func(ps []manifest.Problem) error {
		return &jifu.Error{Code: jifu.CodeInvalid, Message: "the module or its manifest is invalid", Err: &ValidationError{Problems: ps}}
	}
	if spec.Manifest == nil || len(spec.Manifest.Check()) > 0 {
		return nil, refused(h.Validate(ctx, spec.Wasm, spec.Manifest))
	}
	m := spec.Manifest
	if spec.Slug == "" {
		spec.Slug = m.Slug
	}
	if spec.Slug != m.Slug {
		return nil, jifu.Errorf(jifu.CodeInvalid, "app %q: manifest slug is %q", spec.Slug, m.Slug)
	}
	granted := spec.Granted
	if granted == nil {
		granted = m.Scopes
	}
	for _, s := range granted {
		if !m.HasScope(s) {
			return nil, jifu.Errorf(jifu.CodeInvalid, "app %q: scope %q granted but not declared", spec.Slug, s)
		}
	}
	a := &App{
		host:      h,
		spec:      spec,
		limits:    m.Limits,
		namespace: spec.Namespace,
		config:    maps.Clone(m.Config),
		log:       h.log.With("app", spec.Slug, "version", m.Version),
	}
	if a.namespace == "" {
		a.namespace = spec.Slug
	}
	if a.config == nil {
		a.config = map[string]string{}
	}
	maps.Copy(a.config, spec.Config)

	a.rt = wazero.NewRuntimeWithConfig(ctx, h.runtimeConfig(m.Limits.MemoryPages))
	fail := func(err error) (*App, error) {
		_ = a.rt.Close(ctx)
		return nil, err
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, a.rt); err != nil {
		return fail(fmt.Errorf("host: app %s: wasi: %w", spec.Slug, err))
	}
	if err := h.link(ctx, a.rt, func(s string) bool { return slices.Contains(granted, s) }); err != nil {
		return fail(fmt.Errorf("host: app %s: link: %w", spec.Slug, err))
	}
	if err := h.linkYield(ctx, a.rt); err != nil {
		return fail(fmt.Errorf("host: app %s: link: %w", spec.Slug, err))
	}
	ps, compiled := h.validate(ctx, a.rt, spec.Wasm, m)
	if len(ps) > 0 {
		return fail(refused(ps))
	}
	a.compiled = compiled
	_, a.hasInit = compiled.ExportedFunctions()[abi.ExportInitialize]
	a.metrics = h.metrics.forApp(spec.Slug, m.EntryPoints, h.registry.functions)
	a.pool = newPool(a, h.cfg.Pool)
	if err := a.pool.warm(ctx); err != nil {
		return fail(err)
	}
	return a, nil
}

// Slug returns the app's slug.
func (a *App) Slug() string { return a.spec.Slug }

// Manifest returns the app version's manifest.
func (a *App) Manifest() *manifest.Manifest { return a.spec.Manifest }

// Limits returns the limits the app runs under.
func (a *App) Limits() manifest.Limits { return a.limits }

// Close stops the pool and releases the app's runtime. In-flight invocations
// finish first; later ones fail with app_closed.
func (a *App) Close(ctx context.Context) error {
	a.pool.close()
	return a.rt.Close(ctx)
}

// HandleHTTP invokes the guest's handle_http with req, acting for caller.
func (a *App) HandleHTTP(ctx context.Context, caller Caller, req *abi.Request) (*abi.Response, error) {
	if !a.spec.Manifest.HasEntryPoint(abi.ExportHandleHTTP) {
		return nil, fault(CodeNoEntryPoint, "app %s has no %s", a.spec.Slug, abi.ExportHandleHTTP)
	}
	caller = a.withRequestID(caller)
	r := *req // the caller's request is not modified
	r.User, r.RequestID = caller.User, caller.RequestID
	out, err := a.invoke(ctx, abi.ExportHandleHTTP, caller, r.AppendTo(make([]byte, 0, encodedSize(&r))))
	if err != nil {
		return nil, err
	}
	var resp abi.Response
	if err := resp.Decode(out); err != nil {
		return nil, fault(CodeBadResponse, "app %s: %v", a.spec.Slug, err)
	}
	return &resp, nil
}

// OnEvent invokes the guest's on_event with ev, acting for caller.
func (a *App) OnEvent(ctx context.Context, caller Caller, ev *abi.Event) (*abi.EventResult, error) {
	if !a.spec.Manifest.HasEntryPoint(abi.ExportOnEvent) {
		return nil, fault(CodeNoEntryPoint, "app %s has no %s", a.spec.Slug, abi.ExportOnEvent)
	}
	caller = a.withRequestID(caller)
	e := *ev
	e.User = caller.User
	out, err := a.invoke(ctx, abi.ExportOnEvent, caller, e.AppendTo(nil))
	if err != nil {
		return nil, err
	}
	var res abi.EventResult
	if err := res.Decode(out); err != nil {
		return nil, fault(CodeBadResponse, "app %s: %v", a.spec.Slug, err)
	}
	return &res, nil
}

// encodedSize is the length of r's ABI encoding (abi.Request.AppendTo), so
// that it is encoded into one allocation: a version byte, a u32 length before
// each string, the header count and the body.
func encodedSize(r *abi.Request) int {
	n := 1 + 4*7 + len(r.Method) + len(r.Path) + len(r.Query) + len(r.User) + len(r.RequestID) + len(r.Body)
	for _, h := range r.Headers {
		n += 8 + len(h.Name) + len(h.Value)
	}
	return n
}

func (a *App) withRequestID(c Caller) Caller {
	if c.RequestID == "" {
		c.RequestID = newID()
	}
	return c
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// invoke runs one entry point on a pooled instance under the app's limits.
func (a *App) invoke(ctx context.Context, entry string, caller Caller, in []byte) (out []byte, err error) {
	start := time.Now()
	defer func() {
		code := "ok"
		if err != nil {
			code = jifu.ErrorCode(err)
		}
		a.metrics.invocation(entry, code, time.Since(start))
	}()
	if len(in) > a.limits.RequestBytes {
		return nil, fault(CodeRequestTooLarge, "request is %d bytes, the app accepts at most %d", len(in), a.limits.RequestBytes)
	}
	inst, err := a.pool.get(ctx)
	if err != nil {
		return nil, err
	}
	inv := &invocation{id: caller.RequestID, app: a, user: caller.User}
	ictx, cancel := context.WithTimeout(ctx, a.limits.Timeout())
	defer cancel()
	out, err = inst.call(withInvocation(ictx, inv), entry, in, inv)
	if err != nil {
		err = a.classify(ictx, ctx, inst, inv, err)
		a.log.WarnContext(ctx, "invocation failed", "entry", entry, "user", caller.User, "invocation", inv.id, "code", jifu.ErrorCode(err), "err", err)
		a.pool.put(inst, jifu.ErrorCode(err))
		return nil, err
	}
	a.pool.put(inst, "")
	return out, nil
}

// classify turns a failed call into a coded error. ictx is the invocation's
// context (with the app's timeout), ctx the caller's.
func (a *App) classify(ictx, ctx context.Context, inst *instance, inv *invocation, err error) error {
	var je *jifu.Error
	if errors.As(err, &je) {
		return err // already classified (bad pointer, response too large, ...)
	}
	if inv.fault != nil {
		return inv.fault
	}
	stderr := inst.stderr.String()
	var exit *sys.ExitError
	isExit := errors.As(err, &exit)
	switch {
	case ctx.Err() != nil:
		return jifu.Errorf(jifu.CodeTimeout, "the request was cancelled: %v", ctx.Err())
	case errors.Is(ictx.Err(), context.DeadlineExceeded) || (isExit && exit.ExitCode() == sys.ExitCodeDeadlineExceeded):
		return fault(CodeTimeout, "app %s ran longer than %v and was stopped", a.spec.Slug, a.limits.Timeout())
	case strings.Contains(stderr, "out of memory") || inst.atMemoryLimit():
		return fault(CodeMemoryLimit, "app %s exhausted its %d memory pages", a.spec.Slug, a.limits.MemoryPages)
	case strings.Contains(stderr, "panic:") || strings.Contains(stderr, "fatal error:"):
		return fault(CodePanic, "app %s panicked: %s", a.spec.Slug, firstLines(stderr, 3))
	case isExit:
		return fault(CodePanic, "app %s exited with code %d: %s", a.spec.Slug, exit.ExitCode(), firstLines(stderr, 3))
	}
	return fault(CodeTrap, "app %s trapped: %s", a.spec.Slug, firstLines(err.Error(), 1))
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(strings.TrimSpace(s), "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, " | ")
}

// instance is one live module instance and its reusable call state.
type instance struct {
	app    *App
	mod    api.Module
	alloc  api.Function
	entry  map[string]api.Function
	stderr *boundedBuffer
	uses   int
	stack  [2]uint64
}

// initTimeout is the least time an instance's initialisation (the guest's
// _initialize) may take.
const initTimeout = 5 * time.Second

func (a *App) instantiate(ctx context.Context) (*instance, error) {
	buf := &boundedBuffer{max: 8 << 10}
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithStdout(buf).
		WithStderr(buf).
		WithRandSource(a.host.rand).
		WithWalltime(func() (int64, int32) {
			t := a.host.now()
			return t.Unix(), int32(t.Nanosecond())
		}, sys.ClockResolution(1)).
		WithSysNanotime()
	if a.hasInit {
		cfg = cfg.WithStartFunctions(abi.ExportInitialize)
	} else {
		cfg = cfg.WithStartFunctions()
	}
	// A cold start is bounded like Lambda's init phase: by its own limit, at
	// least initTimeout, so that a loaded machine does not fail instances of
	// apps with short invocation limits, while an initialiser that never
	// returns is still stopped.
	limit := max(a.limits.Timeout(), initTimeout)
	ictx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	mod, err := a.rt.InstantiateModule(ictx, a.compiled, cfg)
	if err != nil {
		var exit *sys.ExitError
		if ctx.Err() != nil {
			return nil, jifu.Errorf(jifu.CodeTimeout, "app %s: the request was cancelled while an instance started: %v", a.spec.Slug, ctx.Err())
		}
		if ictx.Err() != nil || (errors.As(err, &exit) && exit.ExitCode() == sys.ExitCodeDeadlineExceeded) {
			return nil, fault(CodeTimeout, "app %s: instance initialisation ran longer than %v and was stopped", a.spec.Slug, limit)
		}
		return nil, fault(CodeTrap, "app %s: instantiate: %v %s", a.spec.Slug, firstLines(err.Error(), 1), firstLines(buf.String(), 3))
	}
	inst := &instance{app: a, mod: mod, alloc: mod.ExportedFunction(abi.ExportAlloc), entry: map[string]api.Function{}, stderr: buf}
	for _, ep := range a.spec.Manifest.EntryPoints {
		inst.entry[ep] = mod.ExportedFunction(ep)
	}
	a.metrics.instances.Inc()
	return inst, nil
}

func (i *instance) close() {
	_ = i.mod.Close(context.Background())
	i.app.metrics.instances.Dec()
}

// atMemoryLimit reports whether the instance's memory is within one growth
// step (1/16) of the app's page limit.
func (i *instance) atMemoryLimit() bool {
	limit := uint64(i.app.limits.MemoryPages) * 65536
	return uint64(i.mod.Memory().Size()) >= limit-limit/16
}

// call hands in to the guest through its allocator and entry point and copies
// out the result buffer.
func (i *instance) call(ctx context.Context, entry string, in []byte, inv *invocation) ([]byte, error) {
	i.stderr.Reset()
	fn := i.entry[entry]
	if fn == nil {
		return nil, fault(CodeNoEntryPoint, "app %s does not export %s", i.app.spec.Slug, entry)
	}
	mem := i.mod.Memory()
	stack := i.stack[:]
	stack[0] = api.EncodeI32(int32(len(in)))
	if err := i.alloc.CallWithStack(ctx, stack[:1]); err != nil {
		return nil, err
	}
	ptr := api.DecodeU32(stack[0])
	if !mem.Write(ptr, in) {
		return nil, fault(CodeBadPointer, "%s returned %#x, which cannot hold %d bytes", abi.ExportAlloc, ptr, len(in))
	}
	stack[0], stack[1] = api.EncodeI32(int32(ptr)), api.EncodeI32(int32(len(in)))
	if err := fn.CallWithStack(ctx, stack[:2]); err != nil {
		return nil, err
	}
	if inv.fault != nil {
		return nil, inv.fault
	}
	rp, rl := abi.UnpackPtrLen(stack[0])
	if int(rl) > i.app.limits.ResponseBytes {
		return nil, fault(CodeResponseTooLarge, "response is %d bytes, the app's limit is %d", rl, i.app.limits.ResponseBytes)
	}
	view, ok := mem.Read(rp, rl)
	if !ok {
		return nil, fault(CodeBadPointer, "%s returned %d bytes at %#x, outside guest memory", entry, rl, rp)
	}
	return append([]byte(nil), view...), nil
}

// boundedBuffer keeps the first max bytes written to it (a guest's stdout and
// stderr, used to explain a panic); the rest is dropped.
type boundedBuffer struct {
	max int
	buf []byte
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := b.max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (b *boundedBuffer) Reset()         { b.buf = b.buf[:0] }
func (b *boundedBuffer) String() string { return string(b.buf) }

// pool keeps warm instances of one app version. slots bounds the live
// instances (and so the app's concurrency); idle holds the ready ones as a
// stack, so the most recently used instance, whose memory is still in the
// CPU's caches, runs next.
type pool struct {
	app       *App
	opts      PoolOptions
	slots     chan struct{}
	mu        sync.Mutex // guards closed and idle
	closed    bool
	idle      []*instance
	done      chan struct{}
	highWater uint32
	discarded atomic.Int64
}

func newPool(a *App, opts PoolOptions) *pool {
	if opts.Max <= 0 {
		opts.Max = 8
	}
	if opts.Warm <= 0 {
		opts.Warm = 1
	}
	opts.Warm = min(opts.Warm, opts.Max)
	if opts.RecycleAfter <= 0 {
		opts.RecycleAfter = 10000
	}
	hw := opts.MemoryHighWater
	if hw == 0 {
		hw = uint32(uint64(a.limits.MemoryPages) * 65536 * 3 / 4)
	}
	return &pool{app: a, opts: opts, slots: make(chan struct{}, opts.Max), idle: make([]*instance, 0, opts.Max), done: make(chan struct{}), highWater: hw}
}

func (p *pool) warm(ctx context.Context) error {
	for range p.opts.Warm {
		inst, err := p.app.instantiate(ctx)
		if err != nil {
			return err
		}
		p.mu.Lock()
		p.idle = append(p.idle, inst)
		p.mu.Unlock()
	}
	return nil
}

// get takes an idle instance or creates one, waiting while all slots are busy.
func (p *pool) get(ctx context.Context) (*instance, error) {
	select {
	case <-p.done:
		return nil, fault(CodeAppClosed, "app %s was unloaded", p.app.spec.Slug)
	default:
	}
	select {
	case p.slots <- struct{}{}:
	case <-p.done:
		return nil, fault(CodeAppClosed, "app %s was unloaded", p.app.spec.Slug)
	case <-ctx.Done():
		return nil, jifu.Errorf(jifu.CodeTimeout, "app %s: no instance free before the deadline: %v", p.app.spec.Slug, ctx.Err())
	}
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		inst := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return inst, nil
	}
	p.mu.Unlock()
	inst, err := p.app.instantiate(ctx)
	if err != nil {
		<-p.slots
		return nil, err
	}
	return inst, nil
}

// put returns an instance after an invocation. failure is the error code of a
// failed invocation ("" for success): a failed instance is discarded, never
// reused, as is one past its use count or memory high-water mark.
func (p *pool) put(inst *instance, failure string) {
	inst.uses++
	reason := failure
	switch {
	case reason != "":
	case inst.uses >= p.opts.RecycleAfter:
		reason = "recycled"
	case inst.mod.Memory().Size() > p.highWater:
		reason = "memory_high_water"
	}
	kept := false
	if reason == "" {
		p.mu.Lock()
		if !p.closed {
			p.idle = append(p.idle, inst) // at most Max: each holds a slot
			kept = true
		}
		p.mu.Unlock()
	}
	if !kept {
		if reason == "" {
			reason = "closed"
		}
		p.app.metrics.discarded(reason).Inc()
		p.discarded.Add(1)
		inst.close()
	}
	<-p.slots
}

func (p *pool) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.done)
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, inst := range idle {
		inst.close()
	}
}

func (p *pool) idleCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// Stats describes an app's pool.
type Stats struct {
	Idle      int // warm instances waiting
	Busy      int // instances running an invocation
	Discarded int // instances discarded since load (failed, recycled, over memory)
}

// Stats returns the app's pool figures.
func (a *App) Stats() Stats {
	return Stats{Idle: a.pool.idleCount(), Busy: len(a.pool.slots), Discarded: int(a.pool.discarded.Load())}
}
