package host

import (
	"context"
	"fmt"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/abi"
)

// Caller says on whose behalf an invocation runs.
type Caller struct {
	User      string // platform user id, "" when anonymous
	RequestID string // correlates logs; generated when empty
}

// invocation is the state of one call into a guest. It is itself the
// context passed to the guest's export (the invocation's context, with the
// app's timeout, plus itself as a value), so every host call made during the
// invocation sees exactly this app and user and nothing left from another.
// An instance runs one invocation at a time, so the fields need no lock.
type invocation struct {
	context.Context
	id      string
	app     *App
	user    string
	calls   int
	pending []byte      // a result that did not fit the guest's buffer, for result_take
	fault   *jifu.Error // set when a host call aborted the invocation
	call    call        // the current host call's state, reused by each
}

type invocationKey struct{}

// withInvocation makes inv the context of the call into the guest: ctx's
// deadline and values, and inv itself.
func withInvocation(ctx context.Context, inv *invocation) context.Context {
	inv.Context = ctx
	return inv
}

// Value implements context.Context.
func (inv *invocation) Value(key any) any {
	if key == (invocationKey{}) {
		return inv
	}
	return inv.Context.Value(key)
}

func invocationFrom(ctx context.Context) *invocation {
	inv, _ := ctx.Value(invocationKey{}).(*invocation)
	return inv
}

// call is one host-function call: its arguments and access to guest memory.
type call struct {
	inv   *invocation
	mod   api.Module
	stack []uint64
	fn    *hostFunc
}

// abortExitCode is the exit code with which an aborted invocation unwinds.
const abortExitCode = 0xAB0

// abort records a fault and unwinds the guest, the way WASI's proc_exit does:
// the guest gets no chance to ignore the error and continue. The instance is
// discarded afterwards.
func (c *call) abort(code, format string, args ...any) {
	if c.inv.fault == nil {
		c.inv.fault = fault(code, "%s: %s", c.fn.name, fmt.Sprintf(format, args...))
	}
	panic(sys.NewExitError(abortExitCode))
}

func (c *call) u32(i int) uint32 { return api.DecodeU32(c.stack[i]) }
func (c *call) i32(i int) int32  { return api.DecodeI32(c.stack[i]) }
func (c *call) i64(i int) int64  { return int64(c.stack[i]) }

// read returns a copy of guest memory [ptr, ptr+n), aborting the invocation
// when the range is outside memory.
func (c *call) read(ptr, n uint32) []byte {
	v, ok := c.mod.Memory().Read(ptr, n)
	if !ok {
		c.abort(CodeBadPointer, "read of %d bytes at %#x is outside guest memory (%d bytes)", n, ptr, c.mod.Memory().Size())
	}
	return append([]byte(nil), v...)
}

// checkRange aborts the invocation when [ptr, ptr+n) is outside guest memory.
func (c *call) checkRange(ptr, n uint32) {
	if uint64(ptr)+uint64(n) > uint64(c.mod.Memory().Size()) {
		c.abort(CodeBadPointer, "buffer of %d bytes at %#x is outside guest memory (%d bytes)", n, ptr, c.mod.Memory().Size())
	}
}

// writeResult implements the variable-length result convention: when the
// result fits [out, out+cap) it is written there; otherwise it is kept as the
// pending result for result_take. Either way the full length is returned.
func (c *call) writeResult(out, capacity uint32, result []byte) int64 {
	c.checkRange(out, capacity)
	if uint64(len(result)) > uint64(capacity) {
		c.inv.pending = result
		return int64(len(result))
	}
	c.mod.Memory().Write(out, result)
	return int64(len(result))
}

// fnResultTake copies the pending result of the previous host call.
//
//	result_take(out_ptr i32, out_cap i32) -> i32
//
// Returns the length copied, abi.ErrNoResult when no result is pending, or
// abi.ErrTooLarge when out_cap is smaller than the pending result (which
// stays pending). Any other host call discards a pending result.
var fnResultTake = &hostFunc{
	name: abi.FnResultTake, capability: "abi",
	params: []api.ValueType{i32, i32}, paramNames: []string{"out_ptr", "out_cap"}, result: i32,
	call: func(_ context.Context, c *call) int64 {
		out, capacity := c.u32(0), c.u32(1)
		c.checkRange(out, capacity)
		p := c.inv.pending
		if p == nil {
			return abi.ErrNoResult
		}
		if uint64(len(p)) > uint64(capacity) {
			c.inv.pending = p // keep it for a bigger buffer
			return abi.ErrTooLarge
		}
		c.mod.Memory().Write(out, p)
		c.inv.pending = nil
		return int64(len(p))
	},
}
