// Package workload is the encoding benchmark's workload, shared by the codec
// guest (host/testdata/codec, compiled to wasip1/wasm) and the native
// benchmark (host/bench_test.go), so both run the same code on the same data.
//
// One round is what one invocation costs in encoding work: decode a request,
// encode it again (the host's side of handle_http), and encode a response
// (the guest's side). JSON mirrors abi.Request and abi.Response field for
// field; its body is []byte, so encoding/json writes it in base64, as a JSON
// ABI would have to.
package workload

import (
	"encoding/json"
	"fmt"

	"github.com/jifu-open/jifu/host/abi"
)

// Request returns the sample request: a browser's GET of an app's page by a
// signed-in user, about 200 bytes in the binary encoding.
func Request() abi.Request {
	return abi.Request{
		Method: "GET",
		Path:   "/",
		Headers: []abi.Header{
			{Name: "Accept", Value: "text/html,application/xhtml+xml"},
			{Name: "Accept-Language", Value: "zh-CN,zh;q=0.9,en;q=0.8"},
			{Name: "User-Agent", Value: "Mozilla/5.0 (Android 14; Mobile)"},
		},
		User:      "u_8f3a2c91d4",
		RequestID: "5f2b9c0e7a1d4e38b6c0f912",
	}
}

// Response returns the sample response: a small HTML page.
func Response() abi.Response {
	return abi.Response{
		Status:  200,
		Headers: []abi.Header{{Name: "Content-Type", Value: "text/html; charset=utf-8"}},
		Body:    []byte(`<!doctype html><html><body><h1>Hello, u_8f3a2c91d4!</h1><p>Visited <strong>42</strong> times.</p></body></html>`),
	}
}

type jsonHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type jsonRequest struct {
	Method    string       `json:"method"`
	Path      string       `json:"path"`
	Query     string       `json:"query"`
	Headers   []jsonHeader `json:"headers"`
	User      string       `json:"user"`
	RequestID string       `json:"request_id"`
	Body      []byte       `json:"body"`
}

type jsonResponse struct {
	Status  int          `json:"status"`
	Headers []jsonHeader `json:"headers"`
	Body    []byte       `json:"body"`
}

func jsonHeaders(hs []abi.Header) []jsonHeader {
	out := make([]jsonHeader, len(hs))
	for i, h := range hs {
		out[i] = jsonHeader(h)
	}
	return out
}

var (
	binRequest  = func() []byte { r := Request(); return r.AppendTo(nil) }()
	binResponse = Response()
	jsonReq     = func() []byte {
		r := Request()
		b, err := json.Marshal(&jsonRequest{Method: r.Method, Path: r.Path, Query: r.Query, Headers: jsonHeaders(r.Headers),
			User: r.User, RequestID: r.RequestID, Body: r.Body})
		if err != nil {
			panic(err)
		}
		return b
	}()
	jsonResp = func() jsonResponse {
		r := Response()
		return jsonResponse{Status: r.Status, Headers: jsonHeaders(r.Headers), Body: r.Body}
	}()
)

// Sizes returns the encoded sample request's size in each encoding.
func Sizes() (binary, json int) { return len(binRequest), len(jsonReq) }

// Binary runs n rounds with package abi's codec and returns the bytes encoded.
func Binary(n int) (int, error) {
	total := 0
	for range n {
		var r abi.Request
		if err := r.Decode(binRequest); err != nil {
			return 0, err
		}
		if len(r.Headers) != 3 {
			return 0, fmt.Errorf("decoded %d headers, want 3", len(r.Headers))
		}
		total += len(r.AppendTo(nil))
		total += len(binResponse.AppendTo(nil))
	}
	return total, nil
}

// JSON runs n rounds with encoding/json and returns the bytes encoded.
func JSON(n int) (int, error) {
	total := 0
	for range n {
		var r jsonRequest
		if err := json.Unmarshal(jsonReq, &r); err != nil {
			return 0, err
		}
		if len(r.Headers) != 3 {
			return 0, fmt.Errorf("decoded %d headers, want 3", len(r.Headers))
		}
		b, err := json.Marshal(&r)
		if err != nil {
			return 0, err
		}
		total += len(b)
		if b, err = json.Marshal(&jsonResp); err != nil {
			return 0, err
		}
		total += len(b)
	}
	return total, nil
}
