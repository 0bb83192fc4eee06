package abi

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	req := Request{
		Method: "POST", Path: "/visit", Query: "a=1&b=2",
		Headers: []Header{{"Content-Type", "application/json"}, {"X-Empty", ""}},
		User:    "u_42", RequestID: "r1", Body: []byte(`{"n":1}`),
	}
	var gotReq Request
	if err := gotReq.Decode(req.AppendTo(nil)); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(req, gotReq) {
		t.Fatalf("request: got %+v want %+v", gotReq, req)
	}

	resp := Response{Status: 201, Headers: []Header{{"Location", "/x"}}, Body: []byte("ok")}
	var gotResp Response
	if err := gotResp.Decode(resp.AppendTo(nil)); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(resp, gotResp) {
		t.Fatalf("response: got %+v want %+v", gotResp, resp)
	}

	ev := Event{Type: "payment.succeeded", ID: "evt_1", User: "u_1", Payload: []byte(`{}`)}
	var gotEv Event
	if err := gotEv.Decode(ev.AppendTo(nil)); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ev, gotEv) {
		t.Fatalf("event: got %+v want %+v", gotEv, ev)
	}

	er := EventResult{Status: 3, Message: "retry"}
	var gotER EventResult
	if err := gotER.Decode(er.AppendTo(nil)); err != nil {
		t.Fatal(err)
	}
	if er != gotER {
		t.Fatalf("event result: got %+v want %+v", gotER, er)
	}

	entries := []KVEntry{{Key: []byte("a"), Value: []byte("1"), Version: 3}, {Key: []byte{0xff}, Value: nil, Version: 1}}
	gotE, more, err := DecodeKVScan(AppendKVScan(nil, entries, true))
	if err != nil || !more || len(gotE) != 2 || !bytes.Equal(gotE[1].Key, []byte{0xff}) || gotE[0].Version != 3 {
		t.Fatalf("kv scan: %+v %v %v", gotE, more, err)
	}
	v, val, err := DecodeKVValue(AppendKVValue(nil, 7, []byte("seven")))
	if err != nil || v != 7 || string(val) != "seven" {
		t.Fatalf("kv value: %d %q %v", v, val, err)
	}
}

func TestDecodeRejects(t *testing.T) {
	good := (&Request{Method: "GET", Path: "/"}).AppendTo(nil)
	tests := []struct {
		name string
		buf  []byte
	}{
		{"empty", nil},
		{"wrong version", append([]byte{2}, good[1:]...)},
		{"truncated", good[:len(good)-1]},
		{"trailing", append(append([]byte(nil), good...), 0)},
		{"lower-case method", (&Request{Method: "get", Path: "/"}).AppendTo(nil)},
		{"no method", (&Request{Method: "", Path: "/"}).AppendTo(nil)},
		{"relative path", (&Request{Method: "GET", Path: "x"}).AppendTo(nil)},
		{"huge length", []byte{1, 0xff, 0xff, 0xff, 0xff}},
		{"empty header name", (&Request{Method: "GET", Path: "/", Headers: []Header{{"", "v"}}}).AppendTo(nil)},
		{"too many headers", (&Request{Method: "GET", Path: "/", Headers: make([]Header, MaxHeaders+1)}).AppendTo(nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			err := r.Decode(tt.buf)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
	var resp Response
	if err := resp.Decode((&Response{Status: 99}).AppendTo(nil)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("status 99 accepted: %v", err)
	}
	var ev Event
	if err := ev.Decode((&Event{}).AppendTo(nil)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("empty event type accepted: %v", err)
	}
	if _, _, err := DecodeKVScan([]byte{1, 0, 0xff, 0xff, 0xff, 0x0f}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("impossible count accepted: %v", err)
	}
	if _, _, err := DecodeKVValue([]byte{1, 2}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short kv value accepted: %v", err)
	}
}

func TestDecodeCopiesBody(t *testing.T) {
	buf := (&Request{Method: "GET", Path: "/", Body: []byte("abc")}).AppendTo(nil)
	var r Request
	if err := r.Decode(buf); err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = 0
	}
	if string(r.Body) != "abc" || r.Method != "GET" {
		t.Fatalf("decoded request aliases its buffer: %+v", r)
	}
}

func TestPack(t *testing.T) {
	p, l := UnpackPtrLen(PackPtrLen(0xdeadbeef, 12))
	if p != 0xdeadbeef || l != 12 {
		t.Fatalf("got %x %d", p, l)
	}
}

func FuzzRequestDecode(f *testing.F) {
	f.Add((&Request{Method: "GET", Path: "/", Headers: []Header{{"A", "b"}}, Body: []byte("x")}).AppendTo(nil))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Request
		if err := r.Decode(b); err != nil {
			return
		}
		// Whatever decodes must re-encode to the same bytes.
		if again := r.AppendTo(nil); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, b)
		}
	})
}

func FuzzResponseDecode(f *testing.F) {
	f.Add((&Response{Status: 200, Body: []byte("hi")}).AppendTo(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Response
		if err := r.Decode(b); err != nil {
			return
		}
		if again := r.AppendTo(nil); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

func FuzzEventDecode(f *testing.F) {
	f.Add((&Event{Type: "tick", ID: "1", Payload: []byte("{}")}).AppendTo(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Event
		if err := e.Decode(b); err != nil {
			return
		}
		if again := e.AppendTo(nil); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

func FuzzKVScanDecode(f *testing.F) {
	f.Add(AppendKVScan(nil, []KVEntry{{Key: []byte("k"), Value: []byte("v"), Version: 1}}, false))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, more, err := DecodeKVScan(b)
		if err != nil {
			return
		}
		if again := AppendKVScan(nil, entries, more); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs")
		}
	})
}
