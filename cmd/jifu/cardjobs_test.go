package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/cardpay/dukpt"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/sdk/cardreader"
)

// TestCardJobs runs one tick of the card jobs a day later than a payment:
// the T1 batch of "yesterday" is made and booked, and the reconciliation
// of that day against the acquirer-sim's file finds no difference, in the
// card core's records nor in the ledger; a second tick adds nothing.
func TestCardJobs(t *testing.T) {
	c := newCmdEnv(t)
	c.vars["ACQSIM_DATABASE_URL"] = dbtest.URL(t)
	addr, stopSim := c.acquirerSim()
	defer stopSim()
	logs := &lockedBuffer{}
	e := &env{getenv: c.getenv, stdout: logs, stderr: logs, log: slog.New(slog.NewTextHandler(logs, nil)), cli: &cli{DataDir: c.dataDir}}
	ctx := context.Background()
	core, err := newCardCore(ctx, e, cardFlags{AcquirerAddr: addr, AcquirerTMK: devTMK, AcquirerTID: "JIFU0009", AcquirerMID: "898310048990001"}, dbtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer core.close()
	bdk, _ := dukpt.ParseKey(demoBDK)
	ksn, _ := dukpt.ParseKSN("FFFF9876543299E00000")
	if err := core.svc.RegisterBDK(ctx, "jobs-bdk", "tdes", bdk); err != nil {
		t.Fatal(err)
	}
	if err := core.svc.RegisterMerchant(ctx, cardpay.Merchant{OrgID: "ORG9", MerchantID: "JOBS", Name: "jobs", PaySecret: demoPaySecret,
		AcquirerMID: "898310048990009"}); err != nil {
		t.Fatal(err)
	}
	if err := core.svc.RegisterTerminal(ctx, cardpay.Terminal{KSN: ksn.String(), OrgID: "ORG9", MerchantID: "JOBS", Type: cardpay.TerminalMPOS,
		BDKID: "jobs-bdk", AcquirerTID: "T0000009"}); err != nil {
		t.Fatal(err)
	}
	r, err := cardreader.New(cardreader.Config{OrgID: "ORG9", MerchantID: "JOBS", PaySecret: demoPaySecret, IPEK: dukpt.IPEK(bdk, ksn), KSN: ksn})
	if err != nil {
		t.Fatal(err)
	}
	req, err := r.Build(cardreader.Payment{OrderID: "jobs-1", Amount: 4321, ProductName: "x", Track2: "6222021234567890128=30121011234567890", PIN: "123456"})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := core.svc.Authorize(ctx, req); err != nil || !res.Approved() {
		t.Fatal(res, err)
	}
	today := time.Now().In(time.FixedZone("CST", 8*3600))
	dir := filepath.Join(c.dataDir, "files")
	if code, out, errs := c.run("acquirer-sim", "--settle-day", today.Format("2006-01-02"), "--settle-dir", dir); code != 0 {
		t.Fatalf("settlement file: exit %d %s %s", code, out, errs)
	}
	core.jobs.dir = dir
	core.jobs.now = func() time.Time { return today.Add(24 * time.Hour) } // "yesterday" is today
	core.jobs.tick(ctx)
	out := logs.String()
	for _, want := range []string{"card jobs: T1 batches", "card reconciliation", "card_core_differences=0", "ledger_differences=0"} {
		if !strings.Contains(out, want) {
			t.Fatalf("no %q in the log:\n%s", want, out)
		}
	}
	if strings.Contains(out, "difference kind=") || strings.Contains(out, "level=WARN") {
		t.Fatalf("warnings:\n%s", out)
	}
	var posted int64
	if err := dbtest.Pool(t).QueryRow(ctx, `SELECT coalesce(sum(t.amount), 0) FROM ledger_transfers t JOIN ledger_accounts a ON a.id = t.debit_id
		WHERE t.caller = 'cardpay' AND t.code IN ('card.fee', 'card.settlement') AND a.owner_id = 'ORG9/JOBS'`).Scan(&posted); err != nil || posted != 4321 {
		t.Fatalf("settled %d fen through the ledger, want 4321: %v", posted, err)
	}
	before := len(out)
	core.jobs.tick(ctx)
	if again := logs.String()[before:]; strings.Contains(again, "T1 batches") || strings.Contains(again, "card reconciliation") {
		t.Fatalf("second tick did work again:\n%s", again)
	}
}
