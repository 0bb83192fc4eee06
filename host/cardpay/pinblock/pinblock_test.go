package pinblock

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay/dukpt"
)

func key(t *testing.T, s string) dukpt.Key {
	t.Helper()
	k, err := dukpt.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decode0 is for tests only: production code never returns a clear PIN.
func decode0(t *testing.T, k dukpt.Key, block []byte, pan string) string {
	t.Helper()
	var c [8]byte
	dukpt.TDES(k).Decrypt(c[:], block)
	var pin [MaxPIN]byte
	n, err := pinFrom0(c, pan, &pin)
	if err != nil {
		t.Fatal(err)
	}
	return string(pin[:n])
}

func TestClearFormat0Vectors(t *testing.T) {
	tests := []struct{ pin, pan, want string }{
		{"1234", "5432101234567891", "041215FEDCBA9876"},  // the issue text
		{"1234", "4111111111111111", "041225EEEEEEEEEE"},  // 041234FFFFFFFFFF ^ 0000111111111111
		{"1234", "43219876543210987", "0412AC89ABCDEF67"}, // EFTlab / Wikipedia ISO 9564 format 0 example
		{"92389", "4000001234562000", "0592389EDCBA9DFF"}, // 0592389FFFFFFFFF ^ 0000000123456200
	}
	for _, tt := range tests {
		t.Run(tt.pan, func(t *testing.T) {
			b, err := clear0(Format0, tt.pin, tt.pan, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.ToUpper(hex.EncodeToString(b[:])); got != tt.want {
				t.Fatalf("clear block %s, want %s", got, tt.want)
			}
		})
	}
}

// X9.24-1 Annex A: PIN 1234, PAN 4012345678909, KSN FFFF9876543210E00001.
func TestDUKPTEncryptedVector(t *testing.T) {
	ksn, _ := dukpt.ParseKSN("FFFF9876543210E00001")
	keys, err := dukpt.DeriveFromBDK(key(t, "0123456789ABCDEFFEDCBA9876543210"), ksn)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := EncryptISO0(keys.PIN, "1234", "4012345678909")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.ToUpper(hex.EncodeToString(blk)); got != "1B9C1845EB993A7A" {
		t.Fatalf("encrypted block %s", got)
	}
}

func TestTranslate(t *testing.T) {
	from := key(t, "042666B49184CF5C68DE9628D0397B36")
	zpk := key(t, "11111111111111112222222222222222")
	pan := "6222021234567890128"
	for name, mk := range map[string]func() ([]byte, error){
		"format 0": func() ([]byte, error) { return EncryptISO0(from, "876543", pan) },
		"format 3": func() ([]byte, error) { return EncryptISO3(from, "876543", pan, rand.Reader) },
	} {
		t.Run(name, func(t *testing.T) {
			in, err := mk()
			if err != nil {
				t.Fatal(err)
			}
			out, err := Translate(from, in, pan, zpk)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := EncryptISO0(zpk, "876543", pan)
			if !bytes.Equal(out, want) {
				t.Fatalf("translated %x, want %x", out, want)
			}
			if decode0(t, zpk, out, pan) != "876543" {
				t.Fatal("PIN changed")
			}
		})
	}
	good, _ := EncryptISO0(from, "1234", pan)
	bad := []struct {
		name  string
		from  dukpt.Key
		block []byte
		pan   string
	}{
		{"wrong key", zpk, good, pan},
		{"wrong pan", from, good, "6222029999999999999"},
		{"short block", from, good[:7], pan},
		{"short pan", from, good, "123456789012"},
		{"letters in pan", from, good, "62220212345678901A8"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Translate(tt.from, tt.block, tt.pan, zpk)
			if jifu.ErrorCode(err) != jifu.CodeInvalid {
				t.Fatalf("err = %v, want invalid", err)
			}
			if strings.Contains(err.Error(), "1234") || strings.Contains(err.Error(), pan) {
				t.Fatalf("error leaks: %v", err)
			}
		})
	}
}

func TestBadPIN(t *testing.T) {
	for _, pin := range []string{"", "123", "1234567890123", "12a4"} {
		if _, err := EncryptISO0(dukpt.Key{}, pin, "4012345678909"); jifu.ErrorCode(err) != jifu.CodeInvalid {
			t.Errorf("PIN %q: %v", pin, err)
		}
	}
}

// Format 4 decode vector (key, PAN 43219876543210987, PIN 87654321) from the
// public ISO 9564-1:2017 format 4 examples reproduced by pyemv/psec tests.
func TestFormat4(t *testing.T) {
	k := key(t, "0123456789ABCDEF0123456789ABCDEF")
	pan := "43219876543210987"
	var pin [MaxPIN]byte
	n, err := pinFrom4(k, unhex(t, "D3B650140FE182DA3D814D7F52615064"), pan, &pin)
	if err != nil || string(pin[:n]) != "87654321" {
		t.Fatalf("decode = %q, %v", pin[:n], err)
	}
	blk, err := EncryptISO4(k, "2468", pan, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	zpk := key(t, "11111111111111112222222222222222")
	out, err := TranslateISO4(k, blk, pan, zpk)
	if err != nil {
		t.Fatal(err)
	}
	if decode0(t, zpk, out, pan) != "2468" {
		t.Fatal("format 4 to 0 translation lost the PIN")
	}
	if _, err := TranslateISO4(zpk, blk, pan, zpk); jifu.ErrorCode(err) != jifu.CodeInvalid {
		t.Fatalf("wrong key: %v", err)
	}
}
