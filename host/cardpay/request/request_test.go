package request

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/jifu-open/jifu"
)

const secret = "pay-secret-123"

func sample() *Request {
	r := &Request{
		OrgID: "ORG1", MerchantID: "M100", OrderID: "A-1", PayMethod: PayMethodCard, AmountText: "12345",
		ProductName: "咖啡", Timestamp: "1764720000", Encoding: "UTF-8", Params: "x=1&y=2",
		EnTracks: "0011223344556677", ICData: "9F260102", CardPassword: "1B9C1845EB993A7A",
		TranslogNo: "000001", KSN: "FFFF9876543210E00001",
	}
	r.Sign = r.ComputeSign(secret)
	return r
}

// The canonical string and sign of sample(), fixed here so that any change
// to the rule shows (also quoted in docs/CARDPAY.md).
const wantCanonical = "amount=12345&card_password=1B9C1845EB993A7A&en_tracks=0011223344556677&encoding=UTF-8&ic_data=9F260102&ksn=FFFF9876543210E00001&merchant_id=M100&order_id=A-1&org_id=ORG1&params=x=1&y=2&pay_method=card&product_name=咖啡&timestamp=1764720000&translog_no=000001"

func TestCanonicalAndSign(t *testing.T) {
	r := sample()
	if got := r.Canonical(); got != wantCanonical {
		t.Fatalf("canonical\n got %s\nwant %s", got, wantCanonical)
	}
	// Computed independently with Python's hmac module.
	if r.Sign != "9b640e8d50b82e96198c5d48a0d336d00feadebef8aaa0c417d62122fe5460ad" {
		t.Fatalf("sign = %s", r.Sign)
	}
	if err := r.Verify(secret); err != nil {
		t.Fatal(err)
	}
	if jifu.ErrorCode(r.Verify("other")) != jifu.CodeDenied {
		t.Fatal("wrong secret verified")
	}
	// Empty fields are left out of the string.
	r.Params, r.ICData = "", ""
	if strings.Contains(r.Canonical(), "params=") || strings.Contains(r.Canonical(), "ic_data") {
		t.Fatal("empty field in canonical string")
	}
}

func TestDecode(t *testing.T) {
	good := sample()
	body := good.Encode()
	r, err := Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	if r.Amount != 12345 || r.Verify(secret) != nil {
		t.Fatalf("decoded %+v", r)
	}
	mod := func(f func(m map[string]any)) []byte {
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	cases := []struct {
		name string
		body []byte
		code string
	}{
		{"not json", []byte("amount=1"), jifu.CodeInvalid},
		{"array", []byte("[]"), jifu.CodeInvalid},
		{"trailing", append(append([]byte{}, body...), []byte("{}")...), jifu.CodeInvalid},
		{"number amount", mod(func(m map[string]any) { m["amount"] = 12345 }), jifu.CodeInvalid},
		{"unknown field", mod(func(m map[string]any) { m["cvv"] = "123" }), jifu.CodeInvalid},
		{"zero amount", mod(func(m map[string]any) { m["amount"] = "0" }), jifu.CodeInvalid},
		{"leading zero", mod(func(m map[string]any) { m["amount"] = "012" }), jifu.CodeInvalid},
		{"negative", mod(func(m map[string]any) { m["amount"] = "-5" }), jifu.CodeInvalid},
		{"huge", mod(func(m map[string]any) { m["amount"] = "1000000000000" }), jifu.CodeInvalid},
		{"no order", mod(func(m map[string]any) { delete(m, "order_id") }), jifu.CodeInvalid},
		{"bad order", mod(func(m map[string]any) { m["order_id"] = "a b" }), jifu.CodeInvalid},
		{"pay method", mod(func(m map[string]any) { m["pay_method"] = "qr" }), jifu.CodeInvalid},
		{"encoding", mod(func(m map[string]any) { m["encoding"] = "GBK" }), jifu.CodeInvalid},
		{"tracks odd", mod(func(m map[string]any) { m["en_tracks"] = "00112233" }), jifu.CodeInvalid},
		{"tracks empty", mod(func(m map[string]any) { delete(m, "en_tracks") }), jifu.CodeInvalid},
		{"ic data bad tlv", mod(func(m map[string]any) { m["ic_data"] = "9F2605AB" }), jifu.CodeInvalid},
		{"pin block", mod(func(m map[string]any) { m["card_password"] = "1234" }), jifu.CodeInvalid},
		{"16-byte pin block with a TDES KSN", mod(func(m map[string]any) { m["card_password"] = strings.Repeat("AB", 16) }), jifu.CodeInvalid},
		{"format 0 block with an AES KSN", mod(func(m map[string]any) {
			m["ksn"], m["en_tracks"] = "123456789012345600000001", strings.Repeat("00", 32)
		}), jifu.CodeInvalid},
		{"AES KSN, tracks not in 16-byte blocks", mod(func(m map[string]any) {
			m["ksn"], m["card_password"], m["en_tracks"] = "123456789012345600000001", strings.Repeat("AB", 16), strings.Repeat("00", 24)
		}), jifu.CodeInvalid},
		{"AES request", mod(func(m map[string]any) {
			m["ksn"], m["card_password"], m["en_tracks"] = "123456789012345600000001", strings.Repeat("AB", 16), strings.Repeat("00", 32)
		}), ""},
		{"translog", mod(func(m map[string]any) { m["translog_no"] = "1" }), jifu.CodeInvalid},
		{"ksn", mod(func(m map[string]any) { m["ksn"] = "XYZ" }), jifu.CodeInvalid},
		{"sign", mod(func(m map[string]any) { m["sign"] = "abc" }), jifu.CodeInvalid},
		{"timestamp", mod(func(m map[string]any) { m["timestamp"] = "2026-12-03" }), jifu.CodeInvalid},
		{"too large", append([]byte(`{"params":"`), make([]byte, MaxBody)...), jifu.CodeTooLarge},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.body)
			if jifu.ErrorCode(err) != tt.code {
				t.Fatalf("err = %v, want %s", err, tt.code)
			}
			if err != nil && strings.Contains(err.Error(), "1B9C1845EB993A7A") {
				t.Fatalf("error echoes card data: %v", err)
			}
		})
	}
	// Any signed field changed after signing fails Verify.
	r.AmountText = "12346"
	if jifu.ErrorCode(r.Verify(secret)) != jifu.CodeDenied {
		t.Fatal("altered amount verified")
	}
	if s := r.String(); strings.Contains(s, r.EnTracks) || strings.Contains(s, r.CardPassword) || strings.Contains(s, r.Sign) {
		t.Fatalf("String leaks: %s", s)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(sample().Encode())
	f.Add([]byte(`{"amount":"1"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			if c := jifu.ErrorCode(err); c != jifu.CodeInvalid && c != jifu.CodeTooLarge {
				t.Fatalf("code %v", err)
			}
			return
		}
		if r.Amount <= 0 {
			t.Fatal("accepted a non-positive amount")
		}
		again, err := Decode(r.Encode())
		if err != nil || again.Canonical() != r.Canonical() {
			t.Fatalf("re-encoding changed the request: %v", err)
		}
	})
}
