package dukpt

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

const testBDK = "0123456789ABCDEFFEDCBA9876543210"

func mustKey(t *testing.T, s string) Key {
	t.Helper()
	k, err := ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustKSN(t *testing.T, s string) KSN {
	t.Helper()
	k, err := ParseKSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Vectors: ANSI X9.24-1-2009 Annex A (IPEK and current keys), as reproduced
// by moov-io/dukpt and sgbj/Dukpt.NET; the issue text gives the IPEK.
func TestTDESVectors(t *testing.T) {
	bdk := mustKey(t, testBDK)
	ipek := IPEK(bdk, mustKSN(t, "FFFF9876543210E00000"))
	if ipek.Hex() != "6AC292FAA1315B4D858AB3A3D7D5933A" {
		t.Fatalf("IPEK = %s", ipek.Hex())
	}
	tests := []struct{ ksn, current string }{
		{"FFFF9876543210E00001", "042666B49184CFA368DE9628D0397BC9"},
		{"FFFF9876543210E00002", "C46551CEF9FD24B0AA9AD834130D3BC7"},
		{"FFFF9876543210E00003", "0DF3D9422ACA56E547676D07AD6BADFA"},
		{"FFFF9876543210E00004", "279C0F6AEED0BE652B2C733E1383AE91"},
		{"FFFF9876543210E00005", "5F8DC6D2C845C125508DDC048093B83F"},
		{"FFFF9876543210EFF800", "F9CDFEBF4F5B1D9EB3EC12454527E176"},
	}
	for _, tt := range tests {
		t.Run(tt.ksn, func(t *testing.T) {
			ksn := mustKSN(t, tt.ksn)
			if got := IPEK(bdk, ksn); got != ipek {
				t.Fatalf("IPEK from a counted KSN differs")
			}
			cur, err := CurrentKey(ipek, ksn)
			if err != nil {
				t.Fatal(err)
			}
			if cur.Hex() != tt.current {
				t.Fatalf("current key = %s, want %s", cur.Hex(), tt.current)
			}
		})
	}
}

func TestTDESVariants(t *testing.T) {
	keys, err := DeriveFromBDK(mustKey(t, testBDK), mustKSN(t, "FFFF9876543210E00001"))
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		got  Key
		want string
	}{
		"pin":          {keys.PIN, "042666B49184CF5C68DE9628D0397B36"},
		"mac request":  {keys.MACRequest, "042666B4918430A368DE9628D03984C9"},
		"mac response": {keys.MACResponse, "042666B46E84CFA368DE96282F397BC9"},
		"data request": {keys.Data, "448D3F076D8304036A55A3D7E0055A78"},
	} {
		if c.got.Hex() != c.want {
			t.Errorf("%s key = %s, want %s", name, c.got.Hex(), c.want)
		}
	}
	// The data key encrypts "4012345678909D987" (zero padded), TDES-CBC, IV zero.
	plain := make([]byte, 24)
	copy(plain, "4012345678909D987")
	ct, err := EncryptCBC(keys.Data, plain)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.ToUpper(hex.EncodeToString(ct)); got != "FC0D53B7EA1FDA9EE68AAF2E70D9B9506229BE2AA993F04F" {
		t.Errorf("data encryption = %s", got)
	}
	back, err := DecryptCBC(keys.Data, ct)
	if err != nil || !bytes.Equal(back, plain) {
		t.Errorf("decrypt round trip failed: %v", err)
	}
}

// Vectors: ANSI X9.24-3-2017 Annex B (AES-128 BDK, IKID 1234567890123456).
func TestAESVectors(t *testing.T) {
	bdk := mustKey(t, "FEDCBA9876543210F1F1F1F1F1F1F1F1")
	ksn1, err := ParseAESKSN("123456789012345600000001")
	if err != nil {
		t.Fatal(err)
	}
	ik := AESInitialKey(bdk, ksn1)
	if ik.Hex() != "1273671EA26AC29AFA4D1084127652A1" {
		t.Fatalf("IK = %s", ik.Hex())
	}
	ksn2, _ := ParseAESKSN("123456789012345600000002")
	tests := []struct {
		name  string
		ksn   AESKSN
		usage uint16
		want  string
	}{
		{"pin 1", ksn1, UsagePINEncryption, "AF8CB133A78F8DC2D1359F18527593FB"},
		{"mac 1", ksn1, UsageMACGeneration, "A2DC23DE6FDE0824A2BC321E08E4B8B7"},
		{"data 1", ksn1, UsageDataEncryptionEnc, "A35C412EFD41FDB98B69797C02DCD08F"},
		{"pin 2", ksn2, UsagePINEncryption, "D30BDC73EC9714B000BEC66BDB7B6D09"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := AESWorkingKey(ik, tt.ksn, tt.usage)
			if err != nil {
				t.Fatal(err)
			}
			if k.Hex() != tt.want {
				t.Fatalf("got %s want %s", k.Hex(), tt.want)
			}
		})
	}
	for ksn, want := range map[AESKSN]string{ksn1: "4F21B565BAD9835E112B6465635EAE44", ksn2: "2F34D68DE10F68D38091A73B9E7C437C"} {
		tk, err := AESTransactionKey(ik, ksn)
		if err != nil || tk.Hex() != want {
			t.Errorf("transaction key %s = %s, %v; want %s", ksn, tk.Hex(), err, want)
		}
	}
	if _, err := AESTransactionKey(ik, AESKSN{}); err == nil {
		t.Error("counter 0 accepted")
	}
}

func TestKSN(t *testing.T) {
	k := mustKSN(t, "ffff9876543210ffffff")
	if k.Counter() != 0x1FFFFF || k.Initial().String() != "FFFF9876543210E00000" {
		t.Fatalf("counter %x initial %s", k.Counter(), k.Initial())
	}
	if k.ValidCounter() {
		t.Error("21 one bits accepted as a counter")
	}
	if c := k.WithCounter(7); c.Counter() != 7 || !c.ValidCounter() {
		t.Error("WithCounter")
	}
	for _, bad := range []string{"", "FFFF9876543210E0000", "FFFF9876543210E0000G", "FFFF9876543210E000000"} {
		if _, err := ParseKSN(bad); err == nil {
			t.Errorf("ParseKSN(%q) accepted", bad)
		}
	}
	if _, err := CurrentKey(Key{}, k.Initial()); err == nil {
		t.Error("counter 0 accepted")
	}
	if _, err := EncryptCBC(Key{}, []byte("short")); err == nil {
		t.Error("unaligned CBC input accepted")
	}
	if s := fmt.Sprintf("%v %#v %s", Key{1}, Keys{}, Key{2}); strings.Contains(s, "01") || strings.Contains(s, "02") {
		t.Errorf("key printed: %s", s)
	}
}

func BenchmarkDeriveFromBDK(b *testing.B) {
	bdk, _ := ParseKey(testBDK)
	ksn, _ := ParseKSN("FFFF9876543210E00FF8")
	for b.Loop() {
		if _, err := DeriveFromBDK(bdk, ksn); err != nil {
			b.Fatal(err)
		}
	}
}
