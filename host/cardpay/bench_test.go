package cardpay_test

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/cardpay/pan"
	"github.com/jifu-open/jifu/sdk/cardreader"
)

// luhnPAN completes a 15-digit body to a Luhn-valid 16-digit PAN.
func luhnPAN(body string) string {
	for d := '0'; d <= '9'; d++ {
		if p := body + string(d); pan.Luhn(p) {
			return p
		}
	}
	panic("unreachable")
}

// BenchmarkAuthorize is card payments end to end: reader SDK request,
// service checks and risk counters in PostgreSQL, PIN translation, ISO 8583
// over TCP to the simulator (which journals in PostgreSQL), result recorded,
// posting written. Each parallel worker is its own merchant, reader and
// card, as in production; reports payments/s and p50/p99 latency.
func BenchmarkAuthorize(b *testing.B) {
	e := setup(b)
	var (
		mu    sync.Mutex
		lat   []time.Duration
		seq   atomic.Int64
		fails atomic.Int64
	)
	b.SetParallelism(16) // 32 in-flight payments on 2 cores: the work is I/O-bound
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		mu.Lock()
		r := e.merchant(b, cardpay.TerminalMPOS, 1)[0]
		mu.Unlock()
		w := seq.Add(1)
		card := luhnPAN(fmt.Sprintf("621700%09d", w))
		mine := make([]time.Duration, 0, 1024)
		for pb.Next() {
			n := seq.Add(1)
			req, err := r.Build(cardreader.Payment{OrderID: fmt.Sprintf("bench-%d-%d", w, n), Amount: 1, ProductName: "bench",
				Track2: card + "=30121011234567890", PIN: "123456"})
			if err != nil {
				b.Error(err)
				return
			}
			t0 := time.Now()
			res, err := e.svc.Authorize(e.ctx, req)
			mine = append(mine, time.Since(t0))
			if err != nil || !res.Approved() {
				if fails.Add(1) == 1 {
					b.Logf("first failure: %+v %v", res, err)
				}
			}
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if f := fails.Load(); f > 0 {
		b.Fatalf("%d of %d payments not approved", f, len(lat))
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "payments/s")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}
