package md5sign_test

import (
	"testing"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/sdk/md5sign"
	"github.com/jifu-open/jifu/sdk/opensign"
)

// The seed's example secret.
const secret = "7b005bc0e714333ec5af315ee66b4cc"

// Vectors computed independently, e.g.
//
//	printf '%s' 'partner_id=170117110001&zw_order=ZL190409000000102897b005bc0e714333ec5af315ee66b4cc' | md5sum
func TestVectors(t *testing.T) {
	tests := []struct {
		name   string
		signer md5sign.Signer
		params map[string]string
		canon  string
		want   string
	}{
		{"getRiskScore request, fields out of order, sign excluded", md5sign.Signer{}, map[string]string{
			"zw_order": "SYS1509000498138", "timestamp": "1484710000", "partner_id": "170117110001",
			"mobile": "18500002577", "id_num": "142625198001013917", "sign": "ignored",
		}, "id_num=142625198001013917&mobile=18500002577&partner_id=170117110001&timestamp=1484710000&zw_order=SYS1509000498138",
			"07803868f400351f8d01fb655fb8634b"},
		{"getHistoryScores", md5sign.Signer{}, map[string]string{"zw_order": "ZL19040900000010289", "partner_id": "170117110001"},
			"partner_id=170117110001&zw_order=ZL19040900000010289", "0993736239f6e08611c21119b3a132cc"},
		{"empty value kept (literal seed)", md5sign.Signer{}, map[string]string{"c": "x", "b": "2", "a": ""},
			"a=&b=2&c=x", "908aac74cbec85319f426802a225f86c"},
		{"empty value skipped", md5sign.Signer{SkipEmpty: true}, map[string]string{"c": "x", "b": "2", "a": ""},
			"b=2&c=x", "446f9ed79e22c1c99165d97012b25728"},
		{"UTF-8 value as is", md5sign.Signer{}, map[string]string{"name": "范文龙", "mobile": "185"},
			"mobile=185&name=范文龙", "a23cf14f6a8d2f371fc31b948dc5b39f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.signer.Canonical(tt.params); got != tt.canon {
				t.Errorf("Canonical = %q, want %q", got, tt.canon)
			}
			if got := tt.signer.Sign(tt.params, secret); got != tt.want {
				t.Errorf("Sign = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	base := map[string]string{"partner_id": "170117110001", "zw_order": "ZL19040900000010289"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name   string
		params map[string]string
		code   string
	}{
		{"valid", with(map[string]string{"sign": "0993736239f6e08611c21119b3a132cc"}), ""},
		{"upper-case sign", with(map[string]string{"sign": "0993736239F6E08611C21119B3A132CC"}), ""},
		{"no sign", with(nil), opensign.CodeMissing},
		{"empty sign", with(map[string]string{"sign": ""}), opensign.CodeMissing},
		{"short sign", with(map[string]string{"sign": "0993"}), opensign.CodeMissing},
		{"tampered value", with(map[string]string{"sign": "0993736239f6e08611c21119b3a132cc", "zw_order": "ZL1"}), opensign.CodeMismatch},
		{"added parameter", with(map[string]string{"sign": "0993736239f6e08611c21119b3a132cc", "amount": "1"}), opensign.CodeMismatch},
	}
	for _, tt := range tests {
		if err := (md5sign.Signer{}).Verify(tt.params, secret); jifu.ErrorCode(err) != tt.code {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.code)
		}
	}
	p := with(map[string]string{"sign": "0993736239f6e08611c21119b3a132cc"})
	if err := (md5sign.Signer{}).Verify(p, "other-secret"); jifu.ErrorCode(err) != opensign.CodeMismatch {
		t.Errorf("wrong secret: %v", err)
	}
}

func TestParams(t *testing.T) {
	p, err := md5sign.Params([]byte(`{"partner_id":"170117110001","zw_order":"ZL19040900000010289","code":1000,"ok":true,"none":null,"o":{"a": 1},"sign":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"partner_id": "170117110001", "zw_order": "ZL19040900000010289", "code": "1000", "ok": "true", "none": "", "o": `{"a":1}`, "sign": "x"}
	if len(p) != len(want) {
		t.Fatalf("Params = %v", p)
	}
	for k, v := range want {
		if p[k] != v {
			t.Errorf("%s = %q, want %q", k, p[k], v)
		}
	}
	for _, bad := range []string{``, `[]`, `"x"`, `{"a":`, `{} {}`, `null`} {
		if _, err := md5sign.Params([]byte(bad)); jifu.ErrorCode(err) != jifu.CodeInvalid {
			t.Errorf("Params(%q): %v", bad, err)
		}
	}
}

// FuzzParams: no panic; what parses signs and verifies.
func FuzzParams(f *testing.F) {
	f.Add(`{"a":"1","b":2}`)
	f.Add(`{"sign":null}`)
	f.Fuzz(func(t *testing.T, body string) {
		p, err := md5sign.Params([]byte(body))
		if err != nil {
			return
		}
		p["sign"] = md5sign.Signer{}.Sign(p, secret)
		if err := (md5sign.Signer{}).Verify(p, secret); err != nil {
			t.Fatalf("own signature refused: %v", err)
		}
	})
}
