package dukpt

import (
	"bytes"
	"crypto/aes"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

// Transaction (intermediate derivation) keys of the ANSI X9.24-3-2017
// supplement test vectors for the AES-128 BDK FEDCBA9876543210F1F1F1F1F1F1F1F1
// and initial key ID 1234567890123456 (x9.org "X9.24 Part 3 test vectors";
// the same numbers are transcribed in openemv/dukpt's dukpt_aes128_test.c).
// Counter 1FFFF has 17 one bits: a reader never uses it.
func TestAESTransactionKeyVectors(t *testing.T) {
	bdk := mustKey(t, "FEDCBA9876543210F1F1F1F1F1F1F1F1")
	base, _ := ParseAESKSN("123456789012345600000000")
	ik := AESInitialKey(bdk, base)
	for _, tt := range []struct {
		counter uint32
		want    string
	}{
		{1, "4F21B565BAD9835E112B6465635EAE44"},
		{2, "2F34D68DE10F68D38091A73B9E7C437C"},
		{3, "031504E530365CF81264238540518318"},
		{4, "0EEFC7ADA628BA68878DA9165A8A1887"},
		{5, "C2A7AC328A5DA2D6002D62465BFC028B"},
		{6, "D30F7D9351DA58448A2F5E92B4EE3B7D"},
		{7, "A8253CEED9AC042C54F75D35C8352278"},
		{8, "718EE6CF0B27E53D5F7AF99C4D8146A2"},
		{0x1FFFE, "E21E8C8D347F8561A2BE752DAA85A111"},
		{0x20000, "F7AE9025468A25D37B7249CFFED224C8"},
		{0x20001, "692C8EA4013645135B36497131DF9D2C"},
		{0xFFFE2000, "48E585B694EB0B18D5C35443E163C0BA"},
		{0xFFFE4000, "396C2C7CA1EA701C03B86B7D41F0C562"},
		{0xFFFE8000, "0387625F189B58AE03EF0E8CCA41105E"},
		{0xFFFF0000, "F6BA59389BD14A9855BE9727E7C52E3C"},
	} {
		t.Run(fmt.Sprintf("%X", tt.counter), func(t *testing.T) {
			ksn := base.WithCounter(tt.counter)
			if !ksn.ValidCounter() {
				t.Fatal("counter refused")
			}
			tk, err := AESTransactionKey(ik, ksn)
			if err != nil || tk.Hex() != tt.want {
				t.Fatalf("got %s, %v; want %s", tk.Hex(), err, tt.want)
			}
		})
	}
	if base.WithCounter(0x1FFFF).ValidCounter() || base.ValidCounter() {
		t.Error("a counter with 17 one bits, or zero, accepted")
	}
}

// DeriveAES agrees with the standard's working keys (TestAESVectors) and
// with an independent derivation written out byte by byte here.
func TestDeriveAES(t *testing.T) {
	bdk := mustKey(t, "FEDCBA9876543210F1F1F1F1F1F1F1F1")
	ksn, _ := ParseAESKSN("123456789012345600000001")
	keys, err := DeriveAES(AESInitialKey(bdk, ksn), ksn)
	if err != nil {
		t.Fatal(err)
	}
	if keys.PIN.Hex() != "AF8CB133A78F8DC2D1359F18527593FB" || keys.MAC.Hex() != "A2DC23DE6FDE0824A2BC321E08E4B8B7" ||
		keys.Data.Hex() != "A35C412EFD41FDB98B69797C02DCD08F" {
		t.Fatalf("working keys %s %s %s", keys.PIN.Hex(), keys.MAC.Hex(), keys.Data.Hex())
	}
	enc := func(key []byte, dataHex string) []byte {
		d, _ := hex.DecodeString(dataHex)
		b, _ := aes.NewCipher(key)
		out := make([]byte, 16)
		b.Encrypt(out, d)
		return out
	}
	// Counter 5 = bits 4 then 1: IK → 8000 with counter 4 → 8000 with
	// counter 5 → working key 3000 with counter 5.
	ksn5 := ksn.WithCounter(5)
	ik := enc(bdk[:], "01018001000200801234567890123456")
	d4 := enc(ik, "01018000000200809012345600000004")
	d5 := enc(d4, "01018000000200809012345600000005")
	data5 := enc(d5, "01013000000200809012345600000005")
	pin5 := enc(d5, "01011000000200809012345600000005")
	k5, err := DeriveAES(AESInitialKey(bdk, ksn5), ksn5)
	if err != nil || !bytes.Equal(k5.Data[:], data5) || !bytes.Equal(k5.PIN[:], pin5) {
		t.Fatalf("counter 5: %s %s, want %X %X (%v)", k5.Data.Hex(), k5.PIN.Hex(), data5, pin5, err)
	}
	if strings.ToUpper(hex.EncodeToString(d5)) != "C2A7AC328A5DA2D6002D62465BFC028B" {
		t.Fatalf("independent derivation disagrees with the vector: %X", d5)
	}
	if _, err := DeriveAES(Key{}, ksn.Initial()); err == nil {
		t.Error("counter 0 accepted")
	}
	if s := fmt.Sprintf("%v %#v", keys, keys); strings.Contains(s, "AF8C") || strings.Contains(strings.ToUpper(s), "AF8C") {
		t.Errorf("keys printed: %s", s)
	}
}

func TestAESCBC(t *testing.T) {
	k := mustKey(t, "A35C412EFD41FDB98B69797C02DCD08F")
	plain := []byte("6222021234567890128=30121011234567890\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")
	ct, err := EncryptAESCBC(k, plain)
	if err != nil {
		t.Fatal(err)
	}
	// Zero IV: the first block is the plain AES-ECB encryption.
	b, _ := aes.NewCipher(k[:])
	first := make([]byte, 16)
	b.Encrypt(first, plain[:16])
	if !bytes.Equal(first, ct[:16]) {
		t.Fatal("first block is not AES(K, P1): IV is not zero")
	}
	back, err := DecryptAESCBC(k, ct)
	if err != nil || !bytes.Equal(back, plain) {
		t.Fatalf("round trip: %v", err)
	}
	for _, n := range []int{0, 8, 17} {
		if _, err := EncryptAESCBC(k, make([]byte, n)); err == nil {
			t.Errorf("%d bytes accepted", n)
		}
		if _, err := DecryptAESCBC(k, make([]byte, n)); err == nil {
			t.Errorf("%d bytes accepted", n)
		}
	}
}

func BenchmarkDeriveAES(b *testing.B) {
	bdk, _ := ParseKey("FEDCBA9876543210F1F1F1F1F1F1F1F1")
	ksn, _ := ParseAESKSN("1234567890123456000FF800")
	ik := AESInitialKey(bdk, ksn)
	for b.Loop() {
		if _, err := DeriveAES(ik, ksn); err != nil {
			b.Fatal(err)
		}
	}
}
