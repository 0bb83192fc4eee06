package openapi

import (
	"bytes"
	"context"
	"crypto/hmac"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/ratelimit"
	"github.com/jifu-open/jifu/marketplace"
	"github.com/jifu-open/jifu/sdk/opensign"
)

// Stable codes of the open API besides opensign's (signature_missing,
// timestamp_expired, app_key_unknown, signature_mismatch, nonce_replayed)
// and ratelimit's (rate_limited).
const (
	CodeTimestampFuture = "timestamp_future"   // Timestamp more than the window ahead of the server's clock
	CodeIPDenied        = "ip_not_allowed"     // the source address is outside the app's IP whitelist
	CodeTokenInvalid    = "token_invalid"      // the OAuth access token is unknown, expired, revoked or another app's
	CodeScopeMissing    = "scope_missing"      // the access token lacks the scope the call needs
	CodeEnvironment     = "environment_denied" // a sandbox key asked for production-only data
)

// Caller is the app a verified request acts for.
type Caller struct {
	Key   *marketplace.KeyInfo
	Level string // the developer's service level
}

// Sandbox reports whether the caller signed with a sandbox key.
func (c *Caller) Sandbox() bool { return c.Key.Env != marketplace.EnvProduction }

// Namespace is the app name under which the caller's payments and
// callbacks are kept: the slug for production, "sandbox:<slug>" for
// sandbox keys, so that sandbox keys reach only sandbox data.
func (c *Caller) Namespace() string {
	if c.Sandbox() {
		return "sandbox:" + c.Key.Slug
	}
	return c.Key.Slug
}

type callerKey struct{}

// CallerFrom returns the verified caller of a request inside the open API.
func CallerFrom(ctx context.Context) (*Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(*Caller)
	return c, ok
}

// verify is the /openapi/v1 middleware: it verifies the signature, the
// source address and the rate, spends the nonce last, and passes the
// request on with its Caller. Every refusal leaves no trace: nothing is
// written, the nonce stays unspent.
func (s *Server) verify(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := s.authenticate(r)
		if err != nil {
			if d := ratelimit.RetryAfter(err); d > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(d.Seconds())))))
			}
			s.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
	})
}

func (s *Server) authenticate(r *http.Request) (*Caller, error) {
	h := r.Header.Values("Authorization")
	if len(h) != 1 {
		return nil, jifu.Errorf(opensign.CodeMissing, "openapi: want exactly one Authorization header, got %d", len(h))
	}
	a, err := opensign.ParseAuthorization(h[0])
	if err != nil {
		return nil, err
	}
	now := s.now()
	skew := now.Sub(time.Unix(a.Timestamp, 0))
	switch {
	case skew > s.cfg.Window:
		return nil, jifu.Errorf(opensign.CodeStale, "openapi: timestamp %d is %v behind the server's clock (%d), over the %v window",
			a.Timestamp, skew.Round(time.Second), now.Unix(), s.cfg.Window)
	case -skew > s.cfg.Window:
		return nil, jifu.Errorf(CodeTimestampFuture, "openapi: timestamp %d is %v ahead of the server's clock (%d), over the %v window",
			a.Timestamp, (-skew).Round(time.Second), now.Unix(), s.cfg.Window)
	}
	key, err := s.cfg.Market.LookupKey(r.Context(), a.AppKey)
	if jifu.ErrorCode(err) == jifu.CodeNotFound {
		return nil, jifu.Errorf(opensign.CodeUnknownKey, "openapi: unknown AppKey %s", a.AppKey)
	}
	if err != nil {
		return nil, err
	}
	addr, err := remoteAddr(r)
	if err != nil || !key.Allowed(addr) {
		return nil, jifu.Errorf(CodeIPDenied, "openapi: %s is not in the IP whitelist of app %s (set it in the developer portal)", addr, key.Slug)
	}
	limit := s.cfg.MaxBody
	if r.Method == http.MethodPost && r.URL.Path == prefix+"/versions" {
		limit = s.cfg.MaxUpload
	}
	body, err := readBody(r, limit)
	if err != nil {
		return nil, err
	}
	canon, err := opensign.Canonical(r.Method, r.URL.EscapedPath(), r.URL.RawQuery, opensign.BodyHash(body), a)
	if err != nil {
		return nil, err
	}
	good := false
	for _, secret := range key.Secrets { // two during a rotation's overlap
		if hmac.Equal([]byte(opensign.Compute([]byte(secret), canon)), []byte(a.Signature)) {
			good = true
		}
	}
	if !good {
		return nil, jifu.Errorf(opensign.CodeMismatch, "openapi: signature does not match the request (check the canonical string in docs/OPENAPI.md)")
	}
	level, err := s.cfg.Market.AppLevel(r.Context(), key.AppID)
	if err != nil {
		return nil, err
	}
	if err := s.limiter.Allow(a.AppKey, level); err != nil {
		return nil, err
	}
	if s.cfg.Nonces != nil {
		// Kept until the timestamp leaves the window: later the clock check
		// refuses the request anyway.
		if err := s.cfg.Nonces.Use(r.Context(), a.AppKey, a.Nonce, time.Unix(a.Timestamp, 0).Add(s.cfg.Window)); err != nil {
			return nil, err
		}
	}
	return &Caller{Key: key, Level: level}, nil
}

// remoteAddr is the address the request came from: the connection's peer.
// Forwarding headers are ignored (a proxy in front must be the whitelisted
// address, or terminate the API itself).
func remoteAddr(r *http.Request) (netip.Addr, error) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, jifu.Errorf(CodeIPDenied, "openapi: no source address")
	}
	return a.Unmap(), nil
}

// readBody reads r's body (at most limit bytes) and puts a copy back.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	r.Body.Close()
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeInvalid, "openapi: read body: %w", err)
	}
	if int64(len(body)) > limit {
		return nil, jifu.Errorf(jifu.CodeTooLarge, "openapi: body over %d bytes", limit)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body, nil
}
