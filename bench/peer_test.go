// Package bench compares Jifu's app runtime with a peer runtime on the same
// guest logic, in the same benchmark run: plugins/hello on host.App against
// the same GET / page written with Extism's Go PDK v1.1.3 (bench/extismguest)
// on Extism's go-sdk v1.7.1. This is its own Go module so that the product's
// go.mod does not carry the peers.
//
//	cd bench && go test -run '^$' -bench . -benchmem -count 3
//
// Both sides run the same wazero (the version the product's go.mod selects),
// receive the same encoded request, decode it, read the "visits" counter
// through one host kv_get backed by the same in-memory map, read the
// "greeting" configuration value, render the same page and return it encoded
// the same way (TestSameOutput checks the bodies are identical). Both reuse
// warm instances: Jifu through its pool, Extism through a CompiledPlugin and
// one Plugin instance per goroutine (Extism's recommended pattern; a Plugin
// is not safe for concurrent use).
package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	extism "github.com/extism/go-sdk"
	"github.com/tetratelabs/wazero"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/abi"
	"github.com/jifu-open/jifu/host/audit"
	"github.com/jifu-open/jifu/host/kvstore"
	"github.com/jifu-open/jifu/host/manifest"
)

// ---------------------------------------------------------------- fixtures

// mapKV is host.KVStore over a map and a mutex: both runtimes read it, so
// the comparison measures the runtimes, not a database.
type mapKV struct {
	mu sync.Mutex
	m  map[string]kvstore.Entry // ns + "\x00" + key
}

func newMapKV() *mapKV { return &mapKV{m: map[string]kvstore.Entry{}} }

func kvKey(ns string, key []byte) string { return ns + "\x00" + string(key) }

func (s *mapKV) Get(_ context.Context, ns string, key []byte) ([]byte, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[kvKey(ns, key)]
	if !ok {
		return nil, 0, jifu.Errorf(jifu.CodeNotFound, "kv: key not found")
	}
	return e.Value, e.Version, nil
}

func (s *mapKV) Put(_ context.Context, ns string, key, value []byte) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := kvKey(ns, key)
	e := s.m[k]
	e = kvstore.Entry{Key: bytes.Clone(key), Value: bytes.Clone(value), Version: e.Version + 1}
	s.m[k] = e
	return e.Version, nil
}

func (s *mapKV) Delete(_ context.Context, ns string, key []byte) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := kvKey(ns, key)
	_, ok := s.m[k]
	delete(s.m, k)
	return ok, nil
}

func (s *mapKV) CompareAndSet(_ context.Context, ns string, key []byte, expect int64, value []byte) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := kvKey(ns, key)
	if s.m[k].Version != expect {
		return 0, jifu.Errorf(jifu.CodeConflict, "kv: version conflict")
	}
	e := kvstore.Entry{Key: bytes.Clone(key), Value: bytes.Clone(value), Version: expect + 1}
	s.m[k] = e
	return e.Version, nil
}

func (s *mapKV) Scan(context.Context, string, []byte, []byte, int) ([]kvstore.Entry, bool, error) {
	return nil, false, jifu.Errorf(jifu.CodeInvalid, "kv: scan is not used by the benchmark")
}

// discardAudit keeps the product's per-host-call audit path (a Record built
// and handed to an Auditor) without a database behind it.
type discardAudit struct{}

func (discardAudit) Record(audit.Record) {}

// namespace is the kv namespace of the hello app (its slug) on both sides.
const namespace = "hello"

// caller and request make the ~200-byte request both runtimes receive. The
// request id is fixed so that both encodings are byte-identical (left empty,
// host.App would generate one per call).
var caller = host.Caller{User: "u_8c1f2a9e", RequestID: "5f0c2a1b9d8e7f6a5b4c3d2e"}

func request() *abi.Request {
	return &abi.Request{
		Method: "GET",
		Path:   "/",
		Headers: []abi.Header{
			{Name: "Accept", Value: "text/html"},
			{Name: "Accept-Language", Value: "zh-CN,zh;q=0.9,en;q=0.8"},
			{Name: "User-Agent", Value: "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"},
		},
		User:      caller.User,
		RequestID: caller.RequestID,
	}
}

// root is the product module's directory.
const root = ".."

// buildGuest compiles a Go guest as a wasip1 reactor. dir is the module
// directory to build in, pkg the package within it.
func buildGuest(dir, pkg, out string) error {
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		return &buildError{pkg: pkg, err: err, out: string(b)}
	}
	return nil
}

type buildError struct {
	pkg, out string
	err      error
}

func (e *buildError) Error() string { return "building " + e.pkg + ": " + e.err.Error() + "\n" + e.out }

type guests struct {
	hello, peer []byte
	manifest    *manifest.Manifest
	dir         string // compilation caches live here
}

