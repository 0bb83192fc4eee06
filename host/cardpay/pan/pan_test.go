package pan

import (
	"testing"

	"github.com/jifu-open/jifu"
)

func TestLuhnAndCheck(t *testing.T) {
	tests := []struct {
		pan  string
		ok   bool
		code string
	}{
		{"4111111111111111", true, ""},           // Visa test card
		{"5500005555555559", true, ""},           // Mastercard test card
		{"6222021234567890128", true, ""},        // 19-digit UnionPay-style
		{"79927398713", false, jifu.CodeInvalid}, // Luhn-valid (Wikipedia example) but 11 digits
		{"4111111111111112", false, jifu.CodeInvalid},
		{"41111111111111a1", false, jifu.CodeInvalid},
		{"", false, jifu.CodeInvalid},
		{"41111111111111111111", false, jifu.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.pan, func(t *testing.T) {
			err := Check(tt.pan)
			if (err == nil) != tt.ok || jifu.ErrorCode(err) != tt.code {
				t.Fatalf("Check = %v", err)
			}
		})
	}
	if !Luhn("79927398713") || Luhn("79927398710") || Luhn("") {
		t.Fatal("Luhn on the Wikipedia example")
	}
}

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		"6222021234567890128": "622202*********0128",
		"4111111111111111":    "411111******1111",
		"123456789012":        "123456**9012",
		"1234567890":          "**********",
		"":                    "",
	} {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q want %q", in, got, want)
		}
	}
	if BIN("4111111111111111") != "411111" || Last4("4111111111111111") != "1111" || BIN("1") != "" {
		t.Error("BIN/Last4")
	}
}
