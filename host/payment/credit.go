package payment

import (
	"context"
	"errors"
	"time"

	"github.com/jifu-open/jifu/host/ledger"
)

// Credit pays on the user's credit line. The line is the ledger account
// (user, "credit_line") with the flag credits-must-not-exceed-debits: its
// debits are the limit granted (and what was restored), its credits what
// was reserved (pending) and consumed (posted). So the ledger itself stops a
// reservation beyond the limit. A part paid by credit is two holds in one
// ledger batch: the reservation on the line, and the lender's money to the
// payee; capture posts both (consume), void releases both, a refund restores
// the line and returns the money to the lender.
type Credit struct{}

// Platform accounts of the credit method.
var (
	creditPlatform = ledger.Owner{Type: ledger.OwnerPlatform, ID: "credit"}
	creditLimits   = ledger.AccountSpec{Owner: creditPlatform, Name: "limits"} // counterpart of limit changes
	creditUsage    = ledger.AccountSpec{Owner: creditPlatform, Name: "usage"}  // counterpart of reservations
	creditLender   = ledger.AccountSpec{Owner: creditPlatform, Name: "lender"} // the money lent to payees
)

func creditLineSpec(user string) ledger.AccountSpec {
	return ledger.AccountSpec{Owner: ledger.Owner{Type: ledger.OwnerUser, ID: user}, Name: "credit_line",
		Flags: ledger.CreditsMustNotExceedDebits}
}

// lineAvailable is what a credit line can still reserve.
func lineAvailable(b ledger.Balance) int64 {
	return b.DebitsPosted - b.CreditsPosted - b.CreditsPending
}

// Name implements Method.
func (Credit) Name() string { return MethodCredit }

// Available implements Method: the line's unused limit.
func (Credit) Available(ctx context.Context, l *ledger.Ledger, user string) (int64, error) {
	return availableOf(ctx, l, creditLineSpec(user), lineAvailable)
}

// Authorize implements Method: reserve on the line and hold the lender's
// money for the payee, atomically.
func (Credit) Authorize(ctx context.Context, l *ledger.Ledger, r Ref, timeout time.Duration) ([]int64, error) {
	line, err := l.FindAccount(ctx, ledger.Owner{Type: ledger.OwnerUser, ID: r.User}, "credit_line")
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, refused(ledger.ErrExceedsCredits, "no credit line")
	}
	if err != nil {
		return nil, err
	}
	usage, lender, err := openCreditPlatform(ctx, l)
	if err != nil {
		return nil, err
	}
	meta := map[string]string{"intent": r.IntentID, "method": MethodCredit}
	rs, err := l.Submit(ctx, LedgerCaller, []ledger.Transfer{
		{ID: r.Key("auth/reserve"), Debit: usage.ID, Credit: line.ID, Amount: r.Amount, Code: "credit.reserve",
			Pending: true, Timeout: timeout, Metadata: meta},
		{ID: r.Key("auth/lend"), Debit: lender.ID, Credit: r.PayeeAccount, Amount: r.Amount, Code: "payment",
			Pending: true, Timeout: timeout, Metadata: meta},
	})
	if err != nil {
		return nil, err
	}
	return []int64{rs[0].ID, rs[1].ID}, nil
}

// Capture implements Method: consume the reservation, pay the payee.
func (Credit) Capture(ctx context.Context, l *ledger.Ledger, r Ref, holds []int64) error {
	return postAll(ctx, l, r, holds)
}

// Void implements Method.
func (Credit) Void(ctx context.Context, l *ledger.Ledger, r Ref, holds []int64) error {
	return voidAll(ctx, l, r, holds)
}

// Refund implements Method: the payee's money returns to the lender and the
// line is restored by as much, in one batch.
func (Credit) Refund(ctx context.Context, l *ledger.Ledger, r Ref, amount int64, key string) error {
	line, err := l.CreateAccount(ctx, creditLineSpec(r.User))
	if err != nil {
		return err
	}
	usage, lender, err := openCreditPlatform(ctx, l)
	if err != nil {
		return err
	}
	meta := map[string]string{"intent": r.IntentID, "method": MethodCredit}
	_, err = l.Submit(ctx, LedgerCaller, []ledger.Transfer{
		{ID: key + "/lend", Debit: r.PayeeAccount, Credit: lender.ID, Amount: amount, Code: "refund", Metadata: meta},
		{ID: key + "/restore", Debit: line.ID, Credit: usage.ID, Amount: amount, Code: "credit.restore", Metadata: meta},
	})
	return err
}

func openCreditPlatform(ctx context.Context, l *ledger.Ledger) (usage, lender ledger.Account, err error) {
	if usage, err = l.CreateAccount(ctx, creditUsage); err != nil {
		return
	}
	lender, err = l.CreateAccount(ctx, creditLender)
	return
}

// CreditLine is a user's credit line, in fen.
type CreditLine struct {
	User      string
	Limit     int64
	Used      int64 // reserved or consumed and not restored
	Available int64 // Limit - Used
}
