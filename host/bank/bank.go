// Package bank is the platform's gateway to the outside bank that moves
// money between users' bank accounts and the platform: top-ups debit a
// user's account, withdrawals credit it. Gateway is the interface the money
// domains use (host/funding, the escrow adapter); Client is its
// implementation over the bank's signed HTTP protocol, which the local
// faithful peer, package banksim, serves.
//
//	gw := bank.NewClient(bank.ClientConfig{URL: "http://127.0.0.1:9400", Merchant: "jifu", Secret: secret})
//	res, err := gw.Debit(ctx, bank.Order{ID: "tu-42", Account: "6222020200112233445", Amount: 10000})
//	switch res.Status {
//	case bank.Succeeded: // the money moved
//	case bank.Failed:    // it did not, and never will under this id (res.Reason says why)
//	case bank.Unknown:   // a timeout or a lost answer: ask Status(ctx, "tu-42") later
//	}
//
// The protocol (docs/FUNDING.md): JSON bodies; every request and response is
// signed with HMAC-SHA256 over the timestamp, method, path and body under the
// merchant's secret (headers Bank-Merchant, Bank-Timestamp, Bank-Signature);
// an order's id is its idempotency key (header Idempotency-Key): the bank
// executes an id at most once and answers every repeat with the stored
// outcome. Asking the status of an id the bank never received closes it as
// failed (not_received), so a late copy of the order can no longer execute:
// an answer to a status query is final.
package bank

import (
	"context"
	"regexp"
	"strings"
	"time"

	"github.com/jifu-open/jifu"
)

// Kind says which way an order moves money.
type Kind string

// Order kinds, seen from the user's bank account.
const (
	Debit  Kind = "debit"  // from the user's account to the merchant's (a top-up)
	Credit Kind = "credit" // from the merchant's account to the user's (a withdrawal)
)

// Status is an order's outcome.
type Status string

// Outcomes. Unknown is never stored by the bank: it is what a caller holds
// when the answer did not arrive (a timeout, a dropped connection, a 5xx).
const (
	Unknown   Status = "unknown"
	Succeeded Status = "succeeded"
	Failed    Status = "failed"
)

// Refusal reasons the bank gives in Result.Reason (stable strings).
const (
	ReasonInsufficientFunds = "insufficient_funds" // the debited account lacks the money
	ReasonNoAccount         = "no_account"         // no such account at the bank
	ReasonAccountFrozen     = "account_frozen"     // the account takes no orders
	ReasonDeclined          = "declined"           // the bank declined (risk, failure injection)
	ReasonNotReceived       = "not_received"       // a status query closed an id the bank never got
	ReasonRejected          = "rejected"           // the request itself was refused (signature, format): nothing done
)

// Limits of the protocol.
const (
	MaxIDBytes     = 64
	MaxMemoBytes   = 128
	MaxBodyBytes   = 16 << 10
	MaxClockSkew   = 5 * time.Minute
	HeaderMerchant = "Bank-Merchant"
	HeaderTime     = "Bank-Timestamp"
	HeaderSig      = "Bank-Signature"
	HeaderIdemKey  = "Idempotency-Key"
)

// Order asks the bank to move Amount fen between Account (the user's bank
// account number) and the merchant's settlement account.
type Order struct {
	ID      string `json:"request_id"` // idempotency key, unique per merchant: [A-Za-z0-9][A-Za-z0-9._:-]{0,63}
	Kind    Kind   `json:"kind"`
	Account string `json:"account"`
	Amount  int64  `json:"amount"` // fen, > 0
	Memo    string `json:"memo,omitempty"`
}

// Result is the bank's answer to an order or a status query.
type Result struct {
	ID       string    `json:"request_id"`
	Kind     Kind      `json:"kind,omitempty"`
	Amount   int64     `json:"amount,omitempty"`
	Status   Status    `json:"status"`
	Reason   string    `json:"reason,omitempty"`   // when Failed
	BankRef  string    `json:"bank_ref,omitempty"` // the bank's serial number
	BookedAt time.Time `json:"booked_at"`
}

// Statement is the bank's list of a day's executed orders of one merchant
// (China Standard Time), for reconciliation.
type Statement struct {
	Date     string   `json:"date"` // YYYY-MM-DD
	Merchant string   `json:"merchant"`
	Lines    []Result `json:"lines"`
	Debits   int64    `json:"debits"`  // total fen of succeeded debits
	Credits  int64    `json:"credits"` // total fen of succeeded credits
}

// Gateway is the bank as the money domains see it. Debit and Credit send an
// order (again, for a retry: same id, same content) and return its outcome;
// Status asks for the outcome of an id; a returned Result with Status
// Unknown comes with the error that made it unknown. Errors with a Failed
// result mean nothing was or will be done under that id.
type Gateway interface {
	Debit(ctx context.Context, o Order) (Result, error)
	Credit(ctx context.Context, o Order) (Result, error)
	Status(ctx context.Context, id string) (Result, error)
	Statement(ctx context.Context, day time.Time) (Statement, error)
}

var (
	idPattern      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)
	accountPattern = regexp.MustCompile(`^[0-9]{8,32}$`)
)

// ValidID reports whether id is a well-formed order id.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// ValidAccount reports whether no is a well-formed account number (8 to 32
// digits).
func ValidAccount(no string) bool { return accountPattern.MatchString(no) }

// Validate reports the first problem of o as a CodeInvalid error.
func (o Order) Validate() error {
	switch {
	case !ValidID(o.ID):
		return jifu.Errorf(jifu.CodeInvalid, "bank: order id %q is malformed", o.ID)
	case o.Kind != Debit && o.Kind != Credit:
		return jifu.Errorf(jifu.CodeInvalid, "bank: order kind %q is neither debit nor credit", o.Kind)
	case !ValidAccount(o.Account):
		return jifu.Errorf(jifu.CodeInvalid, "bank: account number %s is malformed", Mask(o.Account))
	case o.Amount <= 0:
		return jifu.Errorf(jifu.CodeInvalid, "bank: amount must be positive")
	case len(o.Memo) > MaxMemoBytes:
		return jifu.Errorf(jifu.CodeInvalid, "bank: memo over %d bytes", MaxMemoBytes)
	}
	return nil
}

// Mask hides an account number for logs and pages: the first six and last
// four digits of a long number (622202******3445), the last four of a short
// one, nothing of anything that is not a number.
func Mask(no string) string {
	if !accountPattern.MatchString(no) {
		return "****"
	}
	if len(no) >= 14 {
		return no[:6] + strings.Repeat("*", len(no)-10) + no[len(no)-4:]
	}
	return strings.Repeat("*", len(no)-4) + no[len(no)-4:]
}

// CST is China Standard Time, the bank's day for statements (a fixed zone:
// no tzdata needed).
var CST = time.FixedZone("CST", 8*3600)
