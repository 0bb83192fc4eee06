package host

import (
	"context"
	"encoding/json"

	"github.com/tetratelabs/wazero/api"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/abi"
	"github.com/jifu-open/jifu/host/escrow"
)

// EscrowService runs the escrow capability's requests (package escrow's
// Service). The host supplies the actor: the invocation's app and user.
type EscrowService interface {
	Call(ctx context.Context, a escrow.Actor, op string, body []byte) (escrow.Response, error)
}

// scopeEscrow needs no per-call consent check by the host's wrapper,
// because batch ticks with no user must reach it ("unattended"); the
// function itself checks consent when the invocation has a user, and the
// service acts for a user only when that user is the invocation's user or
// under the user's standing authorization.
var scopeEscrow = Scope{
	Name: "escrow",
	Description: "Open custody accounts, freeze and move money of lending over escrow (bids, releases, repayments, " +
		"compensation, top-ups, withdrawals), for a user only with that user's confirmation or standing authorization",
}

// Limits of escrow_call.
const (
	maxEscrowOpBytes = 32
	maxEscrowRequest = escrow.MaxRequestBytes
)

// fnEscrowCall runs one escrow operation for the invocation's app (its
// namespace: a sandbox never touches production custody) and user. Scope:
// escrow.
//
//	escrow_call(op_ptr i32, op_len i32, req_ptr i32, req_len i32, out_ptr i32, out_cap i32) -> i32
//
// op is the operation's name (open_account, bid, transfer, ...; docs/ABI.md
// lists them), the request its JSON body. The result is the JSON response
// (escrow.Response): ErrCode "ok" or the stable refusal reason
// (insufficient_funds, oversubscribed, idempotency_conflict, ...) with
// ErrMsg; the call returns its length (see result_take when it exceeds
// out_cap). Negative results: abi.ErrInvalid for an op of 0 or over 32
// bytes, abi.ErrTooLarge for a request over 64 KiB, abi.ErrDenied when the
// invocation's user has not consented to the scope, abi.ErrUnavailable or
// abi.ErrInternal when the service failed (retry with the same MerBillNo).
var fnEscrowCall = &hostFunc{
	name: abi.FnEscrowCall, capability: "escrow", scope: "escrow",
	params:     []api.ValueType{i32, i32, i32, i32, i32, i32},
	paramNames: []string{"op_ptr", "op_len", "req_ptr", "req_len", "out_ptr", "out_cap"}, result: i32,
	call: func(ctx context.Context, c *call) int64 {
		opPtr, opLen, reqPtr, reqLen, out, capacity := c.u32(0), c.u32(1), c.u32(2), c.u32(3), c.u32(4), c.u32(5)
		c.checkRange(opPtr, opLen)
		c.checkRange(reqPtr, reqLen)
		c.checkRange(out, capacity)
		if opLen == 0 || opLen > maxEscrowOpBytes {
			return abi.ErrInvalid
		}
		if reqLen > maxEscrowRequest {
			return abi.ErrTooLarge
		}
		op, body := string(c.read(opPtr, opLen)), c.read(reqPtr, reqLen)
		h := c.inv.app.host
		if h.escrow == nil {
			return abi.ErrUnavailable
		}
		if c.inv.user != "" {
			if res := h.checkConsent(ctx, c.inv, scopeEscrow.Name); res != 0 {
				return res
			}
		}
		resp, err := h.escrow.Call(ctx, escrow.Actor{App: c.inv.app.namespace, User: c.inv.user}, op, body)
		if err != nil {
			reason := escrow.ReasonOf(err)
			if reason == "" {
				return errorResult(err)
			}
			resp = escrow.Response{ErrCode: string(reason), ErrMsg: jifu.ErrorMessage(err), Op: op}
		}
		b, err := json.Marshal(resp)
		if err != nil {
			return abi.ErrInternal
		}
		return c.writeResult(out, capacity, b)
	},
}
