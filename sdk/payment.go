package sdk

import (
	"encoding/json"
	"time"
)

// Intent is a payment intent as the platform reports it (payment_create,
// payment_get and the payload of payment events).
type Intent struct {
	ID          string        `json:"id"`
	Key         string        `json:"key"`
	User        string        `json:"user"`
	Payee       string        `json:"payee,omitempty"`
	Amount      int64         `json:"amount"` // fen
	Description string        `json:"description"`
	State       string        `json:"state"` // created, confirmed, authorized, succeeded, failed, expired, refunded, partially_refunded
	Method      string        `json:"method,omitempty"`
	Refunded    int64         `json:"refunded"`
	Failure     string        `json:"failure,omitempty"`
	ConfirmURL  string        `json:"confirm_url"` // where the user confirms, on the platform's own page
	Parts       []PaymentPart `json:"parts,omitempty"`
	CreatedAt   time.Time     `json:"created_at"`
	ExpiresAt   time.Time     `json:"expires_at"`
	Replayed    bool          `json:"replayed,omitempty"`
}

// PaymentPart is the share of an intent one method paid.
type PaymentPart struct {
	Method   string `json:"method"`
	Amount   int64  `json:"amount"`
	State    string `json:"state"`
	Refunded int64  `json:"refunded"`
}

// Refund is a refund as the platform reports it.
type Refund struct {
	ID       string `json:"id"`
	IntentID string `json:"intent_id"`
	Key      string `json:"key"`
	Amount   int64  `json:"amount"`
	Refunded int64  `json:"refunded"`
	State    string `json:"state"` // succeeded, partial, failed
	Failure  string `json:"failure,omitempty"`
	Replayed bool   `json:"replayed,omitempty"`
}

// PaymentEvent is the payload of the events payment.succeeded,
// payment.failed, payment.expired, payment.refunded and payment.refund_failed.
type PaymentEvent struct {
	Type   string  `json:"type"`
	Intent Intent  `json:"intent"`
	Refund *Refund `json:"refund,omitempty"`
}

// PaymentRequest asks the user to pay.
type PaymentRequest struct {
	Amount      int64  `json:"amount"` // fen
	Description string `json:"description"`
	Key         string `json:"key"`             // the app's idempotency key: the same key returns the same intent
	Payee       string `json:"payee,omitempty"` // a merchant id; empty: the app itself
}

type payments struct{}

// Payments is the payment capability (scope "payment.create", which needs
// the user's consent, and "payment.refund"). The app never moves the user's
// money itself: it creates an intent and sends the user to its ConfirmURL,
// where the platform asks the user to confirm; the outcome arrives as an
// event.
var Payments payments

// Create creates a payment intent for the request's user.
func (payments) Create(r PaymentRequest) (Intent, error) {
	var in Intent
	err := paymentCall("payment_create", hostPaymentCreate, r, &in)
	return in, err
}

// Get reads one of the app's intents.
func (payments) Get(id string) (Intent, error) {
	var in Intent
	err := paymentCall("payment_get", hostPaymentGet, map[string]string{"id": id}, &in)
	return in, err
}

// Refund gives amount fen of a paid intent back; key makes it idempotent.
func (payments) Refund(intentID, key string, amount int64) (Refund, error) {
	var r Refund
	err := paymentCall("payment_refund", hostPaymentRefund,
		struct {
			IntentID string `json:"intent_id"`
			Key      string `json:"key"`
			Amount   int64  `json:"amount"`
		}{intentID, key, amount}, &r)
	return r, err
}

// PaymentEventOf decodes a payment event's payload.
func PaymentEventOf(ev *Event) (PaymentEvent, error) {
	var pe PaymentEvent
	err := json.Unmarshal(ev.Payload, &pe)
	return pe, err
}

func paymentCall(op string, fn func(req, out []byte) int32, req, out any) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	res, err := fetch(op, fn(b, scratch))
	if err != nil {
		return err
	}
	return json.Unmarshal(res, out)
}
