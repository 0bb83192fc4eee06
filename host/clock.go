package host

import (
	"context"

	"github.com/jifu-open/jifu/host/abi"
)

// fnClockNow returns the host's wall clock. No scope. The guest's WASI clocks
// read the same host clock, so an invocation can be replayed with recorded
// time.
//
//	clock_now() -> i64
//
// Returns Unix time in nanoseconds.
var fnClockNow = &hostFunc{
	name: abi.FnClockNow, capability: "clock", result: i64,
	call: func(_ context.Context, c *call) int64 {
		return c.inv.app.host.now().UnixNano()
	},
}
