package sdk

import (
	"encoding/json"
	"net/url"
	"strings"

	"github.com/jifu-open/jifu/host/abi"
)

// Header is one HTTP header field.
type Header = abi.Header

// Request is an HTTP request routed to the app: /apps/{slug}/rest arrives
// with Path "/rest".
type Request struct {
	Method    string
	Path      string
	RawQuery  string
	Headers   []Header
	User      string // the platform user id, "" when anonymous
	RequestID string
	Body      []byte
}

// Header returns the first value of the named header (case-insensitive).
func (r *Request) Header(name string) string {
	for _, h := range r.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

// Query returns the first value of a query parameter.
func (r *Request) Query(key string) string {
	v, _ := url.ParseQuery(r.RawQuery)
	return v.Get(key)
}

// Form parses a url-encoded request body.
func (r *Request) Form() (url.Values, error) { return url.ParseQuery(string(r.Body)) }

// Response is the app's answer.
type Response struct {
	Status  int
	Headers []Header
	Body    []byte
}

// SetHeader adds a header and returns r, for chaining.
func (r *Response) SetHeader(name, value string) *Response {
	r.Headers = append(r.Headers, Header{Name: name, Value: value})
	return r
}

// Text returns a text/plain response.
func Text(status int, s string) *Response {
	return &Response{Status: status, Headers: []Header{{Name: "Content-Type", Value: "text/plain; charset=utf-8"}}, Body: []byte(s)}
}

// HTML returns a text/html response.
func HTML(status int, s string) *Response {
	return &Response{Status: status, Headers: []Header{{Name: "Content-Type", Value: "text/html; charset=utf-8"}}, Body: []byte(s)}
}

// JSON returns an application/json response of v (500 if v cannot be encoded).
func JSON(status int, v any) *Response {
	b, err := json.Marshal(v)
	if err != nil {
		return Text(500, "encoding response: "+err.Error())
	}
	return &Response{Status: status, Headers: []Header{{Name: "Content-Type", Value: "application/json"}}, Body: b}
}

// Event is a platform event delivered to on_event.
type Event struct {
	Type    string
	ID      string
	User    string
	Payload []byte
}

var (
	httpHandler  func(*Request) *Response
	eventHandler func(*Event) error
)

// HandleHTTP registers the app's HTTP handler. Call it from init.
func HandleHTTP(h func(*Request) *Response) { httpHandler = h }

// OnEvent registers the app's event handler. Returning an error asks the
// platform to redeliver the event later. Call it from init.
func OnEvent(h func(*Event) error) { eventHandler = h }

// serveHTTP decodes a request, runs the handler and appends the encoded
// response to out.
func serveHTTP(in, out []byte) []byte {
	var req abi.Request
	if err := req.Decode(in); err != nil {
		return (&abi.Response{Status: 400, Body: []byte(err.Error())}).AppendTo(out)
	}
	if httpHandler == nil {
		return (&abi.Response{Status: 404, Body: []byte("this app has no HTTP handler")}).AppendTo(out)
	}
	resp := httpHandler(&Request{
		Method: req.Method, Path: req.Path, RawQuery: req.Query, Headers: req.Headers,
		User: req.User, RequestID: req.RequestID, Body: req.Body,
	})
	if resp == nil {
		resp = &Response{Status: 204}
	}
	if resp.Status == 0 {
		resp.Status = 200
	}
	return (&abi.Response{Status: resp.Status, Headers: resp.Headers, Body: resp.Body}).AppendTo(out)
}

// serveEvent decodes an event, runs the handler and appends the encoded
// result to out.
func serveEvent(in, out []byte) []byte {
	var ev abi.Event
	if err := ev.Decode(in); err != nil {
		return (&abi.EventResult{Status: 2, Message: err.Error()}).AppendTo(out)
	}
	if eventHandler == nil {
		return (&abi.EventResult{Status: 3, Message: "this app has no event handler"}).AppendTo(out)
	}
	if err := eventHandler(&Event{Type: ev.Type, ID: ev.ID, User: ev.User, Payload: ev.Payload}); err != nil {
		return (&abi.EventResult{Status: 1, Message: err.Error()}).AppendTo(out)
	}
	return (&abi.EventResult{}).AppendTo(out)
}
