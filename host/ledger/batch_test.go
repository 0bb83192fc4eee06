package ledger_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/ledger"
)

func itoa(i int) string { return strconv.Itoa(i) }

func TestSubmit(t *testing.T) {
	ctx := context.Background()
	l := ledger.New(dbtest.Pool(t))
	bk := newBooks(t, l)

	// Money passes through an empty no-overdraft wallet: flags hold on the
	// batch's net effect.
	batch := []ledger.Transfer{
		{ID: "b1-in", Debit: bk.bank.ID, Credit: bk.a.ID, Amount: 500, Code: "topup"},
		{ID: "b1-out", Debit: bk.a.ID, Credit: bk.b.ID, Amount: 300, Code: "payment"},
		{ID: "b1-hold", Debit: bk.a.ID, Credit: bk.b.ID, Amount: 200, Code: "freeze", Pending: true, Timeout: time.Hour},
	}
	rs, err := l.Submit(ctx, bk.caller, batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 || rs[0].ID >= rs[1].ID || rs[1].ID >= rs[2].ID || rs[2].Kind != ledger.KindPending {
		t.Fatalf("results %+v", rs)
	}
	if a := bk.balance(t, bk.a.ID); a.Available() != 0 || a.DebitsPending != 200 {
		t.Fatalf("a %+v", a)
	}
	again, err := l.Submit(ctx, bk.caller, batch)
	if err != nil || !again[0].Replayed || again[2].ID != rs[2].ID {
		t.Fatalf("replay: %+v, %v", again, err)
	}
	// Part of a batch, or the batch reordered, is not the same request.
	if _, err := l.Submit(ctx, bk.caller, batch[:2]); !errors.Is(err, ledger.ErrIdempotencyConflict) {
		t.Fatalf("sub-batch: %v", err)
	}
	if _, err := l.Submit(ctx, bk.caller, []ledger.Transfer{batch[1], batch[0], batch[2]}); !errors.Is(err, ledger.ErrIdempotencyConflict) {
		t.Fatalf("reordered: %v", err)
	}
	if _, err := l.Transfer(ctx, bk.caller, batch[0]); !errors.Is(err, ledger.ErrIdempotencyConflict) {
		t.Fatalf("one transfer of a batch alone: %v", err)
	}
	if _, err := l.Submit(ctx, bk.caller, append([]ledger.Transfer{{ID: "fresh", Debit: bk.bank.ID, Credit: bk.a.ID, Amount: 1, Code: "topup"}}, batch[0])); !errors.Is(err, ledger.ErrIdempotencyConflict) {
		t.Fatalf("new key beside a used one: %v", err)
	}

	// All or nothing: the last transfer overdraws, so none is booked.
	before := []ledger.Balance{bk.balance(t, bk.a.ID), bk.balance(t, bk.b.ID), bk.balance(t, bk.bank.ID)}
	bad := []ledger.Transfer{
		{ID: "b2-in", Debit: bk.bank.ID, Credit: bk.a.ID, Amount: 100, Code: "topup"},
		{ID: "b2-out", Debit: bk.a.ID, Credit: bk.b.ID, Amount: 101, Code: "payment"},
	}
	_, err = l.Submit(ctx, bk.caller, bad)
	if !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("overdrawing batch: %v", err)
	}
	cases := []struct {
		name  string
		batch []ledger.Transfer
		want  ledger.Reason
	}{
		{"empty", nil, ledger.ErrInvalid},
		{"duplicate key", []ledger.Transfer{bad[0], bad[0]}, ledger.ErrInvalid},
		{"invalid member", []ledger.Transfer{bad[0], {ID: "z", Debit: 1, Credit: 2, Amount: 0, Code: "x"}}, ledger.ErrInvalid},
		{"missing account", []ledger.Transfer{bad[0], {ID: "z", Debit: bk.bank.ID, Credit: 1 << 60, Amount: 1, Code: "x"}}, ledger.ErrNotFound},
		{"closed account", []ledger.Transfer{bad[0], {ID: "z", Debit: bk.bank.ID, Credit: bk.closed.ID, Amount: 1, Code: "x"}}, ledger.ErrAccountClosed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := l.Submit(ctx, bk.caller, tc.batch); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %s", err, tc.want)
			}
		})
	}
	after := []ledger.Balance{bk.balance(t, bk.a.ID), bk.balance(t, bk.b.ID), bk.balance(t, bk.bank.ID)}
	for i := range before {
		if before[i] != after[i] {
			t.Errorf("refused batch changed a balance: %+v -> %+v", before[i], after[i])
		}
	}
	// Nothing of the refused batch was kept: its keys are free.
	bad[1].Amount = 100
	if _, err := l.Submit(ctx, bk.caller, bad); err != nil {
		t.Fatalf("refused batch's keys after fixing it: %v", err)
	}
	mustCheck(t, l)
}

func TestAppendOnly(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Pool(t)
	l := ledger.New(pool)
	bk := newBooks(t, l)
	bk.fund(t, bk.a, 100)
	for _, q := range []string{
		`UPDATE ledger_transfers SET amount = amount + 1`,
		`DELETE FROM ledger_transfers`,
		`UPDATE ledger_entries SET posted = posted + 1`,
		`DELETE FROM ledger_entries`,
		`TRUNCATE ledger_entries CASCADE`,
	} {
		if _, err := pool.Exec(ctx, q); err == nil {
			t.Errorf("%s: accepted, want refused", q)
		}
	}
	mustCheck(t, l)
}
