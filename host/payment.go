package host

import (
	"context"
	"encoding/json"

	"github.com/tetratelabs/wazero/api"

	"github.com/jifu-open/jifu/host/abi"
	"github.com/jifu-open/jifu/host/payment"
)

// Payments is the service behind the payment capability (package
// host/payment's Service). The app is the invocation's (its namespace), the
// user the invocation's user: a guest names neither.
type Payments interface {
	Create(ctx context.Context, r payment.CreateRequest) (payment.Intent, error)
	Get(ctx context.Context, app, id string) (payment.Intent, error)
	Refund(ctx context.Context, app string, r payment.RefundRequest) (payment.Refund, error)
}

// Host function names of the payment capability (namespace abi.Module).
const (
	FnPaymentCreate = "payment_create" // (req_ptr, req_len, out_ptr, out_cap) -> i32
	FnPaymentGet    = "payment_get"    // (req_ptr, req_len, out_ptr, out_cap) -> i32
	FnPaymentRefund = "payment_refund" // (req_ptr, req_len, out_ptr, out_cap) -> i32
)

// Payment scopes.
var (
	ScopePaymentCreate = Scope{Name: "payment.create", NeedsConsent: true,
		Description: "Ask you to pay: the platform shows you each payment to confirm; the app never touches your money"}
	ScopePaymentRefund = Scope{Name: "payment.refund",
		Description: "Give back money you paid to this app"}
)

// paymentCall is the shape every payment function shares: a JSON request
// in guest memory, a JSON result through the variable-length convention.
func paymentCall(ctx context.Context, c *call, do func(ctx context.Context, p Payments, app, user string, req []byte) (any, error)) int64 {
	rp, rn, out, capacity := c.u32(0), c.u32(1), c.u32(2), c.u32(3)
	if rn > payment.MaxRequestBytes {
		c.checkRange(rp, rn)
		c.checkRange(out, capacity)
		return abi.ErrTooLarge
	}
	req := c.read(rp, rn)
	c.checkRange(out, capacity)
	p := c.inv.app.host.cfg.Payments
	if p == nil {
		return abi.ErrUnavailable
	}
	v, err := do(ctx, p, c.inv.app.namespace, c.inv.user, req)
	if err != nil {
		return errorResult(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return abi.ErrInternal
	}
	return c.writeResult(out, capacity, b)
}

// fnPaymentCreate creates a payment intent for the invocation's user.
// Scope: payment.create (needs the user's consent; no user: denied).
//
//	payment_create(req_ptr i32, req_len i32, out_ptr i32, out_cap i32) -> i32
//
// The request is JSON {"amount": fen, "description": "...", "key": "...",
// "payee": ""} (payee: a merchant id, empty for the app itself; key: the
// app's idempotency key). The result is the intent as JSON (payment.IntentView:
// id, state "created", confirm_url, ...); its length is returned (see
// result_take). The user confirms at confirm_url, on the host's page; the
// outcome arrives as an on_event of type payment.succeeded or
// payment.failed (payment.expired when never confirmed). Errors: invalid
// (malformed JSON, amount outside 1..10^10 fen, empty description or key),
// too_large (request over 4 KiB), conflict (the key was used for another
// payment), not_found (unknown payee), denied, unavailable.
var fnPaymentCreate = &hostFunc{
	name: FnPaymentCreate, capability: "payment", scope: ScopePaymentCreate.Name,
	params:     []api.ValueType{i32, i32, i32, i32},
	paramNames: []string{"req_ptr", "req_len", "out_ptr", "out_cap"}, result: i32,
	call: func(ctx context.Context, c *call) int64 {
		return paymentCall(ctx, c, func(ctx context.Context, p Payments, app, user string, req []byte) (any, error) {
			r, err := payment.DecodeCreate(req, app, user)
			if err != nil {
				return nil, err
			}
			in, err := p.Create(ctx, r)
			return in.View(), err
		})
	},
}

// fnPaymentGet reads one of the app's intents. Scope: payment.create.
//
//	payment_get(req_ptr i32, req_len i32, out_ptr i32, out_cap i32) -> i32
//
// The request is JSON {"id": "pi_..."}; the result the intent as JSON
// (payment.IntentView), its length returned. Errors: not_found (no such
// intent of this app), invalid, too_large.
var fnPaymentGet = &hostFunc{
	name: FnPaymentGet, capability: "payment", scope: ScopePaymentCreate.Name,
	params:     []api.ValueType{i32, i32, i32, i32},
	paramNames: []string{"req_ptr", "req_len", "out_ptr", "out_cap"}, result: i32,
	call: func(ctx context.Context, c *call) int64 {
		return paymentCall(ctx, c, func(ctx context.Context, p Payments, app, _ string, req []byte) (any, error) {
			id, err := payment.DecodeGet(req)
			if err != nil {
				return nil, err
			}
			in, err := p.Get(ctx, app, id)
			return in.View(), err
		})
	},
}

// fnPaymentRefund refunds all or part of one of the app's paid intents.
// Scope: payment.refund (no user needed: the app gives money back).
//
//	payment_refund(req_ptr i32, req_len i32, out_ptr i32, out_cap i32) -> i32
//
// The request is JSON {"intent_id": "pi_...", "key": "...", "amount": fen};
// the result the refund as JSON (payment.RefundView: state succeeded,
// partial or failed, refunded), its length returned. The same key returns
// the same refund. Errors: conflict (over what remains refundable, not
// paid, key used for another refund), not_found, invalid, too_large.
var fnPaymentRefund = &hostFunc{
	name: FnPaymentRefund, capability: "payment", scope: ScopePaymentRefund.Name,
	params:     []api.ValueType{i32, i32, i32, i32},
	paramNames: []string{"req_ptr", "req_len", "out_ptr", "out_cap"}, result: i32,
	call: func(ctx context.Context, c *call) int64 {
		return paymentCall(ctx, c, func(ctx context.Context, p Payments, app, _ string, req []byte) (any, error) {
			r, err := payment.DecodeRefund(req)
			if err != nil {
				return nil, err
			}
			ref, err := p.Refund(ctx, app, r)
			return ref.View(), err
		})
	},
}
