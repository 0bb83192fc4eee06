package marketplace_test

import (
	"errors"
	"hash/fnv"
	"testing"
	"time"

	"github.com/jifu-open/jifu/marketplace"
)

var today = time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)

func TestCheckIDNumber(t *testing.T) {
	tests := []struct {
		name, id, want string
		err            error
	}{
		{"standard example, X check", "11010519491231002X", "11010519491231002X", nil},
		{"lower-case x normalised", "11010519491231002x", "11010519491231002X", nil},
		{"digit check", "440524198001010013", "440524198001010013", nil},
		{"another", "320106199203152346", "320106199203152346", nil},
		{"before 1900", "440524188001010014", "", marketplace.ErrIDBirth},
		{"wrong check digit", "110105194912310021", "", marketplace.ErrIDChecksum},
		{"one digit changed", "11010519491231003X", "", marketplace.ErrIDChecksum},
		{"too short", "11010519491231002", "", marketplace.ErrIDLength},
		{"too long", "11010519491231002X1", "", marketplace.ErrIDLength},
		{"letter inside", "1101051949123A002X", "", marketplace.ErrIDDigits},
		{"bad last char", "11010519491231002Y", "", marketplace.ErrIDDigits},
		{"no such date", "110105194902300021", "", marketplace.ErrIDBirth},
		{"born in the future", "110105203001010011", "", marketplace.ErrIDBirth},
		{"unknown province", "990105194912310021", "", marketplace.ErrIDRegion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := marketplace.CheckIDNumber(tt.id, today)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Fatalf("CheckIDNumber(%q) = %q, %v; want %q, %v", tt.id, got, err, tt.want, tt.err)
			}
		})
	}
}

// TestIDCheckCharTable pins the MOD 11-2 mapping: each remainder of the
// weighted sum gives one check character.
func TestIDCheckCharTable(t *testing.T) {
	// first17 values chosen so the weighted sum mod 11 is 0..10 in turn:
	// the sum of "00000000000000000" is 0; raising digit 8 (weight 1) by k
	// adds k.
	want := "10X98765432"
	for k := 0; k <= 9; k++ {
		first := []byte("00000000000000000")
		first[7] = byte('0' + k)
		c, err := marketplace.IDCheckChar(string(first))
		if err != nil || c != want[k] {
			t.Fatalf("sum %d: check %c, %v; want %c", k, c, err, want[k])
		}
	}
	first := []byte("00000000000000000")
	first[2] = '1' // weight 10
	if c, _ := marketplace.IDCheckChar(string(first)); c != want[10] {
		t.Fatalf("sum 10: check %c, want %c", c, want[10])
	}
}

func TestMaskIDNumber(t *testing.T) {
	if got := marketplace.MaskIDNumber("11010519491231002X"); got != "110105********002X" {
		t.Fatal(got)
	}
}

func FuzzCheckIDNumber(f *testing.F) {
	for _, s := range []string{"11010519491231002X", "440524198001010013", "", "x", "11010519491231002Y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		got, err := marketplace.CheckIDNumber(id, today)
		if err != nil {
			return
		}
		if len(got) != 18 {
			t.Fatalf("accepted %q as %q", id, got)
		}
		c, err := marketplace.IDCheckChar(got[:17])
		if err != nil || c != got[17] {
			t.Fatalf("accepted %q with a wrong check character", id)
		}
	})
}

// TestBucketMatchesFNV pins Bucket to FNV-1a 64 (hash/fnv) so buckets, and
// so users' versions, never move when the code changes.
func TestBucketMatchesFNV(t *testing.T) {
	for _, c := range [][2]string{{"salt", "u1"}, {"", ""}, {"a1b2c3d4e5f60718", "u123456789"}} {
		h := fnv.New64a()
		h.Write([]byte(c[0] + "\x00" + c[1]))
		if got, want := marketplace.Bucket(c[0], c[1]), int(h.Sum64()%10000); got != want {
			t.Fatalf("Bucket(%q, %q) = %d, want %d", c[0], c[1], got, want)
		}
	}
}

func FuzzParseUserRef(f *testing.F) {
	for _, s := range []string{"u1", "u0", "u", "u01", "u9223372036854775807", "x1", "selftest-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		id, ok := marketplace.ParseUserRef(ref)
		if !ok {
			return
		}
		if id <= 0 || marketplace.UserRef(id) != ref {
			t.Fatalf("ParseUserRef(%q) = %d, which prints as %q", ref, id, marketplace.UserRef(id))
		}
	})
}
