package cardreader_test

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jifu-open/jifu/host/cardpay/dukpt"
	"github.com/jifu-open/jifu/host/cardpay/pinblock"
	"github.com/jifu-open/jifu/sdk/cardreader"
)

func newReader(t testing.TB) *cardreader.Reader {
	bdk, _ := dukpt.ParseKey("0123456789ABCDEFFEDCBA9876543210")
	ksn, _ := dukpt.ParseKSN("FFFF9876543210E00000")
	r, err := cardreader.New(cardreader.Config{OrgID: "ORG1", MerchantID: "M100", PaySecret: "s3cret",
		IPEK: dukpt.IPEK(bdk, ksn), KSN: ksn, Now: func() time.Time { return time.Unix(1764720000, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestBuild(t *testing.T) {
	r := newReader(t)
	req, err := r.Build(cardreader.Payment{OrderID: "A-1", Amount: 100, ProductName: "tea",
		Track2: "4012345678909D301220112345", PIN: "1234"})
	if err != nil {
		t.Fatal(err)
	}
	// Counter 1 of the X9.24-1 test key: the published encrypted PIN block.
	if req.KSN != "FFFF9876543210E00001" || req.CardPassword != "1B9C1845EB993A7A" {
		t.Fatalf("ksn %s pin %s", req.KSN, req.CardPassword)
	}
	if err := req.Verify("s3cret"); err != nil {
		t.Fatal(err)
	}
	// The host side decrypts the tracks with the same data key.
	bdk, _ := dukpt.ParseKey("0123456789ABCDEFFEDCBA9876543210")
	ksn, _ := dukpt.ParseKSN(req.KSN)
	keys, _ := dukpt.DeriveFromBDK(bdk, ksn)
	ct, _ := hex.DecodeString(req.EnTracks)
	plain, err := dukpt.DecryptCBC(keys.Data, ct)
	if err != nil || strings.TrimRight(string(plain), "\x00") != "4012345678909D301220112345" {
		t.Fatalf("tracks %q %v", plain, err)
	}
	// Counters advance and skip values with more than 10 one bits.
	r.SetCounter(0x3FE) // next is 0x3FF (10 bits), then 0x400
	a, _ := r.Build(cardreader.Payment{OrderID: "A-2", Amount: 1, ProductName: "x", Track2: "4012345678909D301220112345"})
	r.SetCounter(0x7FE) // 0x7FF has 11 bits: skipped
	b, _ := r.Build(cardreader.Payment{OrderID: "A-3", Amount: 1, ProductName: "x", Track2: "4012345678909D301220112345"})
	if !strings.HasSuffix(a.KSN, "003FF") || !strings.HasSuffix(b.KSN, "00800") {
		t.Fatalf("counters %s %s", a.KSN, b.KSN)
	}
	if _, err := r.Build(cardreader.Payment{OrderID: "A-4", Amount: 1, ProductName: "x", Track2: "garbage"}); err == nil {
		t.Fatal("bad track built")
	}
}

func Example() {
	bdk, _ := dukpt.ParseKey("0123456789ABCDEFFEDCBA9876543210")
	ksn, _ := dukpt.ParseKSN("FFFF9876543210E00000")
	r, _ := cardreader.New(cardreader.Config{OrgID: "ORG1", MerchantID: "M100", PaySecret: "s3cret",
		IPEK: dukpt.IPEK(bdk, ksn), KSN: ksn})
	req, _ := r.Build(cardreader.Payment{OrderID: "A-1", Amount: 100, ProductName: "tea",
		Track2: "4012345678909D301220112345", PIN: "1234"})
	fmt.Println(req.KSN, req.CardPassword, len(req.Sign))
	// Output: FFFF9876543210E00001 1B9C1845EB993A7A 64
}

// An AES DUKPT reader: the X9.24-3 test BDK and initial key ID; the host
// side decrypts with independently derived keys.
func TestBuildAES(t *testing.T) {
	bdk, _ := dukpt.ParseKey("FEDCBA9876543210F1F1F1F1F1F1F1F1")
	ksn, _ := dukpt.ParseAESKSN("123456789012345600000000")
	r, err := cardreader.New(cardreader.Config{OrgID: "ORG1", MerchantID: "M100", PaySecret: "s3cret",
		IPEK: dukpt.AESInitialKey(bdk, ksn), AES: true, AESKSN: ksn})
	if err != nil {
		t.Fatal(err)
	}
	const t2 = "4012345678909D301220112345"
	req, err := r.Build(cardreader.Payment{OrderID: "A-1", Amount: 100, ProductName: "tea", Track2: t2, PIN: "1234"})
	if err != nil {
		t.Fatal(err)
	}
	if req.KSN != "123456789012345600000001" || len(req.CardPassword) != 32 || len(req.EnTracks)%32 != 0 {
		t.Fatalf("ksn %s pin block %d hex, tracks %d hex", req.KSN, len(req.CardPassword), len(req.EnTracks))
	}
	if err := req.Verify("s3cret"); err != nil {
		t.Fatal(err)
	}
	host, _ := dukpt.ParseAESKSN(req.KSN)
	keys, err := dukpt.DeriveAES(dukpt.AESInitialKey(bdk, host), host)
	if err != nil || keys.Data.Hex() != "A35C412EFD41FDB98B69797C02DCD08F" { // X9.24-3 counter 1 data key
		t.Fatalf("data key %s %v", keys.Data.Hex(), err)
	}
	ct, _ := hex.DecodeString(req.EnTracks)
	plain, err := dukpt.DecryptAESCBC(keys.Data, ct)
	if err != nil || strings.TrimRight(string(plain), "\x00") != t2 || len(plain) != 32 {
		t.Fatalf("tracks %q %v", plain, err)
	}
	// The format 4 block holds the PIN: translated to a zone key it equals
	// the format 0 block built directly.
	zpk, _ := dukpt.ParseKey("0123456789ABCDEFFEDCBA9876543210")
	blk, _ := hex.DecodeString(req.CardPassword)
	got, err := pinblock.TranslateISO4(keys.PIN, blk, "4012345678909", zpk)
	want, _ := pinblock.EncryptISO0(zpk, "1234", "4012345678909")
	if err != nil || hex.EncodeToString(got) != hex.EncodeToString(want) {
		t.Fatalf("format 4 block: %v", err)
	}
	// Counters skip values with more than 16 one bits.
	r.SetCounter(0x1FFFE)
	b, _ := r.Build(cardreader.Payment{OrderID: "A-2", Amount: 1, ProductName: "x", Track2: t2})
	if b.KSN != "123456789012345600020000" || b.CardPassword != "" {
		t.Fatalf("next KSN %s", b.KSN)
	}
}

func TestBuildRefund(t *testing.T) {
	r := newReader(t)
	req, err := r.Refund("A-1", "R-1", 500)
	if err != nil || req.Canonical() != "amount=500&merchant_id=M100&order_id=A-1&org_id=ORG1&refund_id=R-1&timestamp=1764720000" ||
		req.Verify("s3cret") != nil {
		t.Fatalf("%+v %v", req, err)
	}
	if _, err := r.Refund("A-1", "", 500); err == nil {
		t.Fatal("refund without id built")
	}
	if _, err := cardreader.BuildRefund("ORG1", "M100", "s3cret", "A-1", "R-2", 0, time.Now()); err == nil {
		t.Fatal("zero amount built")
	}
}
