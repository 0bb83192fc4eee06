// Package sdk is the Go guest SDK for Jifu apps: it implements the ABI's
// exports (jifu_alloc, handle_http, on_event) and wraps every host function
// in a typed call, so an app is ordinary Go.
//
// Build an app with the standard toolchain:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o app.wasm .
//
// (or `jifu app build`). An app registers its handlers in init and has an
// empty main:
//
//	func init() {
//		sdk.HandleHTTP(func(r *sdk.Request) *sdk.Response {
//			n, _ := sdk.KV.Incr("visits")
//			return sdk.Text(200, fmt.Sprintf("hello, visitor %d", n))
//		})
//	}
//
//	func main() {}
//
// Compiled for any other platform the host functions are emulated in memory
// (a fresh store per process), so handlers can be unit-tested with `go test`.
// The emulation follows the ABI's rules; `jifu app run` runs the real module in
// the real sandbox.
package sdk
