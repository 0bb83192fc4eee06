package host_test

// Benchmarks of the host: compiling a Go guest (cold and from the on-disk
// cache), instantiating it, a full HTTP round trip through a warm pool with a
// real PostgreSQL kv store, the cost of WithCloseOnContextDone on a
// loop-heavy guest, and the binary ABI codec against encoding/json inside a
// guest and natively. Results and conclusions: docs/BENCHMARKS.md.
//
//	go test -run '^$' -bench . -benchmem -count 3 ./host/
//
// Every benchmark is also correct at -benchtime 1x (the CI smoke run).

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/abi"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/guesttest"
	"github.com/jifu-open/jifu/host/kvstore"
	"github.com/jifu-open/jifu/host/manifest"
	"github.com/jifu-open/jifu/host/testdata/codec/workload"
)

// The helpers of host_test.go (newEnv, load, faultsGuest, manifestFor,
// cacheDir, get) take *testing.T, which a benchmark does not have; these are
// their testing.TB counterparts. They build the same env and share the
// faults guest's build and the tests' compilation cache.

// readManifest parses a manifest file of the repository.
func readManifest(tb testing.TB, path string) *manifest.Manifest {
	tb.Helper()
	return mustManifest(tb, string(guesttest.ReadFile(tb, path)))
}

var (
	helloOnce sync.Once
	helloWasm []byte
	codecOnce sync.Once
	codecWasm []byte
)

func helloGuest(tb testing.TB) []byte {
	helloOnce.Do(func() { helloWasm = guesttest.BuildGo(tb, "plugins/hello") })
	if helloWasm == nil {
		tb.Fatal("hello plugin did not build")
	}
	return helloWasm
}

func codecGuest(tb testing.TB) []byte {
	codecOnce.Do(func() { codecWasm = guesttest.BuildGo(tb, "host/testdata/codec") })
	if codecWasm == nil {
		tb.Fatal("codec guest did not build")
	}
	return codecWasm
}

// call sends a GET and fails unless the app answers wantStatus.
func call(tb testing.TB, app *host.App, caller host.Caller, req *abi.Request, wantStatus int) *abi.Response {
	resp, err := app.HandleHTTP(context.Background(), caller, req)
	if err != nil {
		tb.Fatalf("%s %s?%s: %v", req.Method, req.Path, req.Query, err)
	}
	if resp.Status != wantStatus {
		tb.Fatalf("%s %s?%s = %d %q, want %d", req.Method, req.Path, req.Query, resp.Status, resp.Body, wantStatus)
	}
	return resp
}

// perOp is the mean time of one iteration of the benchmark just run.
func perOp(b *testing.B) float64 { return float64(b.Elapsed().Nanoseconds()) / float64(b.N) }

func dirBytes(tb testing.TB, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			n += info.Size()
		}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// BenchmarkCompile measures compiling the hello plugin (a Go guest) with a
