package escrowbank_test

import (
	"context"
	"testing"
	"time"

	"github.com/jifu-open/jifu/host/bank/banksim"
	"github.com/jifu-open/jifu/host/bank/banktest"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/escrow"
	"github.com/jifu-open/jifu/host/funding"
	"github.com/jifu-open/jifu/host/funding/escrowbank"
	"github.com/jifu-open/jifu/host/ledger"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func TestEscrowOrders(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Pool(t)
	b := banktest.Start(t, pool, banktest.Options{ClientTimeout: 300 * time.Millisecond})
	fs, err := funding.New(funding.Config{Pool: pool, Ledger: ledger.New(pool), Bank: b.Client, BankName: b.Merchant})
	if err != nil {
		t.Fatal(err)
	}
	acct := b.Account(t, 100_00)
	if err := fs.BindAccount(ctx, "investor-1", acct); err != nil {
		t.Fatal(err)
	}
	eb := escrowbank.New(b.Client, fs)

	order := escrow.BankOrder{Ref: "p2p/bill-1", User: "investor-1", Amount: 30_00, Channel: "online_bank"}
	for range 2 { // sent again: the same order at the bank
		res, err := eb.Debit(ctx, order)
		if err != nil || res.Status != escrow.BankSucceeded {
			t.Fatalf("debit: %+v, %v", res, err)
		}
	}
	if got := b.Balance(t, acct); got != 70_00 {
		t.Fatalf("balance %d; want one debit", got)
	}
	tests := []struct {
		name   string
		order  escrow.BankOrder
		credit bool
		status escrow.BankStatus
		reason string
	}{
		{"overdraft refused", escrow.BankOrder{Ref: "p2p/bill-2", User: "investor-1", Amount: 70_01, Channel: "withhold"}, false, escrow.BankFailed, "insufficient_funds"},
		{"no bound account", escrow.BankOrder{Ref: "p2p/bill-3", User: "nobody", Amount: 1, Channel: "withdraw"}, true, escrow.BankFailed, "no bank account bound"},
		{"withdrawal", escrow.BankOrder{Ref: "p2p/bill-4", User: "investor-1", Amount: 10_00, Channel: "withdraw"}, true, escrow.BankSucceeded, ""},
	}
	for _, tc := range tests {
		call := eb.Debit
		if tc.credit {
			call = eb.Credit
		}
		res, err := call(ctx, tc.order)
		if err != nil || res.Status != tc.status || res.Reason != tc.reason {
			t.Errorf("%s: %+v, %v", tc.name, res, err)
		}
	}
	// A lost answer is unknown; sending the order again settles it without a second debit.
	b.Sim.SetFaults(banksim.Faults{TimeoutRate: 1, ExecuteLost: 1})
	lost := escrow.BankOrder{Ref: "p2p/bill-5", User: "investor-1", Amount: 5_00, Channel: "online_bank"}
	if res, err := eb.Debit(ctx, lost); err == nil || res.Status != escrow.BankUnknown {
		t.Fatalf("lost answer: %+v, %v", res, err)
	}
	b.Sim.SetFaults(banksim.Faults{})
	if res, err := eb.Debit(ctx, lost); err != nil || res.Status != escrow.BankSucceeded {
		t.Fatalf("resent: %+v, %v", res, err)
	}
	if got := b.Balance(t, acct); got != 75_00 {
		t.Fatalf("balance %d; want 100 - 30 + 10 - 5 = 75", got)
	}
}
