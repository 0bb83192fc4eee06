package host

import (
	"context"

	"github.com/tetratelabs/wazero/api"

	"github.com/jifu-open/jifu/host/abi"
)

// maxRandomBytes bounds one random call.
const maxRandomBytes = 64 << 10

// fnRandom fills a guest buffer with cryptographically secure random bytes
// from the host. No scope.
//
//	random(buf_ptr i32, buf_len i32) -> i32
//
// Returns the number of bytes written, or abi.ErrTooLarge above 64 KiB. A
// buffer outside guest memory aborts the invocation.
var fnRandom = &hostFunc{
	name: abi.FnRandom, capability: "random",
	params: []api.ValueType{i32, i32}, paramNames: []string{"buf_ptr", "buf_len"}, result: i32,
	call: func(_ context.Context, c *call) int64 {
		ptr, n := c.u32(0), c.u32(1)
		c.checkRange(ptr, n)
		if n > maxRandomBytes {
			return abi.ErrTooLarge
		}
		buf := make([]byte, n)
		if _, err := c.inv.app.host.rand.Read(buf); err != nil {
			return abi.ErrInternal
		}
		c.mod.Memory().Write(ptr, buf)
		return int64(n)
	},
}