// fresh Host each iteration.
//
//   - cold: an in-memory cache (CacheDir ""), so every iteration compiles.
//   - cached: an on-disk cache filled by one warm-up compile, so every
//     iteration loads the compiled code from disk.
//
// Both go through Host.Validate, which compiles the module once. The load-*
// variants measure Host.Load + App.Close instead: validation, linking, the
// app runtime's compile and one warm instance.
func BenchmarkCompile(b *testing.B) {
	ctx := context.Background()
	wasm := helloGuest(b)
	m := readManifest(b, "plugins/hello/jifu.json")

	validate := func(b *testing.B, dir string) {
		h, err := host.New(ctx, host.Config{CacheDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		if ps := h.Validate(ctx, wasm, m); len(ps) > 0 {
			b.Fatalf("validate: %v", ps)
		}
		if err := h.Close(ctx); err != nil {
			b.Fatal(err)
		}
	}
	loadClose := func(b *testing.B, dir string) {
		h, err := host.New(ctx, host.Config{CacheDir: dir, Pool: host.PoolOptions{Max: 1, Warm: 1}})
		if err != nil {
			b.Fatal(err)
		}
		app, err := h.Load(ctx, host.AppSpec{Wasm: wasm, Manifest: m})
		if err != nil {
			b.Fatal(err)
		}
		if err := app.Close(ctx); err != nil {
			b.Fatal(err)
		}
		if err := h.Close(ctx); err != nil {
			b.Fatal(err)
		}
	}
	for _, bm := range []struct {
		name   string
		run    func(*testing.B, string)
		onDisk bool
	}{
		{"cold", validate, false},
		{"cached", validate, true},
		{"load-cold", loadClose, false},
		{"load-cached", loadClose, true},
	} {
		b.Run(bm.name, func(b *testing.B) {
			dir := ""
			var cacheBytes int64
			if bm.onDisk {
				dir = b.TempDir()
				bm.run(b, dir) // warm-up: writes the cache files
				cacheBytes = dirBytes(b, dir)
			}
			b.ReportAllocs()
			for b.Loop() {
				bm.run(b, dir)
			}
			b.ReportMetric(float64(len(wasm)), "wasm-bytes")
			if bm.onDisk {
				b.ReportMetric(float64(cacheBytes), "cache-bytes")
			}
		})
	}
}

// BenchmarkInstantiate measures creating an instance of the hello plugin.
// The host has no API that instantiates alone, so the pool is set to
// RecycleAfter 1 (Max 1): every invocation discards its instance and the
// next one instantiates a fresh one (runtime instantiation, WASI, the Go
// runtime's _initialize) before calling it. The request is GET /nope, which
// answers 404 without a host call. ns/instantiate subtracts the same
// request's cost on a warm instance (ns/warm-call, measured before the
// timer starts), so it is instantiate + _initialize + closing the previous
// instance. B/op and allocs/op are the whole fresh call's.
func BenchmarkInstantiate(b *testing.B) {
	ctx := context.Background()
	wasm := helloGuest(b)
	m := readManifest(b, "plugins/hello/jifu.json")
	spec := host.AppSpec{Wasm: wasm, Manifest: m, Namespace: "bench-hello"}
	req := func() *abi.Request { return &abi.Request{Method: "GET", Path: "/nope"} }
	caller := host.Caller{User: "u_8f3a2c91d4", RequestID: "bench"}

	warm := load(b, newEnv(b, host.Config{Pool: host.PoolOptions{Max: 1, Warm: 1}}), spec)
	for range 100 {
		call(b, warm, caller, req(), 404)
	}
	const warmCalls = 2000
	start := time.Now()
	for range warmCalls {
		if _, err := warm.HandleHTTP(ctx, caller, req()); err != nil {
			b.Fatal(err)
		}
	}
	warmNs := float64(time.Since(start).Nanoseconds()) / warmCalls

	fresh := load(b, newEnv(b, host.Config{Pool: host.PoolOptions{Max: 1, Warm: 1, RecycleAfter: 1}}), spec)
	call(b, fresh, caller, req(), 404) // uses the warm instance; from here on each call instantiates
	before := fresh.Stats().Discarded
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fresh.HandleHTTP(ctx, caller, req()); err != nil {
			b.Fatal(err)
		}
	}
	if got := fresh.Stats().Discarded - before; got != b.N {
		b.Fatalf("%d instances discarded in %d calls: the benchmark did not instantiate on every call", got, b.N)
	}
	b.ReportMetric(warmNs, "ns/warm-call")
	b.ReportMetric(perOp(b)-warmNs, "ns/instantiate")
}

// BenchmarkRoundTrip measures GET / of the hello plugin through
// App.HandleHTTP with a warm pool: encode the request (workload.Request: a
// browser's headers and a user id), run the guest, which makes two host calls
// (kv_get on PostgreSQL and config_get, both audited), and decode its HTML
// response. The host generates the request id, as it does for a request
// without X-Request-Id. req-bytes is the encoded request's size.
func BenchmarkRoundTrip(b *testing.B) {
	ctx := context.Background()
	const maxInstances = 8
	// RecycleAfter is out of reach so that the runs measure a warm pool only
	// (the default, 10000, would replace instances mid-run: see
	// BenchmarkInstantiate for what that costs).
	e := newEnv(b, host.Config{Pool: host.PoolOptions{Max: maxInstances, Warm: maxInstances, RecycleAfter: 1 << 30}})
	const ns = "bench-hello"
	if _, err := kvstore.New(dbtest.Pool(b)).Put(ctx, ns, []byte("visits"), []byte("41")); err != nil {
		b.Fatal(err)
	}
	app := load(b, e, host.AppSpec{Wasm: helloGuest(b), Manifest: readManifest(b, "plugins/hello/jifu.json"), Namespace: ns})
	sample := workload.Request()
	caller := host.Caller{User: sample.User}
	newReq := func() *abi.Request {
		r := workload.Request()
		r.User, r.RequestID = "", "" // HandleHTTP sets both from the caller
		return &r
	}
	probe := newReq()
	resp := call(b, app, caller, probe, 200)
	reqBytes := len(probe.AppendTo(nil)) // with the user and request id HandleHTTP filled in
	respBytes := len(resp.AppendTo(nil))
	// Warm every instance (the guest's heap grows on its first calls).
	var wg sync.WaitGroup
	for range maxInstances {
		wg.Go(func() {
			for range 50 {
				if resp, err := app.HandleHTTP(ctx, caller, newReq()); err != nil || resp.Status != 200 {
					b.Errorf("warm-up: %v, %v", resp, err)
					return
				}
			}
		})
	}
	wg.Wait()

	report := func(b *testing.B) {
		b.ReportMetric(float64(reqBytes), "req-bytes")
		b.ReportMetric(float64(respBytes), "resp-bytes")
		if d := app.Stats().Discarded; d != 0 {
			b.Fatalf("%d instances discarded: the pool was not warm", d)
		}
	}
	b.Run("sequential", func(b *testing.B) {
		req := newReq()
		b.ReportAllocs()
		for b.Loop() {
			resp, err := app.HandleHTTP(ctx, caller, req)
			if err != nil || resp.Status != 200 {
				b.Fatalf("GET / = %v, %v", resp, err)
			}
		}
		report(b)
	})
	for _, p := range []int{1, 4} {
		// RunParallel runs p×GOMAXPROCS goroutines; the pool holds enough
		// warm instances for all of them.
		b.Run("parallel-"+strconv.Itoa(p), func(b *testing.B) {
			b.SetParallelism(p)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := newReq() // HandleHTTP writes to req: one per goroutine
				for pb.Next() {
					resp, err := app.HandleHTTP(ctx, caller, req)
					if err != nil || resp.Status != 200 {
						b.Errorf("GET / = %v, %v", resp, err)
						return
					}
				}
			})
			report(b)
		})
	}
}

