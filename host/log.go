package host

import (
	"context"
	"log/slog"

	"github.com/tetratelabs/wazero/api"

	"github.com/jifu-open/jifu/host/abi"
)

// maxLogBytes bounds one log message.
const maxLogBytes = 8 << 10

// fnLog writes a message to the app's log stream, tagged with the app,
// version, user and invocation. No scope.
//
//	log(level i32, msg_ptr i32, msg_len i32) -> i32
//
// level is abi.LevelDebug..abi.LevelError. Returns 0, abi.ErrInvalid for an
// unknown level, abi.ErrTooLarge for a message over 8 KiB. A message outside
// guest memory aborts the invocation (guest_bad_pointer).
var fnLog = &hostFunc{
	name: abi.FnLog, capability: "log",
	params: []api.ValueType{i32, i32, i32}, paramNames: []string{"level", "msg_ptr", "msg_len"}, result: i32,
	call: func(ctx context.Context, c *call) int64 {
		level, ptr, n := c.i32(0), c.u32(1), c.u32(2)
		var lv slog.Level
		switch level {
		case abi.LevelDebug:
			lv = slog.LevelDebug
		case abi.LevelInfo:
			lv = slog.LevelInfo
		case abi.LevelWarn:
			lv = slog.LevelWarn
		case abi.LevelError:
			lv = slog.LevelError
		default:
			return abi.ErrInvalid
		}
		if n > maxLogBytes {
			c.checkRange(ptr, n)
			return abi.ErrTooLarge
		}
		msg := c.read(ptr, n)
		inv := c.inv
		inv.app.log.Log(ctx, lv, string(msg), "user", inv.user, "invocation", inv.id)
		return 0
	},
}
