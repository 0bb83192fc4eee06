// Package opensign signs and verifies requests to the Jifu open API
// (/openapi/v1/...). A request carries one header
//
//	Authorization: JIFU1-HMAC-SHA256 AppKey=<key>, Timestamp=<unix s>, Nonce=<nonce>, Signature=<hex>
//
// where Signature is the lower-case hex HMAC-SHA256, keyed with the app's
// SECRET, of the canonical string (see Canonical and docs/OPENAPI.md):
//
//	JIFU1-HMAC-SHA256
//	<METHOD>
//	<escaped path>
//	<canonical query: k=v pairs percent-encoded, sorted by key then value, joined by &>
//	<AppKey>
//	<Timestamp>
//	<Nonce>
//	<hex SHA-256 of the body>
//
// Lines are joined by "\n" with no trailing newline. Clients call Sign (or
// wrap a transport with Transport); the server calls Verifier.Verify, which
// refuses with a distinct stable code each: a missing or malformed header
// (CodeMissing), a timestamp more than Window from the server's clock either
// way (CodeStale), an unknown key (CodeUnknownKey), a wrong signature
// (CodeMismatch) and a nonce already used within the window (CodeReplay).
// A refused request leaves no trace: the nonce is spent only by a request
// whose signature is good.
//
//	key := opensign.Key{AppKey: "ak_live_123", Secret: []byte(secret)}
//	req, _ := http.NewRequest("POST", "https://open.jifu.example/openapi/v1/payments", body)
//	err := opensign.Sign(req, key, time.Now())
package opensign

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jifu-open/jifu"
)

// Stable error codes (jifu.Error codes) of a refused request.
const (
	CodeMissing    = "signature_missing"  // no Authorization header, or a field missing or malformed
	CodeStale      = "timestamp_expired"  // Timestamp more than the window before or after the server's clock
	CodeUnknownKey = "app_key_unknown"    // no app has this key (or it is revoked)
	CodeMismatch   = "signature_mismatch" // the signature does not match the request
	CodeReplay     = "nonce_replayed"     // the nonce was already used within the window
)

// Scheme names the algorithm, in the Authorization header and as the first
// line of the canonical string.
const Scheme = "JIFU1-HMAC-SHA256"

// DefaultWindow is how far a request's timestamp may be from the server's
// clock, either way.
const DefaultWindow = 300 * time.Second

// EmptyBodyHash is the hex SHA-256 of an empty body.
const EmptyBodyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// Limits on the header's fields.
const (
	MaxAppKeyLen = 64
	MinNonceLen  = 8
	MaxNonceLen  = 64
)

// Key is an app's credentials: its public AppKey and its SECRET.
type Key struct {
	AppKey string
	Secret []byte
}

// String never shows the secret.
func (k Key) String() string { return "opensign.Key{AppKey: " + k.AppKey + ", Secret: <redacted>}" }

// GoString never shows the secret.
func (k Key) GoString() string { return k.String() }

// Auth is the content of the Authorization header.
type Auth struct {
	AppKey    string
	Timestamp int64 // Unix seconds
	Nonce     string
	Signature string // lower-case hex, 64 digits
}

// String renders the header value.
func (a Auth) String() string {
	return fmt.Sprintf("%s AppKey=%s, Timestamp=%d, Nonce=%s, Signature=%s", Scheme, a.AppKey, a.Timestamp, a.Nonce, a.Signature)
}

func missing(format string, args ...any) error {
	return jifu.Errorf(CodeMissing, "opensign: "+format, args...)
}