// spinN is the loop count of BenchmarkInterrupt's GET /spin.
const spinN = 10_000_000

// interruptNone holds the ns/op of BenchmarkInterrupt's "none" runs by
// workload, for the slowdown its other runs report.
var interruptNone = map[string][]float64{}

// BenchmarkInterrupt measures what each way of enforcing the wall clock
// costs (Config.Interrupt): none (a looping guest is never stopped), yield
// (the default: the module instrumented by package wasmrewrite) and wazero
// (WithCloseOnContextDone):
//
//   - spin-*: the faults guest's GET /spin?n=10000000, a multiply-add loop
//     run ten million times; ns/iter is per loop iteration.
//   - request-*: the hello plugin's GET /nope with the ~200-byte sample
//     request (no host call): the guest's fixed cost of a request (SDK
//     decode, routing, encode) plus the host's.
//   - page-*: BenchmarkRoundTrip/sequential (the hello plugin's GET /,
//     kv_get on PostgreSQL, config_get, an HTML page).
//
// The yield and wazero runs report x/none, their slowdown against the mean
// of the "none" runs of the same workload that ran before them.
func BenchmarkInterrupt(b *testing.B) {
	x := uint64(1)
	for range spinN {
		x = x*6364136223846793005 + 1442695040888963407
	}
	spinWant := strconv.FormatUint(x, 10)

	faults := readManifest(b, "host/testdata/faults/jifu.json")
	faults.Limits.TimeoutMS = 30_000 // the interrupted loop must not hit the 1 s test limit
	hello := readManifest(b, "plugins/hello/jifu.json")
	for _, kind := range []string{"spin", "request", "page"} {
		for _, mode := range []host.Interrupt{host.InterruptNone, host.InterruptYield, host.InterruptWazero} {
			b.Run(kind+"-"+string(mode), func(b *testing.B) {
				app, caller, req := interruptWorkload(b, kind, mode, faults, hello, spinWant)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := app.HandleHTTP(context.Background(), caller, req); err != nil {
						b.Fatal(err)
					}
				}
				ns := perOp(b)
				if kind == "spin" {
					b.ReportMetric(ns/spinN, "ns/iter")
				}
				if mode == host.InterruptNone {
					interruptNone[kind] = append(interruptNone[kind], ns)
				} else if none := interruptNone[kind]; len(none) > 0 {
					sum := 0.0
					for _, v := range none {
						sum += v
					}
					b.ReportMetric(ns/(sum/float64(len(none))), "x/none")
				}
			})
		}
	}
}

