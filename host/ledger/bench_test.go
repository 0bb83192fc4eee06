package ledger_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu/host/database"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/ledger"
)

const benchAccounts = 256

var benchSeq atomic.Int64

// benchBooks opens a pool of conns connections and creates benchAccounts
// funded no-overdraft wallets, returning the ledger, the wallets and a
// caller unique to the run.
func benchBooks(b *testing.B, conns int) (*ledger.Ledger, []int64, string) {
	b.Helper()
	ctx := context.Background()
	pool, err := database.Open(ctx, fmt.Sprintf("%s&pool_max_conns=%d", dbtest.URL(b), conns))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	l := ledger.New(pool)
	caller := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), benchSeq.Add(1))
	bank, err := l.CreateAccount(ctx, ledger.AccountSpec{Owner: ledger.Owner{Type: ledger.OwnerBank, ID: caller}, Name: "bank"})
	if err != nil {
		b.Fatal(err)
	}
	ids := createWallets(b, pool, caller, benchAccounts)
	fund := make([]ledger.Transfer, len(ids))
	for i, id := range ids {
		fund[i] = ledger.Transfer{ID: fmt.Sprintf("fund-%d", i), Debit: bank.ID, Credit: id, Amount: 1 << 40, Code: "topup"}
	}
	if _, err := l.Submit(ctx, caller, fund); err != nil {
		b.Fatal(err)
	}
	return l, ids, caller
}

// createWallets inserts n wallets in one statement (setup only: CreateAccount
// is one round trip each).
func createWallets(b *testing.B, pool *pgxpool.Pool, owner string, n int) []int64 {
	rows, err := pool.Query(context.Background(), `
		INSERT INTO ledger_accounts (owner_type, owner_id, name, flags)
		SELECT 'user', $1, 'w' || i, 1 FROM generate_series(1, $2) AS i RETURNING id`, owner, n)
	if err != nil {
		b.Fatal(err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return ids
}

func randomPair(rng *rand.Rand, ids []int64) (int64, int64) {
	d := rng.IntN(len(ids))
	c := (d + 1 + rng.IntN(len(ids)-1)) % len(ids)
	return ids[d], ids[c]
}

// BenchmarkTransfer books single transfers between random wallets from 1,
// 16 and 64 workers (one pool connection each), reporting transfers/s and
// the p50 and p99 latency of a request.
func BenchmarkTransfer(b *testing.B) {
	for _, workers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			l, ids, caller := benchBooks(b, workers)
			ctx := context.Background()
			var next atomic.Int64
			lat := make([][]time.Duration, workers)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(w), 1))
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						d, c := randomPair(rng, ids)
						t0 := time.Now()
						_, err := l.Transfer(ctx, caller, ledger.Transfer{ID: fmt.Sprintf("t%d", i), Debit: d, Credit: c, Amount: 1 + rng.Int64N(1000), Code: "payment"})
						lat[w] = append(lat[w], time.Since(t0))
						if err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			all := slices.Concat(lat...)
			slices.Sort(all)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "transfers/s")
			b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
			if s := l.Stats(); s.Deadlocks > 0 {
				b.Errorf("%d deadlocks", s.Deadlocks)
			}
		})
	}
}

// BenchmarkSubmit books batches of 1,000 transfers between random wallets,
// reporting transfers/s, from 1 and 2 workers. Each worker has its own
// wallets (as producers of batches would: settlement per merchant group),
// since two batches over the same 256 wallets simply queue on their locks.
func BenchmarkSubmit(b *testing.B) {
	const size = 1000
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("batch=%d/workers=%d", size, workers), func(b *testing.B) {
			l, ids, caller := benchBooks(b, workers)
			ctx := context.Background()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(w), 2))
					mine := ids[w*len(ids)/workers : (w+1)*len(ids)/workers]
					batch := make([]ledger.Transfer, size)
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						for j := range batch {
							d, c := randomPair(rng, mine)
							batch[j] = ledger.Transfer{ID: fmt.Sprintf("b%d-%d", i, j), Debit: d, Credit: c, Amount: 1 + rng.Int64N(1000), Code: "payment"}
						}
						if _, err := l.Submit(ctx, caller, batch); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N*size)/elapsed.Seconds(), "transfers/s")
			if s := l.Stats(); s.Deadlocks > 0 {
				b.Errorf("%d deadlocks", s.Deadlocks)
			}
		})
	}
}
