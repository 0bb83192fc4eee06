package ledger

import (
	"strconv"
	"strings"
)

// Yuan formats an amount in fen as yuan for people: thousands grouped with
// commas, always two decimals, the sign in front: Yuan(123456) is
// "1,234.56", Yuan(-5) is "-0.05". Every int64 formats (math.MinInt64
// included) and ParseYuan reads every result back.
func Yuan(fen int64) string {
	neg := fen < 0
	u := uint64(fen)
	if neg {
		u = -u // two's complement: right for MinInt64 too
	}
	whole, cents := u/100, u%100
	digits := strconv.FormatUint(whole, 10)
	var b strings.Builder
	b.Grow(len(digits)*4/3 + 5)
	if neg {
		b.WriteByte('-')
	}
	for i := 0; i < len(digits); i++ {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteByte(digits[i])
	}
	b.WriteByte('.')
	b.WriteByte(byte('0' + cents/10))
	b.WriteByte(byte('0' + cents%10))
	return b.String()
}

// ParseYuan reads an amount of yuan into fen: an optional '-', digits
// (optionally grouped by commas in threes, as Yuan writes them), and
// optionally '.' with one or two decimals: "12", "-0.5", "1,234.56". Any
// other form, or an amount outside int64 fen, is ErrInvalid.
func ParseYuan(s string) (int64, error) {
	bad := func() (int64, error) {
		return 0, fail(ErrInvalid, "amount %q is not yuan with at most two decimals", clip(s))
	}
	rest := s
	neg := strings.HasPrefix(rest, "-")
	if neg {
		rest = rest[1:]
	}
	whole, frac, hasDot := strings.Cut(rest, ".")
	if whole == "" || (hasDot && (len(frac) < 1 || len(frac) > 2)) {
		return bad()
	}
	if strings.Contains(whole, ",") {
		groups := strings.Split(whole, ",")
		if len(groups[0]) < 1 || len(groups[0]) > 3 || groups[0][0] == '0' {
			return bad()
		}
		for _, g := range groups[1:] {
			if len(g) != 3 {
				return bad()
			}
		}
		whole = strings.Join(groups, "")
	}
	var u uint64
	for _, c := range []byte(whole) {
		if c < '0' || c > '9' {
			return bad()
		}
		if u > (1<<63)/10 {
			return bad()
		}
		u = u*10 + uint64(c-'0')
	}
	cents := uint64(0)
	for i := 0; i < 2; i++ {
		cents *= 10
		if i < len(frac) {
			c := frac[i]
			if c < '0' || c > '9' {
				return bad()
			}
			cents += uint64(c - '0')
		}
	}
	if u > (1<<63)/100 {
		return bad()
	}
	u = u*100 + cents
	switch {
	case neg && u <= 1<<63:
		return int64(-u), nil // -(1<<63) wraps to MinInt64, as it should
	case !neg && u < 1<<63:
		return int64(u), nil
	}
	return bad()
}

// clip shortens untrusted input for an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