func interruptWorkload(b *testing.B, kind string, mode host.Interrupt, faults, hello *manifest.Manifest, spinWant string) (*host.App, host.Caller, *abi.Request) {
	e := newEnv(b, host.Config{Interrupt: mode, Pool: host.PoolOptions{Max: 1, Warm: 1, RecycleAfter: 1 << 30}})
	caller := host.Caller{User: "u_8f3a2c91d4", RequestID: "bench"}
	if kind == "spin" {
		app := load(b, e, host.AppSpec{Wasm: faultsGuest(b), Manifest: faults})
		req := &abi.Request{Method: "GET", Path: "/spin", Query: "n=" + strconv.Itoa(spinN)}
		if resp := call(b, app, caller, req, 200); string(resp.Body) != spinWant {
			b.Fatalf("spin = %s, want %s", resp.Body, spinWant)
		}
		return app, caller, req
	}
	const ns = "bench-hello"
	if _, err := kvstore.New(dbtest.Pool(b)).Put(context.Background(), ns, []byte("visits"), []byte("41")); err != nil {
		b.Fatal(err)
	}
	app := load(b, e, host.AppSpec{Wasm: helloGuest(b), Manifest: hello, Namespace: ns})
	r := workload.Request()
	status := 200
	if kind == "request" {
		r.Path, status = "/nope", 404
	}
	for range 1000 {
		call(b, app, caller, &r, status)
	}
	return app, caller, &r
}

// BenchmarkYieldBudget chooses Config.YieldBudget: for each budget, the
// cost per iteration of the spin loop (ns/iter) and how long after its 50 ms
// deadline a looping guest (GET /loop) is stopped, the whole HandleHTTP
// call counted (p50-overrun-µs, max-overrun-µs; the maximum mostly shows the
// machine's scheduling, the median the mechanism).
func BenchmarkYieldBudget(b *testing.B) {
	faults := readManifest(b, "host/testdata/faults/jifu.json")
	for _, budget := range []int32{1000, 10000, 100000, 1000000} {
		b.Run(fmt.Sprintf("spin-%d", budget), func(b *testing.B) {
			m := *faults
			m.Limits.TimeoutMS = 30_000
			e := newEnv(b, host.Config{YieldBudget: budget, Pool: host.PoolOptions{Max: 1, Warm: 1}})
			app := load(b, e, host.AppSpec{Wasm: faultsGuest(b), Manifest: &m})
			req := &abi.Request{Method: "GET", Path: "/spin", Query: "n=" + strconv.Itoa(spinN)}
			caller := host.Caller{RequestID: "bench"}
			call(b, app, caller, req, 200)
			for b.Loop() {
				call(b, app, caller, req, 200)
			}
			b.ReportMetric(perOp(b)/spinN, "ns/iter")
		})
		b.Run(fmt.Sprintf("stop-%d", budget), func(b *testing.B) {
			m := *faults
			m.Limits.TimeoutMS = 50
			e := newEnv(b, host.Config{YieldBudget: budget, Pool: host.PoolOptions{Max: 1, Warm: 1}})
			app := load(b, e, host.AppSpec{Wasm: faultsGuest(b), Manifest: &m})
			req := &abi.Request{Method: "GET", Path: "/loop"}
			var overruns []time.Duration
			warm := &abi.Request{Method: "GET", Path: "/ok"}
			for b.Loop() {
				// The faulted instance is discarded: warm its successor
				// outside the measurement, so that the overrun is the
				// stop's, not an instantiation's.
				b.StopTimer()
				call(b, app, host.Caller{RequestID: "warm"}, warm, 200)
				b.StartTimer()
				start := time.Now()
				_, err := app.HandleHTTP(context.Background(), host.Caller{RequestID: "bench"}, req)
				if jifu.ErrorCode(err) != host.CodeTimeout {
					b.Fatalf("GET /loop: %v, want %s", err, host.CodeTimeout)
				}
				overruns = append(overruns, time.Since(start)-m.Limits.Timeout())
			}
			slices.Sort(overruns)
			b.ReportMetric(float64(overruns[len(overruns)/2].Microseconds()), "p50-overrun-µs")
			b.ReportMetric(float64(overruns[len(overruns)-1].Microseconds()), "max-overrun-µs")
		})
	}
}

