package payment

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"time"

	"github.com/jifu-open/jifu"
)

// The capability's wire format: apps send JSON objects to payment_create,
// payment_get and payment_refund and receive JSON views back (docs/ABI.md).
// Decoders are strict: unknown fields, trailing data, fractional or
// out-of-range amounts and oversized buffers are CodeInvalid.

// MaxRequestBytes bounds a capability request.
const MaxRequestBytes = 4 << 10

// CreateArgs is payment_create's request.
type CreateArgs struct {
	Amount      int64  `json:"amount"` // fen
	Payee       string `json:"payee,omitempty"`
	Description string `json:"description"`
	Key         string `json:"key"`
}

// GetArgs is payment_get's request.
type GetArgs struct {
	ID string `json:"id"`
}

// RefundArgs is payment_refund's request.
type RefundArgs struct {
	IntentID string `json:"intent_id"`
	Key      string `json:"key"`
	Amount   int64  `json:"amount"` // fen
}

func decodeStrict(b []byte, v any) error {
	if len(b) > MaxRequestBytes {
		return jifu.Errorf(jifu.CodeTooLarge, "payment: request over %d bytes", MaxRequestBytes)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return jifu.Errorf(jifu.CodeInvalid, "payment: request is not the expected JSON object: %v", err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return jifu.Errorf(jifu.CodeInvalid, "payment: trailing data after the request")
	}
	return nil
}

// DecodeCreate decodes and validates payment_create's request for app and
// user (which come from the invocation, never from the request).
func DecodeCreate(b []byte, app, user string) (CreateRequest, error) {
	var a CreateArgs
	if err := decodeStrict(b, &a); err != nil {
		return CreateRequest{}, err
	}
	r := CreateRequest{App: app, User: user, Payee: a.Payee, Amount: a.Amount, Description: a.Description, Key: a.Key}
	return r, r.Validate()
}

// DecodeGet decodes payment_get's request.
func DecodeGet(b []byte) (string, error) {
	var a GetArgs
	if err := decodeStrict(b, &a); err != nil {
		return "", err
	}
	if !validText(a.ID, 64) {
		return "", jifu.Errorf(jifu.CodeInvalid, "payment: id is required")
	}
	return a.ID, nil
}

// DecodeRefund decodes and validates payment_refund's request.
func DecodeRefund(b []byte) (RefundRequest, error) {
	var a RefundArgs
	if err := decodeStrict(b, &a); err != nil {
		return RefundRequest{}, err
	}
	r := RefundRequest{IntentID: a.IntentID, Key: a.Key, Amount: a.Amount}
	return r, r.Validate()
}

// IntentView is an intent as apps see it (payment_create, payment_get and
// event payloads).
type IntentView struct {
	ID          string     `json:"id"`
	Key         string     `json:"key"`
	User        string     `json:"user"`
	Payee       string     `json:"payee,omitempty"`
	Amount      int64      `json:"amount"`
	Description string     `json:"description"`
	State       State      `json:"state"`
	Method      string     `json:"method,omitempty"`
	Refunded    int64      `json:"refunded"`
	Failure     string     `json:"failure,omitempty"`
	ConfirmURL  string     `json:"confirm_url"`
	Parts       []PartView `json:"parts,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   time.Time  `json:"expires_at"`
	Replayed    bool       `json:"replayed,omitempty"`
}

// PartView is a part as apps see it.
type PartView struct {
	Method   string `json:"method"`
	Amount   int64  `json:"amount"`
	State    string `json:"state"`
	Refunded int64  `json:"refunded"`
}

// RefundView is a refund as apps see it.
type RefundView struct {
	ID       string `json:"id"`
	IntentID string `json:"intent_id"`
	Key      string `json:"key"`
	Amount   int64  `json:"amount"`
	Refunded int64  `json:"refunded"`
	State    string `json:"state"`
	Failure  string `json:"failure,omitempty"`
	Replayed bool   `json:"replayed,omitempty"`
}

// View returns in as apps see it.
func (in Intent) View() IntentView {
	v := IntentView{ID: in.ID, Key: in.Key, User: in.User, Payee: in.Payee, Amount: in.Amount, Description: in.Description,
		State: in.State, Method: in.Method, Refunded: in.Refunded, Failure: in.Failure, ConfirmURL: ConfirmPath(in.ID),
		CreatedAt: in.CreatedAt, ExpiresAt: in.ExpiresAt, Replayed: in.Replayed}
	for _, p := range in.Parts {
		v.Parts = append(v.Parts, PartView{Method: p.Method, Amount: p.Amount, State: p.State, Refunded: p.Refunded})
	}
	return v
}

// View returns r as apps see it.
func (r Refund) View() RefundView {
	return RefundView{ID: r.ID, IntentID: r.IntentID, Key: r.Key, Amount: r.Amount, Refunded: r.Refunded,
		State: r.State, Failure: r.Failure, Replayed: r.Replayed}
}

// EventBody is an event's JSON payload.
type EventBody struct {
	Type   string      `json:"type"`
	Intent IntentView  `json:"intent"`
	Refund *RefundView `json:"refund,omitempty"`
}

// EventPayload encodes an event's payload.
func EventPayload(typ string, in Intent, r *Refund) ([]byte, error) {
	body := EventBody{Type: typ, Intent: in.View()}
	body.Intent.Replayed = false
	if r != nil {
		v := r.View()
		v.Replayed = false
		body.Refund = &v
	}
	return json.Marshal(body)
}
