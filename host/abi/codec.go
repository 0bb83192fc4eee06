package abi

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Version is the first byte of every encoded buffer.
const Version byte = 1

// Decoding limits. They bound the work a hostile buffer can cause; the host's
// per-app size limits are applied before decoding.
const (
	MaxHeaders   = 128
	MaxMethodLen = 16
)

// Header is one HTTP header field. Names keep the case they arrived with.
type Header struct{ Name, Value string }

// Request is what handle_http receives.
type Request struct {
	Method    string
	Path      string // the path below /apps/{slug}, always starting with "/"
	Query     string // raw query without '?'
	Headers   []Header
	User      string // the platform user the request acts for, "" if anonymous
	RequestID string
	Body      []byte
}

// Response is what handle_http returns.
type Response struct {
	Status  int
	Headers []Header
	Body    []byte
}

// Event is what on_event receives: callbacks, payment results, batch ticks.
type Event struct {
	Type    string
	ID      string
	User    string
	Payload []byte // JSON by convention of each event type
}

// EventResult is what on_event returns. Status 0 acknowledges the event; any
// other value asks the host to redeliver it later, Message saying why.
type EventResult struct {
	Status  int
	Message string
}

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("abi: malformed buffer")

func appendString(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendBytes(b []byte, p []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
	return append(b, p...)
}

func appendHeaders(b []byte, hs []Header) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(hs)))
	for _, h := range hs {
		b = appendString(b, h.Name)
		b = appendString(b, h.Value)
	}
	return b
}

// AppendTo appends the encoding of r to b.
func (r *Request) AppendTo(b []byte) []byte {
	b = append(b, Version)
	b = appendString(b, r.Method)
	b = appendString(b, r.Path)
	b = appendString(b, r.Query)
	b = appendHeaders(b, r.Headers)
	b = appendString(b, r.User)
	b = appendString(b, r.RequestID)
	return appendBytes(b, r.Body)
}

// AppendTo appends the encoding of r to b.
func (r *Response) AppendTo(b []byte) []byte {
	b = append(b, Version)
	b = binary.LittleEndian.AppendUint16(b, uint16(r.Status))
	b = appendHeaders(b, r.Headers)
	return appendBytes(b, r.Body)
}

// AppendTo appends the encoding of e to b.
func (e *Event) AppendTo(b []byte) []byte {
	b = append(b, Version)
	b = appendString(b, e.Type)
	b = appendString(b, e.ID)
	b = appendString(b, e.User)
	return appendBytes(b, e.Payload)
}

// AppendTo appends the encoding of r to b.
func (r *EventResult) AppendTo(b []byte) []byte {
	b = append(b, Version)
	b = binary.LittleEndian.AppendUint16(b, uint16(r.Status))
	return appendString(b, r.Message)
}

// decoder reads fields from a buffer and remembers the first error.
type decoder struct {
	b     []byte
	off   int
	field string
	err   error
}

func (d *decoder) fail(field, format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at byte %d: %s", ErrMalformed, field, d.off, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) version() {
	if len(d.b) == 0 {
		d.fail("version", "empty buffer")
		return
	}
	if d.b[0] != Version {
		d.fail("version", "version %d, want %d", d.b[0], Version)
		return
	}
	d.off = 1
}

func (d *decoder) u16(field string) int {
	if d.err != nil {
		return 0
	}
	if len(d.b)-d.off < 2 {
		d.fail(field, "truncated")
		return 0
	}
	v := binary.LittleEndian.Uint16(d.b[d.off:])
	d.off += 2
	return int(v)
}

func (d *decoder) u32(field string) int {
	if d.err != nil {
		return 0
	}
	if len(d.b)-d.off < 4 {
		d.fail(field, "truncated")
		return 0
	}
	v := binary.LittleEndian.Uint32(d.b[d.off:])
	d.off += 4
	return int(v)
}

// raw returns a length-prefixed field as a sub-slice of the buffer.
func (d *decoder) raw(field string) []byte {
	n := d.u32(field)
	if d.err != nil {
		return nil
	}
	if n > len(d.b)-d.off {
		d.fail(field, "length %d exceeds the %d bytes left", n, len(d.b)-d.off)
		return nil
	}
	p := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return p
}

func (d *decoder) str(field string) string { return string(d.raw(field)) }

// bytes returns a copy of a length-prefixed field (nil when empty), so the
// result does not alias guest memory.
func (d *decoder) bytes(field string) []byte {
	p := d.raw(field)
	if len(p) == 0 {
		return nil
	}
	return append([]byte(nil), p...)
}

