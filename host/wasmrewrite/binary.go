package wasmrewrite

import "fmt"

// reader decodes the WebAssembly binary format from a byte slice. Every read
// is bounds-checked; the first failure is returned as an error wrapping
// ErrMalformed and later reads return zero values, so callers check err once
// per item.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: at byte %d: %s", ErrMalformed, r.off, fmt.Sprintf(format, args...))
	}
	r.off = len(r.b)
}

func (r *reader) remaining() int { return len(r.b) - r.off }

func (r *reader) byte() byte {
	if r.err != nil || r.off >= len(r.b) {
		r.fail("unexpected end")
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil || n < 0 || n > r.remaining() {
		r.fail("%d bytes past the end", n)
		return nil
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p
}

// uleb reads an unsigned LEB128 of at most bits bits.
func (r *reader) uleb(bits uint) uint64 {
	var v uint64
	var shift uint
	for i := 0; ; i++ {
		if i >= int((bits+6)/7) {
			r.fail("LEB128 longer than %d bits", bits)
			return 0
		}
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			if bits < 64 && v>>bits != 0 {
				r.fail("LEB128 value over %d bits", bits)
				return 0
			}
			return v
		}
		shift += 7
	}
}

// sleb skips a signed LEB128 of at most bits bits and returns its raw bytes.
func (r *reader) sleb(bits uint) []byte {
	start := r.off
	for i := 0; ; i++ {
		if i >= int((bits+6)/7) {
			r.fail("signed LEB128 longer than %d bits", bits)
			return nil
		}
		c := r.byte()
		if r.err != nil {
			return nil
		}
		if c&0x80 == 0 {
			return r.b[start:r.off]
		}
	}
}

func (r *reader) u32() uint32 { return uint32(r.uleb(32)) }

// count reads a vector length and checks it against the bytes left, each
// element taking at least one byte: a hostile count cannot make the caller
// loop or allocate beyond the input's size.
func (r *reader) count() int {
	n := r.u32()
	if r.err == nil && uint64(n) > uint64(r.remaining()) {
		r.fail("vector of %d elements in %d bytes", n, r.remaining())
		return 0
	}
	return int(n)
}

// name reads a length-prefixed byte string.
func (r *reader) name() []byte {
	n := r.u32()
	return r.bytes(int(n))
}

// writer encodes the WebAssembly binary format.
type writer struct{ b []byte }

func (w *writer) byte(c byte)   { w.b = append(w.b, c) }
func (w *writer) raw(p []byte)  { w.b = append(w.b, p...) }
func (w *writer) u32(v uint32)  { w.b = appendULEB(w.b, uint64(v)) }
func (w *writer) name(p []byte) { w.u32(uint32(len(p))); w.raw(p) }
func (w *writer) section(id byte, content []byte) {
	w.byte(id)
	w.u32(uint32(len(content)))
	w.raw(content)
}

func appendULEB(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func appendSLEB(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// Value types of the core specification (no GC proposal).
const (
	typeI32       = 0x7f
	typeI64       = 0x7e
	typeF32       = 0x7d
	typeF64       = 0x7c
	typeV128      = 0x7b
	typeFuncref   = 0x70
	typeExternref = 0x6f
	blockEmpty    = 0x40
	funcForm      = 0x60
)

func isValType(c byte) bool {
	switch c {
	case typeI32, typeI64, typeF32, typeF64, typeV128, typeFuncref, typeExternref:
		return true
	}
	return false
}

func (r *reader) valType() byte {
	c := r.byte()
	if r.err == nil && !isValType(c) {
		r.fail("unknown value type %#x", c)
	}
	return c
}

// limits skips table or memory limits (any flags the threads and memory64
// proposals define; the compiler that runs the result decides what it
// supports).
func (r *reader) limits() (minimum uint64) {
	flags := r.byte()
	if flags > 7 {
		r.fail("unknown limits flags %#x", flags)
		return 0
	}
	minimum = r.uleb(64)
	if flags&1 != 0 {
		r.uleb(64)
	}
	return minimum
}
