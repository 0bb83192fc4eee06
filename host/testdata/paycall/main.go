// Command paycall is a test guest that calls the payment host functions with
// raw request bytes: POST /<function> with the request as body answers
// "<result code>\n<result bytes>". It imports the functions directly, as a
// guest in any language would, so tests can send malformed requests.
package main

import (
	"strconv"
	"unsafe"

	"github.com/jifu-open/jifu/sdk"
)

//go:wasmimport jifu_v1 payment_create
func paymentCreate(rp, rn, op, oc uint32) int32

//go:wasmimport jifu_v1 payment_get
func paymentGet(rp, rn, op, oc uint32) int32

//go:wasmimport jifu_v1 payment_refund
func paymentRefund(rp, rn, op, oc uint32) int32

func addr(b []byte) uint32 {
	if cap(b) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b[:cap(b)]))))
}

func init() {
	sdk.HandleHTTP(func(r *sdk.Request) *sdk.Response {
		fns := map[string]func(rp, rn, op, oc uint32) int32{
			"/payment_create": paymentCreate, "/payment_get": paymentGet, "/payment_refund": paymentRefund,
		}
		fn, ok := fns[r.Path]
		if !ok {
			return sdk.Text(404, "no such function")
		}
		out := make([]byte, 0, 8192)
		res := fn(addr(r.Body), uint32(len(r.Body)), addr(out), uint32(cap(out)))
		body := strconv.Itoa(int(res)) + "\n"
		if res > 0 && int(res) <= cap(out) {
			body += string(out[:res])
		}
		return sdk.Text(200, body)
	})
}

func main() {}
