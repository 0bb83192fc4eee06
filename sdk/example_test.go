//go:build !wasip1

package sdk_test

import (
	"errors"
	"fmt"

	"github.com/jifu-open/jifu/sdk"
)

// An app counts visits in its own store. Compiled natively, as here, the
// store is the SDK's in-memory emulation; in the sandbox it is the platform's.
func ExampleKV() {
	for range 3 {
		if _, err := sdk.KV.Incr("example:visits"); err != nil {
			panic(err)
		}
	}
	v, version, _ := sdk.KV.Get("example:visits")
	fmt.Println(string(v), version)

	_, err := sdk.KV.CompareAndSet("example:visits", 1, []byte("0"))
	fmt.Println(errors.Is(err, sdk.ErrConflict))
	// Output:
	// 3 3
	// true
}

func ExampleKV_Scan() {
	for _, k := range []string{"user:b", "user:a", "order:1", "user:c"} {
		_, _ = sdk.KV.Put(k, []byte("x"))
	}
	page, more, _ := sdk.KV.Scan("user:", "", 2)
	for _, e := range page {
		fmt.Println(e.Key)
	}
	fmt.Println("more:", more)
	page, more, _ = sdk.KV.Scan("user:", page[len(page)-1].Key, 2)
	fmt.Println(page[0].Key, "more:", more)
	// Output:
	// user:a
	// user:b
	// more: true
	// user:c more: false
}

func ExampleConfig() {
	sdk.SetConfig("greeting", "你好")
	g, _ := sdk.Config("greeting")
	_, err := sdk.Config("missing")
	fmt.Println(g, errors.Is(err, sdk.ErrNotFound))
	// Output: 你好 true
}
