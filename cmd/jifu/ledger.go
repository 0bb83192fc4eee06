package main

import (
	"context"
	"fmt"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/ledger"
	"github.com/jifu-open/jifu/host/payment"
)

// ledgerCmd is `jifu ledger`: the books' operator commands.
type ledgerCmd struct {
	Check  ledgerCheckCmd  `cmd:"" help:"Verify every invariant of the ledger; exit 1 naming each violation."`
	Report ledgerReportCmd `cmd:"" help:"A day's posted totals per account owner type and transfer code."`
}

// chinaTime is the day boundary of reports: China Standard Time, UTC+8 all
// year (a fixed zone, so no tzdata is needed).
var chinaTime = time.FixedZone("CST", 8*3600)

// openLedger opens the platform database (migrating it) and returns a
// Ledger over it and a func that closes everything.
func openLedger(ctx context.Context, e *env) (*ledger.Ledger, func(), error) {
	db, err := openPlatformDB(ctx, e)
	if err != nil {
		return nil, nil, err
	}
	pool, err := db.migrateAndOpen(ctx)
	if err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	return ledger.New(pool, ledger.WithLogger(e.log)), func() { pool.Close(); _ = db.Close() }, nil
}

type ledgerCheckCmd struct{}

func (ledgerCheckCmd) Run(ctx context.Context, e *env) error {
	l, closeAll, err := openLedger(ctx, e)
	if err != nil {
		return err
	}
	defer closeAll()
	vs, err := l.Check(ctx)
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		fmt.Fprintf(e.stdout, "ledger check: all %d invariants hold\n", len(ledger.Invariants()))
		for _, inv := range ledger.Invariants() {
			fmt.Fprintf(e.stdout, "  ok  %-24s %s\n", inv[0], inv[1])
		}
		return nil
	}
	for _, v := range vs {
		fmt.Fprintf(e.stdout, "VIOLATION %s: %s\n", v.Invariant, v.Detail)
	}
	fmt.Fprintf(e.stderr, "jifu: ledger check: %d violation(s)\n", len(vs))
	return exitError{code: 1}
}

type ledgerReportCmd struct {
	Date string `help:"The day, YYYY-MM-DD in China Standard Time (default: today)."`
}

func (c ledgerReportCmd) Run(ctx context.Context, e *env) error {
	day := time.Now().In(chinaTime)
	if c.Date != "" {
		d, err := time.ParseInLocation(time.DateOnly, c.Date, chinaTime)
		if err != nil {
			return jifu.Errorf(jifu.CodeInvalid, "--date %q is not YYYY-MM-DD", c.Date)
		}
		day = d
	}
	l, closeAll, err := openLedger(ctx, e)
	if err != nil {
		return err
	}
	defer closeAll()
	rows, err := l.Report(ctx, day)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "ledger report for %s (CST), posted amounts in yuan\n", day.Format(time.DateOnly))
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "owner type\tcode\tdebits\tcredits\ttransfers\t")
	var debits, credits int64
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t\n", r.OwnerType, r.Code, ledger.Yuan(r.Debits), ledger.Yuan(r.Credits), r.Transfers)
		debits += r.Debits
		credits += r.Credits
	}
	fmt.Fprintf(w, "total\t\t%s\t%s\t\t\n", ledger.Yuan(debits), ledger.Yuan(credits))
	return w.Flush()
}

// demoWallets are the demo users' wallets `make run` funds, in fen.
var demoWallets = []struct {
	user string
	fen  int64
}{{"u1", 100_000}, {"u2", 50_000}, {"u3", 20_000}}

// seedLedger creates the demo books: the platform's fee account, a demo
// bank's settlement account, and the demo users' wallets, each funded from
// the bank. It is idempotent (accounts are found again, top-ups replay).
func seedLedger(ctx context.Context, l *ledger.Ledger) error {
	if _, err := l.CreateAccount(ctx, ledger.AccountSpec{
		Owner: ledger.Owner{Type: ledger.OwnerPlatform, ID: "jifu"}, Name: "fees",
	}); err != nil {
		return err
	}
	bank, err := l.CreateAccount(ctx, ledger.AccountSpec{Owner: ledger.Owner{Type: ledger.OwnerBank, ID: "demo-bank"}, Name: "settlement"})
	if err != nil {
		return err
	}
	for _, w := range demoWallets {
		wallet, err := payment.OpenWallet(ctx, l, w.user) // the wallet payments spend from
		if err != nil {
			return err
		}
		if _, err := l.Transfer(ctx, "seed", ledger.Transfer{
			ID: "demo-topup-" + w.user, Debit: bank.ID, Credit: wallet.ID, Amount: w.fen, Code: "topup",
			Metadata: map[string]string{"note": "demo balance"},
		}); err != nil {
			return err
		}
	}
	return nil
}

// startHoldExpiry voids expired holds every second until the returned stop
// is called (which waits for the sweep in progress).
func startHoldExpiry(ctx context.Context, l *ledger.Ledger, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				n, err := l.ExpireHolds(ctx, now)
				if err != nil && ctx.Err() == nil {
					log.WarnContext(ctx, "ledger: hold expiry sweep failed", "err", err)
				} else if n > 0 {
					log.InfoContext(ctx, "ledger: expired holds", "count", n)
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}
