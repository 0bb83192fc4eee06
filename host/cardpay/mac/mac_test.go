package mac

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay/dukpt"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func up(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }

func TestX919(t *testing.T) {
	k, _ := dukpt.ParseKey("0123456789ABCDEFFEDCBA9876543210")
	tests := []struct{ name, data, want string }{
		// ANSI X9.19 example (the issue text; also ISO 9797-1 algorithm 3 examples).
		{"now is the time", "Now is the time for all ", "A1C72E74EA3FA9B6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := X919(k, []byte(tt.data))
			if up(m[:]) != tt.want {
				t.Fatalf("MAC %s, want %s", up(m[:]), tt.want)
			}
		})
	}
	// Zero padding: a short tail equals the tail padded with zeros.
	a, b := X919(k, []byte("abc")), X919(k, []byte("abc\x00\x00\x00\x00\x00"))
	if a != b {
		t.Fatal("zero padding differs")
	}
	if X919(k, nil) != X919(k, make([]byte, 8)) {
		t.Fatal("empty data is not one zero block")
	}
}

// The MAB and XOR chain of the public worked example "MAC算法演示" (UnionPay
// POS terminal spec walkthrough, TMK 70F2A84CCBC2AE8625CBB0F2C22AB923, TAK
// 96D605EA176B7E9E under the TMK = C24A8FB57AA20123 in clear).
const exampleMAB = "0200302004C020C0981100000000000000005100183402100006324392260009942820D1312101120084393136363838303134303030303030303030303030303031313536ACF46E73838A82F92600000000000000000822000001"

func TestUnionPayECBSteps(t *testing.T) {
	mab := unhex(t, exampleMAB)
	if x := xorBlocks(mab[:32]); up(x[:]) != "9A1753638ED222D9" {
		t.Fatalf("XOR of M1..M4 = %s", up(x[:]))
	}
	// The working key decrypts from the terminal master key as published.
	tmk, _ := dukpt.ParseKey("70F2A84CCBC2AE8625CBB0F2C22AB923")
	var tak [8]byte
	dukpt.TDES(tmk).Decrypt(tak[:], unhex(t, "96D605EA176B7E9E"))
	if up(tak[:]) != "C24A8FB57AA20123" {
		t.Fatalf("TAK = %s", up(tak[:]))
	}
	m, err := UnionPayECB(tak[:], mab)
	if err != nil {
		t.Fatal(err)
	}
	// Recompute by hand from the definition, step by step.
	x := xorBlocks(mab)
	h := []byte(up(x[:]))
	b, _ := block(tak[:])
	var e [8]byte
	b.Encrypt(e[:], h[:8])
	for i := range e {
		e[i] ^= h[8+i]
	}
	b.Encrypt(e[:], e[:])
	if want := up(e[:])[:8]; string(m[:]) != want {
		t.Fatalf("MAC %s, want %s", m, want)
	}
	for _, c := range m {
		if !strings.ContainsRune("0123456789ABCDEF", rune(c)) {
			t.Fatalf("MAC %q is not upper-case hex", m)
		}
	}
	// TDES and single DES agree when both halves are equal.
	m2, _ := UnionPayECB(append(tak[:], tak[:]...), mab)
	if m2 != m {
		t.Fatal("K||K TDES differs from DES")
	}
	// Any change to the MAB changes the MAC.
	mab[len(mab)-1] ^= 1
	if m3, _ := UnionPayECB(tak[:], mab); Equal(m3[:], m[:]) {
		t.Fatal("MAC did not change")
	}
	if _, err := UnionPayECB(make([]byte, 7), mab); jifu.ErrorCode(err) != jifu.CodeInvalid {
		t.Fatalf("7-byte key: %v", err)
	}
}
