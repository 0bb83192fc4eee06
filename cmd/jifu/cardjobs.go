package main

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/cardpay/acquirersim"
	"github.com/jifu-open/jifu/host/cardpay/books"
)

// cardJobs are the card core's scheduled jobs, run by serve on a ticker
// (every minute by default); each is idempotent, so several instances may
// run them:
//
//   - RetryReversals: payments left reversal_pending;
//   - RetryPostings: approved payments whose ledger posting failed;
//   - T1 settlement of yesterday (Beijing date), posted through the books;
//   - T0 settlement of today once the Beijing clock passes the T0 cut-off;
//   - reconciliation of yesterday, once its acquirer file
//     (settlement-YYYYMMDD.csv in dir) exists: the card core's records and
//     the ledger against the file, differences logged as warnings and
//     recorded as erroneous transactions (the card core's long/short/
//     amount_mismatch, the books' ledger_mismatch), once per day.
type cardJobs struct {
	svc      *cardpay.Service
	books    *books.Books
	dir      string // the acquirer's daily files
	t0Cutoff string // "HH:MM" Beijing time; "" = 22:00
	log      *slog.Logger
	now      func() time.Time

	reconciled string // the last day reconciled by this process (yyyy-mm-dd)
	upgraded   string // the last day user levels were upgraded (yyyy-mm-dd)
}

// defaultAcquirerFiles is where `jifu acquirer-sim` writes its files
// with the same --data-dir.
func defaultAcquirerFiles(e *env) string { return filepath.Join(e.cli.DataDir, "acqsim") }

// run ticks until ctx ends.
func (j *cardJobs) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		j.tick(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// tick runs every job once; failures are logged and retried next tick.
func (j *cardJobs) tick(ctx context.Context) {
	warn := func(job string, err error) {
		if err != nil && ctx.Err() == nil {
			j.log.WarnContext(ctx, "card jobs: "+job, "err", err)
		}
	}
	if n, err := j.svc.RetryReversals(ctx); n > 0 || err != nil {
		j.log.InfoContext(ctx, "card jobs: reversals retried", "reversed", n)
		warn("reversals", err)
	}
	if n, err := j.svc.RetryPostings(ctx); n > 0 || err != nil {
		j.log.InfoContext(ctx, "card jobs: postings retried", "posted", n)
		warn("postings", err)
	}
	now := j.now().In(acquirersim.Beijing)
	yesterday := now.AddDate(0, 0, -1)
	if bs, err := j.svc.Settle(ctx, yesterday, cardpay.T1); len(bs) > 0 || err != nil {
		j.log.InfoContext(ctx, "card jobs: T1 batches", "day", yesterday.Format("2006-01-02"), "batches", len(bs))
		warn("T1 settlement", err)
	}
	cutoff := j.t0Cutoff
	if cutoff == "" {
		cutoff = "22:00"
	}
	if now.Format("15:04") >= cutoff {
		if bs, err := j.svc.Settle(ctx, now, cardpay.T0); len(bs) > 0 || err != nil {
			j.log.InfoContext(ctx, "card jobs: T0 batches", "day", now.Format("2006-01-02"), "batches", len(bs))
			warn("T0 settlement", err)
		}
	}
	warn("reconciliation", j.reconcile(ctx, yesterday))
	// User levels move up as clean days pass (101→102→103), which no
	// payment triggers: once a day (T0 settlement moves its own merchants).
	if day := now.Format("2006-01-02"); j.upgraded != day {
		changes, err := j.svc.Desk().UpgradeUserLevels(ctx)
		if err == nil {
			j.upgraded = day
		}
		if len(changes) > 0 {
			j.log.InfoContext(ctx, "card jobs: user levels upgraded", "users", len(changes))
		}
		warn("user-level upgrades", err)
	}
}

// reconcile checks day against the acquirer's file once the file is there.
func (j *cardJobs) reconcile(ctx context.Context, day time.Time) error {
	d := day.Format("2006-01-02")
	if j.reconciled == d {
		return nil
	}
	f, err := os.Open(filepath.Join(j.dir, "settlement-"+day.Format("20060102")+".csv"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // not written yet
	}
	if err != nil {
		return err
	}
	defer f.Close()
	lines, err := acquirersim.ParseSettlement(f)
	if err != nil {
		return err
	}
	file := make([]cardpay.AcquirerLine, 0, len(lines))
	for _, l := range lines {
		file = append(file, cardpay.AcquirerLine{RRN: l.RRN, Kind: l.Kind, Amount: l.Amount})
	}
	core, err := j.svc.Reconcile(ctx, day, file)
	if err != nil {
		return err
	}
	recs, err := j.svc.Records(ctx, day)
	if err != nil {
		return err
	}
	led, err := j.books.ReconcileDay(ctx, j.svc.Desk(), day, recs, file) // ledger differences: ledger_mismatch cases
	if err != nil {
		return err
	}
	for _, x := range append(core, led...) {
		j.log.WarnContext(ctx, "card reconciliation: difference", "day", d, "kind", x.Kind, "rrn", x.RRN, "order", x.OrderID,
			"platform", x.Platform, "acquirer", x.Acquirer)
	}
	j.log.InfoContext(ctx, "card reconciliation", "day", d, "lines", len(file), "card_core_differences", len(core), "ledger_differences", len(led))
	j.reconciled = d
	return nil
}
