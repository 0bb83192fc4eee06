package abi

// Module is the import namespace of every host function of ABI v1.
const Module = "jifu_v1"

// Guest exports. A module must export Memory and Alloc and at least one entry
// point; the manifest lists which entry points it provides.
const (
	ExportMemory     = "memory"
	ExportAlloc      = "jifu_alloc"  // (size i32) -> ptr i32
	ExportHandleHTTP = "handle_http" // (ptr i32, len i32) -> i64 packed response
	ExportOnEvent    = "on_event"    // (ptr i32, len i32) -> i64 packed result
	ExportInitialize = "_initialize" // WASI reactor initialiser, run once per instance when present
)

// Host functions of namespace Module. Their signatures, memory layout and
// results are documented in docs/ABI.md and on each host function.
const (
	FnLog        = "log"         // (level, msg_ptr, msg_len) -> i32
	FnClockNow   = "clock_now"   // () -> i64 unix nanoseconds
	FnRandom     = "random"      // (buf_ptr, buf_len) -> i32
	FnConfigGet  = "config_get"  // (key_ptr, key_len, out_ptr, out_cap) -> i32
	FnKVGet      = "kv_get"      // (key_ptr, key_len, out_ptr, out_cap) -> i32
	FnKVPut      = "kv_put"      // (key_ptr, key_len, val_ptr, val_len) -> i64
	FnKVDelete   = "kv_delete"   // (key_ptr, key_len) -> i32
	FnKVCAS      = "kv_cas"      // (key_ptr, key_len, expect i64, val_ptr, val_len) -> i64
	FnKVScan     = "kv_scan"     // (prefix_ptr, prefix_len, after_ptr, after_len, limit, out_ptr, out_cap) -> i32
	FnResultTake = "result_take" // (out_ptr, out_cap) -> i32
	FnEscrowCall = "escrow_call" // (op_ptr, op_len, req_ptr, req_len, out_ptr, out_cap) -> i32
)

// Result codes returned by host functions as negative i32/i64 values. A
// non-negative result is a length, a count or a version, as each function says.
const (
	ErrBadPointer  = -1  // a (ptr, len) pair outside guest memory; the invocation is aborted
	ErrDenied      = -2  // the scope is not granted to the app or not consented by the user
	ErrNotFound    = -3  // no such key
	ErrTooLarge    = -4  // an argument over its size limit
	ErrLimit       = -5  // the invocation's host-call budget is spent; the invocation is aborted
	ErrConflict    = -6  // compare-and-set lost
	ErrInvalid     = -7  // a malformed argument (empty key, bad level, bad limit)
	ErrInternal    = -8  // a failure inside the host; retrying may help
	ErrUnavailable = -9  // a dependency of the host is down
	ErrNoResult    = -10 // result_take with no pending result
)

// ErrorName returns the symbolic name of a negative result code.
func ErrorName(code int64) string {
	switch code {
	case ErrBadPointer:
		return "bad_pointer"
	case ErrDenied:
		return "denied"
	case ErrNotFound:
		return "not_found"
	case ErrTooLarge:
		return "too_large"
	case ErrLimit:
		return "limit"
	case ErrConflict:
		return "conflict"
	case ErrInvalid:
		return "invalid"
	case ErrInternal:
		return "internal"
	case ErrUnavailable:
		return "unavailable"
	case ErrNoResult:
		return "no_result"
	}
	if code >= 0 {
		return "ok"
	}
	return "unknown"
}

// Log levels accepted by FnLog.
const (
	LevelDebug = 0
	LevelInfo  = 1
	LevelWarn  = 2
	LevelError = 3
)

// PackPtrLen packs an entry point's result buffer into its i64 return value.
func PackPtrLen(ptr, length uint32) uint64 { return uint64(ptr)<<32 | uint64(length) }

// UnpackPtrLen is the inverse of PackPtrLen.
func UnpackPtrLen(v uint64) (ptr, length uint32) { return uint32(v >> 32), uint32(v) }