// ParseAuthorization parses an Authorization header value. The four fields
// are required, each once, in any order, separated by commas with optional
// spaces; field names are case-sensitive; unknown fields are refused.
func ParseAuthorization(h string) (Auth, error) {
	var a Auth
	rest, ok := strings.CutPrefix(h, Scheme+" ")
	if !ok {
		return a, missing("Authorization must start with %q", Scheme+" ")
	}
	seen := map[string]bool{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || v == "" {
			return a, missing("Authorization field %q is not name=value", truncate(part, 40))
		}
		if seen[k] {
			return a, missing("Authorization field %s appears twice", truncate(k, 20))
		}
		seen[k] = true
		switch k {
		case "AppKey":
			if len(v) > MaxAppKeyLen || !token(v) {
				return a, missing("AppKey must be 1..%d of [A-Za-z0-9_.-]", MaxAppKeyLen)
			}
			a.AppKey = v
		case "Timestamp":
			ts, err := strconv.ParseInt(v, 10, 64)
			if err != nil || ts <= 0 || len(v) > 12 || v[0] == '+' || v[0] == '0' {
				return a, missing("Timestamp must be Unix seconds")
			}
			a.Timestamp = ts
		case "Nonce":
			if len(v) < MinNonceLen || len(v) > MaxNonceLen || !token(v) {
				return a, missing("Nonce must be %d..%d of [A-Za-z0-9_.-]", MinNonceLen, MaxNonceLen)
			}
			a.Nonce = v
		case "Signature":
			if len(v) != 64 || !lowerHex(v) {
				return a, missing("Signature must be 64 lower-case hex digits")
			}
			a.Signature = v
		default:
			return a, missing("unknown Authorization field %q", truncate(k, 20))
		}
	}
	for _, k := range []string{"AppKey", "Timestamp", "Nonce", "Signature"} {
		if !seen[k] {
			return a, missing("Authorization lacks %s", k)
		}
	}
	return a, nil
}

func token(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// CanonicalQuery renders a raw query string canonically: every name=value
// pair decoded, then re-encoded with RFC 3986 rules (unreserved characters
// A-Z a-z 0-9 - . _ ~ as they are, every other byte %XX upper-case, so a
// space is %20), sorted by name then value, joined with "&". A name without
// "=" has the empty value. "+" in the raw query means a space, as in HTML
// forms. A malformed escape is CodeMissing.
func CanonicalQuery(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	type pair struct{ k, v string }
	var pairs []pair
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		dk, err := url.QueryUnescape(k)
		if err != nil {
			return "", missing("query name %q is not well escaped", truncate(k, 40))
		}
		dv, err := url.QueryUnescape(v)
		if err != nil {
			return "", missing("query value of %q is not well escaped", truncate(dk, 40))
		}
		pairs = append(pairs, pair{escape(dk), escape(dv)})
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return b.String(), nil
}

// escape percent-encodes everything but RFC 3986's unreserved characters.
func escape(s string) string {
	const hexdig = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexdig[c>>4])
		b.WriteByte(hexdig[c&15])
	}
	return b.String()
}

// Canonical returns the string to sign for a request. path is the escaped
// path as sent (url.URL.EscapedPath; "" means "/"), rawQuery the query as
// sent, bodyHash the lower-case hex SHA-256 of the body.
func Canonical(method, path, rawQuery, bodyHash string, a Auth) (string, error) {
	q, err := CanonicalQuery(rawQuery)
	if err != nil {
		return "", err
	}
	if path == "" {
		path = "/"
	}
	return strings.Join([]string{
		Scheme, strings.ToUpper(method), path, q,
		a.AppKey, strconv.FormatInt(a.Timestamp, 10), a.Nonce, bodyHash,
	}, "\n"), nil
}

// Compute returns the lower-case hex HMAC-SHA256 of canonical under secret.
func Compute(secret []byte, canonical string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(canonical))
	return hex.EncodeToString(m.Sum(nil))
}

// BodyHash returns the lower-case hex SHA-256 of body.
func BodyHash(body []byte) string {
	s := sha256.Sum256(body)
	return hex.EncodeToString(s[:])
}

// NewNonce returns 16 random bytes as 32 hex digits.
func NewNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Sign sets r's Authorization header for key at now, with a fresh nonce.
// It reads r's body to hash it and puts an identical body back (and sets
// GetBody, so the request can be retried).
func Sign(r *http.Request, key Key, now time.Time) error {
	body, err := readBody(r, -1)
	if err != nil {
		return err
	}
	a := Auth{AppKey: key.AppKey, Timestamp: now.Unix(), Nonce: NewNonce()}
	c, err := Canonical(r.Method, r.URL.EscapedPath(), r.URL.RawQuery, BodyHash(body), a)
	if err != nil {
		return err
	}
	a.Signature = Compute(key.Secret, c)
	r.Header.Set("Authorization", a.String())
	return nil
}

// readBody reads r's body (at most limit bytes when limit >= 0, else all)
// and replaces it with a copy.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	src := io.Reader(r.Body)
	if limit >= 0 {
		src = io.LimitReader(r.Body, limit+1)
	}
	body, err := io.ReadAll(src)
	r.Body.Close()
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeInvalid, "opensign: read body: %w", err)
	}
	if limit >= 0 && int64(len(body)) > limit {
		return nil, jifu.Errorf(jifu.CodeTooLarge, "opensign: body over %d bytes", limit)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return body, nil
}

