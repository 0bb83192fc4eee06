package wasmrewrite_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/jifu-open/jifu/host/wasmrewrite"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// guest is an instance of a module, original or instrumented, whose yield
// import counts its calls and stops the guest after stopAfter of them (0:
// never).
type guest struct {
	mod    api.Module
	yields int
	ticks  int
}

func instantiate(t *testing.T, wasm []byte, budget int32, stopAfter int) *guest {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	t.Cleanup(func() { _ = rt.Close(ctx) })
	g := &guest{}
	if _, err := rt.NewHostModuleBuilder("env").NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) { g.ticks++ }), nil, nil).
		Export("tick").Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.NewHostModuleBuilder(wasmrewrite.YieldModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, stack []uint64) {
			g.yields++
			if stopAfter > 0 && g.yields >= stopAfter {
				panic(sys.NewExitError(sys.ExitCodeDeadlineExceeded))
			}
			stack[0] = api.EncodeI32(budget)
		}), nil, []api.ValueType{api.ValueTypeI32}).
		Export(wasmrewrite.YieldName).Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	mod, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName("guest"))
	if err != nil {
		t.Fatal(err)
	}
	g.mod = mod
	return g
}

func instrument(t testing.TB, wasm []byte, budget int32) *wasmrewrite.Result {
	t.Helper()
	res, err := wasmrewrite.Instrument(wasm, wasmrewrite.Options{Budget: budget})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (g *guest) call(t *testing.T, name string, args ...uint64) ([]uint64, error) {
	t.Helper()
	return g.mod.ExportedFunction(name).Call(context.Background(), args...)
}

// The instrumented module computes what the original computes: index shifts
// (calls, exports, start, elements, ref.func, globals) are all renumbered.
func TestSameBehaviour(t *testing.T) {
	orig := fixture(t, "shapes.wasm")
	res := instrument(t, orig, 7)
	if res.Loops != 4 || res.Bulk != 2 || res.Functions != 13 {
		t.Fatalf("instrumented %d loops, %d bulk operations, %d functions; want 4, 2, 13", res.Loops, res.Bulk, res.Functions)
	}
	tests := []struct {
		fn   string
		args []uint64
		want uint64
	}{
		{"started", nil, 1},
		{"sum", []uint64{100}, 4950},
		{"sum_param", []uint64{100}, 4950},
		{"indirect", []uint64{0, 21}, 42},
		{"indirect", []uint64{1, 9}, 81},
		{"via_ref", []uint64{5}, 25},
		{"via_global", []uint64{6}, 12},
		{"fill", []uint64{3, 1000}, 7},
	}
	a := instantiate(t, orig, 7, 0)
	b := instantiate(t, res.Wasm, 7, 0)
	for _, tt := range tests {
		got := [2]uint64{}
		for i, g := range []*guest{a, b} {
			out, err := g.call(t, tt.fn, tt.args...)
			if err != nil {
				t.Fatalf("%s%v: %v", tt.fn, tt.args, err)
			}
			got[i] = out[0]
		}
		if got[0] != tt.want || got[1] != tt.want {
			t.Errorf("%s%v = %d original, %d instrumented; want %d", tt.fn, tt.args, got[0], got[1], tt.want)
		}
	}
	if _, err := b.call(t, "call_import"); err != nil || b.ticks != 1 {
		t.Fatalf("imported function through the shifted index space: %v, %d ticks", err, b.ticks)
	}
	if a.yields != 0 || b.yields == 0 {
		t.Fatalf("yields: original %d, instrumented %d", a.yields, b.yields)
	}
	// The name section follows the shift: export "sum" is still named sum.
	if got := b.mod.ExportedFunctionDefinitions()["sum"].Name(); got != "sum" {
		t.Fatalf("export sum is named %q after rewriting", got)
	}
}

// Every runaway shape reaches yield: a loop, a call-only recursion, bulk
// memory work in a loop. Yield unwinding the guest stops it.
func TestRunawaysYield(t *testing.T) {
	wasm := instrument(t, fixture(t, "shapes.wasm"), 1000).Wasm
	tests := []struct {
		name string
		fn   string
		args []uint64
		// minimum yields the work must cause with a budget of 1000
		minYields int
		stop      bool
	}{
		{"infinite loop stops", "spin", nil, 3, true},
		{"recursion without loops", "recurse", []uint64{16}, 65, false},    // 2^17 entries
		{"bulk memory weighs KiB", "fill", []uint64{100, 65536}, 6, false}, // 100 x (64 + 1)
		{"plain loop", "sum", []uint64{100000}, 100, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stopAfter := 0
			if tt.stop {
				stopAfter = tt.minYields
			}
			g := instantiate(t, wasm, 1000, stopAfter)
			_, err := g.call(t, tt.fn, tt.args...)
			var exit *sys.ExitError
			if tt.stop != errors.As(err, &exit) {
				t.Fatalf("err = %v, stop %v", err, tt.stop)
			}
			if g.yields < tt.minYields {
				t.Fatalf("%d yields, want at least %d", g.yields, tt.minYields)
			}
		})
	}
}

