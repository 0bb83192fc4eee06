package host

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/jifu-open/jifu/host/wasmrewrite"
)

// Interrupt selects how a wall-clock limit stops a running guest. See
// docs/RATIONALE.md ("Interrupting guests") and docs/BENCHMARKS.md.
type Interrupt string

const (
	// InterruptYield instruments each module at load (package wasmrewrite):
	// a budget counter at every loop head calls a private host function
	// every Config.YieldBudget iterations, which stops the guest once its
	// invocation's deadline or context has passed. The default.
	InterruptYield Interrupt = "yield"
	// InterruptWazero uses wazero's WithCloseOnContextDone: a check in Go at
	// every loop back-edge, 2-15x slower on the guest's own work.
	InterruptWazero Interrupt = "wazero"
	// InterruptNone leaves a looping guest running until it returns: for
	// trusted, first-party modules only.
	InterruptNone Interrupt = "none"
)

// ParseInterrupt returns the Interrupt named s ("" is the default, yield).
func ParseInterrupt(s string) (Interrupt, error) {
	switch Interrupt(s) {
	case "", InterruptYield:
		return InterruptYield, nil
	case InterruptWazero, InterruptNone:
		return Interrupt(s), nil
	}
	return "", fmt.Errorf("host: interrupt %q: want yield, wazero or none", s)
}

// instrument returns the code the app runtime compiles: wasm itself, or in
// yield mode wasm with the budget checks. The validation problems of a
// module the rewriter refuses are reported by validate from the original.
func (h *Host) instrument(wasm []byte) ([]byte, error) {
	if h.interrupt != InterruptYield {
		return wasm, nil
	}
	// The module always starts with the default budget, so that its bytes,
	// and so its compilation, do not depend on Config.YieldBudget; yield
	// hands out the configured budget from the first check on.
	res, err := wasmrewrite.Instrument(wasm, wasmrewrite.Options{Budget: wasmrewrite.DefaultBudget})
	if err != nil {
		return nil, err
	}
	return res.Wasm, nil
}

// linkYield instantiates, in an app's runtime, the private module holding
// the yield function that instrumented code calls. Apps cannot import it
// themselves: validation refuses modules that import from its namespace.
func (h *Host) linkYield(ctx context.Context, rt wazero.Runtime) error {
	if h.interrupt != InterruptYield {
		return nil
	}
	budget := h.cfg.YieldBudget
	_, err := rt.NewHostModuleBuilder(wasmrewrite.YieldModule).
		NewFunctionBuilder().
		WithGoModuleFunction(yieldFunc(budget), nil, []api.ValueType{i32}).
		Export(wasmrewrite.YieldName).
		Instantiate(ctx)
	return err
}

// yieldFunc is the host side of the instrumented budget check, called every
// budget loop iterations. ctx is the context of the call into the guest (the
// invocation's, with the app's timeout, or the instantiation's). It unwinds
// the guest with the exit code wazero's own interrupt uses once the context
// is done or its deadline has passed (the deadline is compared directly, so
// a late timer cannot extend a guest's run), and otherwise returns the next
// budget. Returning to Go here also gives the Go scheduler and garbage
// collector a safe point in a guest that loops.
func yieldFunc(budget int32) api.GoModuleFunc {
	return func(ctx context.Context, _ api.Module, stack []uint64) {
		if err := ctx.Err(); err != nil {
			code := uint32(sys.ExitCodeContextCanceled)
			if errors.Is(err, context.DeadlineExceeded) {
				code = sys.ExitCodeDeadlineExceeded
			}
			panic(sys.NewExitError(code))
		}
		if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
			panic(sys.NewExitError(sys.ExitCodeDeadlineExceeded))
		}
		stack[0] = api.EncodeI32(budget)
	}
}
