// Package banktest runs a banksim peer for tests: on a loopback listener
// (real HTTP), with a merchant and settlement account of the test's own, so
// tests sharing a database do not see each other's money.
//
//	b := banktest.Start(t, dbtest.Pool(t), banktest.Options{ClientTimeout: 300 * time.Millisecond})
//	acct := b.Account(t, 500_00)           // a customer account holding 500 yuan
//	res, err := b.Client.Debit(ctx, bank.Order{ID: "x1", Account: acct, Amount: 100})
package banktest

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu/host/bank"
	"github.com/jifu-open/jifu/host/bank/banksim"
)

// Options tune the peer and the client.
type Options struct {
	Faults        banksim.Faults
	ClientTimeout time.Duration // default 5 s
	Float         int64         // the settlement account's opening balance; default 1,000,000.00 yuan
	Seed          uint64        // the fault dice; default 1
}

// Bank is a running peer and a client of it.
type Bank struct {
	Sim        *banksim.Server
	Client     *bank.Client
	URL        string
	Merchant   string
	Secret     []byte
	Settlement string // the merchant's settlement account number

	prefix uint64
	n      atomic.Uint64
}

// Start starts the peer for t (stopped by t.Cleanup).
func Start(t testing.TB, pool *pgxpool.Pool, o Options) *Bank {
	t.Helper()
	sum := sha256.Sum256([]byte(t.Name() + time.Now().String()))
	b := &Bank{prefix: binary.BigEndian.Uint64(sum[:8]) % 1_000_000_000, Merchant: fmt.Sprintf("m%x", sum[:6]), Secret: sum[8:32]}
	b.Settlement = b.next()
	if o.Float == 0 {
		o.Float = 1_000_000_00
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	sim, err := banksim.New(banksim.Config{Pool: pool, Faults: o.Faults, Seed: o.Seed, HangMax: 10 * time.Second,
		Merchants: []banksim.Merchant{{ID: b.Merchant, Secret: b.Secret, Account: b.Settlement}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.OpenAccount(context.Background(), b.Settlement, "merchant "+b.Merchant, o.Float); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	if o.ClientTimeout == 0 {
		o.ClientTimeout = 5 * time.Second
	}
	c, err := bank.NewClient(bank.ClientConfig{URL: srv.URL, Merchant: b.Merchant, Secret: b.Secret, Timeout: o.ClientTimeout})
	if err != nil {
		t.Fatal(err)
	}
	b.Sim, b.Client, b.URL = sim, c, srv.URL
	return b
}

// next returns a fresh 19-digit account number.
func (b *Bank) next() string {
	return fmt.Sprintf("622%09d%07d", b.prefix, b.n.Add(1))
}

// Account opens a customer account with balance fen and returns its number.
func (b *Bank) Account(t testing.TB, balance int64) string {
	t.Helper()
	no := b.next()
	if err := b.Sim.OpenAccount(context.Background(), no, "customer", balance); err != nil {
		t.Fatal(err)
	}
	return no
}

// Unopened returns a well-formed account number the bank has no account for.
func (b *Bank) Unopened() string { return b.next() }

// Balance returns an account's balance at the bank.
func (b *Bank) Balance(t testing.TB, no string) int64 {
	t.Helper()
	v, err := b.Sim.Balance(context.Background(), no)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
