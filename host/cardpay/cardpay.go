// Package cardpay is the card-present payment core: readers (audio,
// small-bluetooth, mPOS) send DUKPT-encrypted card data in a signed request
// (host/cardpay/request); the Service checks it, applies the risk rules
// (data in PostgreSQL, seeded from the seed's 风控规则), sends an ISO 8583
// purchase to the acquirer (host/cardpay/acquirer), records the result with
// the masked PAN only, and serves the sale slip (签购单), settlement batches
// and reconciliation against the acquirer's file.
//
//	svc, err := cardpay.New(pool, masterKey, acq, cardpay.Options{Poster: books.New(ledger),
//		Notifier: cardpay.OutboxNotifier{Outbox: ob}}) // ob: an outbox whose sink is a NotifySink
//	go svc.RunNotifyRelay(ctx, cardpay.DefaultRelayEvery)
//	res, err := svc.Authorize(ctx, req)      // req from request.Decode
//	slip, err := svc.Slip(ctx, org, merchant, order)
//	batches, err := svc.Settle(ctx, day, cardpay.T1)
//	diffs, err := svc.Reconcile(ctx, day, acquirerFileLines)
//
// Each result (approved, declined, reversed) is written to
// card_notifications by the statement that records it; the relay
// (RunNotifyRelay, started with the card core) hands them to the Notifier
// in batches; NotifySink delivers them to the merchant's notify_url as a
// signed callback.
//
// Subpackages: dukpt, pinblock, mac, tlv, track, pan, iso8583, request (the
// primitives), acquirer (the client), acquirersim (the local acquirer),
// books (the Poster over host/ledger and the ledger's reconciliation),
// cardmethod (the card method of the payment capability).
// Nothing in this tree logs or stores a full PAN, a track, a PIN block or a
// CVV; see docs/CARDPAY.md.
package cardpay

import (
	"context"
	"embed"
	"time"

	"github.com/jifu-open/jifu/host/cardpay/dukpt"
	"github.com/jifu-open/jifu/host/cardpay/iso8583"
	"github.com/jifu-open/jifu/host/database"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the card_* tables and seeds the risk rules.
var Migrations = database.MigrationSet{Name: "cardpay", FS: database.MustSub(migrationFiles, "migrations")}

// Terminal types.
const (
	TerminalAudio     = "audio"
	TerminalBluetooth = "bluetooth"
	TerminalMPOS      = "mpos"
)

// Payment statuses.
const (
	StatusPending         = "pending"
	StatusApproved        = "approved"
	StatusDeclined        = "declined"
	StatusReversed        = "reversed"         // result was unknown; the acquirer acknowledged the reversal
	StatusReversalPending = "reversal_pending" // result unknown and the reversal not acknowledged yet
	StatusFailed          = "failed"
)

// Settlement modes.
const (
	T0 = "T0"
	T1 = "T1"
)

// Acquirer is what the service needs from the acquirer link
// (*acquirer.Client implements it).
type Acquirer interface {
	NextSTAN() string
	TranslatePIN(ctx context.Context, readerKey dukpt.Key, block []byte, pan string) ([]byte, error)
	Purchase(ctx context.Context, m *iso8583.Message) (*iso8583.Message, error)
	Void(ctx context.Context, m *iso8583.Message) (*iso8583.Message, error)
	Refund(ctx context.Context, m *iso8583.Message) (*iso8583.Message, error)
	Reverse(ctx context.Context, orig *iso8583.Message) error
}

// Poster receives the ledger postings of the card core; the money core
// implements it. Both calls must be idempotent on their key: the service
// retries them (RetryPostings) until they succeed.
type Poster interface {
	// PostPayment books an approved payment: the merchant's receivable.
	PostPayment(ctx context.Context, p Posting) error
	// PostSettlement books a settlement batch: payout of Net, fee income Fee.
	PostSettlement(ctx context.Context, b Batch) error
	// PostRefund books an approved void or refund (the merchant owes it back).
	PostRefund(ctx context.Context, r RefundPosting) error
}

// Posting is one approved payment as the ledger sees it.
type Posting struct {
	Key        string // "cardpay:payment:<id>", the idempotency key
	PaymentID  int64
	OrgID      string
	MerchantID string
	OrderID    string
	Amount     int64 // fen
	RRN        string
	At         time.Time
}

// Batch is one settlement batch to a merchant.
type Batch struct {
	Key        string // "cardpay:settlement:<id>"
	ID         int64
	OrgID      string
	MerchantID string
	Mode       string // T0 or T1
	Day        time.Time
	Count      int
	Gross      int64 // fen: the payments
	Refunds    int64 // fen: the merchant's approved refunds netted here (never more than Gross)
	Fee        int64 // fen: round half up of (Gross − Refunds) × fee_rate, per batch
	Net        int64 // Gross − Refunds − Fee: paid out
}

// Result is the outcome of Authorize. Declines are results, not errors.
type Result struct {
	PaymentID    int64
	OrderID      string
	Status       string // approved, declined, reversed, reversal_pending
	Rule         string // the rule that declined: "card_class:IC卡:per_day", "acquirer:51", "card:expired", ...
	ResponseCode string // the acquirer's field 39 when it answered
	AuthCode     string
	RRN          string
	PANMasked    string
	CardClass    string
	T0           bool
	Params       string // passed through for the merchant's notification
	Replayed     bool   // the same request was seen before: stored result returned
}

// Approved reports whether the payment was approved.
func (r Result) Approved() bool { return r.Status == StatusApproved }
