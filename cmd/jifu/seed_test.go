package main

import (
	"context"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/jifu-open/jifu/host/payment"
)

// What `make run` seeds (serve publishing plugins through the marketplace,
// twice: idempotent) passes `jifu ledger check` and `jifu escrow check`, and
// the demo wallets are the ones payments spend from (payment.OpenWallet),
// holding their demo balances, next to the demo credit lines.
func TestMakeRunSeedChecks(t *testing.T) {
	ctx := context.Background()
	c := newCmdEnv(t)
	key := make([]byte, 32)
	key[0] = 13
	c.vars["JIFU_MASTER_KEY"] = hex.EncodeToString(key)
	plugins := t.TempDir()
	for range 2 {
		_, stop := c.serve("--plugins", plugins)
		stop()
	}
	if code, out, errs := c.run("ledger", "check"); code != 0 || !strings.Contains(out, "invariants hold") {
		t.Fatalf("ledger check after seeding: exit %d\n%s\n%s", code, out, errs)
	}
	if code, out, errs := c.run("escrow", "check"); code != 0 || !strings.Contains(out, "invariants hold") {
		t.Fatalf("escrow check after seeding: exit %d\n%s\n%s", code, out, errs)
	}

	p := startTestPlatform(t, c)
	// u3 is the demo user no other test in this package pays with.
	for _, w := range demoWallets {
		if w.user != "u3" {
			continue
		}
		avail, err := p.pay.svc.Available(ctx, w.user)
		if err != nil || avail[payment.MethodBalance] != w.fen {
			t.Fatalf("payments see %s's balance as %v (%v), want the seeded %d fen", w.user, avail, err, w.fen)
		}
		acct, err := payment.OpenWallet(ctx, p.ledger, w.user)
		if err != nil {
			t.Fatal(err)
		}
		if b, err := p.ledger.Balance(ctx, acct.ID); err != nil || b.Net() != w.fen {
			t.Fatalf("OpenWallet(%s) holds %+v (%v): not the seeded wallet", w.user, b, err)
		}
	}
	for _, cl := range demoCreditLines {
		line, err := p.pay.svc.CreditLine(ctx, cl.user)
		if err != nil || line.Limit != cl.fen {
			t.Fatalf("credit line of %s: %+v, %v; want limit %d", cl.user, line, err, cl.fen)
		}
	}
}
