// Package abi defines version 1 of the Jifu host–guest ABI: the names of the
// host functions a guest may import, the exports a guest must provide, the
// result codes, and the binary encoding of the buffers that cross the boundary.
//
// It is the single source of truth for both sides: the host (package host) and
// the Go guest SDK (package sdk) import it, and docs/ABI.md describes the same
// contract for guests written in other languages. The package has no
// dependencies beyond the standard library so that it compiles to wasip1.
//
// # Buffers
//
// Every buffer is a (pointer, length) pair of i32 values into the guest's
// exported linear memory "memory". Entry points return an i64 packing the
// response buffer as (ptr << 32) | len.
//
// # Encoding
//
// Requests, responses and events use a small length-prefixed binary form
// (little-endian): u8 version, then fields in a fixed order, where a string or
// byte field is a u32 length followed by the bytes. It was chosen over JSON by
// measurement (docs/BENCHMARKS.md): a request-and-response round inside a Go
// guest costs ≈295 µs with encoding/json and ≈35 µs in this form.
//
//	req := abi.Request{Method: "GET", Path: "/", Body: nil}
//	buf := req.AppendTo(nil)
//	var back abi.Request
//	err := back.Decode(buf)
package abi