func TestRefused(t *testing.T) {
	valid := fixture(t, "shapes.wasm")
	tests := []struct {
		name string
		wasm []byte
		want error
	}{
		{"empty", nil, wasmrewrite.ErrMalformed},
		{"not wasm", []byte("not a module at all"), wasmrewrite.ErrMalformed},
		{"version 2", []byte("\x00asm\x02\x00\x00\x00"), wasmrewrite.ErrMalformed},
		{"truncated", valid[:len(valid)/2], wasmrewrite.ErrMalformed},
		{"section size past the end", []byte("\x00asm\x01\x00\x00\x00\x01\xff\xff\xff\xff\x0f"), wasmrewrite.ErrMalformed},
		{"4 billion types in 5 bytes", []byte("\x00asm\x01\x00\x00\x00\x01\x05\xff\xff\xff\xff\x0f"), wasmrewrite.ErrMalformed},
		{"LEB128 too long", []byte("\x00asm\x01\x00\x00\x00\x01\x06\x80\x80\x80\x80\x80\x00"), wasmrewrite.ErrMalformed},
		{"sections out of order", []byte("\x00asm\x01\x00\x00\x00\x03\x01\x00\x01\x01\x00"), wasmrewrite.ErrMalformed},
		{"unknown section", []byte("\x00asm\x01\x00\x00\x00\x0e\x00"), wasmrewrite.ErrMalformed},
		// one function () -> (), body: 0x06 (try, exception handling) end
		{"unsupported opcode", []byte("\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x0a\x06\x01\x04\x00\x06\x40\x0b"), wasmrewrite.ErrMalformed},
		{"imports the private namespace", fixture(t, "reserved.wasm"), wasmrewrite.ErrReserved},
		// Decoder bombs: each declares far more than its bytes hold, and
		// wazero v1.12 would allocate by the declaration (GBs) before
		// reading. The first is what the fuzzer found.
		{"data section: 3.7 billion segments", []byte("\x00asm\x01\x00\x00\x00\x0b\x15\xdd\xdd\xdd\xdd\x0b\x0200\x00000000000000"), wasmrewrite.ErrMalformed},
		{"data segment of 4 GB", []byte("\x00asm\x01\x00\x00\x00\x0b\x08\x01\x01\xff\xff\xff\xff\x0f\x00"), wasmrewrite.ErrMalformed},
		{"table section: 4 billion tables", []byte("\x00asm\x01\x00\x00\x00\x04\x05\xff\xff\xff\xff\x0f"), wasmrewrite.ErrMalformed},
		{"4 billion locals", []byte("\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x0a\x0a\x01\x08\x01\xff\xff\xff\xff\x0f\x7f\x0b"), wasmrewrite.ErrMalformed},
		{"custom section name of 4 GB", []byte("\x00asm\x01\x00\x00\x00\x00\x05\xff\xff\xff\xff\x0f"), wasmrewrite.ErrMalformed},
		{"name section: 4 billion function names", []byte("\x00asm\x01\x00\x00\x00\x00\x0c\x04name\x01\x05\xff\xff\xff\xff\x0f"), wasmrewrite.ErrMalformed},
		{"name section: module name of 4 GB", []byte("\x00asm\x01\x00\x00\x00\x00\x0c\x04name\x00\x05\xff\xff\xff\xff\x0f"), wasmrewrite.ErrMalformed},
		{"tag section (exceptions)", []byte("\x00asm\x01\x00\x00\x00\x0d\x05\xff\xff\xff\xff\x0f"), wasmrewrite.ErrMalformed},
		{"table of 100 million elements", []byte("\x00asm\x01\x00\x00\x00\x04\x07\x01\x70\x00\x80\xc2\xd7\x2f"), wasmrewrite.ErrMalformed},
		{"element vector of 4 billion", []byte("\x00asm\x01\x00\x00\x00\x09\x07\x01\x01\x00\xff\xff\xff\x0f"), wasmrewrite.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := wasmrewrite.Instrument(tt.wasm, wasmrewrite.Options{})
			if !errors.Is(err, tt.want) || res != nil {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			// Check does not read instructions: the compiler judges those.
			if err := wasmrewrite.Check(tt.wasm); tt.name != "unsupported opcode" && !errors.Is(err, tt.want) {
				t.Fatalf("Check: %v, want %v", err, tt.want)
			}
		})
	}
	// An instrumented module imports the private namespace: instrumenting
	// it again is refused, so no module can reach yield by going twice.
	if _, err := wasmrewrite.Instrument(instrument(t, valid, 0).Wasm, wasmrewrite.Options{}); !errors.Is(err, wasmrewrite.ErrReserved) {
		t.Fatalf("re-instrumenting: %v", err)
	}
}

