package bank

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"github.com/jifu-open/jifu"
)

// Sign returns the hex HMAC-SHA256, under secret, of what a message signs:
// its timestamp (Unix seconds), method, path and body, each on its own line.
// Responses sign with the method "RESPONSE" and the request's path.
func Sign(secret []byte, ts int64, method, path string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'\n'})
	m.Write([]byte(method))
	m.Write([]byte{'\n'})
	m.Write([]byte(path))
	m.Write([]byte{'\n'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks a message's timestamp header (within MaxClockSkew of now)
// and signature header. Its errors are CodeDenied and name which check
// failed, never the expected signature.
func Verify(h http.Header, secret []byte, now time.Time, method, path string, body []byte) error {
	ts, err := strconv.ParseInt(h.Get(HeaderTime), 10, 64)
	if err != nil {
		return jifu.Errorf(jifu.CodeDenied, "bank: missing or malformed %s", HeaderTime)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > MaxClockSkew || d < -MaxClockSkew {
		return jifu.Errorf(jifu.CodeDenied, "bank: stale timestamp")
	}
	got, err := hex.DecodeString(h.Get(HeaderSig))
	if err != nil || len(got) != sha256.Size {
		return jifu.Errorf(jifu.CodeDenied, "bank: missing or malformed %s", HeaderSig)
	}
	want, _ := hex.DecodeString(Sign(secret, ts, method, path, body))
	if !hmac.Equal(got, want) {
		return jifu.Errorf(jifu.CodeDenied, "bank: bad signature")
	}
	return nil
}

// SetSignature stamps h with the time and signature of a message: the
// client signs requests with it, the bank its responses.
func SetSignature(h http.Header, secret []byte, now time.Time, method, path string, body []byte) {
	ts := now.Unix()
	h.Set(HeaderTime, strconv.FormatInt(ts, 10))
	h.Set(HeaderSig, Sign(secret, ts, method, path, body))
}
