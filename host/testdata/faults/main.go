// Command faults is a Go guest that misbehaves on request, for the host's
// fault suite. Each path is one fault; the others serve normally.
package main

import (
	"encoding/hex"
	"errors"
	"fmt"
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
		case "/now":
			return sdk.Text(200, strconv.FormatInt(sdk.Now().UnixNano(), 10))
		case "/random":
			b := make([]byte, 16)
			if err := sdk.Random(b); err != nil {
				return sdk.Text(500, err.Error())
			}
			return sdk.Text(200, hex.EncodeToString(b))
		case "/log":
			if err := sdk.Log(sdk.LevelWarn, "hello from the guest"); err != nil {
				return sdk.Text(500, err.Error())
			}
			if err := sdk.Log(99, "bad level"); !errors.Is(err, sdk.ErrInvalid) {
				return sdk.Text(500, fmt.Sprintf("bad level: %v", err))
			}
			return sdk.Text(200, "logged")
		case "/kv/suite":
			if err := kvSuite(); err != nil {
				return sdk.Text(500, err.Error())
			}
			return sdk.Text(200, "kv ok")
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

// kvSuite drives every kv host function through the real ABI.
func kvSuite() error {
	for _, k := range []string{"s:c", "s:a", "s:b", "t:z"} {
		if _, err := sdk.KV.Put(k, []byte("v-"+k)); err != nil {
			return fmt.Errorf("put %s: %w", k, err)
		}
	}
	page, more, err := sdk.KV.Scan("s:", "", 2)
	if err != nil || !more || len(page) != 2 || page[0].Key != "s:a" || page[1].Key != "s:b" || string(page[0].Value) != "v-s:a" {
		return fmt.Errorf("scan page 1: %v %v %v", page, more, err)
	}
	page, more, err = sdk.KV.Scan("s:", "s:b", 2)
	if err != nil || more || len(page) != 1 || page[0].Key != "s:c" {
		return fmt.Errorf("scan page 2: %v %v %v", page, more, err)
	}
	if _, _, err := sdk.KV.Scan("s:", "", 0); !errors.Is(err, sdk.ErrInvalid) {
		return fmt.Errorf("scan limit 0: %v", err)
	}
	_, ver, err := sdk.KV.Get("s:a")
	if err != nil {
		return err
	}
	if _, err := sdk.KV.CompareAndSet("s:a", ver+1, []byte("x")); !errors.Is(err, sdk.ErrConflict) {
		return fmt.Errorf("cas with a wrong version: %v", err)
	}
	if nv, err := sdk.KV.CompareAndSet("s:a", ver, []byte("y")); err != nil || nv != ver+1 {
		return fmt.Errorf("cas: %d %v", nv, err)
	}
	if _, err := sdk.KV.CompareAndSet("s:new", 0, []byte("n")); err != nil {
		return fmt.Errorf("cas create: %v", err)
	}
	if _, err := sdk.KV.CompareAndSet("s:new", 0, []byte("n")); !errors.Is(err, sdk.ErrConflict) {
		return fmt.Errorf("cas create twice: %v", err)
	}
	if ok, err := sdk.KV.Delete("s:a"); err != nil || !ok {
		return fmt.Errorf("delete: %v %v", ok, err)
	}
	if ok, err := sdk.KV.Delete("s:a"); err != nil || ok {
		return fmt.Errorf("delete twice: %v %v", ok, err)
	}
	if _, _, err := sdk.KV.Get("s:a"); !errors.Is(err, sdk.ErrNotFound) {
		return fmt.Errorf("get deleted: %v", err)
	}
	if _, err := sdk.KV.Put("", []byte("x")); !errors.Is(err, sdk.ErrInvalid) {
		return fmt.Errorf("empty key: %v", err)
	}
	if _, err := sdk.KV.Put(strings.Repeat("k", 2000), []byte("x")); !errors.Is(err, sdk.ErrTooLarge) {
		return fmt.Errorf("long key: %v", err)
	}
	return nil
}

func main() {}
