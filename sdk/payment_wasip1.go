//go:build wasip1

package sdk

//go:wasmimport jifu_v1 payment_create
func impPaymentCreate(rp, rn, op, oc uint32) int32

//go:wasmimport jifu_v1 payment_get
func impPaymentGet(rp, rn, op, oc uint32) int32

//go:wasmimport jifu_v1 payment_refund
func impPaymentRefund(rp, rn, op, oc uint32) int32

func hostPaymentCreate(req, out []byte) int32 {
	return impPaymentCreate(ptr(req), ln(req), optr(out), uint32(cap(out)))
}
func hostPaymentGet(req, out []byte) int32 {
	return impPaymentGet(ptr(req), ln(req), optr(out), uint32(cap(out)))
}
func hostPaymentRefund(req, out []byte) int32 {
	return impPaymentRefund(ptr(req), ln(req), optr(out), uint32(cap(out)))
}
