package opensign_test

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/sdk/opensign"
)

// The vector is computed independently with openssl (docs/OPENAPI.md shows
// the same commands):
//
//	BH=$(printf '%s' '{"amount":100}' | openssl dgst -sha256 -hex | awk '{print $2}')
//	printf 'JIFU1-HMAC-SHA256\nPOST\n/openapi/v1/payments\na=0&a=1&b=2&c=hello%%20world&d=%%E4%%BD%%A0\nak_test\n1767225600\nn0nce-0001\n%s' $BH |
//	  openssl dgst -sha256 -hmac sk_test -hex
const (
	vecBody      = `{"amount":100}`
	vecBodyHash  = "4d4bbe59c6aad22442cde199a6a8a5f034405fcd78fb5a81c24ef249de1c45f1"
	vecQuery     = "c=hello+world&b=2&a=1&d=%e4%bd%a0&a=0"
	vecCanonQ    = "a=0&a=1&b=2&c=hello%20world&d=%E4%BD%A0"
	vecSignature = "fdb0831952524da33144383c9827630a567850ec077dab97c5d92d7b4703aedc"
	vecTime      = 1767225600
)

var vecAuth = opensign.Auth{AppKey: "ak_test", Timestamp: vecTime, Nonce: "n0nce-0001"}

func TestVector(t *testing.T) {
	if got := opensign.BodyHash([]byte(vecBody)); got != vecBodyHash {
		t.Errorf("BodyHash = %s", got)
	}
	if got := opensign.BodyHash(nil); got != opensign.EmptyBodyHash {
		t.Errorf("BodyHash(nil) = %s", got)
	}
	q, err := opensign.CanonicalQuery(vecQuery)
	if err != nil || q != vecCanonQ {
		t.Fatalf("CanonicalQuery = %q, %v; want %q", q, err, vecCanonQ)
	}
	c, err := opensign.Canonical("post", "/openapi/v1/payments", vecQuery, vecBodyHash, vecAuth)
	if err != nil {
		t.Fatal(err)
	}
	want := "JIFU1-HMAC-SHA256\nPOST\n/openapi/v1/payments\n" + vecCanonQ + "\nak_test\n1767225600\nn0nce-0001\n" + vecBodyHash
	if c != want {
		t.Fatalf("Canonical =\n%s\nwant\n%s", c, want)
	}
	if got := opensign.Compute([]byte("sk_test"), c); got != vecSignature {
		t.Errorf("Compute = %s, want %s", got, vecSignature)
	}
}

func TestCanonicalQuery(t *testing.T) {
	tests := []struct{ raw, want string }{
		{"", ""},
		{"a=1", "a=1"},
		{"b=1&a=2", "a=2&b=1"},
		{"a=2&a=10&a=1", "a=1&a=10&a=2"}, // byte order, not numeric
		{"flag", "flag="},
		{"a=&b", "a=&b="},
		{"&&a=1&", "a=1"},
		{"k=a%2Bb", "k=a%2Bb"},
		{"k=a+b", "k=a%20b"},
		{"k=~-._", "k=~-._"},
		{"k=%7E", "k=~"},
		{"k=a/b?c", "k=a%2Fb%3Fc"},
		{"%E4%BD%A0=1", "%E4%BD%A0=1"},
		{"Z=1&a=1", "Z=1&a=1"}, // ASCII: upper case first
	}
	for _, tt := range tests {
		got, err := opensign.CanonicalQuery(tt.raw)
		if err != nil || got != tt.want {
			t.Errorf("CanonicalQuery(%q) = %q, %v; want %q", tt.raw, got, err, tt.want)
		}
	}
	for _, bad := range []string{"a=%", "a=%zz", "%g=1"} {
		if _, err := opensign.CanonicalQuery(bad); jifu.ErrorCode(err) != opensign.CodeMissing {
			t.Errorf("CanonicalQuery(%q): %v, want %s", bad, err, opensign.CodeMissing)
		}
	}
}

