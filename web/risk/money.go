package risk

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay"
)

// yuanRE is the one accepted way to write an amount: digits, optionally a
// point and one or two more digits. No sign, exponent, grouping or unit.
var yuanRE = regexp.MustCompile(`^[0-9]{1,13}(\.[0-9]{1,2})?$`)

// ParseYuan reads an amount entered in yuan (元) and returns it in fen.
// The rule: at most two digits after the point, as written ("12.5" and
// "12.50" are 1250 fen; "12.505" is refused, never rounded), no sign, no
// thousands separators, at most cardpay.MaxRiskAmount fen. Surrounding
// spaces are ignored.
func ParseYuan(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if !yuanRE.MatchString(s) {
		if strings.Contains(s, ".") && len(s)-strings.IndexByte(s, '.')-1 > 2 {
			return 0, jifu.Errorf(jifu.CodeInvalid, "at most two decimals (fen): %q", clip(s))
		}
		return 0, jifu.Errorf(jifu.CodeInvalid, "write an amount in yuan such as 50000 or 1234.56, not %q", clip(s))
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return 0, jifu.Errorf(jifu.CodeInvalid, "not an amount: %q", clip(s))
	}
	fen := d.Shift(2)
	if !fen.IsInteger() || fen.GreaterThan(decimal.NewFromInt(cardpay.MaxRiskAmount)) {
		return 0, jifu.Errorf(jifu.CodeInvalid, "at most %s yuan", FormatYuan(cardpay.MaxRiskAmount))
	}
	return fen.IntPart(), nil
}

func clip(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}

// InputYuan writes fen as the form's inputs show it: "50000.00".
func InputYuan(fen int64) string {
	return decimal.New(fen, -2).StringFixed(2)
}

// FormatYuan writes fen for reading, with thousands grouped: "50,000.00".
func FormatYuan(fen int64) string {
	s := InputYuan(fen)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	intPart, frac := s[:len(s)-3], s[len(s)-3:]
	var b strings.Builder
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String() + frac
	}
	return b.String() + frac
}

// FormatWan writes fen in 万元 as the seed does ("5 万", "0.3 万").
func FormatWan(fen int64) string {
	return decimal.New(fen, -6).String() + " 万"
}

// fenText formats a history value held as fen digits; other text as is.
func fenText(v string, fen bool) string {
	if !fen {
		return v
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return v
	}
	return FormatYuan(n)
}
