package main

import (
	"context"
	"log/slog"

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
