package payment

import (
	"context"
	"errors"
	"time"

	"github.com/jifu-open/jifu/host/ledger"
)

// Balance pays from the user's wallet (OpenWallet): a hold from the wallet
// to the payee, posted on capture. The wallet refuses overdrafts.
type Balance struct{}

// Name implements Method.
func (Balance) Name() string { return MethodBalance }

// Available implements Method: the wallet's available balance.
func (Balance) Available(ctx context.Context, l *ledger.Ledger, user string) (int64, error) {
	return availableOf(ctx, l, walletSpec(user), ledger.Balance.Available)
}

// Authorize implements Method.
func (Balance) Authorize(ctx context.Context, l *ledger.Ledger, r Ref, timeout time.Duration) ([]int64, error) {
	w, err := l.FindAccount(ctx, ledger.Owner{Type: ledger.OwnerUser, ID: r.User}, "wallet")
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, refused(ledger.ErrInsufficientFunds, "the wallet is empty")
	}
	if err != nil {
		return nil, err
	}
	res, err := l.Transfer(ctx, LedgerCaller, ledger.Transfer{ID: r.Key("auth"), Debit: w.ID, Credit: r.PayeeAccount,
		Amount: r.Amount, Code: "payment", Pending: true, Timeout: timeout,
		Metadata: map[string]string{"intent": r.IntentID, "method": MethodBalance}})
	if err != nil {
		return nil, err
	}
	return []int64{res.ID}, nil
}

// Capture implements Method.
func (Balance) Capture(ctx context.Context, l *ledger.Ledger, r Ref, holds []int64) error {
	return postAll(ctx, l, r, holds)
}

// Void implements Method.
func (Balance) Void(ctx context.Context, l *ledger.Ledger, r Ref, holds []int64) error {
	return voidAll(ctx, l, r, holds)
}

// Refund implements Method: the payee pays the wallet back.
func (Balance) Refund(ctx context.Context, l *ledger.Ledger, r Ref, amount int64, key string) error {
	w, err := OpenWallet(ctx, l, r.User)
	if err != nil {
		return err
	}
	_, err = l.Transfer(ctx, LedgerCaller, ledger.Transfer{ID: key, Debit: r.PayeeAccount, Credit: w.ID,
		Amount: amount, Code: "refund", Metadata: map[string]string{"intent": r.IntentID, "method": MethodBalance}})
	return err
}

// availableOf reads an account's figure without creating it: 0 when the
// account does not exist.
func availableOf(ctx context.Context, l *ledger.Ledger, spec ledger.AccountSpec, f func(ledger.Balance) int64) (int64, error) {
	a, err := l.FindAccount(ctx, spec.Owner, spec.Name)
	if errors.Is(err, ledger.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	b, err := l.Balance(ctx, a.ID)
	if err != nil {
		return 0, err
	}
	return max(f(b), 0), nil
}

func postAll(ctx context.Context, l *ledger.Ledger, r Ref, holds []int64) error {
	for i, h := range holds {
		if _, err := l.PostPending(ctx, LedgerCaller, r.Key("capture/"+itoa(i)), h, 0); err != nil {
			return err
		}
	}
	return nil
}

func voidAll(ctx context.Context, l *ledger.Ledger, r Ref, holds []int64) error {
	for i, h := range holds {
		_, err := l.VoidPending(ctx, LedgerCaller, r.Key("void/"+itoa(i)), h)
		if errors.Is(err, ledger.ErrHoldResolved) {
			continue // expired (or voided) already: the money is back
		}
		if err != nil {
			return err
		}
	}
	return nil
}
