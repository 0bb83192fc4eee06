package host_test

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/guesttest"
	"github.com/jifu-open/jifu/host/manifest"
)

// Both interrupts stop a looping guest at its deadline and discard its
// instance. (TestFaults runs the Go guest's /loop with the default.)
func TestInterruptModes(t *testing.T) {
	loop := guesttest.ReadFile(t, "host/testdata/wat/loop.wasm")
	for _, mode := range []host.Interrupt{host.InterruptYield, host.InterruptWazero} {
		t.Run(string(mode), func(t *testing.T) {
			e := newEnv(t, host.Config{Interrupt: mode})
			if e.h.Interrupt() != mode {
				t.Fatalf("Interrupt() = %q", e.h.Interrupt())
			}
			app := load(t, e, host.AppSpec{Wasm: loop, Manifest: manifestFor(t, "interrupt-"+string(mode), "", `"timeout_ms":100`)})
			for range 3 {
				start := time.Now()
				_, err := get(t, app, "", "/")
				d := time.Since(start)
				if jifu.ErrorCode(err) != host.CodeTimeout {
					t.Fatalf("GET /: %v, want %s", err, host.CodeTimeout)
				}
				// The stop itself takes well under a millisecond
				// (docs/BENCHMARKS.md); the margin is for a loaded machine.
				if d < 100*time.Millisecond || d > 100*time.Millisecond+5*time.Second {
					t.Fatalf("a 100 ms limit stopped the guest after %v", d)
				}
			}
			if got := app.Stats().Discarded; got != 3 {
				t.Fatalf("discarded = %d, want 3", got)
			}
		})
	}
	if _, err := host.New(context.Background(), host.Config{Interrupt: "sometimes"}); err == nil {
		t.Fatal("an unknown interrupt mode was accepted")
	}
}

// Guests looping in JIT code while the host collects garbage: every
// collection must be able to stop the world (each guest reaches a yield, a
// Go safe point, within one budget), so neither the collections nor the
// timeouts hang. A global-flag interrupt deadlocked exactly here
// (docs/RATIONALE.md).
func TestLoopingGuestsUnderGCPressure(t *testing.T) {
	e := newEnv(t, host.Config{Pool: host.PoolOptions{Max: 4}})
	app := load(t, e, host.AppSpec{Wasm: faultsGuest(t), Manifest: manifestFor(t, "gc-pressure", `"storage"`, `"timeout_ms":150`)})
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				if _, err := get(t, app, "", "/loop"); jifu.ErrorCode(err) != host.CodeTimeout {
					t.Errorf("GET /loop: %v, want %s", err, host.CodeTimeout)
					return
				}
			}
		}()
	}
	gcs := 0
	go func() {
		wg.Wait()
		close(done)
	}()
	var keep [][]byte
	deadline := time.After(60 * time.Second)
	for {
		select {
		case <-done:
			if gcs < 3 {
				t.Fatalf("only %d collections ran while the guests looped", gcs)
			}
			mustGet(t, app, "", "/ok", 200, "ok")
			return
		case <-deadline:
			t.Fatal("looping guests did not stop within 60 s while the host collected garbage")
		default:
		}
		keep = append(keep, make([]byte, 1<<20))
		if len(keep) > 16 {
			keep = keep[:0]
		}
		runtime.GC()
		gcs++
	}
}

// An app cannot import the host's private yield function, in either mode.
func TestPrivateYieldImportRefused(t *testing.T) {
	wasm := guesttest.ReadFile(t, "host/wasmrewrite/testdata/reserved.wasm")
	for _, mode := range []host.Interrupt{host.InterruptYield, host.InterruptWazero} {
		t.Run(string(mode), func(t *testing.T) {
			e := newEnv(t, host.Config{Interrupt: mode})
			m := manifestFor(t, "sneaky", "", "")
			var got []string
			for _, p := range e.h.Validate(context.Background(), wasm, m) {
				got = append(got, p.Code+"@"+p.Field)
			}
			if want := []string{manifest.CodeImport + "@jifu_internal.yield"}; !slices.Equal(got, want) {
				t.Fatalf("problems %v, want %v", got, want)
			}
			if _, err := e.h.Load(context.Background(), host.AppSpec{Wasm: wasm, Manifest: m}); jifu.ErrorCode(err) != jifu.CodeInvalid {
				t.Fatalf("Load: %v, want %s", err, jifu.CodeInvalid)
			}
		})
	}
}
