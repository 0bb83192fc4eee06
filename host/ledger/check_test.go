package ledger_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/ledger"
)

// TestCheckFindsViolations breaks the books in each way an invariant
// forbids, inside a transaction that is rolled back, and expects Check (run
// in that transaction) to name the invariant.
func TestCheckFindsViolations(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Pool(t)
	l := ledger.New(pool)
	bk := newBooks(t, l)
	bk.fund(t, bk.a, 1_000)
	hold, err := l.Transfer(ctx, bk.caller, ledger.Transfer{ID: "hold", Debit: bk.a.ID, Credit: bk.b.ID, Amount: 100,
		Code: "freeze", Pending: true, Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	posted, err := l.Transfer(ctx, bk.caller, ledger.Transfer{ID: "pay", Debit: bk.a.ID, Credit: bk.b.ID, Amount: 50, Code: "payment"})
	if err != nil {
		t.Fatal(err)
	}
	mustCheck(t, l)

	insertTransfer := func(id, debit, credit, amount, entryPosted int64, kind string, pending int64) string {
		return fmt.Sprintf(`
			INSERT INTO ledger_transfers (id, caller, key, digest, kind, debit_id, credit_id, amount, code, pending_id, created_at)
			VALUES (%[1]d, 'evil', 'k%[1]d', '', '%[6]s', %[2]d, %[3]d, %[4]d, 'x', NULLIF(%[7]d, 0), now());
			INSERT INTO ledger_entries VALUES (%[1]d, 'D', %[2]d, 0, %[5]d), (%[1]d, 'C', %[3]d, 0, %[5]d)`,
			id, debit, credit, amount, entryPosted, kind, pending)
	}
	fresh := int64(1 << 40)
	cases := []struct {
		name string
		sql  string
		want []string
	}{
		{"balance edited", fmt.Sprintf(`UPDATE ledger_accounts SET credits_posted = credits_posted + 1 WHERE id = %d`, bk.b.ID),
			[]string{"zero_sum", "balance_equals_entries"}},
		{"transfer without entries", fmt.Sprintf(`
			INSERT INTO ledger_transfers (id, caller, key, digest, kind, debit_id, credit_id, amount, code, created_at)
			VALUES (%d, 'evil', 'k', '', 'posted', %d, %d, 5, 'x', now())`, fresh, bk.bank.ID, bk.b.ID),
			[]string{"two_equal_entries"}},
		{"entries differ from amount", insertTransfer(fresh, bk.bank.ID, bk.b.ID, 5, 4, "posted", 0) +
			fmt.Sprintf(`; UPDATE ledger_accounts SET debits_posted = debits_posted + 4 WHERE id = %d;
			   UPDATE ledger_accounts SET credits_posted = credits_posted + 4 WHERE id = %d`, bk.bank.ID, bk.b.ID),
			[]string{"entries_match_kind"}},
		{"overdraft", fmt.Sprintf(`UPDATE ledger_accounts SET flags = 1 WHERE id = %d`, bk.bank.ID),
			[]string{"flags_respected"}},
		{"open hold dropped", fmt.Sprintf(`DELETE FROM ledger_holds WHERE pending_id = %d`, hold.ID),
			[]string{"open_holds_match", "pending_equals_holds"}},
		{"hold resolved twice", `DROP INDEX ledger_transfers_resolution;` +
			insertTransfer(fresh, bk.a.ID, bk.b.ID, 100, 0, "void", hold.ID) + ";" +
			insertTransfer(fresh+1, bk.a.ID, bk.b.ID, 100, 0, "void", hold.ID),
			[]string{"hold_resolved_once"}},
		{"resolution of a posted transfer", insertTransfer(fresh, bk.a.ID, bk.b.ID, 50, 0, "void", posted.ID),
			[]string{"hold_resolved_once"}},
		{"transfer to itself", insertTransfer(fresh, bk.a.ID, bk.a.ID, 5, 5, "posted", 0) +
			fmt.Sprintf(`; UPDATE ledger_accounts SET debits_posted = debits_posted + 5, credits_posted = credits_posted + 5 WHERE id = %d`, bk.a.ID),
			[]string{"transfer_accounts"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tx, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			if _, err := tx.Exec(ctx, `ALTER TABLE ledger_transfers DISABLE TRIGGER USER`); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, tc.sql); err != nil {
				t.Fatalf("breaking the books: %v", err)
			}
			vs, err := l.WithTx(tx).Check(ctx)
			if err != nil {
				t.Fatal(err)
			}
			found := map[string]bool{}
			for _, v := range vs {
				found[v.Invariant] = true
			}
			for _, w := range tc.want {
				if !found[w] {
					t.Errorf("Check = %v, want a %s violation", vs, w)
				}
			}
		})
	}
	mustCheck(t, l)
	if len(ledger.Invariants()) != 9 {
		t.Errorf("%d invariants, want 9", len(ledger.Invariants()))
	}
}

func TestReport(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	clk.Add(30 * 24 * time.Hour) // a day no other test books on
	l := ledger.New(dbtest.Pool(t), ledger.WithClock(clk.Now))
	bk := newBooks(t, l)
	bk.fund(t, bk.a, 1_000)
	if _, err := l.Transfer(ctx, bk.caller, ledger.Transfer{ID: "pay", Debit: bk.a.ID, Credit: bk.b.ID, Amount: 300, Code: "payment"}); err != nil {
		t.Fatal(err)
	}
	h, err := l.Transfer(ctx, bk.caller, ledger.Transfer{ID: "hold", Debit: bk.a.ID, Credit: bk.b.ID, Amount: 200, Code: "payment", Pending: true, Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.PostPending(ctx, bk.caller, "post", h.ID, 150); err != nil {
		t.Fatal(err)
	}
	rows, err := l.Report(ctx, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := []ledger.ReportRow{
		{OwnerType: ledger.OwnerBank, Code: "topup", Debits: 1_000, Transfers: 1},
		{OwnerType: ledger.OwnerUser, Code: "payment", Debits: 450, Credits: 450, Transfers: 2},
		{OwnerType: ledger.OwnerUser, Code: "topup", Credits: 1_000, Transfers: 1},
	}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Fatalf("report\n got %+v\nwant %+v", rows, want)
	}
	rows, err = l.Report(ctx, clk.Now().AddDate(0, 0, 1))
	if err != nil || len(rows) != 0 {
		t.Fatalf("next day: %+v, %v", rows, err)
	}
}
