package cardpay

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay/request"
)

// Reasons a refund or void is refused before the acquirer is asked
// (nothing is stored). Stable: merchants' servers branch on them.
const (
	ReasonNoPayment    = "refund:no_payment"        // no payment with this order_id at this merchant
	ReasonIDReused     = "refund:id_reused"         // refund_id used before for another order, amount or kind
	ReasonVoided       = "refund:voided"            // the payment was voided: nothing left
	ReasonNotApproved  = "refund:not_approved"      // the payment was declined, reversed or failed
	ReasonExceeds      = "refund:exceeds_remaining" // more than what remains of the payment
	ReasonVoidPartial  = "void:partial_amount"      // a void gives back the whole payment only
	ReasonVoidRefunded = "void:already_refunded"    // part of the payment was refunded already
	ReasonVoidSettled  = "void:settled"             // the payment is in a settlement batch
	ReasonVoidNotToday = "void:not_same_day"        // voids are for the payment's (Beijing) day only
)

// RefusalError is a refund or void refused by the card core with a stable
// Reason; it unwraps to the coded *jifu.Error.
type RefusalError struct {
	Reason string
	Err    *jifu.Error
}

func (e *RefusalError) Error() string { return e.Err.Error() }

// Unwrap returns the coded error.
func (e *RefusalError) Unwrap() error { return e.Err }

func refuse(code, reason, format string, args ...any) error {
	return &RefusalError{Reason: reason, Err: jifu.Errorf(code, format, args...)}
}

// RefusalReason is err's refusal reason, "" when it has none.
func RefusalReason(err error) string {
	var re *RefusalError
	if errors.As(err, &re) {
		return re.Reason
	}
	return ""
}

// SignedRefund runs a merchant's signed refund (kind KindRefund) or void
// (KindVoid) request: the sign under the merchant's pay_secret, the
// timestamp window, then Refund. An unknown merchant is refused as a bad
// sign (CodeDenied), as for payments.
func (s *Service) SignedRefund(ctx context.Context, req *request.Refund, kind string) (RefundResult, error) {
	m, err := s.merchant(ctx, req.OrgID, req.MerchantID)
	if err != nil {
		return RefundResult{}, err
	}
	if m == nil {
		return RefundResult{}, jifu.Errorf(jifu.CodeDenied, "cardpay: sign does not match")
	}
	if err := req.Verify(m.paySecret); err != nil {
		return RefundResult{}, err
	}
	if d := s.opt.Now().Sub(req.Time()); d > s.opt.TimestampWindow || d < -s.opt.TimestampWindow {
		return RefundResult{}, jifu.Errorf(jifu.CodeInvalid, "cardpay: timestamp is outside the %s window", s.opt.TimestampWindow)
	}
	return s.Refund(ctx, RefundRequest{OrgID: req.OrgID, MerchantID: req.MerchantID, OrderID: req.OrderID,
		RefundID: req.RefundID, Amount: req.Amount, Kind: kind})
}

// HTTPError is the error member of the card endpoints' answers.
type HTTPError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Reason  string `json:"reason,omitempty"` // a Reason* constant when the card core refused
}

// RefundHTTPResult is the JSON answer of POST /refund and POST /void.
type RefundHTTPResult struct {
	OrderID      string     `json:"order_id"`
	RefundID     string     `json:"refund_id"`
	Kind         string     `json:"kind,omitempty"`   // void or refund
	Status       string     `json:"status,omitempty"` // approved, declined, failed
	Amount       int64      `json:"amount,omitempty"` // fen
	Rule         string     `json:"rule,omitempty"`   // acquirer:<field 39> on a decline
	ResponseCode string     `json:"response_code,omitempty"`
	RRN          string     `json:"rrn,omitempty"` // the acquirer's reference of the refund or void
	Replayed     bool       `json:"replayed,omitempty"`
	Error        *HTTPError `json:"error,omitempty"`
}

// refundHandler serves POST /refund (kind KindRefund) and POST /void.
func (s *Service) refundHandler(kind string, status func(code string) int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var out RefundHTTPResult
		fail := func(err error) {
			out.Error = &HTTPError{Code: jifu.ErrorCode(err), Message: jifu.ErrorMessage(err), Reason: RefusalReason(err)}
			writeJSON(w, status(out.Error.Code), out)
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, request.MaxBody+1))
		if err != nil {
			fail(jifu.Errorf(jifu.CodeInvalid, "cardpay: cannot read the body"))
			return
		}
		req, err := request.DecodeRefund(body)
		if err != nil {
			fail(err)
			return
		}
		out.OrderID, out.RefundID = req.OrderID, req.RefundID
		res, err := s.SignedRefund(r.Context(), req, kind)
		out.Kind, out.Status, out.Amount, out.ResponseCode, out.RRN, out.Replayed = res.Kind, res.Status, res.Amount, res.ResponseCode, res.RRN, res.Replayed
		if res.Status == StatusDeclined {
			out.Rule = "acquirer:" + res.ResponseCode
		}
		if err != nil {
			fail(err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}
