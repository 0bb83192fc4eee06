// Command codec is a Go guest for the host's encoding benchmark
// (BenchmarkGuestCodec in host/bench_test.go). It runs the workload of
// package workload inside the sandbox, so the benchmark can compare the cost
// of each encoding in a guest with the same code compiled natively.
//
//	GET /json?n=N    N rounds with encoding/json
//	GET /binary?n=N  N rounds with package abi's binary codec
//
// Each answers 200 with the workload's checksum (bytes produced), which the
// benchmark compares with the native run's.
package main

import (
	"strconv"

	"github.com/jifu-open/jifu/host/testdata/codec/workload"
	"github.com/jifu-open/jifu/sdk"
)

func init() {
	sdk.HandleHTTP(func(r *sdk.Request) *sdk.Response {
		var run func(int) (int, error)
		switch r.Path {
		case "/json":
			run = workload.JSON
		case "/binary":
			run = workload.Binary
		default:
			return sdk.Text(404, "no such codec")
		}
		if r.Method != "GET" {
			return sdk.Text(405, "GET only")
		}
		n, err := strconv.Atoi(r.Query("n"))
		if err != nil || n < 1 {
			return sdk.Text(400, "n must be a positive integer")
		}
		sum, err := run(n)
		if err != nil {
			return sdk.Text(500, err.Error())
		}
		return sdk.Text(200, strconv.Itoa(sum))
	})
}

func main() {}
