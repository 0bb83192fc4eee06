package marketplace_test

import (
	"fmt"
	"testing"

	"github.com/jifu-open/jifu/host/guesttest"
	"github.com/jifu-open/jifu/marketplace"
)

func TestModuleImports(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"host/testdata/wat/hello.wasm", "[jifu_v1.kv_get jifu_v1.kv_put]"},
		{"host/testdata/wat/consent.wasm", "[jifu_v1.probe]"},
		{"host/testdata/wat/trap.wasm", "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := marketplace.ModuleImports(guesttest.ReadFile(t, tt.file))
			if err != nil || fmt.Sprint(got) != tt.want {
				t.Fatalf("imports %v, %v; want %s", got, err, tt.want)
			}
		})
	}
	// env.f imported twice is listed once.
	twice := []byte("\x00asm\x01\x00\x00\x00\x02\x19\x03" +
		"\x03env\x01f\x00\x00" + "\x03env\x01g\x00\x00" + "\x03env\x01f\x00\x00")
	if got, err := marketplace.ModuleImports(twice); err != nil || fmt.Sprint(got) != "[env.f env.g]" {
		t.Errorf("imports %v, %v; want [env.f env.g]", got, err)
	}
	for _, bad := range [][]byte{nil, []byte("\x00asm"), []byte("\x00asm\x01\x00\x00\x00\x02\x05\x01"), []byte("\x00asm\x01\x00\x00\x00\x02\xff\xff\xff\xff\x0f")} {
		if _, err := marketplace.ModuleImports(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzModuleImports(f *testing.F) {
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x02\x0b\x01\x03env\x01f\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		imports, err := marketplace.ModuleImports(b)
		if err == nil && !marketplace.IsWasm(b) {
			t.Fatal("accepted a non-wasm input")
		}
		_ = imports
	})
}
