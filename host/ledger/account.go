package ledger

import (
	"context"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// OwnerType says who an account belongs to.
type OwnerType string

// Owner types.
const (
	OwnerUser     OwnerType = "user"     // an end user's wallet, deposits, credit line
	OwnerApp      OwnerType = "app"      // an app (its fees, its float)
	OwnerMerchant OwnerType = "merchant" // a merchant's settlement account
	OwnerEscrow   OwnerType = "escrow"   // a party in custody (investor, borrower, guarantor)
	OwnerPlatform OwnerType = "platform" // the platform's own accounts (fees, suspense)
	OwnerBank     OwnerType = "bank"     // an external bank: money entering or leaving the books
)

// Valid reports whether t is one of the owner types.
func (t OwnerType) Valid() bool {
	switch t {
	case OwnerUser, OwnerApp, OwnerMerchant, OwnerEscrow, OwnerPlatform, OwnerBank:
		return true
	}
	return false
}

// Owner identifies an account's owner: a type and an id within it.
type Owner struct {
	Type OwnerType
	ID   string
}

// Flags constrain an account. Balance flags count pending amounts
// pessimistically: a hold's debit counts at once, its credit only once
// posted.
type Flags uint32

// Account flags.
const (
	// DebitsMustNotExceedCredits: no overdraft (wallets, custody accounts).
	DebitsMustNotExceedCredits Flags = 1 << iota
	// CreditsMustNotExceedDebits: the mirror (a credit line's limit account).
	CreditsMustNotExceedDebits
	// Closed: no new transfers or posts; holds may still be voided.
	Closed
)

const allFlags = DebitsMustNotExceedCredits | CreditsMustNotExceedDebits | Closed

// AccountSpec describes an account to create.
type AccountSpec struct {
	Owner Owner
	Name  string // the account's name among its owner's: "wallet", "frozen", "fees"
	Flags Flags
	// Currency defaults to CNY, the only one the platform books today.
	Currency string
}

// Account is an account as stored.
type Account struct {
	ID        int64
	Owner     Owner
	Name      string
	Currency  string
	Flags     Flags
	CreatedAt time.Time
}

// Balance is an account's four totals, in fen. Each equals the sum of the
// account's entries.
type Balance struct {
	AccountID      int64
	DebitsPending  int64
	DebitsPosted   int64
	CreditsPending int64
	CreditsPosted  int64
}

// Available is what a credit-normal account (a wallet: money the platform
// owes its owner) can spend: credits posted less debits posted and pending.
// For a debit-normal account (a bank) it is negative.
func (b Balance) Available() int64 {
	return b.CreditsPosted - b.DebitsPosted - b.DebitsPending
}

// Net is credits posted less debits posted.
func (b Balance) Net() int64 { return b.CreditsPosted - b.DebitsPosted }

// Limits on names.
const (
	MaxOwnerIDBytes = 128
	MaxNameBytes    = 64
)

func (s *AccountSpec) validate() error {
	if !s.Owner.Type.Valid() {
		return fail(ErrInvalid, "unknown owner type %q", s.Owner.Type)
	}
	if s.Owner.ID == "" || len(s.Owner.ID) > MaxOwnerIDBytes || !utf8.ValidString(s.Owner.ID) {
		return fail(ErrInvalid, "owner id must be 1..%d bytes of UTF-8", MaxOwnerIDBytes)
	}
	if s.Name == "" || len(s.Name) > MaxNameBytes || !utf8.ValidString(s.Name) {
		return fail(ErrInvalid, "account name must be 1..%d bytes of UTF-8", MaxNameBytes)
	}
	if s.Flags&^allFlags != 0 {
		return fail(ErrInvalid, "unknown account flags %#x", uint32(s.Flags&^allFlags))
	}
	if s.Flags&DebitsMustNotExceedCredits != 0 && s.Flags&CreditsMustNotExceedDebits != 0 {
		return fail(ErrInvalid, "an account cannot refuse both debits and credits over the other")
	}
	if s.Currency == "" {
		s.Currency = Currency
	}
	if s.Currency != Currency {
		return fail(ErrInvalid, "currency %q is not booked (only %s)", s.Currency, Currency)
	}
	return nil
}

const accountColumns = `id, owner_type, owner_id, name, currency, flags, created_at`

func scanAccount(row pgx.Row) (Account, error) {
	var a Account
	var ot string
	var flags int32
	err := row.Scan(&a.ID, &ot, &a.Owner.ID, &a.Name, &a.Currency, &flags, &a.CreatedAt)
	a.Owner.Type = OwnerType(ot)
	a.Flags = Flags(flags)
	return a, err
}

// CreateAccount creates the account of spec.Owner named spec.Name, or returns
// it when it exists with the same currency and flags (Closed aside): it is
// idempotent. An existing account with other settings is
// ErrAccountConflict.
func (l *Ledger) CreateAccount(ctx context.Context, spec AccountSpec) (Account, error) {
	if err := spec.validate(); err != nil {
		return Account{}, err
	}
	var a Account
	err := l.retry(ctx, "create account", func() error {
		var err error
		a, err = l.findAccount(ctx, spec.Owner, spec.Name)
		if err == nil || ReasonOf(err) != ErrNotFound {
			return err
		}
		a, err = scanAccount(l.db.QueryRow(ctx, `
			INSERT INTO ledger_accounts (owner_type, owner_id, name, currency, flags)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (owner_type, owner_id, name) DO NOTHING
			RETURNING `+accountColumns,
			string(spec.Owner.Type), spec.Owner.ID, spec.Name, spec.Currency, int32(spec.Flags)))
		if errors.Is(err, pgx.ErrNoRows) { // created concurrently
			a, err = l.findAccount(ctx, spec.Owner, spec.Name)
		}
		return dbError(ctx, "create account", err)
	})
	if err != nil {
		return Account{}, err
	}
	if a.Currency != spec.Currency || a.Flags&^Closed != spec.Flags&^Closed {
		return Account{}, fail(ErrAccountConflict, "account %d (%s %s %s) exists with flags %#x, currency %s",
			a.ID, a.Owner.Type, a.Owner.ID, a.Name, uint32(a.Flags), a.Currency)
	}
	return a, nil
}

// FindAccount returns the account of owner named name; ErrNotFound when
// there is none.
func (l *Ledger) FindAccount(ctx context.Context, owner Owner, name string) (Account, error) {
	return l.findAccount(ctx, owner, name)
}

func (l *Ledger) findAccount(ctx context.Context, owner Owner, name string) (Account, error) {
	a, err := scanAccount(l.db.QueryRow(ctx,
		`SELECT `+accountColumns+` FROM ledger_accounts WHERE owner_type = $1 AND owner_id = $2 AND name = $3`,
		string(owner.Type), owner.ID, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return Account{}, fail(ErrNotFound, "no account %q of %s %q", name, owner.Type, owner.ID)
	}
	if err != nil {
		return Account{}, dbError(ctx, "find account", err)
	}
	return a, nil
}

// Account returns the account id; ErrNotFound when there is none.
func (l *Ledger) Account(ctx context.Context, id int64) (Account, error) {
	a, err := scanAccount(l.db.QueryRow(ctx, `SELECT `+accountColumns+` FROM ledger_accounts WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Account{}, fail(ErrNotFound, "no account %d", id)
	}
	if err != nil {
		return Account{}, dbError(ctx, "account", err)
	}
	return a, nil
}

// Balance returns the totals of account id; ErrNotFound when there is none.
func (l *Ledger) Balance(ctx context.Context, id int64) (Balance, error) {
	b := Balance{AccountID: id}
	err := l.db.QueryRow(ctx, `
		SELECT debits_pending, debits_posted, credits_pending, credits_posted
		FROM ledger_accounts WHERE id = $1`, id).
		Scan(&b.DebitsPending, &b.DebitsPosted, &b.CreditsPending, &b.CreditsPosted)
	if errors.Is(err, pgx.ErrNoRows) {
		return Balance{}, fail(ErrNotFound, "no account %d", id)
	}
	if err != nil {
		return Balance{}, dbError(ctx, "balance", err)
	}
	return b, nil
}

// CloseAccount sets the Closed flag: the account takes no new transfers or
// posts (its open holds can still be voided or expire). Closing a closed
// account is a no-op.
func (l *Ledger) CloseAccount(ctx context.Context, id int64) error {
	return l.retry(ctx, "close account", func() error {
		tag, err := l.db.Exec(ctx, `UPDATE ledger_accounts SET flags = flags | $2 WHERE id = $1`, id, int32(Closed))
		if err != nil {
			return dbError(ctx, "close account", err)
		}
		if tag.RowsAffected() == 0 {
			return fail(ErrNotFound, "no account %d", id)
		}
		return nil
	})
}