// Transport signs every request with key before base sends it. Requests
// are cloned, never modified.
func Transport(base http.RoundTripper, key Key) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return signingTransport{base: base, key: key}
}

type signingTransport struct {
	base http.RoundTripper
	key  Key
}

func (t signingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c := r.Clone(r.Context())
	if err := Sign(c, t.key, time.Now()); err != nil {
		return nil, err
	}
	return t.base.RoundTrip(c)
}

// Secrets finds an app's secret by its key: CodeNotFound (any error whose
// jifu code is not_found) when there is no such key.
type Secrets interface {
	Secret(ctx context.Context, appKey string) ([]byte, error)
}

// SecretsFunc adapts a function to Secrets.
type SecretsFunc func(ctx context.Context, appKey string) ([]byte, error)

// Secret calls f.
func (f SecretsFunc) Secret(ctx context.Context, appKey string) ([]byte, error) {
	return f(ctx, appKey)
}

// Nonces remembers spent nonces. Use records nonce for appKey until
// expires and fails with CodeReplay when it is already recorded and
// unexpired.
type Nonces interface {
	Use(ctx context.Context, appKey, nonce string, expires time.Time) error
}

// Verifier checks signed requests on the server.
type Verifier struct {
	Secrets Secrets
	Nonces  Nonces           // nil: no replay protection (tests, sandboxes)
	Window  time.Duration    // DefaultWindow when 0
	MaxBody int64            // 1 MiB when 0
	Now     func() time.Time // time.Now when nil
}

// Verify checks r's signature and returns the caller's app key. It reads
// the body (up to MaxBody) and puts an identical one back for the handler.
// Checks run cheapest first: header, clock window, key, signature; the
// nonce is spent last, only for a request that passed everything else.
func (v *Verifier) Verify(r *http.Request) (appKey string, err error) {
	h := r.Header.Values("Authorization")
	if len(h) == 0 {
		return "", missing("no Authorization header")
	}
	if len(h) > 1 {
		return "", missing("more than one Authorization header")
	}
	a, err := ParseAuthorization(h[0])
	if err != nil {
		return "", err
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	window := v.Window
	if window <= 0 {
		window = DefaultWindow
	}
	t := now()
	skew := t.Sub(time.Unix(a.Timestamp, 0))
	if skew > window || -skew > window {
		return "", jifu.Errorf(CodeStale, "opensign: timestamp %d is %v from the server's clock (%d), over the %v window",
			a.Timestamp, skew.Round(time.Second), t.Unix(), window)
	}
	secret, err := v.Secrets.Secret(r.Context(), a.AppKey)
	if jifu.ErrorCode(err) == jifu.CodeNotFound {
		return "", jifu.Errorf(CodeUnknownKey, "opensign: unknown AppKey %s", a.AppKey)
	}
	if err != nil {
		return "", err
	}
	limit := v.MaxBody
	if limit <= 0 {
		limit = 1 << 20
	}
	body, err := readBody(r, limit)
	if err != nil {
		return "", err
	}
	c, err := Canonical(r.Method, r.URL.EscapedPath(), r.URL.RawQuery, BodyHash(body), a)
	if err != nil {
		return "", err
	}
	if !hmac.Equal([]byte(Compute(secret, c)), []byte(a.Signature)) {
		return "", jifu.Errorf(CodeMismatch, "opensign: signature does not match the request (check the canonical string in docs/OPENAPI.md)")
	}
	if v.Nonces != nil {
		// Kept until the timestamp leaves the window: after that the
		// timestamp check refuses the request anyway.
		if err := v.Nonces.Use(r.Context(), a.AppKey, a.Nonce, time.Unix(a.Timestamp, 0).Add(window)); err != nil {
			return "", err
		}
	}
	return a.AppKey, nil
}

// Status maps this package's codes to HTTP statuses: 401 for the
// signature's problems (the caller must fix its credentials or clock), 409
// for a replayed nonce; 0 for any other code.
func Status(code string) int {
	switch code {
	case CodeMissing, CodeStale, CodeUnknownKey, CodeMismatch:
		return http.StatusUnauthorized
	case CodeReplay:
		return http.StatusConflict
	}
	return 0
}

// IsSignatureError reports whether err is one of this package's refusals.
func IsSignatureError(err error) bool {
	var e *jifu.Error
	return errors.As(err, &e) && Status(e.Code) != 0
}
