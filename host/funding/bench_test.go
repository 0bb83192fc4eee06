package funding_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jifu-open/jifu/host/bank/banktest"
)

// BenchmarkTopUpWithdraw measures one top-up followed by one withdrawal of
// a user (each: a request row, an HTTP round trip to banksim with its own
// PostgreSQL transaction, and the ledger booking), by parallel users.
//
//	bin/jifu dev test -- go test -run '^$' -bench TopUpWithdraw -benchtime 2s ./host/funding/
func BenchmarkTopUpWithdraw(b *testing.B) {
	ctx := context.Background()
	e := newEnvTB(b, banktest.Options{})
	var users atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		n := users.Add(1)
		u := fmt.Sprintf("bench-%s-%d", e.bank.Merchant, n)
		if err := e.svc.BindAccount(ctx, u, e.bank.Account(b, 1_000_000_00)); err != nil {
			b.Error(err)
			return
		}
		i := 0
		for pb.Next() {
			i++
			if r, err := e.svc.TopUp(ctx, u, fmt.Sprintf("t%d", i), 100); err != nil || r.State != "succeeded" {
				b.Errorf("top-up: %+v, %v", r, err)
				return
			}
			if r, err := e.svc.Withdraw(ctx, u, fmt.Sprintf("w%d", i), 100); err != nil || r.State != "succeeded" {
				b.Errorf("withdraw: %+v, %v", r, err)
				return
			}
		}
	})
	b.ReportMetric(float64(2*b.N)/b.Elapsed().Seconds(), "requests/s")
}