func TestParseAuthorization(t *testing.T) {
	sig := strings.Repeat("ab", 32)
	good := "JIFU1-HMAC-SHA256 AppKey=ak_1, Timestamp=1767225600, Nonce=abcdefgh, Signature=" + sig
	a, err := opensign.ParseAuthorization(good)
	if err != nil || a != (opensign.Auth{AppKey: "ak_1", Timestamp: 1767225600, Nonce: "abcdefgh", Signature: sig}) {
		t.Fatalf("ParseAuthorization = %+v, %v", a, err)
	}
	if a.String() != good {
		t.Errorf("String = %q", a.String())
	}
	if _, err := opensign.ParseAuthorization("JIFU1-HMAC-SHA256 Signature=" + sig + ",Nonce=abcdefgh,Timestamp=1767225600,AppKey=ak_1"); err != nil {
		t.Errorf("any order, no spaces: %v", err)
	}
	bad := []string{
		"",
		"Bearer xyz",
		"jifu1-hmac-sha256 AppKey=ak_1, Timestamp=1767225600, Nonce=abcdefgh, Signature=" + sig,
		"JIFU1-HMAC-SHA256 AppKey=ak_1, Timestamp=1767225600, Nonce=abcdefgh",
		"JIFU1-HMAC-SHA256 AppKey=ak_1, Timestamp=1767225600, Signature=" + sig,
		"JIFU1-HMAC-SHA256 Timestamp=1767225600, Nonce=abcdefgh, Signature=" + sig,
		"JIFU1-HMAC-SHA256 AppKey=ak_1, Nonce=abcdefgh, Signature=" + sig,
		"JIFU1-HMAC-SHA256 AppKey=ak_1, AppKey=ak_2, Timestamp=1767225600, Nonce=abcdefgh, Signature=" + sig,
		"JIFU1-HMAC-SHA256 AppKey=ak 1, Timestamp=1767225600, Nonce=abcdefgh, Signature=" + sig,
		"JIFU1-HMAC-SHA256 AppKey=ak_1, Timestamp=17672256xx, Nonce=abcdefgh, Signature=" + sig,
		"JIFU1-HMAC-SHA256 AppKey=ak_1, Timestamp=01767225600, Nonce=abcdefgh, Signature=" + sig,
		"JIFU1-HMAC-SHA256 AppKey=ak_1, Timestamp=1767225600, Nonce=short, Signature=" + sig,
		"JIFU1-HMAC-SHA256 AppKey=ak_1, Timestamp=1767225600, Nonce=abcdefgh, Signature=" + strings.ToUpper(sig),
		"JIFU1-HMAC-SHA256 AppKey=ak_1, Timestamp=1767225600, Nonce=abcdefgh, Signature=abc",
		"JIFU1-HMAC-SHA256 AppKey=ak_1, Timestamp=1767225600, Nonce=abcdefgh, Signature=" + sig + ", Extra=1",
		"JIFU1-HMAC-SHA256 AppKey=, Timestamp=1767225600, Nonce=abcdefgh, Signature=" + sig,
	}
	for _, h := range bad {
		if _, err := opensign.ParseAuthorization(h); jifu.ErrorCode(err) != opensign.CodeMissing {
			t.Errorf("ParseAuthorization(%q): %v, want %s", h, err, opensign.CodeMissing)
		}
	}
}

// secrets is the server's key table for the tests.
var secrets = opensign.SecretsFunc(func(_ context.Context, key string) ([]byte, error) {
	switch key {
	case "ak_test":
		return []byte("sk_test"), nil
	case "ak_other":
		return []byte("sk_other"), nil
	}
	return nil, jifu.Errorf(jifu.CodeNotFound, "no key")
})

func signedRequest(t *testing.T, method, target, body string, key opensign.Key, at time.Time) *http.Request {
	t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if err := opensign.Sign(r, key, at); err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(r.Body); string(b) != body {
		t.Fatalf("Sign changed the body to %q", b)
	}
	r.Body = io.NopCloser(strings.NewReader(body))
	return r
}

