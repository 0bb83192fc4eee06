//go:build wasip1

package sdk

import (
	"github.com/jifu-open/jifu/host/abi"
)

// inBuf receives each request from the host; outBuf holds the last response
// until the next call. Both stay referenced here so the GC keeps them.
var inBuf, outBuf []byte

//go:wasmexport jifu_alloc
func jifuAlloc(size uint32) uint32 {
	if uint32(cap(inBuf)) < max(size, 1) {
		inBuf = make([]byte, max(size, 1))
	}
	inBuf = inBuf[:size]
	return ptr(inBuf[:1])
}

// input returns the request the host wrote into inBuf.
func input(p, n uint32) []byte {
	if p != ptr(inBuf[:1]) || n > uint32(cap(inBuf)) {
		panic("jifu sdk: the host passed a buffer jifu_alloc did not return")
	}
	return inBuf[:n]
}

func output(b []byte) uint64 {
	outBuf = b
	return abi.PackPtrLen(ptr(outBuf), uint32(len(outBuf)))
}

//go:wasmexport handle_http
func handleHTTP(p, n uint32) uint64 {
	return output(serveHTTP(input(p, n), outBuf[:0]))
}

//go:wasmexport on_event
func onEvent(p, n uint32) uint64 {
	return output(serveEvent(input(p, n), outBuf[:0]))
}
