package escrow

import (
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/database"
	"github.com/jifu-open/jifu/host/ledger"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the escrow records' tables (after the ledger's).
var Migrations = database.MigrationSet{Name: "escrow", FS: database.MustSub(migrationFiles, "migrations")}

// Actor is who makes a request: the calling app (the merchant platform) and
// the invocation's user, "" when none (a batch tick, the app's server).
type Actor struct {
	App  string
	User string
}

// RealName is a user's real-name verification as the platform's user store
// knows it.
type RealName struct {
	Verified bool
	Name     string
	IDNumber string // as the user store holds it (full or masked); stored masked, never logged
}

// RealNames answers whether a user passed real-name verification. The
// store's user service implements it.
type RealNames interface {
	RealName(ctx context.Context, user string) (RealName, error)
}

// SMS sends a text message to a user's verified phone (package notify's
// sms channel, purpose otp). A jifu.CodeLimit error (the channel's rate
// limit) is refused as ErrSMSLimit; any other error as unavailable.
// sms channel). The text holds a confirmation code: implementations must not
// log it.
type SMS interface {
	SendSMS(ctx context.Context, user, text string) error
}

// BankStatus is the outcome of a bank order.
type BankStatus int

// Bank outcomes. Unknown means the bank may or may not have moved the money
// (a timeout, a dropped connection): the order must be queried later.
const (
	BankUnknown BankStatus = iota
	BankSucceeded
	BankFailed
)

// BankOrder asks the bank to move Amount fen between the user's bound card
// and the platform's settlement account. Ref is unique and idempotent at the
// bank: resending an order with the same Ref never moves money twice.
type BankOrder struct {
	Ref     string
	User    string
	Amount  int64
	Channel string // online_bank, withhold (debits); withdraw (credits)
}

// BankResult is the bank's answer to an order or a query.
type BankResult struct {
	Status BankStatus
	Reason string // the bank's refusal reason when Failed
}

// Bank is the gateway to the users' bank cards (package banksim locally).
// Debit pulls from the user's card (top-up), Credit pays to it
// (withdrawal). Orders are idempotent by Ref: sending an order again returns
// its outcome without moving money twice, which is how an unknown outcome
// is settled later. An error means the outcome is unknown, like BankUnknown.
type Bank interface {
	Debit(ctx context.Context, o BankOrder) (BankResult, error)
	Credit(ctx context.Context, o BankOrder) (BankResult, error)
}

// Config holds a Service's dependencies. Pool, Ledger, RealNames, SMS and
// Bank are required.
type Config struct {
	Pool      *pgxpool.Pool
	Ledger    *ledger.Ledger
	RealNames RealNames
	SMS       SMS
	Bank      Bank
	// BankName is the owner id of the ledger's external-bank account
	// (owner type bank, account "settlement"); default "escrow-bank".
	BankName string
	Clock    func() time.Time // default time.Now
	Rand     io.Reader        // SMS codes; default crypto/rand
	Logger   *slog.Logger
	// SMSCodeTTL is how long an SMS code is valid; default 10 minutes.
	SMSCodeTTL time.Duration
	// TransferHold is how long a buyer's frozen price for a debt transfer and
	// a withdrawal's hold wait; default 7 days and 30 days.
	TransferHold time.Duration
	WithdrawHold time.Duration
}

// Service runs the escrow requests. It is safe for concurrent use.
type Service struct {
	cfg  Config
	pool *pgxpool.Pool
	l    *ledger.Ledger
	now  func() time.Time
	log  *slog.Logger
}

