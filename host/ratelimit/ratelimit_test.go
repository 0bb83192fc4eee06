package ratelimit_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/ratelimit"
)

// clock is a fake clock the tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newLimiter(t *testing.T, c *clock) *ratelimit.Limiter {
	t.Helper()
	l, err := ratelimit.New(ratelimit.Config{
		Levels: map[string]ratelimit.Level{
			"sandbox":  {Rate: 2, Burst: 3},
			"standard": {Rate: 100, Burst: 10},
		},
		Default: "sandbox",
		Now:     c.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestAllow(t *testing.T) {
	c := &clock{t: time.Unix(1767225600, 0)}
	l := newLimiter(t, c)
	type step struct {
		name       string
		advance    time.Duration
		app, level string
		wantWait   time.Duration // 0: allowed
	}
	steps := []step{
		{"burst 1", 0, "a", "sandbox", 0},
		{"burst 2", 0, "a", "sandbox", 0},
		{"burst 3", 0, "a", "sandbox", 0},
		{"over: wait for one token at 2/s", 0, "a", "sandbox", 500 * time.Millisecond},
		{"a refused call takes no token", 0, "a", "sandbox", 500 * time.Millisecond},
		{"another app has its own bucket", 0, "b", "sandbox", 0},
		{"half a token later", 250 * time.Millisecond, "a", "sandbox", 250 * time.Millisecond},
		{"a token later", 250 * time.Millisecond, "a", "sandbox", 0},
		{"and empty again", 0, "a", "sandbox", 500 * time.Millisecond},
		{"unknown level is the default", 0, "c", "gold", 0},
	}
	for i := 0; i < 2; i++ {
		steps = append(steps, step{"unknown level burst", 0, "c", "gold", 0})
	}
	steps = append(steps,
		step{"unknown level over", 0, "c", "gold", 500 * time.Millisecond},
		step{"upgraded: no fresh burst", 0, "c", "standard", 10 * time.Millisecond},
		step{"upgraded: refills at 100/s", 10 * time.Millisecond, "c", "standard", 0},
	)
	for _, s := range steps {
		c.add(s.advance)
		err := l.Allow(s.app, s.level)
		if s.wantWait == 0 {
			if err != nil {
				t.Errorf("%s: %v", s.name, err)
			}
			continue
		}
		if jifu.ErrorCode(err) != ratelimit.CodeLimited || ratelimit.RetryAfter(err) != s.wantWait {
			t.Errorf("%s: %v (wait %v), want refused with wait %v", s.name, err, ratelimit.RetryAfter(err), s.wantWait)
		}
	}
}

func TestSustainedRate(t *testing.T) {
	c := &clock{t: time.Unix(1767225600, 0)}
	l := newLimiter(t, c)
	allowed := 0
	for i := 0; i < 1000; i++ { // 10 s of calls every 10 ms
		if l.Allow("s", "standard") == nil {
			allowed++
		}
		c.add(10 * time.Millisecond)
	}
	// 100/s: every call passes (the bucket refills as fast as it drains).
	if allowed != 1000 {
		t.Errorf("standard allowed %d of 1000 calls at its rate", allowed)
	}
	allowed = 0
	for i := 0; i < 1000; i++ {
		if l.Allow("t", "sandbox") == nil {
			allowed++
		}
		c.add(10 * time.Millisecond)
	}
	// 2/s for 10 s plus the burst of 3.
	if allowed < 21 || allowed > 23 {
		t.Errorf("sandbox allowed %d calls in 10 s, want about 23", allowed)
	}
}

func TestConcurrent(t *testing.T) {
	c := &clock{t: time.Unix(1767225600, 0)}
	l := newLimiter(t, c)
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		ok int
	)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if l.Allow("x", "standard") == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok != 10 {
		t.Errorf("%d of 50 simultaneous calls passed, want the burst (10)", ok)
	}
}

func TestNewRejects(t *testing.T) {
	for name, cfg := range map[string]ratelimit.Config{
		"no levels":       {Default: "x"},
		"unknown default": {Levels: map[string]ratelimit.Level{"a": {Rate: 1, Burst: 1}}, Default: "b"},
		"zero rate":       {Levels: map[string]ratelimit.Level{"a": {Rate: 0, Burst: 1}}, Default: "a"},
		"zero burst":      {Levels: map[string]ratelimit.Level{"a": {Rate: 1, Burst: 0}}, Default: "a"},
	} {
		if _, err := ratelimit.New(cfg); jifu.ErrorCode(err) != jifu.CodeInvalid {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestMiddleware(t *testing.T) {
	c := &clock{t: time.Unix(1767225600, 0)}
	l := newLimiter(t, c)
	h := ratelimit.Middleware(l, func(r *http.Request) (string, string, bool) {
		app := r.Header.Get("X-App")
		return app, "sandbox", app != ""
	})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	call := func(app string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/openapi/v1/app", nil)
		if app != "" {
			r.Header.Set("X-App", app)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	for i := 0; i < 3; i++ {
		if w := call("m"); w.Code != 200 {
			t.Fatalf("call %d: %d", i, w.Code)
		}
	}
	w := call("m")
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("over the rate: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	var body struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code != ratelimit.CodeLimited || body.Error.Message == "" {
		t.Errorf("body %s", w.Body)
	}
	for i := 0; i < 5; i++ {
		if w := call(""); w.Code != 200 {
			t.Errorf("unidentified call limited: %d", w.Code)
		}
	}
}

func BenchmarkAllow(b *testing.B) {
	l, err := ratelimit.New(ratelimit.Config{Levels: map[string]ratelimit.Level{"s": {Rate: 1e9, Burst: 1 << 30}}, Default: "s"})
	if err != nil {
		b.Fatal(err)
	}
	apps := []string{"a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			_ = l.Allow(apps[i%len(apps)], "s")
			i++
		}
	})
}
