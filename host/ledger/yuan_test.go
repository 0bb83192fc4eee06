package ledger

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestYuan(t *testing.T) {
	cases := []struct {
		fen  int64
		want string
	}{
		{0, "0.00"},
		{1, "0.01"},
		{-1, "-0.01"},
		{-5, "-0.05"},
		{99, "0.99"},
		{-100, "-1.00"},
		{123456, "1,234.56"},
		{-123456, "-1,234.56"},
		{100000, "1,000.00"},
		{99999, "999.99"},
		{-100000000, "-1,000,000.00"},
		{math.MaxInt64, "92,233,720,368,547,758.07"},
		{math.MinInt64, "-92,233,720,368,547,758.08"},
	}
	for _, tc := range cases {
		if got := Yuan(tc.fen); got != tc.want {
			t.Errorf("Yuan(%d) = %q, want %q", tc.fen, got, tc.want)
		}
		back, err := ParseYuan(tc.want)
		if err != nil || back != tc.fen {
			t.Errorf("ParseYuan(%q) = %d, %v; want %d", tc.want, back, err, tc.fen)
		}
	}
}

func TestParseYuan(t *testing.T) {
	good := map[string]int64{"12": 1200, "12.3": 1230, "12.34": 1234, "-0.5": -50, "0": 0, "1,000": 100000, "007": 700}
	for s, want := range good {
		if got, err := ParseYuan(s); err != nil || got != want {
			t.Errorf("ParseYuan(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "-", ".5", "1.", "1.234", "1,00", "01,000", "1,0000", ",100", "1e3", "+1", "1 000", "¥1",
		"92233720368547758.08", "-92233720368547758.09", "99999999999999999999", "1.-5", "--1"} {
		if got, err := ParseYuan(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseYuan(%q) = %d, %v; want invalid", s, got, err)
		}
	}
}

func FuzzParseYuan(f *testing.F) {
	for _, s := range []string{"0", "1,234.56", "-0.05", "92,233,720,368,547,758.07", "1.", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseYuan(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseYuan(%q): %v is not ErrInvalid", s, err)
			}
			return
		}
		if back, err := ParseYuan(Yuan(v)); err != nil || back != v {
			t.Fatalf("%q -> %d -> %q -> %d, %v", s, v, Yuan(v), back, err)
		}
	})
}

func FuzzYuan(f *testing.F) {
	for _, v := range []int64{0, 1, -1, 100, math.MaxInt64, math.MinInt64} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v int64) {
		if back, err := ParseYuan(Yuan(v)); err != nil || back != v {
			t.Fatalf("%d -> %q -> %d, %v", v, Yuan(v), back, err)
		}
	})
}

// FuzzTransferDigest: validation never panics, and the idempotency digest
// depends on content only (not on map order) and changes with the amount.
func FuzzTransferDigest(f *testing.F) {
	f.Add("k", int64(1), int64(2), int64(100), "payment", "order", "o-1", false, int64(0))
	f.Add("", int64(0), int64(0), int64(0), "", "", "", true, int64(-1))
	f.Add("h", int64(3), int64(4), int64(5), "freeze", "a\x00", "b", true, int64(time.Minute))
	f.Fuzz(func(t *testing.T, key string, debit, credit, amount int64, code, mk, mv string, pending bool, timeout int64) {
		tr := Transfer{ID: key, Debit: debit, Credit: credit, Amount: amount, Code: code,
			Metadata: map[string]string{"m" + mk: mv, "z": "1", "a": "2"}, Pending: pending, Timeout: time.Duration(timeout)}
		if err := tr.Validate(); err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate: %v is not ErrInvalid", err)
			}
			return
		}
		d1 := digests([]Transfer{tr})[0]
		c := tr
		c.Metadata = map[string]string{"a": "2", "z": "1", "m" + mk: mv}
		if d2 := digests([]Transfer{c})[0]; string(d1) != string(d2) {
			t.Fatal("digest depends on map order")
		}
		c.Amount++
		if d3 := digests([]Transfer{c})[0]; string(d1) == string(d3) {
			t.Fatal("digest ignores the amount")
		}
	})
}
