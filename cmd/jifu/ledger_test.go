package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jifu-open/jifu/host/database/dbtest"
)

// `jifu serve` seeds the demo books (twice: idempotent), `jifu ledger
// check` verifies them, `jifu ledger report` totals the day, and a broken
// book makes check exit 1 naming the invariant.
func TestLedgerSeedCheckReport(t *testing.T) {
	c := newCmdEnv(t)
	for range 2 {
		_, stop := c.serve()
		stop()
	}
	code, out, errs := c.run("ledger", "check")
	if code != 0 || !strings.Contains(out, "all 9 invariants hold") {
		t.Fatalf("ledger check: exit %d\n%s\n%s", code, out, errs)
	}
	today := time.Now().In(chinaTime).Format(time.DateOnly)
	code, out, errs = c.run("ledger", "report", "--date", today)
	if code != 0 || !strings.Contains(out, "topup") || !strings.Contains(out, "1,700.00") {
		t.Fatalf("ledger report: exit %d, want the demo top-ups of 1,700.00 yuan\n%s\n%s", code, out, errs)
	}
	if code, _, _ := c.run("ledger", "report", "--date", "2026-13-01"); code != 2 {
		t.Fatalf("report with a bad date: exit %d, want 2", code)
	}

	ctx := context.Background()
	pool := dbtest.Pool(t)
	const breakQ = `UPDATE ledger_accounts SET credits_posted = credits_posted + $1 WHERE owner_type = 'user' AND owner_id = 'u1'`
	if _, err := pool.Exec(ctx, breakQ, 1); err != nil {
		t.Fatal(err)
	}
	code, out, _ = c.run("ledger", "check")
	if _, err := pool.Exec(ctx, breakQ, -1); err != nil {
		t.Fatal(err)
	}
	if code != 1 || !strings.Contains(out, "VIOLATION zero_sum") || !strings.Contains(out, "VIOLATION balance_equals_entries") {
		t.Fatalf("check of broken books: exit %d, want 1 naming the violations\n%s", code, out)
	}
}
