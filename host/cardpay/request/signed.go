package request

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jifu-open/jifu"
)

// The payment request and the refund request are signed, decoded and
// encoded the same way; these helpers are that one way, over a body's
// name/value fields (every field but sign).

// canonical writes the fields that sign covers: non-empty ones, sorted by
// name in ASCII order, name=value joined with '&'.
func canonical(f [][2]string) string {
	sort.Slice(f, func(i, j int) bool { return f[i][0] < f[j][0] })
	var b strings.Builder
	for _, kv := range f {
		if kv[1] == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(kv[0])
		b.WriteByte('=')
		b.WriteString(kv[1])
	}
	return b.String()
}

// computeSign is HMAC-SHA256(paySecret, canonical(f)) in lower-case hex.
func computeSign(paySecret string, f [][2]string) string {
	m := hmac.New(sha256.New, []byte(paySecret))
	m.Write([]byte(canonical(f)))
	return hex.EncodeToString(m.Sum(nil))
}

// verify checks sign against the fields in constant time; CodeDenied when
// it does not match.
func verify(paySecret string, f [][2]string, sign string) error {
	if !hmac.Equal([]byte(computeSign(paySecret, f)), []byte(sign)) {
		return jifu.Errorf(jifu.CodeDenied, "request: sign does not match")
	}
	return nil
}

// unixTime reads a checked timestamp (Unix seconds).
func unixTime(ts string) time.Time {
	s, _ := strconv.ParseInt(ts, 10, 64)
	return time.Unix(s, 0)
}

// encode writes the wire JSON object: the non-empty fields and sign.
func encode(f [][2]string, sign string) []byte {
	m := make(map[string]string, len(f)+1)
	for _, kv := range f {
		if kv[1] != "" {
			m[kv[0]] = kv[1]
		}
	}
	if sign != "" {
		m["sign"] = sign
	}
	b, _ := json.Marshal(m)
	return b
}

// decodeStrict parses body into v (a pointer to a body struct of string
// fields): one JSON object with known names only, at most MaxBody bytes.
// what names the body in the error ("request", "refund").
func decodeStrict(body []byte, v any, what string) error {
	if len(body) > MaxBody {
		return jifu.Errorf(jifu.CodeTooLarge, "request: body of %d bytes over %d", len(body), MaxBody)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jifu.Errorf(jifu.CodeInvalid, "request: not a JSON object of the %s's string fields: %s", what, jsonReason(err))
	}
	if dec.More() {
		return jifu.Errorf(jifu.CodeInvalid, "request: trailing data after the JSON object")
	}
	return nil
}
