package host

import (
	"context"

	"github.com/tetratelabs/wazero/api"

	"github.com/jifu-open/jifu/host/abi"
)

// fnConfigGet reads one of the app's configuration values or secrets: the
// manifest's defaults overridden by the operator's values for this app. No
// scope; an app sees only its own configuration.
//
//	config_get(key_ptr i32, key_len i32, out_ptr i32, out_cap i32) -> i32
//
// Returns the value's length (see result_take when it exceeds out_cap),
// abi.ErrNotFound for an unknown key, abi.ErrInvalid for a key over 64 bytes.
var fnConfigGet = &hostFunc{
	name: abi.FnConfigGet, capability: "config",
	params:     []api.ValueType{i32, i32, i32, i32},
	paramNames: []string{"key_ptr", "key_len", "out_ptr", "out_cap"}, result: i32,
	call: func(_ context.Context, c *call) int64 {
		kp, kn, out, capacity := c.u32(0), c.u32(1), c.u32(2), c.u32(3)
		if kn == 0 || kn > 64 {
			c.checkRange(kp, kn)
			return abi.ErrInvalid
		}
		key := c.read(kp, kn)
		v, ok := c.inv.app.config[string(key)]
		if !ok {
			c.checkRange(out, capacity)
			return abi.ErrNotFound
		}
		return c.writeResult(out, capacity, []byte(v))
	},
}
