package main

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/database/dbtest"
)

// `jifu card errors` and `jifu card level` as an operator uses them.
func TestCardErrorsCommands(t *testing.T) {
	c := newCmdEnv(t)
	svc, err := cardpay.New(dbtest.Pool(t), make([]byte, 32), nil, cardpay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.RegisterMerchant(context.Background(), cardpay.Merchant{OrgID: "ORGX", MerchantID: "MX1", PaySecret: "pay-secret-0123456789",
		AcquirerMID: "898310048990009"}); err != nil {
		t.Fatal(err)
	}
	code, out, errs := c.run("card", "errors", "open", "--kind", "long", "--org", "ORGX", "--merchant", "MX1", "--amount", "999",
		"--at", "2026-11-30", "--note", "file line 12", "--actor", "risk:li")
	m := regexp.MustCompile(`opened long #(\d+)`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("open: exit %d\n%s\n%s", code, out, errs)
	}
	id := m[1]
	for _, bad := range []struct {
		args []string
		code int
	}{
		{[]string{"card", "errors", "open", "--kind", "chargeback", "--actor", "risk:li"}, 2}, // needs the payment
		{[]string{"card", "errors", "open", "--kind", "nope", "--actor", "risk:li"}, 2},
		{[]string{"card", "errors", "open", "--kind", "long", "--at", "30/11/2026", "--actor", "risk:li"}, 2},
		{[]string{"card", "errors", "open", "--kind", "dispute", "--rrn", "000000000000", "--actor", "risk:li"}, 3},
		{[]string{"card", "errors", "list", "--from", "2026-13-01"}, 2},
		{[]string{"card", "errors", "list", "--status", "closed"}, 2},
		{[]string{"card", "errors", "resolve", "999999999", "--note", "x", "--actor", "risk:li"}, 3},
		{[]string{"card", "errors", "resolve", id, "--actor", "risk:li"}, 2}, // --note is required
		{[]string{"card", "level", "set", "--org", "ORGX", "--merchant", "MX1", "--level", "999", "--reason", "x", "--actor", "risk:li"}, 2},
	} {
		if code, out, errs := c.run(bad.args...); code != bad.code {
			t.Errorf("%v: exit %d, want %d\n%s\n%s", bad.args, code, bad.code, out, errs)
		}
	}
	code, out, _ = c.run("card", "errors", "list", "--org", "ORGX", "--merchant", "MX1", "--status", "open", "--from", "2026-11-30", "--to", "2026-11-30")
	if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "ORGX/MX1") || !strings.Contains(out, "1 of 1") {
		t.Fatalf("list: exit %d\n%s", code, out)
	}
	code, out, errs = c.run("card", "errors", "resolve", id, "--status", "written_off", "--note", "absorbed", "--actor", "risk:wang")
	if code != 0 || !strings.Contains(out, "written_off") {
		t.Fatalf("resolve: exit %d\n%s\n%s", code, out, errs)
	}
	if code, _, _ := c.run("card", "errors", "resolve", id, "--note", "again", "--actor", "risk:wang"); code != 4 {
		t.Fatalf("resolving twice: exit %d, want 4 (conflict)", code)
	}
	code, out, _ = c.run("card", "errors", "show", id)
	if code != 0 || !strings.Contains(out, "written_off") || !strings.Contains(out, "risk:li") || !strings.Contains(out, "risk:wang") ||
		!strings.Contains(out, "file line 12") || !strings.Contains(out, "2026-11-30") {
		t.Fatalf("show: exit %d\n%s", code, out)
	}
	code, out, _ = c.run("card", "level", "set", "--org", "ORGX", "--merchant", "MX1", "--level", "202", "--reason", "ticket 88", "--actor", "risk:li")
	if code != 0 || !strings.Contains(out, "101 → 202") {
		t.Fatalf("level set: exit %d\n%s", code, out)
	}
	if code, out, _ := c.run("card", "level", "upgrade"); code != 0 || !strings.Contains(out, "upgraded") {
		t.Fatalf("level upgrade: exit %d\n%s", code, out)
	}
}