func TestVerify(t *testing.T) {
	now := time.Unix(vecTime, 0)
	key := opensign.Key{AppKey: "ak_test", Secret: []byte("sk_test")}
	v := &opensign.Verifier{Secrets: secrets, Now: func() time.Time { return now }}
	const target = "/openapi/v1/payments?b=2&a=1"
	tests := []struct {
		name string
		req  func() *http.Request
		code string
	}{
		{"valid", func() *http.Request { return signedRequest(t, "POST", target, vecBody, key, now) }, ""},
		{"valid GET without body", func() *http.Request { return signedRequest(t, "GET", "/openapi/v1/app", "", key, now) }, ""},
		{"valid, client 299 s behind", func() *http.Request { return signedRequest(t, "POST", target, vecBody, key, now.Add(-299*time.Second)) }, ""},
		{"valid, client 299 s ahead", func() *http.Request { return signedRequest(t, "POST", target, vecBody, key, now.Add(299*time.Second)) }, ""},
		{"query reordered in transit", func() *http.Request {
			r := signedRequest(t, "POST", target, vecBody, key, now)
			r.URL.RawQuery = "a=1&b=2"
			return r
		}, ""},
		{"tampered body", func() *http.Request {
			r := signedRequest(t, "POST", target, vecBody, key, now)
			r.Body = io.NopCloser(strings.NewReader(`{"amount":999}`))
			return r
		}, opensign.CodeMismatch},
		{"tampered query", func() *http.Request {
			r := signedRequest(t, "POST", target, vecBody, key, now)
			r.URL.RawQuery = "b=2&a=2"
			return r
		}, opensign.CodeMismatch},
		{"added query parameter", func() *http.Request {
			r := signedRequest(t, "POST", target, vecBody, key, now)
			r.URL.RawQuery += "&admin=1"
			return r
		}, opensign.CodeMismatch},
		{"tampered path", func() *http.Request {
			r := signedRequest(t, "POST", target, vecBody, key, now)
			r.URL.Path = "/openapi/v1/refunds"
			return r
		}, opensign.CodeMismatch},
		{"tampered method", func() *http.Request {
			r := signedRequest(t, "POST", target, vecBody, key, now)
			r.Method = "PUT"
			return r
		}, opensign.CodeMismatch},
		{"signed with another app's secret", func() *http.Request {
			return signedRequest(t, "POST", target, vecBody, opensign.Key{AppKey: "ak_test", Secret: []byte("sk_other")}, now)
		}, opensign.CodeMismatch},
		{"stale", func() *http.Request { return signedRequest(t, "POST", target, vecBody, key, now.Add(-301*time.Second)) }, opensign.CodeStale},
		{"future", func() *http.Request { return signedRequest(t, "POST", target, vecBody, key, now.Add(301*time.Second)) }, opensign.CodeStale},
		{"unknown key", func() *http.Request {
			return signedRequest(t, "POST", target, vecBody, opensign.Key{AppKey: "ak_nobody", Secret: []byte("x")}, now)
		}, opensign.CodeUnknownKey},
		{"no header", func() *http.Request { return httptest.NewRequest("POST", target, strings.NewReader(vecBody)) }, opensign.CodeMissing},
		{"two headers", func() *http.Request {
			r := signedRequest(t, "POST", target, vecBody, key, now)
			r.Header.Add("Authorization", r.Header.Get("Authorization"))
			return r
		}, opensign.CodeMissing},
		{"field missing", func() *http.Request {
			r := signedRequest(t, "POST", target, vecBody, key, now)
			h := r.Header.Get("Authorization")
			r.Header.Set("Authorization", h[:strings.Index(h, ", Signature=")])
			return r
		}, opensign.CodeMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.req()
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			app, err := v.Verify(r)
			if got := jifu.ErrorCode(err); got != tt.code {
				t.Fatalf("Verify code = %q (%v), want %q", got, err, tt.code)
			}
			if err == nil {
				if app != "ak_test" {
					t.Errorf("app = %q", app)
				}
				if after, _ := io.ReadAll(r.Body); !bytes.Equal(after, body) {
					t.Errorf("handler sees body %q, want %q", after, body)
				}
			}
			if err != nil && opensign.Status(jifu.ErrorCode(err)) == 0 {
				t.Errorf("no HTTP status for %v", err)
			}
		})
	}
}

func TestVerifyBodyLimit(t *testing.T) {
	now := time.Unix(vecTime, 0)
	key := opensign.Key{AppKey: "ak_test", Secret: []byte("sk_test")}
	v := &opensign.Verifier{Secrets: secrets, Now: func() time.Time { return now }, MaxBody: 10}
	r := signedRequest(t, "POST", "/x", strings.Repeat("a", 11), key, now)
	if _, err := v.Verify(r); jifu.ErrorCode(err) != jifu.CodeTooLarge {
		t.Errorf("over MaxBody: %v", err)
	}
}

