package marketplace

import (
	"bytes"
	"errors"
	"slices"
	"sort"
)

var wasmMagic = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

// IsWasm reports whether data starts with the WebAssembly binary header
// (magic and version 1).
func IsWasm(data []byte) bool { return bytes.HasPrefix(data, wasmMagic) }

var errWasmFormat = errors.New("malformed WebAssembly binary")

// ModuleImports lists a module's imports as "module.name" (functions) or
// "module.name:kind" (tables, memories, globals, tags), sorted and each once,
// by reading only the import section of the binary. It is what the review
// diff shows;
// the host's validation decides whether the module may run.
func ModuleImports(data []byte) ([]string, error) {
	if !IsWasm(data) {
		return nil, errWasmFormat
	}
	r := wasmReader{b: data[len(wasmMagic):]}
	var out []string
	for len(r.b) > 0 {
		id, ok := r.byte()
		if !ok {
			return nil, errWasmFormat
		}
		size, ok := r.u32()
		if !ok || uint64(size) > uint64(len(r.b)) {
			return nil, errWasmFormat
		}
		body := r.b[:size]
		r.b = r.b[size:]
		if id != 2 { // not the import section
			continue
		}
		s := wasmReader{b: body}
		n, ok := s.u32()
		if !ok || uint64(n) > uint64(len(body)) {
			return nil, errWasmFormat
		}
		for range n {
			mod, ok1 := s.name()
			name, ok2 := s.name()
			kind, ok3 := s.byte()
			if !ok1 || !ok2 || !ok3 {
				return nil, errWasmFormat
			}
			entry := mod + "." + name
			switch kind {
			case 0x00: // function: type index
				if _, ok := s.u32(); !ok {
					return nil, errWasmFormat
				}
			case 0x01: // table: reftype, limits
				if _, ok := s.byte(); !ok || !s.limits() {
					return nil, errWasmFormat
				}
				entry += ":table"
			case 0x02: // memory: limits
				if !s.limits() {
					return nil, errWasmFormat
				}
				entry += ":memory"
			case 0x03: // global: valtype, mutability
				if _, ok := s.byte(); !ok {
					return nil, errWasmFormat
				}
				if _, ok := s.byte(); !ok {
					return nil, errWasmFormat
				}
				entry += ":global"
			case 0x04: // tag: attribute, type index
				if _, ok := s.byte(); !ok {
					return nil, errWasmFormat
				}
				if _, ok := s.u32(); !ok {
					return nil, errWasmFormat
				}
				entry += ":tag"
			default:
				return nil, errWasmFormat
			}
			out = append(out, entry)
		}
	}
	sort.Strings(out)
	// A module may import one function more than once (Go's wasip1 runtime
	// imports fd_write under two names of its own): it is one capability.
	return slices.Compact(out), nil
}

type wasmReader struct{ b []byte }

func (r *wasmReader) byte() (byte, bool) {
	if len(r.b) == 0 {
		return 0, false
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c, true
}

// u32 reads an unsigned LEB128 of at most 5 bytes.
func (r *wasmReader) u32() (uint32, bool) {
	var v uint32
	for i := 0; i < 5; i++ {
		c, ok := r.byte()
		if !ok {
			return 0, false
		}
		v |= uint32(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if i == 4 && c > 0x0f {
				return 0, false
			}
			return v, true
		}
	}
	return 0, false
}

func (r *wasmReader) name() (string, bool) {
	n, ok := r.u32()
	if !ok || uint64(n) > uint64(len(r.b)) {
		return "", false
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s, true
}

// limits reads a limits descriptor: flags, min, and max when flagged.
func (r *wasmReader) limits() bool {
	flags, ok := r.byte()
	if !ok {
		return false
	}
	if _, ok := r.u32(); !ok {
		return false
	}
	if flags&0x01 != 0 {
		if _, ok := r.u32(); !ok {
			return false
		}
	}
	return true
}
