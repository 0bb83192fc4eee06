package risk_test

import (
	"testing"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/web/risk"
)

func TestParseYuan(t *testing.T) {
	tests := []struct {
		in   string
		fen  int64
		fail bool
	}{
		{"0", 0, false},
		{"12.5", 1250, false},
		{"12.50", 1250, false},
		{"50000.00", 5_000_000, false},
		{" 1 ", 100, false},
		{"0.01", 1, false},
		{"10000000000", cardpay.MaxRiskAmount, false},
		{"10000000000.01", 0, true},
		{"9999999999999", 0, true},
		{"12.505", 0, true},
		{"12.500", 0, true},
		{"-1", 0, true},
		{"+1", 0, true},
		{"1e3", 0, true},
		{"1,000", 0, true},
		{"", 0, true},
		{".", 0, true},
		{"1.", 0, true},
		{".5", 0, true},
		{"０", 0, true},
		{"5万", 0, true},
		{"NaN", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			fen, err := risk.ParseYuan(tt.in)
			if tt.fail {
				if jifu.ErrorCode(err) != jifu.CodeInvalid {
					t.Fatalf("ParseYuan(%q) = %d, %v; want invalid", tt.in, fen, err)
				}
				return
			}
			if err != nil || fen != tt.fen {
				t.Fatalf("ParseYuan(%q) = %d, %v; want %d", tt.in, fen, err, tt.fen)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	for fen, want := range map[int64][3]string{
		0:             {"0.00", "0.00", "0 万"},
		5:             {"0.05", "0.05", "0.000005 万"},
		300_000:       {"3000.00", "3,000.00", "0.3 万"},
		123_456_789:   {"1234567.89", "1,234,567.89", "123.456789 万"},
		10_000_000:    {"100000.00", "100,000.00", "10 万"},
		-100:          {"-1.00", "-1.00", "-0.0001 万"},
		-123_456_789:  {"-1234567.89", "-1,234,567.89", "-123.456789 万"},
		1_000_000_000: {"10000000.00", "10,000,000.00", "1000 万"},
	} {
		if got := [3]string{risk.InputYuan(fen), risk.FormatYuan(fen), risk.FormatWan(fen)}; got != want {
			t.Errorf("%d: %q, want %q", fen, got, want)
		}
	}
}

// FuzzParseYuan: whatever is typed, an accepted amount is in range and
// reads back the same from how the form shows it; anything else is
// refused with invalid.
func FuzzParseYuan(f *testing.F) {
	for _, s := range []string{"0", "12.5", "50000.00", "12.505", "-1", "1e3", "1,000", " 7 ", "10000000000.01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fen, err := risk.ParseYuan(s)
		if err != nil {
			if jifu.ErrorCode(err) != jifu.CodeInvalid {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		if fen < 0 || fen > cardpay.MaxRiskAmount {
			t.Fatalf("%q = %d fen: out of range", s, fen)
		}
		back, err := risk.ParseYuan(risk.InputYuan(fen))
		if err != nil || back != fen {
			t.Fatalf("%q = %d fen, shown %q, read back %d %v", s, fen, risk.InputYuan(fen), back, err)
		}
	})
}