// TestTransport signs through a real HTTP round trip, with a retried body.
func TestTransport(t *testing.T) {
	v := &opensign.Verifier{Secrets: secrets}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		app, err := v.Verify(r)
		if err != nil {
			http.Error(w, jifu.ErrorCode(err), opensign.Status(jifu.ErrorCode(err)))
			return
		}
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, app+":"+string(b))
	}))
	defer srv.Close()
	c := &http.Client{Transport: opensign.Transport(nil, opensign.Key{AppKey: "ak_other", Secret: []byte("sk_other")})}
	resp, err := c.Post(srv.URL+"/openapi/v1/payments?z=1&y=%20", "application/json", strings.NewReader(vecBody))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "ak_other:"+vecBody {
		t.Errorf("answer %d %q", resp.StatusCode, b)
	}
}

func TestKeyNeverPrintsSecret(t *testing.T) {
	k := opensign.Key{AppKey: "ak", Secret: []byte("topsecret")}
	if strings.Contains(k.String(), "topsecret") || strings.Contains(k.GoString(), "topsecret") {
		t.Error("secret printed")
	}
}

// FuzzCanonicalQuery: no panic; the canonical form is a fixed point and
// does not depend on the order of the pairs.
func FuzzCanonicalQuery(f *testing.F) {
	for _, s := range []string{vecQuery, "", "a", "a=1&a=1", "%", "+=+", "a=%zz", "&&&", "x=%E4%BD%A0&y=~"} {
		f.Add(s, uint64(1))
	}
	f.Fuzz(func(t *testing.T, raw string, seed uint64) {
		c, err := opensign.CanonicalQuery(raw)
		if err != nil {
			if jifu.ErrorCode(err) != opensign.CodeMissing {
				t.Fatalf("code %q", jifu.ErrorCode(err))
			}
			return
		}
		again, err := opensign.CanonicalQuery(c)
		if err != nil || again != c {
			t.Fatalf("not a fixed point: %q -> %q -> %q, %v", raw, c, again, err)
		}
		parts := strings.Split(raw, "&")
		rand.New(rand.NewPCG(seed, seed)).Shuffle(len(parts), func(i, j int) { parts[i], parts[j] = parts[j], parts[i] })
		if shuffled, err := opensign.CanonicalQuery(strings.Join(parts, "&")); err != nil || shuffled != c {
			t.Fatalf("order matters: %q -> %q, shuffled -> %q, %v", raw, c, shuffled, err)
		}
	})
}

// FuzzParseAuthorization: no panic; what parses renders back to a header
// that parses to the same thing.
func FuzzParseAuthorization(f *testing.F) {
	f.Add("JIFU1-HMAC-SHA256 AppKey=ak_1, Timestamp=1767225600, Nonce=abcdefgh, Signature=" + strings.Repeat("ab", 32))
	f.Add("JIFU1-HMAC-SHA256 ")
	f.Add("JIFU1-HMAC-SHA256 AppKey=,,,=")
	f.Fuzz(func(t *testing.T, h string) {
		a, err := opensign.ParseAuthorization(h)
		if err != nil {
			if jifu.ErrorCode(err) != opensign.CodeMissing {
				t.Fatalf("code %q", jifu.ErrorCode(err))
			}
			return
		}
		b, err := opensign.ParseAuthorization(a.String())
		if err != nil || b != a {
			t.Fatalf("round trip: %+v -> %+v, %v", a, b, err)
		}
	})
}

// TestDocsCurlExample runs the curl and openssl script of docs/OPENAPI.md
// against a server that verifies it.
func TestDocsCurlExample(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (make tools installs it): %v", tool, err)
		}
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "OPENAPI.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```bash\n# sign-and-call\n")
	script, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/OPENAPI.md has no sign-and-call script")
	}
	v := &opensign.Verifier{Secrets: opensign.SecretsFunc(func(_ context.Context, k string) ([]byte, error) {
		if k == "ak_test_123" {
			return []byte("sk_test_456"), nil
		}
		return nil, jifu.Errorf(jifu.CodeNotFound, "no key")
	})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		app, err := v.Verify(r)
		if err != nil {
			http.Error(w, jifu.ErrorCode(err)+": "+err.Error(), opensign.Status(jifu.ErrorCode(err)))
			return
		}
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "verified "+app+" "+r.Method+" "+r.URL.Path+" "+string(b))
	}))
	defer srv.Close()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Env = append(os.Environ(), "BASE="+srv.URL)
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != `verified ak_test_123 POST /openapi/v1/payments {"amount":1999,"subject":"order A1001"}` {
		t.Fatalf("script: %v\n%s", err, out)
	}
}