// New returns a Service over cfg.
func New(cfg Config) *Service {
	if cfg.BankName == "" {
		cfg.BankName = "escrow-bank"
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SMSCodeTTL <= 0 {
		cfg.SMSCodeTTL = 10 * time.Minute
	}
	if cfg.TransferHold <= 0 {
		cfg.TransferHold = 7 * 24 * time.Hour
	}
	if cfg.WithdrawHold <= 0 {
		cfg.WithdrawHold = 30 * 24 * time.Hour
	}
	return &Service{cfg: cfg, pool: cfg.Pool, l: cfg.Ledger, now: cfg.Clock, log: cfg.Logger}
}

// Reason is the escrow's stable refusal reason, carried in a *jifu.Error and
// in a response's ErrCode.
type Reason string

func (r Reason) Error() string { return string(r) }

// Refusal reasons. Never rename one.
const (
	ErrInvalid             = Reason("invalid")              // malformed request
	ErrNotFound            = Reason("not_found")            // no such loan, bid, bill or account
	ErrDenied              = Reason("denied")               // the actor may not act for that user
	ErrNotRealName         = Reason("not_real_name")        // opening needs a real-name verified user
	ErrAccountExists       = Reason("account_exists")       // the user already has a custody account in that role
	ErrNotAuthorized       = Reason("not_authorized")       // no live standing authorization covers the request
	ErrInsufficientFunds   = Reason("insufficient_funds")   // the payer's custody account cannot cover it
	ErrOversubscribed      = Reason("oversubscribed")       // the bid exceeds what the listing has left
	ErrExceedsMargin       = Reason("exceeds_margin")       // unfreezing more than the margin left
	ErrExceedsClaim        = Reason("exceeds_claim")        // transferring more claim than the seller holds
	ErrExceedsDebt         = Reason("exceeds_debt")         // repaying the guarantor more than it compensated
	ErrWrongState          = Reason("wrong_state")          // the loan, bid or bill is not in a state that allows it
	ErrIdempotencyConflict = Reason("idempotency_conflict") // the MerBillNo was used for another request
	ErrSMSCodeWrong        = Reason("sms_code_wrong")       // the SMS code does not match
	ErrSMSCodeExpired      = Reason("sms_code_expired")     // the SMS code expired or was tried too often
	ErrBankDeclined        = Reason("bank_declined")        // the bank refused the order
	ErrSMSLimit            = Reason("sms_limit")            // the SMS channel's rate limit for the user's phone is hit
)

// code is the generic jifu code of a reason.
func (r Reason) code() string {
	switch r {
	case ErrInvalid:
		return jifu.CodeInvalid
	case ErrSMSLimit:
		return jifu.CodeLimit
	case ErrNotFound:
		return jifu.CodeNotFound
	case ErrDenied, ErrNotRealName, ErrNotAuthorized, ErrSMSCodeWrong, ErrSMSCodeExpired:
		return jifu.CodeDenied
	case ErrAccountExists, ErrInsufficientFunds, ErrOversubscribed, ErrExceedsMargin, ErrExceedsClaim, ErrExceedsDebt,
		ErrWrongState, ErrIdempotencyConflict, ErrBankDeclined:
		return jifu.CodeConflict
	}
	return jifu.CodeInternal
}

// ReasonOf returns the escrow reason in err's chain, or "" when there is
// none (an internal or unavailable failure).
func ReasonOf(err error) Reason {
	var r Reason
	if errors.As(err, &r) {
		return r
	}
	return ""
}

func fail(r Reason, format string, args ...any) error {
	return jifu.Errorf(r.code(), "escrow: %w: "+format, append([]any{r}, args...)...)
}

// fromLedger turns a ledger refusal into the escrow reason a caller can act
// on; as is the reason for insufficient funds (which account ran short).
func fromLedger(err error, as Reason, what string) error {
	switch ledger.ReasonOf(err) {
	case ledger.ErrInsufficientFunds:
		return fail(as, "%s", what)
	case ledger.ErrHoldExpired, ledger.ErrHoldResolved, ledger.ErrAccountClosed:
		return fail(ErrWrongState, "%s: %v", what, ledger.ReasonOf(err))
	}
	return err
}

// retryable reports failures after which the whole transaction is retried.
func retryable(err error) bool {
	return database.IsCode(err, "40001") || database.IsCode(err, "40P01") || ledger.ReasonOf(err) == ledger.ErrRetry
}

// inTx runs fn in a transaction with the ledger bound to it, retrying the
// whole transaction after deadlocks and serialization failures.
func (s *Service) inTx(ctx context.Context, fn func(tx pgx.Tx, l *ledger.Ledger) error) error {
	pause := 2 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return fn(tx, s.l.WithTx(tx)) })
		if err == nil || !retryable(err) || attempt == 10 {
			if err != nil && retryable(err) {
				return jifu.Errorf(jifu.CodeUnavailable, "escrow: gave up after %d attempts: %w", attempt, err)
			}
			return dbError(ctx, err)
		}
		select {
		case <-ctx.Done():
			return dbError(ctx, ctx.Err())
		case <-time.After(pause/2 + mrand.N(pause)):
		}
		if pause < 100*time.Millisecond {
			pause *= 2
		}
	}
}

func dbError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var je *jifu.Error
	if errors.As(err, &je) {
		return err
	}
	return database.QueryError(ctx, "escrow", err)
}
