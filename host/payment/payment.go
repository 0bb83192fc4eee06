// Package payment is the host's payment capability: apps create payment
// intents, the host (never the app) asks the user to confirm them on a page
// it renders, and the money moves through the ledger by method: the user's
// wallet balance, a credit line, or both at once (a combined payment).
//
// An intent goes created -> confirmed (the user said yes on the host's page)
// -> authorized (every part's money is held in the ledger) -> succeeded (all
// holds posted in one transaction); or failed (a part was refused: every
// other hold is voided, nothing moves), expired (never confirmed in time).
// Refunds, full or partial, turn it refunded or partially_refunded; they are
// never above what was paid and are idempotent by the app's refund key.
//
// Every outcome is published through Events inside the same database
// transaction as the state change, so that the outbox which delivers it to
// the app's on_event and to the developer's server never misses one nor
// announces one that rolled back.
//
//	svc, _ := payment.New(payment.Config{Pool: pool, Ledger: l, Events: outbox})
//	in, _ := svc.Create(ctx, payment.CreateRequest{App: "utility", User: "u1", Amount: 5000, Description: "电费", Key: "bill-42"})
//	// the user opens payment.ConfirmPath(in.ID), chooses a method and confirms:
//	in, err := svc.Confirm(ctx, in.ID, "u1", []payment.Split{{Method: payment.MethodBalance, Amount: 5000}})
//	r, err := svc.Refund(ctx, "utility", payment.RefundRequest{IntentID: in.ID, Key: "r1", Amount: 1000})
//
// Methods implement Method; balance and credit are built in, a card method
// plugs in later through Config.Methods. OpenWallet is the one way any
// package opens a user's wallet account.
package payment

import (
	"context"
	"embed"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu/host/database"
	"github.com/jifu-open/jifu/host/ledger"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the payment tables.
var Migrations = database.MigrationSet{Name: "payment", FS: database.MustSub(migrationFiles, "migrations")}

// State is an intent's state.
type State string

// Intent states.
const (
	StateCreated           State = "created"            // waiting for the user's confirmation
	StateConfirmed         State = "confirmed"          // the user confirmed; parts being authorized
	StateAuthorized        State = "authorized"         // every part's money held; capture next
	StateSucceeded         State = "succeeded"          // captured: the payee has the money
	StateFailed            State = "failed"             // a part was refused; every hold voided
	StateExpired           State = "expired"            // not confirmed before ExpiresAt
	StateRefunded          State = "refunded"           // all of it went back
	StatePartiallyRefunded State = "partially_refunded" // some of it went back
)

// Paid reports whether the payee received the money (so refunds may apply).
func (s State) Paid() bool {
	return s == StateSucceeded || s == StatePartiallyRefunded || s == StateRefunded
}

// Final reports whether the intent will not change again except by refunds.
func (s State) Final() bool { return s.Paid() || s == StateFailed || s == StateExpired }

// Built-in method names.
const (
	MethodBalance  = "balance"
	MethodCredit   = "credit"
	MethodCombined = "combined" // an intent's Method when it was split across several
)

// Intent is a payment intent as stored.
type Intent struct {
	ID          string
	App         string
	Key         string // the app's idempotency key
	User        string
	Payee       string // a merchant id, or "" for the app itself
	Amount      int64  // fen
	Description string
	State       State
	Method      string // balance, credit, combined; "" until confirmed
	Parts       []Part // the split, once confirmed
	Refunded    int64  // fen that went back to the user
	Failure     string // why it failed, for people
	CreatedAt   time.Time
	ExpiresAt   time.Time
	ConfirmedAt time.Time // zero until confirmed
	UpdatedAt   time.Time
	Replayed    bool // Create answered from an earlier identical request
}

// Part is the share of an intent paid by one method.
type Part struct {
	Index    int
	Method   string
	Amount   int64
	State    string // pending, authorized, captured, voided, failed
	Refunded int64
	Failure  string

	holds []int64 // the ledger holds of its authorization
}

// Split is the user's choice for one method when confirming.
type Split struct {
	Method string
	Amount int64 // fen
}

// Refund is a refund as stored.
type Refund struct {
	ID        string
	IntentID  string
	Key       string
	Amount    int64 // asked for
	Refunded  int64 // went back: Amount unless a part was refused
	State     string
	Failure   string
	CreatedAt time.Time
	Replayed  bool
}

// Refund states.
const (
	RefundSucceeded = "succeeded" // all of Amount went back
	RefundPartial   = "partial"   // part of it went back; a method refused the rest
	RefundFailed    = "failed"    // nothing went back
)

// Event types published to Events.
const (
	EventSucceeded    = "payment.succeeded"
	EventFailed       = "payment.failed"
	EventExpired      = "payment.expired"
	EventRefunded     = "payment.refunded"      // a refund of which something went back
	EventRefundFailed = "payment.refund_failed" // a refund of which nothing went back
)

// Event is an outcome to deliver to the app (on_event) and the developer's
// server (a signed callback).
type Event struct {
	ID       string // unique per event: the delivery's idempotency key
	Type     string
	App      string
	User     string
	IntentID string
	Payload  []byte // JSON: {"intent": {...}, "refund": {...}}
}

// Events receives outcomes inside the transaction that changes the state;
// host/outbox implements it. Publish must write with tx only.
type Events interface {
	Publish(ctx context.Context, tx pgx.Tx, ev Event) error
}

// Ref says which part of which intent a Method acts on. Methods derive
// their ledger keys from it, so that a retried step replays.
type Ref struct {
	IntentID     string
	Index        int
	User         string
	PayeeAccount int64
	Amount       int64
}

// Key returns the ledger key of a step of this part: "pay/<intent>/<idx>/<step>".
func (r Ref) Key(step string) string {
	return "pay/" + r.IntentID + "/" + itoa(r.Index) + "/" + step
}

// Method moves a part's money through the ledger. Every call runs on l,
// a ledger bound to the caller's transaction, so that the part's state and
// its money commit together; keys derived from Ref make each step
// idempotent.
type Method interface {
	Name() string
	// Available returns what user can pay with this method now, in fen. It
	// never creates accounts: a user without one has 0.
	Available(ctx context.Context, l *ledger.Ledger, user string) (int64, error)
	// Authorize holds the part's amount for the payee and returns the
	// ledger hold ids. Refusals are ledger errors (insufficient funds, ...).
	Authorize(ctx context.Context, l *ledger.Ledger, r Ref, timeout time.Duration) (holds []int64, err error)
	// Capture posts the holds in full.
	Capture(ctx context.Context, l *ledger.Ledger, r Ref, holds []int64) error
	// Void releases the holds.
	Void(ctx context.Context, l *ledger.Ledger, r Ref, holds []int64) error
	// Refund gives amount of a captured part back; key is unique per
	// refund and part.
	Refund(ctx context.Context, l *ledger.Ledger, r Ref, amount int64, key string) error
}

// LedgerCaller is the caller name under which payment books its transfers.
const LedgerCaller = "payment"

// OpenWallet returns the user's wallet account, creating it when needed: a
// no-overdraft account (user, "wallet"). Every package that needs a user's
// wallet opens it with this helper.
func OpenWallet(ctx context.Context, l *ledger.Ledger, user string) (ledger.Account, error) {
	return l.CreateAccount(ctx, walletSpec(user))
}

func walletSpec(user string) ledger.AccountSpec {
	return ledger.AccountSpec{Owner: ledger.Owner{Type: ledger.OwnerUser, ID: user}, Name: "wallet",
		Flags: ledger.DebitsMustNotExceedCredits}
}
