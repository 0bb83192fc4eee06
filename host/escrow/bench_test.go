package escrow_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jifu-open/jifu/host/escrow"
)

// BenchmarkBid measures bids on one listing from parallel investors: every
// bid holds the listing's one capacity account, so this is the hot spot of
// the over-subscription guard. Each op is a whole request (idempotency row,
// authorization check, two ledger holds, bid row) in one transaction.
func BenchmarkBid(b *testing.B) {
	e := newEnv(b, false)
	bor := e.party("bor", "borrower", 0)
	bidNo := e.listing(bor, escrow.MaxAmount, 0)
	const investors = 16
	invs := make([]string, investors)
	for i := range invs {
		invs[i] = e.party(fmt.Sprintf("i%d", i), "investor", 1_000_000_000)
	}
	var next atomic.Int64
	b.SetParallelism(4) // 4 × GOMAXPROCS goroutines
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			inv := invs[int(n)%investors]
			_, err := e.svc.Bid(b.Context(), escrow.Actor{App: e.app, User: inv},
				escrow.Bid{MerBillNo: fmt.Sprintf("BB%d", n), BidNo: bidNo, Investor: inv, TrdAmt: 100})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "bids/s")
}
