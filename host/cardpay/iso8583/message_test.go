package iso8583

import (
	"bytes"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"

	"github.com/jifu-open/jifu"
)

var mak = []byte{0xC2, 0x4A, 0x8F, 0xB5, 0x7A, 0xA2, 0x01, 0x23}

func purchase() *Message {
	return &Message{
		MTI: MTIFinancial, PAN: "6222021234567890128", ProcessingCode: ProcPurchase, Amount: 12345,
		STAN: "000123", Expiry: "2512", EntryMode: "021", Condition: "00", PINCapture: "12",
		Track2: "6222021234567890128D25122011234567890", TerminalID: "T0000001", MerchantID: "898310048990001",
		Currency: CurrencyCNY, PINBlock: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Security: "2600000000000000",
		ICData: []byte{0x9F, 0x26, 0x02, 0xAB, 0xCD}, Field60: "22000001", MAC: []byte{},
	}
}

func TestPackLayout(t *testing.T) {
	m := &Message{MTI: MTIFinancial, PAN: "6222021234567890128", ProcessingCode: ProcPurchase, Amount: 12345, STAN: "000123"}
	b, err := Pack(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	// MTI 0200 BCD; bitmap: fields 2, 3, 4, 11; 2: LL 0x19, PAN left-aligned
	// with F pad; 3 000000; 4 000000012345; 11 000123.
	want := "0200" + "7020000000000000" + "19" + "6222021234567890128F" + "000000" + "000000012345" + "000123"
	if got := strings.ToUpper(hex.EncodeToString(b)); got != strings.ToUpper(want) {
		t.Fatalf("packed\n got %s\nwant %s", got, want)
	}
}

func TestRoundTripAndMAC(t *testing.T) {
	m := purchase()
	b, err := Pack(m, mak)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyMAC(b, mak); err != nil {
		t.Fatal(err)
	}
	got, err := Unpack(b)
	if err != nil {
		t.Fatal(err)
	}
	m.MAC = b[len(b)-8:]
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip\n got %+v\nwant %+v", got, m)
	}
	// Field 64 is 8 ASCII hex characters.
	for _, c := range got.MAC {
		if !strings.ContainsRune("0123456789ABCDEF", rune(c)) {
			t.Fatalf("MAC %q", got.MAC)
		}
	}
	b[20] ^= 0x01
	if jifu.ErrorCode(VerifyMAC(b, mak)) != jifu.CodeDenied {
		t.Fatal("tampered message verified")
	}
	if s := m.String(); strings.Contains(s, "6222021234567890128") || strings.Contains(s, "2011234567890") {
		t.Fatalf("String leaks card data: %s", s)
	}
}

func TestUnpackRejects(t *testing.T) {
	good, err := Pack(purchase(), mak)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"short":            good[:5],
		"trailing byte":    append(append([]byte{}, good...), 0),
		"truncated":        good[:len(good)-3],
		"unknown MTI":      append([]byte{0x09, 0x99}, good[2:]...),
		"secondary bitmap": func() []byte { b := append([]byte{}, good...); b[2] |= 0x80; return b }(),
		"undefined field":  func() []byte { b := append([]byte{}, good...); b[2] |= 0x01; return b }(), // field 8
		"pan pad not F": func() []byte {
			b, _ := Pack(&Message{MTI: MTIFinancial, PAN: "6222021234567890128", STAN: "000001"}, nil)
			b[2+8+10] &= 0xF0 // last PAN byte 8F -> 80
			return b
		}(),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Unpack(b); jifu.ErrorCode(err) != jifu.CodeInvalid {
				t.Fatalf("err = %v", err)
			} else if strings.Contains(err.Error(), "6222021234567890128") {
				t.Fatalf("error shows PAN: %v", err)
			}
		})
	}
	if _, err := Pack(&Message{MTI: "0100"}, nil); jifu.ErrorCode(err) != jifu.CodeInvalid {
		t.Fatal("unknown MTI packed")
	}
	if _, err := Pack(&Message{MTI: MTIFinancial, PAN: "62220212345678901281234"}, nil); jifu.ErrorCode(err) != jifu.CodeInvalid {
		t.Fatal("23-digit PAN packed")
	}
}

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	b, _ := Pack(purchase(), mak)
	if err := WriteFrame(&buf, b); err != nil {
		t.Fatal(err)
	}
	if int(buf.Bytes()[0])<<8|int(buf.Bytes()[1]) != len(b) {
		t.Fatal("length prefix")
	}
	got, err := ReadFrame(&buf)
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("ReadFrame: %v", err)
	}
	for name, in := range map[string][]byte{"zero": {0, 0}, "huge": {0xFF, 0xFF}, "cut": {0, 5, 1}} {
		if _, err := ReadFrame(bytes.NewReader(in)); err == nil {
			t.Errorf("%s frame accepted", name)
		}
	}
}

func FuzzUnpack(f *testing.F) {
	b, _ := Pack(purchase(), mak)
	f.Add(b)
	s, _ := Pack(&Message{MTI: MTISignOnResp, ResponseCode: "00", Keys: make([]byte, 40), Field60: "00000001003"}, nil)
	f.Add(s)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Unpack(b)
		if err != nil {
			if c := jifu.ErrorCode(err); c != jifu.CodeInvalid && c != jifu.CodeTooLarge {
				t.Fatalf("code %v", err)
			}
			return
		}
		var k []byte
		if m.MAC != nil {
			k = mak
		}
		again, err := Pack(m, k)
		if err != nil || len(again) != len(b) {
			t.Fatalf("accepted message does not re-pack: %v", err)
		}
	})
}
