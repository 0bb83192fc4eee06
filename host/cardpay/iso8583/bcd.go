package iso8583

import (
	"fmt"
	"strconv"
)

// bcd packs decimal digits two to a byte, without the table the library's
// BCD codec builds on every call (it dominated the packing profile).
// left selects the alignment of an odd number of digits: left-aligned pads
// a trailing 0 nibble, right-aligned a leading one.
type bcd struct{ left bool }

func (e bcd) Encode(src []byte) ([]byte, error) {
	n := (len(src) + 1) / 2
	out := make([]byte, n)
	pad := len(src)%2 == 1 && !e.left
	for i, c := range src {
		if c < '0' || c > '9' {
			return nil, fmt.Errorf("non-digit in a numeric field")
		}
		j := i
		if pad {
			j++
		}
		out[j/2] |= (c - '0') << (4 * (1 - j%2))
	}
	return out, nil
}

func (e bcd) Decode(src []byte, length int) ([]byte, int, error) {
	if length < 0 {
		return nil, 0, fmt.Errorf("negative length")
	}
	n := (length + 1) / 2
	if len(src) < n {
		return nil, 0, fmt.Errorf("not enough data: want %d bytes, have %d", n, len(src))
	}
	out := make([]byte, length)
	skip := 0
	if length%2 == 1 && !e.left {
		skip = 1
	}
	for i := range out {
		j := i + skip
		d := src[j/2] >> (4 * (1 - j%2)) & 0xF
		if d > 9 {
			return nil, 0, fmt.Errorf("nibble over 9 in a numeric field")
		}
		out[i] = '0' + d
	}
	return out, n, nil
}

// bcdLen is a variable-length prefix of digits BCD digits (2: one byte,
// 3: two bytes, right-aligned).
type bcdLen struct{ digits int }

func (p bcdLen) EncodeLength(maxLen, dataLen int) ([]byte, error) {
	if dataLen > maxLen {
		return nil, fmt.Errorf("field length %d over the maximum %d", dataLen, maxLen)
	}
	s := strconv.Itoa(dataLen)
	if len(s) > p.digits {
		return nil, fmt.Errorf("length %d has more than %d digits", dataLen, p.digits)
	}
	for len(s) < p.digits {
		s = "0" + s
	}
	return bcd{}.Encode([]byte(s))
}

func (p bcdLen) DecodeLength(maxLen int, data []byte) (int, int, error) {
	d, n, err := bcd{}.Decode(data, p.digits)
	if err != nil {
		return 0, 0, err
	}
	l, _ := strconv.Atoi(string(d))
	if l > maxLen {
		return 0, 0, fmt.Errorf("data length %d over the maximum %d", l, maxLen)
	}
	return l, n, nil
}

func (p bcdLen) Inspect() string { return fmt.Sprintf("BCD.L%d", p.digits) }

// bcdFixed is the fixed-length "prefix" (none).
type bcdFixedLen struct{}

func (bcdFixedLen) EncodeLength(fixLen, dataLen int) ([]byte, error) {
	if dataLen != fixLen {
		return nil, fmt.Errorf("field length %d, want %d", dataLen, fixLen)
	}
	return nil, nil
}

func (bcdFixedLen) DecodeLength(fixLen int, _ []byte) (int, int, error) { return fixLen, 0, nil }

func (bcdFixedLen) Inspect() string { return "BCD.Fixed" }
