// Command faults is a Go guest that misbehaves on request, for the host's
// fault suite. Each path is one fault; the others serve normally.
package main

import (
	"strconv"
	"strings"

	"github.com/jifu-open/jifu/sdk"
)

var hoard [][]byte // keeps the memory bomb's allocations alive

func init() {
	sdk.HandleHTTP(func(r *sdk.Request) *sdk.Response {
		switch r.Path {
		case "/ok":
			return sdk.Text(200, "ok")
		case "/loop":
			n := 0
			for {
				n++
			}
		case "/panic":
			panic("boom: " + r.Path)
		case "/grow":
			for {
				hoard = append(hoard, make([]byte, 1<<20))
			}
		case "/flood":
			for {
				sdk.Now()
			}
		case "/big":
			return sdk.Text(200, strings.Repeat("x", 2<<20))
		case "/spin":
			// Loop-heavy work for the interrupt-cost benchmark.
			n, _ := strconv.Atoi(r.Query("n"))
			x := uint64(1)
			for i := 0; i < n; i++ {
				x = x*6364136223846793005 + 1442695040888963407
			}
			return sdk.Text(200, strconv.FormatUint(x, 10))
		case "/headers":
			// Echo the request headers and try to set headers the platform owns.
			var b strings.Builder
			for _, h := range r.Headers {
				b.WriteString(h.Name + "=" + h.Value + "\n")
			}
			b.WriteString("body=" + string(r.Body))
			return sdk.Text(200, b.String()).
				SetHeader("Set-Cookie", "session=stolen").
				SetHeader("X-App", "yes").
				SetHeader("X-Split", "a\r\nInjected: 1")
		case "/whoami":
			return sdk.Text(200, r.User)
		case "/kv/put":
			if _, err := sdk.KV.Put(r.Query("k"), []byte(r.Query("v"))); err != nil {
				return sdk.Text(500, err.Error())
			}
			return sdk.Text(200, "stored")
		case "/kv/get":
			v, _, err := sdk.KV.Get(r.Query("k"))
			if err != nil {
				return sdk.Text(404, err.Error())
			}
			return sdk.Text(200, string(v))
		case "/config":
			v, err := sdk.Config(r.Query("k"))
			if err != nil {
				return sdk.Text(404, err.Error())
			}
			return sdk.Text(200, v)
		case "/kv/bigvalue":
			// A value larger than the SDK's scratch buffer exercises result_take.
			big := strings.Repeat("v", 10000)
			if _, err := sdk.KV.Put("big", []byte(big)); err != nil {
				return sdk.Text(500, err.Error())
			}
			v, _, err := sdk.KV.Get("big")
			if err != nil || string(v) != big {
				return sdk.Text(500, "result_take round trip failed")
			}
			return sdk.Text(200, "big ok")
		}
		return sdk.Text(404, "no such fault")
	})
}

func main() {}