func (d *decoder) headers() []Header {
	n := d.u32("header_count")
	if d.err != nil || n == 0 {
		return nil
	}
	if n > MaxHeaders {
		d.fail("header_count", "%d headers, at most %d", n, MaxHeaders)
		return nil
	}
	hs := make([]Header, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		name := d.str("header_name")
		value := d.str("header_value")
		if d.err == nil && name == "" {
			d.fail("header_name", "empty header name")
		}
		hs = append(hs, Header{Name: name, Value: value})
	}
	return hs
}

func (d *decoder) end() error {
	if d.err == nil && d.off != len(d.b) {
		d.fail("end", "%d trailing bytes", len(d.b)-d.off)
	}
	return d.err
}

func validMethod(m string) bool {
	if m == "" || len(m) > MaxMethodLen {
		return false
	}
	for i := 0; i < len(m); i++ {
		if c := m[i]; c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// Decode parses an encoded Request. Strings and the body are copied out of b.
func (r *Request) Decode(b []byte) error {
	d := decoder{b: b}
	d.version()
	r.Method = d.str("method")
	if d.err == nil && !validMethod(r.Method) {
		d.fail("method", "invalid method %q", r.Method)
	}
	r.Path = d.str("path")
	if d.err == nil && (r.Path == "" || r.Path[0] != '/') {
		d.fail("path", "path %q must start with /", r.Path)
	}
	r.Query = d.str("query")
	r.Headers = d.headers()
	r.User = d.str("user")
	r.RequestID = d.str("request_id")
	r.Body = d.bytes("body")
	return d.end()
}

// Decode parses an encoded Response.
func (r *Response) Decode(b []byte) error {
	d := decoder{b: b}
	d.version()
	r.Status = d.u16("status")
	if d.err == nil && (r.Status < 100 || r.Status > 599) {
		d.fail("status", "status %d outside 100..599", r.Status)
	}
	r.Headers = d.headers()
	r.Body = d.bytes("body")
	return d.end()
}

// Decode parses an encoded Event.
func (e *Event) Decode(b []byte) error {
	d := decoder{b: b}
	d.version()
	e.Type = d.str("type")
	if d.err == nil && e.Type == "" {
		d.fail("type", "empty event type")
	}
	e.ID = d.str("id")
	e.User = d.str("user")
	e.Payload = d.bytes("payload")
	return d.end()
}

// Decode parses an encoded EventResult.
func (r *EventResult) Decode(b []byte) error {
	d := decoder{b: b}
	d.version()
	r.Status = d.u16("status")
	r.Message = d.str("message")
	return d.end()
}

// KVEntry is one row of a kv_scan result.
type KVEntry struct {
	Key, Value []byte
	Version    int64
}

// AppendKVScan encodes a kv_scan result: u8 version, u8 more, u32 count, then
// per entry bytes key, bytes value, u64 version.
func AppendKVScan(b []byte, entries []KVEntry, more bool) []byte {
	b = append(b, Version)
	if more {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(entries)))
	for _, e := range entries {
		b = appendBytes(b, e.Key)
		b = appendBytes(b, e.Value)
		b = binary.LittleEndian.AppendUint64(b, uint64(e.Version))
	}
	return b
}

// DecodeKVScan parses a kv_scan result.
func DecodeKVScan(b []byte) (entries []KVEntry, more bool, err error) {
	d := decoder{b: b}
	d.version()
	if d.err == nil {
		if len(b) < 2 || b[1] > 1 {
			d.fail("more", "bad flag")
		} else {
			more = b[1] == 1
			d.off = 2
		}
	}
	n := d.u32("count")
	if d.err == nil && n > (len(b)-d.off)/16 {
		d.fail("count", "%d entries cannot fit in %d bytes", n, len(b)-d.off)
	}
	for i := 0; i < n && d.err == nil; i++ {
		var e KVEntry
		e.Key = d.bytes("key")
		e.Value = d.bytes("value")
		if d.err == nil {
			if len(b)-d.off < 8 {
				d.fail("version", "truncated")
				break
			}
			e.Version = int64(binary.LittleEndian.Uint64(b[d.off:]))
			d.off += 8
		}
		entries = append(entries, e)
	}
	return entries, more, d.end()
}

// AppendKVValue encodes a kv_get result: u64 version, then the value bytes to
// the end of the buffer.
func AppendKVValue(b []byte, version int64, value []byte) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(version))
	return append(b, value...)
}

// DecodeKVValue parses a kv_get result; value aliases b.
func DecodeKVValue(b []byte) (version int64, value []byte, err error) {
	if len(b) < 8 {
		return 0, nil, fmt.Errorf("%w: kv value shorter than its 8-byte version", ErrMalformed)
	}
	return int64(binary.LittleEndian.Uint64(b)), b[8:], nil
}
