// Package md5sign is the legacy partner signature of the risk-score
// protocol (seed risk-score-partner-api.txt, "sign规则: 按ASCII排序后，进行MD5处理"):
//
//	sign = lower-case hex MD5( k1=v1&k2=v2&...&kn=vn + secret )
//
// with the parameters sorted by name in ASCII (byte) order, joined with "&",
// and the secret appended directly, with no separator, as in the seed's
// example MD5("id_num=...&mobile=...&partner_id=...&timestamp=...&zw_order=...7b005bc0e714333ec5af315ee66b4cc").
// The "sign" parameter itself is never part of the string. Values are used
// as they are, neither trimmed nor URL-encoded.
//
// Empty values: the seed signs every parameter and says nothing about empty
// ones, so by default an empty value takes part as "k=" (the literal
// reading). Partners whose implementation drops empty values (common in
// Chinese payment protocols) are served by Signer{SkipEmpty: true}.
//
// It is MD5: use it only where a partner protocol requires it; the open API
// itself signs with HMAC-SHA256 (package opensign).
//
//	s := md5sign.Signer{}
//	params["sign"] = s.Sign(params, secret)
//	err := s.Verify(params, secret) // opensign.CodeMissing / CodeMismatch
package md5sign

import (
	"bytes"
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strings"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/sdk/opensign"
)

// Field is the parameter that carries the signature.
const Field = "sign"

// Signer signs and verifies parameter sets. The zero value follows the
// seed literally.
type Signer struct {
	SkipEmpty bool // leave parameters with an empty value out of the string
}

// Canonical returns the string that is hashed, without the secret.
func (s Signer) Canonical(params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k, v := range params {
		if k == Field || (s.SkipEmpty && v == "") {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys) // byte order: ASCII
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(params[k])
	}
	return b.String()
}

// Sign returns the 32 lower-case hex digits of the signature.
func (s Signer) Sign(params map[string]string, secret string) string {
	sum := md5.Sum([]byte(s.Canonical(params) + secret))
	return hex.EncodeToString(sum[:])
}

// Verify checks params[Field] against the other parameters. Upper-case hex
// is accepted (some partners send it). A missing or malformed sign is
// opensign.CodeMissing, a wrong one opensign.CodeMismatch.
func (s Signer) Verify(params map[string]string, secret string) error {
	got, ok := params[Field]
	if !ok || got == "" {
		return jifu.Errorf(opensign.CodeMissing, "md5sign: no %s parameter", Field)
	}
	if len(got) != 32 {
		return jifu.Errorf(opensign.CodeMissing, "md5sign: %s must be 32 hex digits", Field)
	}
	want := s.Sign(params, secret)
	if subtle.ConstantTimeCompare([]byte(strings.ToLower(got)), []byte(want)) != 1 {
		return jifu.Errorf(opensign.CodeMismatch, "md5sign: %s does not match the parameters", Field)
	}
	return nil
}

// Params turns a JSON object (the seed's request bodies) into parameters:
// strings as they are, numbers as written, true/false, null as "", and
// nested objects or arrays as their compact JSON text. Anything but an
// object is jifu.CodeInvalid.
func Params(body []byte) (map[string]string, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil || raw == nil {
		return nil, jifu.Errorf(jifu.CodeInvalid, "md5sign: body is not a JSON object")
	}
	if dec.More() {
		return nil, jifu.Errorf(jifu.CodeInvalid, "md5sign: body holds more than one JSON value")
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		v = bytes.TrimSpace(v)
		switch {
		case len(v) > 0 && v[0] == '"':
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, jifu.Errorf(jifu.CodeInvalid, "md5sign: parameter %q: %w", k, err)
			}
			out[k] = s
		case string(v) == "null":
			out[k] = ""
		case len(v) > 0 && (v[0] == '{' || v[0] == '['):
			var b bytes.Buffer
			if err := json.Compact(&b, v); err != nil {
				return nil, jifu.Errorf(jifu.CodeInvalid, "md5sign: parameter %q: %w", k, err)
			}
			out[k] = b.String()
		default:
			out[k] = string(v) // number, true, false: as written
		}
	}
	return out, nil
}
