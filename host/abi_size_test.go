package host

import (
	"testing"

	"github.com/jifu-open/jifu/host/abi"
)

// encodedSize must be the encoding's exact length, or HandleHTTP's buffer
// grows (or over-allocates) on every request.
func TestEncodedSize(t *testing.T) {
	for _, r := range []abi.Request{
		{},
		{Method: "GET", Path: "/"},
		{Method: "POST", Path: "/a/b", Query: "x=1", User: "u1", RequestID: "rid", Body: []byte("body"),
			Headers: []abi.Header{{Name: "Accept", Value: "text/html"}, {Name: "X", Value: ""}}},
	} {
		if got, want := encodedSize(&r), len(r.AppendTo(nil)); got != want {
			t.Errorf("encodedSize(%+v) = %d, want %d", r, got, want)
		}
	}
}