var buildOnce = sync.OnceValues(func() (*guests, error) {
	dir, err := os.MkdirTemp("", "jifu-bench-")
	if err != nil {
		return nil, err
	}
	g := &guests{dir: dir}
	helloOut, peerOut := filepath.Join(dir, "hello.wasm"), filepath.Join(dir, "extismguest.wasm")
	if err := buildGuest(root, "./plugins/hello", helloOut); err != nil {
		return nil, err
	}
	if err := buildGuest("extismguest", ".", peerOut); err != nil {
		return nil, err
	}
	if g.hello, err = os.ReadFile(helloOut); err != nil {
		return nil, err
	}
	if g.peer, err = os.ReadFile(peerOut); err != nil {
		return nil, err
	}
	mf, err := os.ReadFile(filepath.Join(root, "plugins", "hello", manifest.FileName))
	if err != nil {
		return nil, err
	}
	m, ps := manifest.Parse(mf)
	if len(ps) > 0 {
		return nil, &problemsError{ps}
	}
	g.manifest = m
	return g, nil
})

type problemsError struct{ ps []manifest.Problem }

func (e *problemsError) Error() string { return "hello manifest: " + e.ps[0].String() }

func mustGuests(tb testing.TB) *guests {
	tb.Helper()
	g, err := buildOnce()
	if err != nil {
		tb.Fatal(err)
	}
	return g
}

func TestMain(m *testing.M) {
	code := m.Run()
	if g, err := buildOnce(); err == nil && g != nil {
		_ = os.RemoveAll(g.dir)
	}
	os.Exit(code)
}

// seed stores the counter the page shows.
func seed(tb testing.TB, kv *mapKV) {
	tb.Helper()
	if _, err := kv.Put(context.Background(), namespace, []byte("visits"), []byte("41")); err != nil {
		tb.Fatal(err)
	}
	if _, err := kv.Put(context.Background(), namespace, []byte("visits"), []byte("42")); err != nil {
		tb.Fatal(err)
	}
}

// ---------------------------------------------------------------- Jifu side

type jifuSide struct {
	h   *host.Host
	app *host.App
}

// newJifu loads plugins/hello on a Host configured as the product runs it,
// except for the in-memory kv and a discarding auditor, with the given
// interrupt (host.InterruptYield is the product's default; InterruptNone
// means no wall-clock enforcement inside the guest).
func newJifu(tb testing.TB, kv *mapKV, pool host.PoolOptions, interrupt host.Interrupt) *jifuSide {
	tb.Helper()
	g := mustGuests(tb)
	ctx := context.Background()
	h, err := host.New(ctx, host.Config{
		CacheDir: filepath.Join(g.dir, "jifu-cache"), KV: kv, Audit: discardAudit{}, Pool: pool,
		Interrupt: interrupt,
	})
	if err != nil {
		tb.Fatal(err)
	}
	app, err := h.Load(ctx, host.AppSpec{Slug: "hello", Wasm: g.hello, Manifest: g.manifest})
	if err != nil {
		_ = h.Close(ctx)
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = app.Close(ctx)
		_ = h.Close(ctx)
	})
	return &jifuSide{h: h, app: app}
}

func (j *jifuSide) call(ctx context.Context) (*abi.Response, error) {
	return j.app.HandleHTTP(ctx, caller, request())
}

// ---------------------------------------------------------------- Extism side

type extismSide struct {
	compiled *extism.CompiledPlugin
}

// kvGetFunction is the Extism host function the peer guest imports as
// extism:host/user kv_get: it takes the offset of an Extism memory block
// holding the key and returns the offset of a block holding
// abi.AppendKVValue(version, value), or 0 when the key does not exist.
func kvGetFunction(kv host.KVStore) extism.HostFunction {
	return extism.NewHostFunctionWithStack("kv_get", func(ctx context.Context, p *extism.CurrentPlugin, stack []uint64) {
		key, err := p.ReadBytes(stack[0])
		if err != nil {
			panic(err)
		}
		v, ver, err := kv.Get(ctx, namespace, key)
		if jifu.ErrorCode(err) == jifu.CodeNotFound {
			stack[0] = 0
			return
		}
		if err != nil {
			panic(err)
		}
		off, err := p.WriteBytes(abi.AppendKVValue(make([]byte, 0, 8+len(v)), ver, v))
		if err != nil {
			panic(err)
		}
		stack[0] = off
	}, []extism.ValueType{extism.ValueTypePTR}, []extism.ValueType{extism.ValueTypePTR})
}

