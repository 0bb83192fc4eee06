//go:build wasip1

package sdk

import (
	"unsafe"
)

//go:wasmimport jifu_v1 log
func impLog(level, ptr, n uint32) int32

//go:wasmimport jifu_v1 clock_now
func impClockNow() int64

//go:wasmimport jifu_v1 random
func impRandom(ptr, n uint32) int32

//go:wasmimport jifu_v1 config_get
func impConfigGet(kp, kn, op, oc uint32) int32

//go:wasmimport jifu_v1 kv_get
func impKVGet(kp, kn, op, oc uint32) int32

//go:wasmimport jifu_v1 kv_put
func impKVPut(kp, kn, vp, vn uint32) int64

//go:wasmimport jifu_v1 kv_delete
func impKVDelete(kp, kn uint32) int32

//go:wasmimport jifu_v1 kv_cas
func impKVCAS(kp, kn uint32, expect int64, vp, vn uint32) int64

//go:wasmimport jifu_v1 kv_scan
func impKVScan(pp, pn, ap, an uint32, limit int32, op, oc uint32) int32

//go:wasmimport jifu_v1 result_take
func impResultTake(op, oc uint32) int32

// ptr returns the guest address of b's first byte (0 for an empty slice).
// The Go garbage collector does not move objects, and callers keep b alive
// across the host call by using it afterwards or through the arguments.
func ptr(b []byte) uint32 {
	if len(b) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

func ln(b []byte) uint32 { return uint32(len(b)) }

// optr returns the address of an output buffer: its capacity is what the
// host may fill.
func optr(b []byte) uint32 { return ptr(b[:cap(b)]) }

func hostLog(level int32, msg []byte) int32 { return impLog(uint32(level), ptr(msg), ln(msg)) }
func hostClockNow() int64                   { return impClockNow() }
func hostRandom(b []byte) int32             { return impRandom(ptr(b), ln(b)) }
func hostConfigGet(key, out []byte) int32 {
	return impConfigGet(ptr(key), ln(key), optr(out), uint32(cap(out)))
}
func hostKVGet(key, out []byte) int32 {
	return impKVGet(ptr(key), ln(key), optr(out), uint32(cap(out)))
}
func hostKVPut(key, val []byte) int64 { return impKVPut(ptr(key), ln(key), ptr(val), ln(val)) }
func hostKVDelete(key []byte) int32   { return impKVDelete(ptr(key), ln(key)) }
func hostKVCAS(key []byte, expect int64, val []byte) int64 {
	return impKVCAS(ptr(key), ln(key), expect, ptr(val), ln(val))
}
func hostKVScan(prefix, after []byte, limit int32, out []byte) int32 {
	return impKVScan(ptr(prefix), ln(prefix), ptr(after), ln(after), limit, optr(out), uint32(cap(out)))
}
func hostResultTake(out []byte) int32 { return impResultTake(optr(out), uint32(cap(out))) }
