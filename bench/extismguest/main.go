//go:build wasip1

// Command extismguest is the peer of plugins/hello for the Extism benchmark
// (bench/peer_test.go): the same GET / logic written against Extism's Go PDK
// v1.1.3 and run on Extism's go-sdk. It reads the request in Jifu's binary ABI
// encoding (host/abi), so the decoding and encoding work inside the guest is
// identical to the hello app's; everything between host and guest goes the
// Extism way (input/output through the Extism kernel, a user host function
// extism:host/user kv_get taking and returning Extism memory offsets, config
// through pdk.GetConfig).
//
// Build (standard Go, a WASI reactor; Extism runs _initialize before the
// first call):
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o extismguest.wasm .
package main

import (
	"errors"
	"fmt"
	"html"
	"strconv"

	"github.com/extism/go-pdk"

	"github.com/jifu-open/jifu/host/abi"
)

const visitsKey = "visits"

// kvGet is the host's kv_get: the offset of an Extism memory block holding
// the key; returns the offset of a block holding abi.AppendKVValue (u64
// version, then the value), or 0 when the key does not exist.
//
//go:wasmimport extism:host/user kv_get
func kvGet(keyOffset uint64) uint64

var errNotFound = errors.New("not found")

// getKV mirrors sdk.KV.Get: one host call.
func getKV(key string) ([]byte, int64, error) {
	mem := pdk.AllocateString(key)
	defer mem.Free()
	off := kvGet(mem.Offset())
	if off == 0 {
		return nil, 0, errNotFound
	}
	ver, val, err := abi.DecodeKVValue(pdk.ParamBytes(off))
	return val, ver, err
}

//go:wasmexport handle_http
func handleHTTP() int32 {
	pdk.Output(serveHTTP(pdk.Input()))
	return 0
}

// serveHTTP is sdk.serveHTTP: decode, route, encode.
func serveHTTP(in []byte) []byte {
	var req abi.Request
	if err := req.Decode(in); err != nil {
		return (&abi.Response{Status: 400, Body: []byte(err.Error())}).AppendTo(nil)
	}
	resp := route(&req)
	return resp.AppendTo(nil)
}

// route is plugins/hello's route, reduced to the page the benchmark requests.
func route(r *abi.Request) *abi.Response {
	if r.Path == "/" && r.Method == "GET" {
		return page(r)
	}
	return text(404, "not found")
}

func visits() (int64, error) {
	v, _, err := getKV(visitsKey)
	if errors.Is(err, errNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(string(v), 10, 64)
}

// page is plugins/hello's page, byte for byte.
func page(r *abi.Request) *abi.Response {
	n, err := visits()
	if err != nil {
		return text(503, "storage unavailable, try again")
	}
	greeting, ok := pdk.GetConfig("greeting")
	if !ok {
		greeting = "Hello"
	}
	who := "guest"
	if r.User != "" {
		who = r.User
	}
	return htmlResp(200, fmt.Sprintf(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Hello · Jifu</title></head>
<body><h1 data-testid="greeting">%s, %s!</h1>
<p>This page has been visited <strong data-testid="visits">%d</strong> times.</p>
<form method="post" action="visits"><button type="submit">Visit</button></form>
</body></html>`, html.EscapeString(greeting), html.EscapeString(who), n))
}

func text(status int, s string) *abi.Response {
	return &abi.Response{Status: status, Headers: []abi.Header{{Name: "Content-Type", Value: "text/plain; charset=utf-8"}}, Body: []byte(s)}
}

func htmlResp(status int, s string) *abi.Response {
	return &abi.Response{Status: status, Headers: []abi.Header{{Name: "Content-Type", Value: "text/html; charset=utf-8"}}, Body: []byte(s)}
}

func main() {}