// newExtism compiles the peer guest once (NewCompiledPlugin, with an on-disk
// compilation cache) under the hello manifest's limits. interrupt false
// leaves the manifest's Timeout at 0, which is what turns off wazero's
// CloseOnContextDone in Extism.
func newExtism(tb testing.TB, kv *mapKV, interrupt bool) *extismSide {
	tb.Helper()
	g := mustGuests(tb)
	ctx := context.Background()
	cache, err := wazero.NewCompilationCacheWithDir(filepath.Join(g.dir, "extism-cache"))
	if err != nil {
		tb.Fatal(err)
	}
	lim := g.manifest.Limits
	m := extism.Manifest{
		Wasm:    []extism.Wasm{extism.WasmData{Data: g.peer, Name: "main"}},
		Memory:  &extism.ManifestMemory{MaxPages: lim.MemoryPages},
		Config:  map[string]string{"greeting": g.manifest.Config["greeting"]},
		Timeout: uint64(lim.TimeoutMS), // like host.App: a wall clock per call, enforced by wazero's CloseOnContextDone
	}
	cfg := extism.PluginConfig{
		EnableWasi:    true,
		RuntimeConfig: wazero.NewRuntimeConfigCompiler().WithCompilationCache(cache),
	}
	if !interrupt {
		m.Timeout = 0
	}
	compiled, err := extism.NewCompiledPlugin(ctx, m, cfg, []extism.HostFunction{kvGetFunction(kv)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = compiled.Close(ctx)
		_ = cache.Close(ctx)
	})
	return &extismSide{compiled: compiled}
}

// instance creates a Plugin and runs its first call (which initialises the
// Go runtime of the guest, as host.App does at instantiation).
func (e *extismSide) instance(tb testing.TB) *extism.Plugin {
	tb.Helper()
	ctx := context.Background()
	p, err := e.compiled.Instance(ctx, extism.PluginInstanceConfig{ModuleConfig: wazero.NewModuleConfig().WithSysWalltime().WithSysNanotime()})
	if err != nil {
		tb.Fatal(err)
	}
	p.SetLogger(func(extism.LogLevel, string) {})
	if _, err := extismCall(ctx, p); err != nil {
		tb.Fatal(err)
	}
	return p
}

// extismCall does what host.App.HandleHTTP does around the guest call:
// encode the request, call handle_http, decode the response.
func extismCall(ctx context.Context, p *extism.Plugin) (*abi.Response, error) {
	_, out, err := p.CallWithContext(ctx, abi.ExportHandleHTTP, request().AppendTo(nil))
	if err != nil {
		return nil, err
	}
	var resp abi.Response
	if err := resp.Decode(out); err != nil {
		return nil, err
	}
	return &resp, nil
}

// ---------------------------------------------------------------- tests

func TestRequestSize(t *testing.T) {
	n := len(request().AppendTo(nil))
	if n < 180 || n > 230 {
		t.Fatalf("the encoded request is %d bytes, want about 200", n)
	}
	t.Logf("encoded request: %d bytes", n)
}

