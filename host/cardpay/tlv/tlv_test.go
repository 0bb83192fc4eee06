package tlv

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/jifu-open/jifu"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A PBOC/EMV field 55 as a terminal sends it (ARQC request data).
const field55 = "9F2608C2D48C04A5C4CA8D9F2701809F101307010103A0A802010A0100000000007B6C7F1E9F37045DA3FE3E9F360200E9950500000000009A032612039C01009F02060000000123005F2A02015682027C009F1A0201569F03060000000000009F33036040C89F34034203009F3501229F1E0831323334353637388408A0000003330101029F090200209F410400000042"

func TestParseField55(t *testing.T) {
	b := unhex(t, field55)
	objs, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(Encode(objs), b) {
		t.Fatal("encode(parse(x)) != x")
	}
	ac, ok := Find(objs, 0x9F26)
	if !ok || hex.EncodeToString(ac.Value) != "c2d48c04a5c4ca8d" {
		t.Fatalf("9F26 = %x", ac.Value)
	}
	if amt, ok := Find(objs, 0x9F02); !ok || hex.EncodeToString(amt.Value) != "000000012300" {
		t.Fatal("9F02")
	}
}

func TestParseCases(t *testing.T) {
	long := "9F1D81" + "80" + string(bytes.Repeat([]byte("ab"), 0x80))
	tests := []struct {
		name string
		in   string
		n    int
		ok   bool
	}{
		{"empty", "", 0, true},
		{"padding only", "0000", 0, true},
		{"padding between", "9A0326120300009C0100", 2, true},
		{"constructed", "7009" + "9F02030000019A01FF", 1, true},
		{"long length", long, 1, true},
		{"three-byte tag", "DF810102ABCD", 1, true},
		{"ff padding", "9A03261203FF", 0, false},
		{"indefinite", "9A80", 0, false},
		{"past end", "9A05261203", 0, false},
		{"non-minimal 81", "9A8103261203", 0, false},
		{"non-minimal 82", "9A820003261203", 0, false},
		{"four-byte tag", "DF81818101AA", 0, false},
		{"leading zero tag byte", "1F8001AA", 0, false},
		{"tag cut", "9F", 0, false},
		{"length cut", "9F26", 0, false},
		{"83 length", "9A83000003261203", 0, false},
		{"child past end", "70039F0205", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := Parse(unhex(t, tt.in))
			if tt.ok != (err == nil) {
				t.Fatalf("err = %v", err)
			}
			if err != nil {
				if jifu.ErrorCode(err) != jifu.CodeInvalid {
					t.Fatalf("code %v", err)
				}
				return
			}
			if len(objs) != tt.n {
				t.Fatalf("%d objects", len(objs))
			}
		})
	}
	deep := ""
	for i := 0; i < MaxDepth+2; i++ {
		deep = "70" + hex.EncodeToString([]byte{byte(len(deep) / 2)}) + deep
	}
	if _, err := Parse(unhex(t, deep)); err == nil {
		t.Fatal("over-deep nesting accepted")
	}
	if TagString(0x9F26) != "9F26" || TagString(0x9A) != "9A" || TagString(0xDF8101) != "DF8101" {
		t.Fatal("TagString")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(unhex(f, field55))
	f.Add(unhex(f, "7008"+"9F02030000019A01FF"))
	f.Add([]byte{0x9A, 0x81})
	f.Fuzz(func(t *testing.T, b []byte) {
		objs, err := Parse(b)
		if err != nil {
			if jifu.ErrorCode(err) != jifu.CodeInvalid {
				t.Fatalf("code %v", err)
			}
			return
		}
		enc := Encode(objs)
		again, err := Parse(enc)
		if err != nil {
			t.Fatalf("re-parse of encoding failed: %v", err)
		}
		if !bytes.Equal(Encode(again), enc) {
			t.Fatal("encoding not stable")
		}
	})
}
