package openapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jifu-open/jifu/host/ratelimit"
	"github.com/jifu-open/jifu/marketplace"
	"github.com/jifu-open/jifu/openapi"
	"github.com/jifu-open/jifu/sdk/opensign"
)

// signedReq is a request signed by hand so a test can tamper with it after
// signing.
type signedReq struct {
	method, path, query, body string
	key                       opensign.Key
	ts                        int64
	nonce                     string
}

func (s signedReq) auth() opensign.Auth {
	a := opensign.Auth{AppKey: s.key.AppKey, Timestamp: s.ts, Nonce: s.nonce}
	c, err := opensign.Canonical(s.method, s.path, s.query, opensign.BodyHash([]byte(s.body)), a)
	if err != nil {
		panic(err)
	}
	a.Signature = opensign.Compute(s.key.Secret, c)
	return a
}

// send sends the request as signed, with path, query and body replaced by
// the tampered ones when set.
func (e *env) send(s signedReq, tamper func(*signedReq)) (int, string, http.Header) {
	e.t.Helper()
	a := s.auth()
	if tamper != nil {
		tamper(&s)
	}
	u := e.srv.URL + s.path
	if s.query != "" {
		u += "?" + s.query
	}
	req, err := http.NewRequest(s.method, u, strings.NewReader(s.body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", a.String())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var eb struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(b, &eb)
	if resp.StatusCode/100 == 2 {
		return resp.StatusCode, "", resp.Header
	}
	return resp.StatusCode, eb.Error.Code, resp.Header
}

func (e *env) intents(app string) int {
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM payment_intents WHERE app = $1`, app).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) nonceSpent(appKey, nonce string) bool {
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM opensign_nonces WHERE app_key = $1 AND nonce = $2`,
		appKey, nonce).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n > 0
}

func TestSignature(t *testing.T) {
	e := newEnv(t)
	a := e.newApp(marketplace.LevelBasic, "127.0.0.1/32", "::1/128")
	far := e.newApp(marketplace.LevelBasic, "10.0.0.0/8")
	now := e.clock.Now().Unix()
	base := func(key opensign.Key, nonce string) signedReq {
		return signedReq{method: "POST", path: "/openapi/v1/payments", query: "channel=web&b=2",
			body: `{"user":"u1","amount":100,"description":"order","key":"` + nonce + `"}`, key: key, ts: now, nonce: nonce}
	}
	ns := "sandbox:" + a.app.Slug
	cases := []struct {
		name   string
		req    func(nonce string) signedReq
		tamper func(*signedReq)
		status int
		code   string
	}{
		{"tampered body", func(n string) signedReq { return base(a.key, n) },
			func(s *signedReq) { s.body = strings.Replace(s.body, "100", "999", 1) }, 401, opensign.CodeMismatch},
		{"tampered query", func(n string) signedReq { return base(a.key, n) },
			func(s *signedReq) { s.query = "channel=app&b=2" }, 401, opensign.CodeMismatch},
		{"tampered path", func(n string) signedReq { return base(a.key, n) },
			func(s *signedReq) { s.path = "/openapi/v1/payments/" }, 401, opensign.CodeMismatch},
		{"stale", func(n string) signedReq { r := base(a.key, n); r.ts = now - 301; return r }, nil, 401, opensign.CodeStale},
		{"future", func(n string) signedReq { r := base(a.key, n); r.ts = now + 301; return r }, nil, 401, openapi.CodeTimestampFuture},
		{"unknown key", func(n string) signedReq {
			return base(opensign.Key{AppKey: "sbx_nosuchkey", Secret: a.key.Secret}, n)
		}, nil, 401, opensign.CodeUnknownKey},
		{"wrong secret", func(n string) signedReq {
			return base(opensign.Key{AppKey: a.key.AppKey, Secret: []byte("not the secret")}, n)
		}, nil, 401, opensign.CodeMismatch},
		{"another app's secret", func(n string) signedReq {
			return base(opensign.Key{AppKey: a.key.AppKey, Secret: far.key.Secret}, n)
		}, nil, 401, opensign.CodeMismatch},
		{"IP outside whitelist", func(n string) signedReq { return base(far.key, n) }, nil, 403, openapi.CodeIPDenied},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			nonce := "nonce-" + strconv.Itoa(i) + "-" + unique("")
			r := c.req(nonce)
			st, code, _ := e.send(r, c.tamper)
			if st != c.status || code != c.code {
				t.Fatalf("got %d %q, want %d %q", st, code, c.status, c.code)
			}
			if n := e.intents(ns) + e.intents("sandbox:"+far.app.Slug); n != 0 {
				t.Fatalf("%d intents after a refused call", n)
			}
			if e.nonceSpent(r.key.AppKey, nonce) {
				t.Fatal("a refused call spent its nonce")
			}
		})
	}
	t.Run("missing header", func(t *testing.T) {
		resp, err := http.Post(e.srv.URL+"/openapi/v1/payments", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	t.Run("valid, then the same nonce replayed", func(t *testing.T) {
		// The nonce of a refused (tampered) call stays usable: the good
		// request with it goes through.
		nonce := "nonce-valid-" + unique("")
		r := base(a.key, nonce)
		if st, code, _ := e.send(r, func(s *signedReq) { s.body += " " }); code != opensign.CodeMismatch {
			t.Fatalf("tampered: %d %q", st, code)
		}
		if st, code, _ := e.send(r, nil); st != 201 {
			t.Fatalf("valid: %d %q", st, code)
		}
		if n := e.intents(ns); n != 1 {
			t.Fatalf("%d intents, want 1", n)
		}
		if st, code, _ := e.send(r, nil); st != 409 || code != opensign.CodeReplay {
			t.Fatalf("replay: %d %q", st, code)
		}
		if n := e.intents(ns); n != 1 {
			t.Fatalf("%d intents after the replay, want 1", n)
		}
	})
	t.Run("timestamp at the edge of the window", func(t *testing.T) {
		for _, d := range []int64{-299, 299} {
			r := base(a.key, "nonce-edge-"+unique(""))
			r.ts = now + d
			r.method, r.path, r.query, r.body = "GET", "/openapi/v1/app", "", ""
			if st, code, _ := e.send(r, nil); st != 200 {
				t.Fatalf("skew %d: %d %q", d, st, code)
			}
		}
	})
}

func TestRateLimit(t *testing.T) {
	var e *env
	e = newEnv(t, func(c *openapi.Config) {
		lim, err := ratelimit.New(ratelimit.Config{Default: marketplace.LevelBasic, Now: c.Now, Levels: map[string]ratelimit.Level{
			marketplace.LevelBasic: {Rate: 0.5, Burst: 2}, marketplace.LevelStandard: {Rate: 100, Burst: 100}}})
		if err != nil {
			t.Fatal(err)
		}
		c.Limiter = lim
	})
	basic := e.newApp(marketplace.LevelBasic, "127.0.0.1/32", "::1/128")
	standard := e.newApp(marketplace.LevelStandard, "127.0.0.1/32", "::1/128")
	call := func(key opensign.Key) (int, string, http.Header) {
		return e.send(signedReq{method: "GET", path: "/openapi/v1/app", key: key, ts: e.clock.Now().Unix(), nonce: "n-" + unique("")}, nil)
	}
	for i := 0; i < 2; i++ {
		if st, code, _ := call(basic.key); st != 200 {
			t.Fatalf("call %d: %d %q", i, st, code)
		}
	}
	st, code, h := call(basic.key)
	if st != 429 || code != ratelimit.CodeLimited {
		t.Fatalf("over the burst: %d %q", st, code)
	}
	if ra, _ := strconv.Atoi(h.Get("Retry-After")); ra != 2 {
		t.Fatalf("Retry-After %q, want 2 (one call every 2 s)", h.Get("Retry-After"))
	}
	// The standard level is not limited at this pace.
	for i := 0; i < 5; i++ {
		if st, code, _ := call(standard.key); st != 200 {
			t.Fatalf("standard call %d: %d %q", i, st, code)
		}
	}
	e.clock.Add(2 * time.Second)
	if st, code, _ := call(basic.key); st != 200 {
		t.Fatalf("after waiting: %d %q", st, code)
	}
}
