// Package tlv parses and encodes EMV/PBOC BER-TLV (EMV Book 3 Annex B)
// strictly: tags of up to 3 bytes, definite lengths of up to 2 length bytes
// (0x81, 0x82), 0x00 padding between data objects and nothing else, and
// constructed objects parsed recursively to a bounded depth.
//
//	objs, err := tlv.Parse(icData)
//	cryptogram, ok := tlv.Find(objs, 0x9F26)
//	field55 := tlv.Encode(objs)
package tlv

import (
	"fmt"

	"github.com/jifu-open/jifu"
)

// Limits.
const (
	MaxTagBytes = 3
	MaxDepth    = 8
	MaxLen      = 0xFFFF
)

// TLV is one data object. A constructed object (tag's first byte has bit
// 0x20) has Children and a nil Value; a primitive object has a Value.
type TLV struct {
	Tag      uint32 // the tag's bytes, big-endian: 0x9F26
	Value    []byte
	Children []TLV
}

// Constructed reports whether tag denotes a constructed object.
func Constructed(tag uint32) bool {
	for tag > 0xFF {
		tag >>= 8
	}
	return tag&0x20 != 0
}

// TagString is the tag in upper-case hex ("9F26").
func TagString(tag uint32) string {
	switch {
	case tag > 0xFFFF:
		return fmt.Sprintf("%06X", tag)
	case tag > 0xFF:
		return fmt.Sprintf("%04X", tag)
	}
	return fmt.Sprintf("%02X", tag)
}

// Parse parses a sequence of data objects.
func Parse(b []byte) ([]TLV, error) { return parse(b, 0, 0) }

func parse(b []byte, depth, base int) ([]TLV, error) {
	if depth > MaxDepth {
		return nil, jifu.Errorf(jifu.CodeInvalid, "tlv: nesting deeper than %d", MaxDepth)
	}
	var out []TLV
	for i := 0; i < len(b); {
		if b[i] == 0x00 { // padding between objects
			i++
			continue
		}
		at := base + i
		tag, n, err := parseTag(b[i:], at)
		if err != nil {
			return nil, err
		}
		i += n
		l, n, err := parseLen(b[i:], at)
		if err != nil {
			return nil, err
		}
		i += n
		if l > len(b)-i {
			return nil, jifu.Errorf(jifu.CodeInvalid, "tlv: tag %s at offset %d: length %d runs past the end", TagString(tag), at, l)
		}
		v := b[i : i+l]
		obj := TLV{Tag: tag}
		if Constructed(tag) {
			if obj.Children, err = parse(v, depth+1, base+i); err != nil {
				return nil, err
			}
		} else {
			obj.Value = append([]byte(nil), v...)
		}
		out = append(out, obj)
		i += l
	}
	return out, nil
}

func parseTag(b []byte, at int) (uint32, int, error) {
	first := b[0]
	if first == 0xFF {
		return 0, 0, jifu.Errorf(jifu.CodeInvalid, "tlv: offset %d: 0xFF is not a tag (only 0x00 padding is allowed)", at)
	}
	tag := uint32(first)
	if first&0x1F != 0x1F {
		return tag, 1, nil
	}
	for n := 1; ; n++ {
		if n >= len(b) {
			return 0, 0, jifu.Errorf(jifu.CodeInvalid, "tlv: offset %d: tag runs past the end", at)
		}
		if n >= MaxTagBytes {
			return 0, 0, jifu.Errorf(jifu.CodeInvalid, "tlv: offset %d: tag longer than %d bytes", at, MaxTagBytes)
		}
		c := b[n]
		if n == 1 && c == 0x80 {
			return 0, 0, jifu.Errorf(jifu.CodeInvalid, "tlv: offset %d: tag has a leading zero subsequent byte", at)
		}
		tag = tag<<8 | uint32(c)
		if c&0x80 == 0 {
			return tag, n + 1, nil
		}
	}
}

func parseLen(b []byte, at int) (int, int, error) {
	if len(b) == 0 {
		return 0, 0, jifu.Errorf(jifu.CodeInvalid, "tlv: offset %d: missing length", at)
	}
	c := b[0]
	switch {
	case c < 0x80:
		return int(c), 1, nil
	case c == 0x81:
		if len(b) < 2 {
			return 0, 0, jifu.Errorf(jifu.CodeInvalid, "tlv: offset %d: length runs past the end", at)
		}
		if b[1] < 0x80 {
			return 0, 0, jifu.Errorf(jifu.CodeInvalid, "tlv: offset %d: length %d not in its shortest form", at, b[1])
		}
		return int(b[1]), 2, nil
	case c == 0x82:
		if len(b) < 3 {
			return 0, 0, jifu.Errorf(jifu.CodeInvalid, "tlv: offset %d: length runs past the end", at)
		}
		l := int(b[1])<<8 | int(b[2])
		if l < 0x100 {
			return 0, 0, jifu.Errorf(jifu.CodeInvalid, "tlv: offset %d: length %d not in its shortest form", at, l)
		}
		return l, 3, nil
	case c == 0x80:
		return 0, 0, jifu.Errorf(jifu.CodeInvalid, "tlv: offset %d: indefinite length is not allowed", at)
	}
	return 0, 0, jifu.Errorf(jifu.CodeInvalid, "tlv: offset %d: length form 0x%02X is not supported", at, c)
}

// Encode writes objects in the shortest length form, without padding.
func Encode(objs []TLV) []byte {
	var out []byte
	for _, o := range objs {
		out = appendOne(out, o)
	}
	return out
}

func appendOne(out []byte, o TLV) []byte {
	switch {
	case o.Tag > 0xFFFF:
		out = append(out, byte(o.Tag>>16), byte(o.Tag>>8), byte(o.Tag))
	case o.Tag > 0xFF:
		out = append(out, byte(o.Tag>>8), byte(o.Tag))
	default:
		out = append(out, byte(o.Tag))
	}
	v := o.Value
	if Constructed(o.Tag) {
		v = Encode(o.Children)
	}
	switch l := len(v); {
	case l < 0x80:
		out = append(out, byte(l))
	case l <= 0xFF:
		out = append(out, 0x81, byte(l))
	default:
		out = append(out, 0x82, byte(l>>8), byte(l))
	}
	return append(out, v...)
}

// Find returns the first object with tag, searching depth first.
func Find(objs []TLV, tag uint32) (TLV, bool) {
	for _, o := range objs {
		if o.Tag == tag {
			return o, true
		}
		if r, ok := Find(o.Children, tag); ok {
			return r, true
		}
	}
	return TLV{}, false
}