// Modules without type, import or global sections get them, in order.
func TestMinimalModule(t *testing.T) {
	// one function () -> () whose body is an empty loop, exported as "f"
	wasm := []byte("\x00asm\x01\x00\x00\x00" +
		"\x01\x04\x01\x60\x00\x00" + // type () -> ()
		"\x03\x02\x01\x00" + // function 0: type 0
		"\x07\x05\x01\x01f\x00\x00" + // export "f" func 0
		"\x0a\x07\x01\x05\x00\x03\x40\x0b\x0b") // body: loop end end
	for _, w := range [][]byte{[]byte("\x00asm\x01\x00\x00\x00"), wasm} {
		res := instrument(t, w, 0)
		rt := wazero.NewRuntime(context.Background())
		if _, err := rt.CompileModule(context.Background(), res.Wasm); err != nil {
			t.Fatalf("%x: %v", res.Wasm, err)
		}
		_ = rt.Close(context.Background())
	}
}

// Hostile nesting and sizes cost time and memory linear in the input.
func TestBoundedWork(t *testing.T) {
	const depth = 200000
	body := append(bytes.Repeat([]byte{0x03, 0x40}, depth), bytes.Repeat([]byte{0x0b}, depth+1)...)
	code := append([]byte{0x01}, appendLEB(nil, uint64(len(body)+1))...)
	code = append(code, 0x00) // no locals
	code = append(code, body...)
	wasm := []byte("\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00")
	wasm = append(wasm, 0x0a)
	wasm = appendLEB(wasm, uint64(len(code)))
	wasm = append(wasm, code...)
	start := time.Now()
	res := instrument(t, wasm, 0)
	if res.Loops != depth {
		t.Fatalf("loops = %d, want %d", res.Loops, depth)
	}
	if len(res.Wasm) > 16*len(wasm) {
		t.Fatalf("output %d bytes for %d bytes of input", len(res.Wasm), len(wasm))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("instrumenting %d bytes took %v", len(wasm), d)
	}
}

func appendLEB(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// The committed fixtures are what their sources compile to.
func TestFixturesMatchSources(t *testing.T) {
	wat2wasm, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Skip("wat2wasm not installed (make test installs wabt)")
	}
	srcs, _ := filepath.Glob("testdata/*.wat")
	for _, src := range srcs {
		out := filepath.Join(t.TempDir(), "out.wasm")
		if b, err := exec.Command(wat2wasm, "--debug-names", src, "-o", out).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", src, err, b)
		}
		got, _ := os.ReadFile(out)
		if want := fixture(t, strings.TrimSuffix(filepath.Base(src), ".wat")+".wasm"); !bytes.Equal(got, want) {
			t.Errorf("%s: committed .wasm is stale: wat2wasm --debug-names %s -o %s", src, src, strings.TrimSuffix(src, ".wat")+".wasm")
		}
	}
}

// FuzzInstrument: no input makes the rewriter panic or hang, outputs stay
// linear in the input, every output parses again (and is refused as already
// instrumented), and when wazero accepts the input it accepts the output.
func FuzzInstrument(f *testing.F) {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	f.Add(fixture(f, "shapes.wasm"))
	f.Add(fixture(f, "reserved.wasm"))
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x0b\x15\xdd\xdd\xdd\xdd\x0b\x0200\x00000000000000"))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x0a\x07\x01\x05\x00\x03\x40\x0b\x0b"))
	f.Fuzz(func(t *testing.T, wasm []byte) {
		// What Check accepts, wazero may decode: compiling it must not
		// exhaust memory (a decoder bomb kills the process).
		if cerr := wasmrewrite.Check(wasm); (cerr == nil || errors.Is(cerr, wasmrewrite.ErrReserved)) && len(wasm) <= 4096 {
			if c, err := rt.CompileModule(ctx, wasm); err == nil {
				_ = c.Close(ctx)
			}
		}
		res, err := wasmrewrite.Instrument(wasm, wasmrewrite.Options{Budget: 100})
		if err != nil {
			if !errors.Is(err, wasmrewrite.ErrMalformed) && !errors.Is(err, wasmrewrite.ErrReserved) {
				t.Fatalf("error wraps neither ErrMalformed nor ErrReserved: %v", err)
			}
			return
		}
		if len(res.Wasm) > 16*len(wasm)+64 {
			t.Fatalf("output %d bytes for %d bytes of input", len(res.Wasm), len(wasm))
		}
		if _, err := wasmrewrite.Instrument(res.Wasm, wasmrewrite.Options{}); !errors.Is(err, wasmrewrite.ErrReserved) {
			t.Fatalf("the output does not parse back as instrumented: %v", err)
		}
		if len(wasm) > 4096 {
			return // keep each run cheap
		}
		if orig, err := rt.CompileModule(ctx, wasm); err == nil {
			_ = orig.Close(ctx)
			out, err := rt.CompileModule(ctx, res.Wasm)
			if err != nil {
				t.Fatalf("wazero accepts the input but not the output: %v", err)
			}
			_ = out.Close(ctx)
		}
	})
}
