package payment_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jifu-open/jifu/host/payment"
)

// BenchmarkPayment measures whole payments: create an intent, confirm it
// with the wallet balance, authorize (a ledger hold) and capture (the post)
// — three transactions and two ledger requests per payment — by 1 and 8
// concurrent workers, each paying from its own wallet, either all to one app
// (one hot payee account) or each to its own. It reports payments/s and the
// p50/p99 latency of a confirmation (authorize + capture).
func BenchmarkPayment(b *testing.B) {
	for _, c := range []struct {
		workers int
		payees  string
	}{{1, "one"}, {8, "one"}, {8, "own"}} {
		workers := c.workers
		b.Run(fmt.Sprintf("workers=%d/payee=%s", workers, c.payees), func(b *testing.B) {
			e := newEnv(b)
			run := make([]byte, 4)
			_, _ = rand.Read(run)
			prefix := hex.EncodeToString(run)
			users := make([]string, workers)
			for i := range users {
				users[i] = e.user()
				e.fund(users[i], 1_000_000_000)
			}
			var (
				next    atomic.Int64
				mu      sync.Mutex
				latency []time.Duration
				wg      sync.WaitGroup
			)
			b.ResetTimer()
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var mine []time.Duration
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							break
						}
						app := e.app
						if c.payees == "own" {
							app += "-" + fmt.Sprint(w)
						}
						in, err := e.svc.Create(e.ctx, payment.CreateRequest{App: app, User: users[w], Amount: 100,
							Description: "bench", Key: prefix + "-" + fmt.Sprint(i)})
						if err != nil {
							b.Error(err)
							return
						}
						start := time.Now()
						done, err := e.svc.Confirm(e.ctx, in.ID, users[w], []payment.Split{{Method: payment.MethodBalance, Amount: 100}})
						if err != nil || done.State != payment.StateSucceeded {
							b.Errorf("confirm: %+v %v", done.State, err)
							return
						}
						mine = append(mine, time.Since(start))
					}
					mu.Lock()
					latency = append(latency, mine...)
					mu.Unlock()
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "payments/s")
			if len(latency) > 0 {
				sort.Slice(latency, func(i, j int) bool { return latency[i] < latency[j] })
				b.ReportMetric(float64(latency[len(latency)/2].Microseconds())/1000, "p50-confirm-ms")
				b.ReportMetric(float64(latency[len(latency)*99/100].Microseconds())/1000, "p99-confirm-ms")
			}
		})
	}
}
