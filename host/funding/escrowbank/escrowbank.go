// Package escrowbank adapts the bank gateway (package bank) to the escrow
// capability's Bank interface: an escrow order's reference becomes a bank
// order id (deterministically, so a re-sent order is the same order at the
// bank), and the user's card is the account bound through host/funding.
//
//	svc := escrow.New(escrow.Config{..., Bank: escrowbank.New(client, fundingSvc)})
package escrowbank

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/bank"
	"github.com/jifu-open/jifu/host/escrow"
)

// Accounts finds a user's bound bank account (funding.Service does).
type Accounts interface {
	BoundAccount(ctx context.Context, user string) (string, error)
}

// Bank is an escrow.Bank over a bank.Gateway.
type Bank struct {
	gw       bank.Gateway
	accounts Accounts
}

var _ escrow.Bank = (*Bank)(nil)

// New returns the adapter.
func New(gw bank.Gateway, accounts Accounts) *Bank { return &Bank{gw: gw, accounts: accounts} }

// OrderID is the bank order id of an escrow reference: "es-" and the first
// 40 hex digits of its SHA-256 (references hold '/' and may be long).
func OrderID(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return "es-" + hex.EncodeToString(sum[:20])
}

// Debit implements escrow.Bank: a top-up from the user's bound account.
func (b *Bank) Debit(ctx context.Context, o escrow.BankOrder) (escrow.BankResult, error) {
	return b.send(ctx, o, b.gw.Debit)
}

// Credit implements escrow.Bank: a withdrawal to the user's bound account.
func (b *Bank) Credit(ctx context.Context, o escrow.BankOrder) (escrow.BankResult, error) {
	return b.send(ctx, o, b.gw.Credit)
}

func (b *Bank) send(ctx context.Context, o escrow.BankOrder, call func(context.Context, bank.Order) (bank.Result, error)) (escrow.BankResult, error) {
	acct, err := b.accounts.BoundAccount(ctx, o.User)
	if jifu.ErrorCode(err) == jifu.CodeNotFound {
		return escrow.BankResult{Status: escrow.BankFailed, Reason: "no bank account bound"}, nil
	}
	if err != nil {
		return escrow.BankResult{Status: escrow.BankUnknown}, err
	}
	res, err := call(ctx, bank.Order{ID: OrderID(o.Ref), Account: acct, Amount: o.Amount, Memo: "escrow " + o.Channel})
	switch res.Status {
	case bank.Succeeded:
		return escrow.BankResult{Status: escrow.BankSucceeded}, nil
	case bank.Failed:
		return escrow.BankResult{Status: escrow.BankFailed, Reason: res.Reason}, nil
	}
	if err == nil {
		err = jifu.Errorf(jifu.CodeUnavailable, "escrowbank: outcome unknown")
	}
	return escrow.BankResult{Status: escrow.BankUnknown}, err
}
