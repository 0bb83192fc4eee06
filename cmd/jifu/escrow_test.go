package main

import (
	"context"
	"strings"
	"testing"

	"github.com/jifu-open/jifu/host/database/dbtest"
)

// `jifu escrow check` passes on consistent records and exits 1 naming the
// invariant a broken record violates.
func TestEscrowCheck(t *testing.T) {
	c := newCmdEnv(t)
	code, out, errs := c.run("escrow", "check")
	if code != 0 || !strings.Contains(out, "invariants hold") {
		t.Fatalf("escrow check: exit %d\n%s\n%s", code, out, errs)
	}
	ctx := context.Background()
	pool := dbtest.Pool(t)
	// A request waiting for an SMS code that has none.
	if _, err := pool.Exec(ctx, `INSERT INTO escrow_requests (app, bill_no, op, digest, state, actor_user, request, created_at, updated_at)
		VALUES ('cli-test', 'B1', 'open_account', '\x00', 'awaiting_sms', 'u1', '{}', now(), now())`); err != nil {
		t.Fatal(err)
	}
	code, out, _ = c.run("escrow", "check")
	if _, err := pool.Exec(ctx, `DELETE FROM escrow_requests WHERE app = 'cli-test'`); err != nil {
		t.Fatal(err)
	}
	if code != 1 || !strings.Contains(out, "VIOLATION request_states: cli-test B1") {
		t.Fatalf("check of a broken record: exit %d, want 1 naming request_states\n%s", code, out)
	}
}
