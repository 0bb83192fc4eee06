// Command guest is the escrow capability's test app: POST /call/<op> with a
// JSON request calls escrow_call(op, body) and answers 200 with the JSON
// response, or 502 with "code <n>" when the host function returns a negative
// code. The request's user, if any, is the invocation's user.
package main

import (
	"strconv"
	"strings"
	"unsafe"

	"github.com/jifu-open/jifu/sdk"
)

//go:wasmimport jifu_v1 escrow_call
func escrowCall(opPtr, opLen, reqPtr, reqLen, outPtr, outCap uint32) int32

//go:wasmimport jifu_v1 result_take
func resultTake(outPtr, outCap uint32) int32

func ptr(b []byte) uint32 {
	if len(b) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(&b[0])))
}

func call(op string, body []byte) ([]byte, int32) {
	opb := []byte(op)
	out := make([]byte, 512)
	n := escrowCall(ptr(opb), uint32(len(opb)), ptr(body), uint32(len(body)), ptr(out), uint32(len(out)))
	if n < 0 {
		return nil, n
	}
	if int(n) > len(out) {
		out = make([]byte, n)
		if m := resultTake(ptr(out), uint32(len(out))); m < 0 {
			return nil, m
		}
	}
	return out[:n], 0
}

func init() {
	sdk.HandleHTTP(func(r *sdk.Request) *sdk.Response {
		op, ok := strings.CutPrefix(r.Path, "/call/")
		if !ok || r.Method != "POST" {
			return sdk.Text(404, "not found")
		}
		res, code := call(op, r.Body)
		if code < 0 {
			return sdk.Text(502, "code "+strconv.Itoa(int(code)))
		}
		return sdk.Text(200, string(res)).SetHeader("Content-Type", "application/json")
	})
}

func main() {}