// codecN is the rounds per invocation of BenchmarkGuestCodec.
const codecN = 10_000

// BenchmarkGuestCodec runs package workload's rounds (decode a ~200-byte
// request, encode it again, encode a small response) inside the codec guest,
// codecN rounds per invocation; ns/codec is per round (the invocation's own
// cost, about 1/codecN of a round, included). json and binary run as apps
// run, with the default interrupt (yield); the -nointerrupt variants run
// without one, to separate the interrupt's cost from the codec's. (wazero's
// interrupt made the JSON round 4.7x slower: docs/BENCHMARKS.md section 5;
// it is left out here because it alone took most of the CI smoke run.) Host-side B/op and allocs/op do not see the guest's allocations,
// which live in its linear memory; what they show is wazero growing that
// memory (MemoryInstance.Grow copies it into a larger Go slice).
func BenchmarkGuestCodec(b *testing.B) {
	m := readManifest(b, "host/testdata/codec/jifu.json")
	binSize, jsonSize := workload.Sizes()
	for _, c := range []struct {
		name, codec string
		run         func(int) (int, error)
		size        int
		interrupt   host.Interrupt
	}{
		{"json", "json", workload.JSON, jsonSize, host.InterruptYield},
		{"binary", "binary", workload.Binary, binSize, host.InterruptYield},
		{"json-nointerrupt", "json", workload.JSON, jsonSize, host.InterruptNone},
		{"binary-nointerrupt", "binary", workload.Binary, binSize, host.InterruptNone},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			e := newEnv(b, host.Config{Interrupt: c.interrupt, Pool: host.PoolOptions{Max: 1, Warm: 1}})
			app := load(b, e, host.AppSpec{Wasm: codecGuest(b), Manifest: m})
			one, err := c.run(1) // natively, for the checksum
			if err != nil {
				b.Fatal(err)
			}
			caller := host.Caller{RequestID: "bench"}
			req := &abi.Request{Method: "GET", Path: "/" + c.codec, Query: "n=" + strconv.Itoa(codecN)}
			// Warm-up: the guest's memory grows to its steady size on the
			// first run; the checksum proves the guest did the native work.
			if resp := call(b, app, caller, req, 200); string(resp.Body) != strconv.Itoa(one*codecN) {
				b.Fatalf("guest checksum %s, native %d: not the same work", resp.Body, one*codecN)
			}
			before := app.Stats().Discarded
			for b.Loop() {
				if _, err := app.HandleHTTP(ctx, caller, req); err != nil {
					b.Fatal(err)
				}
			}
			if d := app.Stats().Discarded - before; d != 0 {
				b.Fatalf("%d instances discarded during the run: it measured instantiation too", d)
			}
			b.ReportMetric(perOp(b)/codecN, "ns/codec")
			b.ReportMetric(float64(c.size), "req-bytes")
		})
	}
}

// BenchmarkNativeCodec runs one round of the same workload compiled natively,
// for BenchmarkGuestCodec's in-guest/native ratio.
func BenchmarkNativeCodec(b *testing.B) {
	binSize, jsonSize := workload.Sizes()
	for _, c := range []struct {
		name string
		run  func(int) (int, error)
		size int
	}{{"json", workload.JSON, jsonSize}, {"binary", workload.Binary, binSize}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.run(1); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(perOp(b), "ns/codec")
			b.ReportMetric(float64(c.size), "req-bytes")
		})
	}
}
