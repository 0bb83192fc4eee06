package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/escrow"
	"github.com/jifu-open/jifu/host/ledger"
)

// escrowPeers are the escrow capability's outside dependencies. Until the
// user store (real names), host/notify (SMS) and the bank gateway are wired
// here, each refuses with CodeUnavailable: requests that need one fail
// cleanly and change nothing, the others (bids, releases, repayments,
// unfreezes, balances) work.
type escrowPeers struct {
	RealNames escrow.RealNames
	SMS       escrow.SMS
	Bank      escrow.Bank
}

// newEscrow builds the escrow capability's service over the platform
// database and ledger.
func newEscrow(pool *pgxpool.Pool, l *ledger.Ledger, log *slog.Logger, peers escrowPeers) *escrow.Service {
	if peers.RealNames == nil {
		peers.RealNames = notWired{}
	}
	if peers.SMS == nil {
		peers.SMS = notWired{}
	}
	if peers.Bank == nil {
		peers.Bank = notWired{}
	}
	return escrow.New(escrow.Config{Pool: pool, Ledger: l, Logger: log,
		RealNames: peers.RealNames, SMS: peers.SMS, Bank: peers.Bank})
}

// notWired stands for a peer that is not connected yet.
type notWired struct{}

func (notWired) RealName(context.Context, string) (escrow.RealName, error) {
	return escrow.RealName{}, jifu.Errorf(jifu.CodeUnavailable, "escrow: real-name verification is not connected")
}

func (notWired) SendSMS(context.Context, string, string) error {
	return jifu.Errorf(jifu.CodeUnavailable, "escrow: the SMS channel is not connected")
}

// An unconnected bank declines every order (a final answer), so
// top-ups book nothing and withdrawals release their hold.
func (notWired) Debit(context.Context, escrow.BankOrder) (escrow.BankResult, error) {
	return escrow.BankResult{Status: escrow.BankFailed, Reason: "no bank gateway connected"}, nil
}

func (notWired) Credit(context.Context, escrow.BankOrder) (escrow.BankResult, error) {
	return escrow.BankResult{Status: escrow.BankFailed, Reason: "no bank gateway connected"}, nil
}

// escrowCmd is `jifu escrow`: the custody records' operator commands.
type escrowCmd struct {
	Check escrowCheckCmd `cmd:"" help:"Verify the escrow records against the books; exit 1 naming each violation."`
}

type escrowCheckCmd struct{}

func (escrowCheckCmd) Run(ctx context.Context, e *env) error {
	db, err := openPlatformDB(ctx, e)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	pool, err := db.migrateAndOpen(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	vs, err := newEscrow(pool, ledger.New(pool), e.log, escrowPeers{}).Check(ctx)
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		fmt.Fprintf(e.stdout, "escrow check: all %d invariants hold\n", len(escrow.Invariants()))
		for _, inv := range escrow.Invariants() {
			fmt.Fprintf(e.stdout, "  ok  %-18s %s\n", inv[0], inv[1])
		}
		return nil
	}
	for _, v := range vs {
		fmt.Fprintf(e.stdout, "VIOLATION %s: %s\n", v.Invariant, v.Detail)
	}
	fmt.Fprintf(e.stderr, "jifu: escrow check: %d violation(s)\n", len(vs))
	return exitError{code: 1}
}

// startEscrowSweep marks, every minute, the bids and debt transfers whose
// holds the ledger's expiry returned (escrow.Service.Sweep), until the
// returned stop is called (which waits for the sweep in progress).
func startEscrowSweep(ctx context.Context, svc *escrow.Service, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				n, err := svc.Sweep(ctx)
				if err != nil && ctx.Err() == nil {
					log.WarnContext(ctx, "escrow: sweep failed", "err", err)
				} else if n > 0 {
					log.InfoContext(ctx, "escrow: marked expired bids and debt transfers", "count", n)
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}
