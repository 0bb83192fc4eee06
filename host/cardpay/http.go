package cardpay

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay/request"
)

// HTTPResult is the JSON answer of the payment endpoint.
type HTTPResult struct {
	OrderID      string `json:"order_id"`
	Status       string `json:"status"`
	Rule         string `json:"rule,omitempty"`
	ResponseCode string `json:"response_code,omitempty"`
	AuthCode     string `json:"auth_code,omitempty"`
	RRN          string `json:"rrn,omitempty"`
	PAN          string `json:"pan,omitempty"` // masked
	Params       string `json:"params,omitempty"`
	Error        *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// Handler serves the reader-facing endpoints:
//
//	POST /pay                                  the request body of package request
//	POST /refund                               request.Refund: a refund (0220) of part or all of what remains
//	POST /void                                 request.Refund: a void (0200, 60.1 23) the same day, in full, unsettled
//	GET  /slip?org_id=&merchant_id=&order_id=  the sale slip (签购单)
//
// status maps an error code to its HTTP status: the web layer's one mapping
// (web/respond.Status), which the card core does not keep a copy of.
func (s *Service) Handler(status func(code string) int) http.Handler {
	writeErr := func(w http.ResponseWriter, _ *http.Request, err error) {
		var body struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		body.Error.Code, body.Error.Message = jifu.ErrorCode(err), jifu.ErrorMessage(err)
		writeJSON(w, status(body.Error.Code), body)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /pay", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, request.MaxBody+1))
		if err != nil {
			writeErr(w, r, jifu.Errorf(jifu.CodeInvalid, "cardpay: cannot read the body"))
			return
		}
		req, err := request.Decode(body)
		if err != nil {
			writeErr(w, r, err)
			return
		}
		res, err := s.Authorize(r.Context(), req)
		if err != nil && res.PaymentID == 0 {
			writeErr(w, r, err)
			return
		}
		out := HTTPResult{OrderID: res.OrderID, Status: res.Status, Rule: res.Rule, ResponseCode: res.ResponseCode,
			AuthCode: res.AuthCode, RRN: res.RRN, PAN: res.PANMasked, Params: res.Params}
		st := http.StatusOK
		if err != nil {
			out.Error = &struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			}{jifu.ErrorCode(err), jifu.ErrorMessage(err)}
			st = status(jifu.ErrorCode(err))
		}
		writeJSON(w, st, out)
	})
	mux.HandleFunc("POST /refund", s.refundHandler(KindRefund, status))
	mux.HandleFunc("POST /void", s.refundHandler(KindVoid, status))
	mux.HandleFunc("GET /slip", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		sl, err := s.Slip(r.Context(), q.Get("org_id"), q.Get("merchant_id"), q.Get("order_id"))
		if err != nil {
			writeErr(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, sl)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, st int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(st)
	_ = json.NewEncoder(w).Encode(v)
}