// TestSameOutput checks that both runtimes answer the benchmark's request
// with the same status, headers and body, so the comparison is honest.
func TestSameOutput(t *testing.T) {
	kv := newMapKV()
	seed(t, kv)
	ctx := context.Background()
	j := newJifu(t, kv, host.PoolOptions{}, host.InterruptYield)
	jr, err := j.call(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e := newExtism(t, kv, true)
	p := e.instance(t)
	defer p.Close(ctx)
	er, err := extismCall(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if jr.Status != 200 || !bytes.Contains(jr.Body, []byte(">42</strong>")) || !bytes.Contains(jr.Body, []byte("Hello, u_8c1f2a9e!")) {
		t.Fatalf("jifu: %d %s", jr.Status, jr.Body)
	}
	if er.Status != jr.Status || !bytes.Equal(er.Body, jr.Body) || !slices.Equal(er.Headers, jr.Headers) {
		t.Fatalf("responses differ:\njifu:   %d %v %s\nextism: %d %v %s", jr.Status, jr.Headers, jr.Body, er.Status, er.Headers, er.Body)
	}
	t.Logf("response body: %d bytes, identical on both sides", len(jr.Body))
}

// ---------------------------------------------------------------- benchmarks

// invokeSerial runs one request at a time on one warm instance of each side:
// Jifu with the given interrupt, Extism with its manifest Timeout (wazero's
// CloseOnContextDone) unless mode is host.InterruptNone.
func invokeSerial(b *testing.B, mode host.Interrupt) {
	interrupt := mode != host.InterruptNone
	ctx := context.Background()
	b.Run("jifu", func(b *testing.B) {
		kv := newMapKV()
		seed(b, kv)
		j := newJifu(b, kv, host.PoolOptions{}, mode)
		if _, err := j.call(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := j.call(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("extism", func(b *testing.B) {
		kv := newMapKV()
		seed(b, kv)
		p := newExtism(b, kv, interrupt).instance(b)
		defer p.Close(ctx)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := extismCall(ctx, p); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkInvoke is one request on a warm instance, serially, both sides
// with a per-call wall-clock limit that stops a looping guest, each as
// shipped: Jifu's default interrupt (yield: the module instrumented at load),
// Extism's manifest Timeout (wazero's CloseOnContextDone).
func BenchmarkInvoke(b *testing.B) { invokeSerial(b, host.InterruptYield) }

// BenchmarkInvokeWazeroInterrupt is BenchmarkInvoke with Jifu on wazero's
// interrupt too (--interrupt wazero): the same mechanism on both sides.
func BenchmarkInvokeWazeroInterrupt(b *testing.B) { invokeSerial(b, host.InterruptWazero) }

// BenchmarkInvokeNoInterrupt is BenchmarkInvoke with the in-guest wall-clock
// enforcement off on both sides (host.InterruptNone; Extism manifest
// Timeout 0): a runaway guest could then not be stopped.
func BenchmarkInvokeNoInterrupt(b *testing.B) { invokeSerial(b, host.InterruptNone) }

// BenchmarkInvokeParallel is the same request from GOMAXPROCS goroutines,
// each side with GOMAXPROCS warm instances made before the timer starts.
func BenchmarkInvokeParallel(b *testing.B) {
	ctx := context.Background()
	procs := runtime.GOMAXPROCS(0)
	b.Run("jifu", func(b *testing.B) {
		kv := newMapKV()
		seed(b, kv)
		j := newJifu(b, kv, host.PoolOptions{Warm: procs, Max: 2 * procs}, host.InterruptYield)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := j.call(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("extism", func(b *testing.B) {
		kv := newMapKV()
		seed(b, kv)
		e := newExtism(b, kv, true)
		idle := make(chan *extism.Plugin, procs)
		for range procs {
			idle <- e.instance(b)
		}
		defer func() {
			for range procs {
				p := <-idle
				_ = p.Close(ctx)
			}
		}()
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			p := <-idle // one Plugin per goroutine: a Plugin is not safe for concurrent use
			defer func() { idle <- p }()
			for pb.Next() {
				if _, err := extismCall(ctx, p); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkNewInstance is a request on a fresh instance: instantiate the
// compiled module, run the guest's initialiser, handle one request, close the
// instance. Jifu does it through its pool with RecycleAfter 1 (every
// invocation discards its instance, so the next one instantiates anew).
func BenchmarkNewInstance(b *testing.B) {
	ctx := context.Background()
	b.Run("jifu", func(b *testing.B) {
		kv := newMapKV()
		seed(b, kv)
		j := newJifu(b, kv, host.PoolOptions{RecycleAfter: 1}, host.InterruptYield)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := j.call(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("extism", func(b *testing.B) {
		kv := newMapKV()
		seed(b, kv)
		e := newExtism(b, kv, true)
		b.ReportAllocs()
		for b.Loop() {
			p, err := e.compiled.Instance(ctx, extism.PluginInstanceConfig{ModuleConfig: wazero.NewModuleConfig().WithSysWalltime().WithSysNanotime()})
			if err != nil {
				b.Fatal(err)
			}
			p.SetLogger(func(extism.LogLevel, string) {})
			if _, err := extismCall(ctx, p); err != nil {
				b.Fatal(err)
			}
			_ = p.Close(ctx)
		}
	})
}

// BenchmarkInvokePaired alternates one Jifu call and one Extism call (both
// as in BenchmarkInvoke: each runtime's shipped interrupt) and times each,
// so that both sides see the same moment of a shared machine's load. It
// reports the median of each side's calls and their ratio, which is what
// the target compares; ns/op is the pair.
func BenchmarkInvokePaired(b *testing.B) {
	ctx := context.Background()
	kv := newMapKV()
	seed(b, kv)
	j := newJifu(b, kv, host.PoolOptions{}, host.InterruptYield)
	p := newExtism(b, kv, true).instance(b)
	defer p.Close(ctx)
	if _, err := j.call(ctx); err != nil {
		b.Fatal(err)
	}
	var jt, et []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		if _, err := j.call(ctx); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := extismCall(ctx, p); err != nil {
			b.Fatal(err)
		}
		jt, et = append(jt, t1.Sub(t0)), append(et, time.Since(t1))
	}
	slices.Sort(jt)
	slices.Sort(et)
	jm, em := jt[len(jt)/2], et[len(et)/2]
	b.ReportMetric(float64(jm.Nanoseconds())/1e3, "jifu-µs")
	b.ReportMetric(float64(em.Nanoseconds())/1e3, "extism-µs")
	b.ReportMetric(float64(em)/float64(jm), "extism/jifu")
}
