package nonce_test

import (
	"context"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/nonce"
	"github.com/jifu-open/jifu/sdk/opensign"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func TestUse(t *testing.T) {
	ctx := context.Background()
	s := nonce.New(dbtest.Pool(t))
	later := time.Now().Add(5 * time.Minute)
	steps := []struct {
		name, key, nonce string
		expires          time.Time
		code             string
	}{
		{"first use", "ak_1", "nonce-0001", later, ""},
		{"replay", "ak_1", "nonce-0001", later, opensign.CodeReplay},
		{"same nonce, other app", "ak_2", "nonce-0001", later, ""},
		{"expired entry", "ak_1", "nonce-old1", time.Now().Add(-time.Second), ""},
		{"expired entry is reusable", "ak_1", "nonce-old1", later, ""},
		{"and then spent again", "ak_1", "nonce-old1", later, opensign.CodeReplay},
		{"empty nonce", "ak_1", "", later, jifu.CodeInvalid},
		{"long key", strings.Repeat("k", 65), "nonce-0002", later, jifu.CodeInvalid},
	}
	for _, st := range steps {
		if err := s.Use(ctx, st.key, st.nonce, st.expires); jifu.ErrorCode(err) != st.code {
			t.Errorf("%s: %v, want %q", st.name, err, st.code)
		}
	}
}

func TestUseConcurrent(t *testing.T) {
	ctx := context.Background()
	s := nonce.New(dbtest.Pool(t))
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		ok, rep int
	)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Use(ctx, "ak_c", "nonce-race", time.Now().Add(time.Minute))
			mu.Lock()
			defer mu.Unlock()
			switch jifu.ErrorCode(err) {
			case "":
				ok++
			case opensign.CodeReplay:
				rep++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok != 1 || rep != 15 {
		t.Errorf("%d uses passed, %d replays; want 1 and 15", ok, rep)
	}
}

func TestSweep(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Pool(t)
	s := nonce.New(pool)
	for _, n := range []string{"sweep-old-1", "sweep-old-2"} {
		if err := s.Use(ctx, "ak_s", n, time.Now().Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Use(ctx, "ak_s", "sweep-new-1", time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	n, err := s.Sweep(ctx)
	if err != nil || n < 2 {
		t.Fatalf("Sweep = %d, %v", n, err)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM opensign_nonces WHERE app_key = 'ak_s'`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 1 {
		t.Errorf("%d nonces left, want the unexpired one", left)
	}
}

// TestVerifierReplay runs opensign.Verifier over the real store: a replayed
// request is refused with its own code, and a refused request (bad
// signature, stale) does not spend its nonce.
func TestVerifierReplay(t *testing.T) {
	now := time.Now()
	v := &opensign.Verifier{
		Secrets: opensign.SecretsFunc(func(_ context.Context, k string) ([]byte, error) {
			if k == "ak_v" {
				return []byte("sk_v"), nil
			}
			return nil, jifu.Errorf(jifu.CodeNotFound, "no key")
		}),
		Nonces: nonce.New(dbtest.Pool(t)),
		Now:    func() time.Time { return now },
	}
	request := func(secret, n, body string, at time.Time) error {
		r := httptest.NewRequest("POST", "/openapi/v1/payments?x=1", strings.NewReader(body))
		a := opensign.Auth{AppKey: "ak_v", Timestamp: at.Unix(), Nonce: n}
		c, err := opensign.Canonical(r.Method, r.URL.EscapedPath(), r.URL.RawQuery, opensign.BodyHash([]byte(body)), a)
		if err != nil {
			t.Fatal(err)
		}
		a.Signature = opensign.Compute([]byte(secret), c)
		r.Header.Set("Authorization", a.String())
		_, err = v.Verify(r)
		return err
	}
	steps := []struct {
		name, secret, nonce, body string
		at                        time.Time
		code                      string
	}{
		{"valid", "sk_v", "replay-0001", "{}", now, ""},
		{"replayed", "sk_v", "replay-0001", "{}", now, opensign.CodeReplay},
		{"replayed with another body still replays", "sk_v", "replay-0001", `{"a":1}`, now, opensign.CodeReplay},
		{"bad signature", "sk_wrong", "replay-0002", "{}", now, opensign.CodeMismatch},
		{"its nonce was not spent", "sk_v", "replay-0002", "{}", now, ""},
		{"stale", "sk_v", "replay-0003", "{}", now.Add(-10 * time.Minute), opensign.CodeStale},
		{"its nonce was not spent either", "sk_v", "replay-0003", "{}", now, ""},
	}
	for _, st := range steps {
		if err := request(st.secret, st.nonce, st.body, st.at); jifu.ErrorCode(err) != st.code {
			t.Errorf("%s: %v, want %q", st.name, err, st.code)
		}
	}
}

// BenchmarkUse measures spending one nonce (one INSERT round trip).
func BenchmarkUse(b *testing.B) {
	ctx := context.Background()
	s := nonce.New(dbtest.Pool(b))
	exp := time.Now().Add(time.Minute)
	prefix := strconv.FormatInt(time.Now().UnixNano(), 36)
	for i := 0; b.Loop(); i++ {
		if err := s.Use(ctx, "ak_bench", prefix+"-"+strconv.Itoa(i), exp); err != nil {
			b.Fatal(err)
		}
	}
}
