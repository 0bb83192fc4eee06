// Package ratelimit limits each app's calls to the open API with a token
// bucket per app (golang.org/x/time/rate), sized by the app's service
// level: a level allows Rate calls a second on average and bursts of Burst.
// A refused call gets CodeLimited and how long to wait (Retry-After).
//
//	l, _ := ratelimit.New(ratelimit.Config{Levels: map[string]ratelimit.Level{
//		"sandbox": {Rate: 5, Burst: 10}, "standard": {Rate: 50, Burst: 100},
//	}, Default: "sandbox"})
//	if err := l.Allow("ak_live_1", "standard"); err != nil { ... } // ratelimit.RetryAfter(err)
//	handler = ratelimit.Middleware(l, appOf)(handler)
//
// Buckets live in this process: with N servers an app gets up to N times its
// rate. That is the accepted trade for a check that costs no database round
// trip; a shared (PostgreSQL GCRA) limiter can implement the same Allow.
package ratelimit

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/jifu-open/jifu"
)

// CodeLimited is the stable code of a refused call.
const CodeLimited = "rate_limited"

// Level is one service level's allowance.
type Level struct {
	Rate  float64 // calls per second, sustained
	Burst int     // calls at once after a quiet period; at least 1
}

// Config configures a Limiter.
type Config struct {
	Levels  map[string]Level
	Default string           // the level of a call naming none or an unknown one
	Now     func() time.Time // time.Now when nil
	// IdleAfter drops an app's bucket after this long unused (it is full
	// again by then in any sensible level); 10 minutes when 0.
	IdleAfter time.Duration
}

// Limiter holds the buckets. It is safe for concurrent use.
type Limiter struct {
	levels  map[string]Level
	def     string
	now     func() time.Time
	idle    time.Duration
	mu      sync.Mutex
	buckets map[string]*bucket
	calls   int
}

type bucket struct {
	lim   *rate.Limiter
	level string
	used  time.Time
}

// New validates cfg and returns a Limiter.
func New(cfg Config) (*Limiter, error) {
	if len(cfg.Levels) == 0 {
		return nil, jifu.Errorf(jifu.CodeInvalid, "ratelimit: no levels")
	}
	for name, lv := range cfg.Levels {
		if !(lv.Rate > 0) || math.IsInf(lv.Rate, 0) || lv.Burst < 1 {
			return nil, jifu.Errorf(jifu.CodeInvalid, "ratelimit: level %q needs a positive rate and a burst of at least 1", name)
		}
	}
	if _, ok := cfg.Levels[cfg.Default]; !ok {
		return nil, jifu.Errorf(jifu.CodeInvalid, "ratelimit: default level %q is not among the levels", cfg.Default)
	}
	l := &Limiter{levels: cfg.Levels, def: cfg.Default, now: cfg.Now, idle: cfg.IdleAfter, buckets: map[string]*bucket{}}
	if l.now == nil {
		l.now = time.Now
	}
	if l.idle <= 0 {
		l.idle = 10 * time.Minute
	}
	return l, nil
}

// Allow takes one token from app's bucket at level. It returns nil, or a
// *jifu.Error with CodeLimited whose wait RetryAfter reports; the refused
// call takes no token.
func (l *Limiter) Allow(app, level string) error {
	lv, ok := l.levels[level]
	if !ok {
		level, lv = l.def, l.levels[l.def]
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	if l.calls%1024 == 0 {
		l.sweep(now)
	}
	b := l.buckets[app]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(lv.Rate), lv.Burst), level: level}
		l.buckets[app] = b
	} else if b.level != level { // the app changed service level
		b.lim.SetLimitAt(now, rate.Limit(lv.Rate))
		b.lim.SetBurstAt(now, lv.Burst)
		b.level = level
	}
	b.used = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return &Limited{Err: jifu.Errorf(CodeLimited, "ratelimit: app %s is over its %s rate of %g calls a second; retry in %v",
			app, level, lv.Rate, d.Round(time.Millisecond)), Wait: d}
	}
	return nil
}

func (l *Limiter) sweep(now time.Time) {
	for app, b := range l.buckets {
		if now.Sub(b.used) > l.idle {
			delete(l.buckets, app)
		}
	}
}

// Limited is the error of a refused call: a CodeLimited *jifu.Error and the
// wait before a token is available.
type Limited struct {
	Err  *jifu.Error
	Wait time.Duration
}

func (e *Limited) Error() string { return e.Err.Error() }

// Unwrap exposes the coded error to jifu.ErrorCode.
func (e *Limited) Unwrap() error { return e.Err }

// RetryAfter returns how long a refused call should wait, 0 when err is not
// a refusal.
func RetryAfter(err error) time.Duration {
	var l *Limited
	if errors.As(err, &l) {
		return l.Wait
	}
	return 0
}

// Middleware refuses calls over their app's rate with 429, a Retry-After
// header in whole seconds (rounded up) and the JSON error body
// {"error":{"code":"rate_limited","message":...}}. appOf names the app and
// its level for a request; ok=false lets the request through unlimited
// (the authentication in front refuses it anyway).
func Middleware(l *Limiter, appOf func(*http.Request) (app, level string, ok bool)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			app, level, ok := appOf(r)
			if ok {
				if err := l.Allow(app, level); err != nil {
					secs := int(math.Ceil(RetryAfter(err).Seconds()))
					w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
					w.Header().Set("Content-Type", "application/json; charset=utf-8")
					w.WriteHeader(http.StatusTooManyRequests)
					var body struct {
						Error struct {
							Code    string `json:"code"`
							Message string `json:"message"`
						} `json:"error"`
					}
					body.Error.Code = CodeLimited
					body.Error.Message = jifu.ErrorMessage(err)
					_ = json.NewEncoder(w).Encode(body)
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}
