package callback

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/sdk/opensign"
)

// Headers of a callback request.
const (
	HeaderSignature = "Jifu-Signature"  // t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">
	HeaderEventID   = "Jifu-Event-Id"   // the event's id: deduplicate on it
	HeaderEventType = "Jifu-Event-Type" // the event's type, as in the body
)

// DefaultTolerance is how old (or how far ahead) a callback's timestamp
// may be when a receiver verifies it.
const DefaultTolerance = 5 * time.Minute

// Sign returns the Jifu-Signature header value for body sent at t with
// secret: "t=<unix>,v1=<hex HMAC-SHA256 of "<unix>.<body>">".
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

func mac(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Signature is a parsed Jifu-Signature header.
type Signature struct {
	Timestamp int64    // Unix seconds
	V1        []string // lower-case hex HMACs; more than one while a secret rotates
}

// ParseSignature parses a Jifu-Signature header: comma-separated key=value
// items, exactly one t (Unix seconds), at least one v1 (64 hex digits, upper
// or lower case); items with other keys are ignored, so that later schemes
// can be added beside v1. Anything else is opensign.CodeMissing.
func ParseSignature(h string) (Signature, error) {
	var s Signature
	if h == "" {
		return s, jifu.Errorf(opensign.CodeMissing, "callback: no %s header", HeaderSignature)
	}
	if len(h) > 4096 {
		return s, jifu.Errorf(opensign.CodeMissing, "callback: %s header is too long", HeaderSignature)
	}
	seenT := false
	for _, item := range strings.Split(h, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return s, jifu.Errorf(opensign.CodeMissing, "callback: %s item %q is not key=value", HeaderSignature, clip(item))
		}
		switch k {
		case "t":
			ts, err := strconv.ParseInt(v, 10, 64)
			if seenT || err != nil || ts <= 0 || len(v) > 12 || v[0] < '1' || v[0] > '9' {
				return s, jifu.Errorf(opensign.CodeMissing, "callback: %s needs exactly one t=<unix seconds>", HeaderSignature)
			}
			s.Timestamp, seenT = ts, true
		case "v1":
			if len(v) != 64 || !isHex(v) {
				return s, jifu.Errorf(opensign.CodeMissing, "callback: %s v1 must be 64 hex digits", HeaderSignature)
			}
			s.V1 = append(s.V1, strings.ToLower(v))
		}
	}
	if !seenT || len(s.V1) == 0 {
		return s, jifu.Errorf(opensign.CodeMissing, "callback: %s needs t= and v1=", HeaderSignature)
	}
	return s, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// Verify is what a receiver runs: it checks header against body and secret,
// and that the timestamp is within tolerance of now (DefaultTolerance when
// 0). Errors carry opensign's codes: CodeMissing (malformed header),
// CodeStale, CodeMismatch. Receivers still deduplicate by event id: a
// signature only proves the platform sent it, not that it was sent once.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	s, err := ParseSignature(header)
	if err != nil {
		return err
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	skew := now.Sub(time.Unix(s.Timestamp, 0))
	if skew > tolerance || -skew > tolerance {
		return jifu.Errorf(opensign.CodeStale, "callback: signature timestamp is %v from now, over %v", skew.Round(time.Second), tolerance)
	}
	want := mac(secret, strconv.FormatInt(s.Timestamp, 10), body)
	for _, v := range s.V1 {
		if hmac.Equal([]byte(v), []byte(want)) {
			return nil
		}
	}
	return jifu.Errorf(opensign.CodeMismatch, "callback: signature does not match the body")
}
