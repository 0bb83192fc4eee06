package cardpay_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/cardpay/request"
	"github.com/jifu-open/jifu/sdk/cardreader"
)

// postRefund sends a refund or void through the HTTP endpoint.
func (e *env) postRefund(t *testing.T, path string, req *request.Refund) (int, cardpay.RefundHTTPResult) {
	t.Helper()
	resp, err := http.Post(e.srv.URL+path, "application/json", bytes.NewReader(req.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out cardpay.RefundHTTPResult
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("body %s: %v", b, err)
	}
	return resp.StatusCode, out
}

// Refunds and voids through POST /refund and POST /void to the simulator.
func TestRefundAndVoidHTTP(t *testing.T) {
	e := setup(t)
	r := e.merchant(t, cardpay.TerminalMPOS, 1)[0]
	paid := map[string]string{} // order → RRN
	for _, o := range []struct {
		order  string
		amount int64
	}{{"h-partial", 10000}, {"h-full", 3000}, {"h-void", 2000}, {"h-void-partial", 2000}} {
		st, res := e.post(t, build(t, r, pay(o.order, o.amount)))
		if st != 200 || res.Status != cardpay.StatusApproved {
			t.Fatalf("%s: %d %+v", o.order, st, res)
		}
		paid[o.order] = res.RRN
	}
	acquirerMessages := func(order string) int {
		return count(t, `SELECT count(*) FROM acqsim_journal WHERE orig_rrn = $1 AND kind IN ('refund', 'void')`, paid[order])
	}
	refund := func(order, id string, amount int64) *request.Refund {
		t.Helper()
		req, err := r.Refund(order, id, amount)
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	refused := func(t *testing.T, path string, req *request.Refund, status int, code, reason string) {
		t.Helper()
		before := count(t, `SELECT count(*) FROM card_refunds`)
		st, res := e.postRefund(t, path, req)
		if st != status || res.Error == nil || res.Error.Code != code || res.Error.Reason != reason {
			t.Fatalf("%d %+v %+v", st, res, res.Error)
		}
		if count(t, `SELECT count(*) FROM card_refunds`) != before {
			t.Fatal("a refused request stored a refund")
		}
	}

	t.Run("partial refund, replayed, then the rest", func(t *testing.T) {
		req := refund("h-partial", "hr-1", 4000)
		st, res := e.postRefund(t, "/refund", req)
		if st != 200 || res.Status != cardpay.StatusApproved || res.Kind != cardpay.KindRefund || res.Amount != 4000 || len(res.RRN) != 12 {
			t.Fatalf("%d %+v", st, res)
		}
		// The same refund_id again (a retry with a fresh timestamp and
		// sign): the first result, no second acquirer message.
		time.Sleep(time.Second) // a later timestamp: another sign, the same refund
		again := refund("h-partial", "hr-1", 4000)
		if again.Sign == req.Sign {
			t.Fatal("the retry is the same request")
		}
		st2, res2 := e.postRefund(t, "/refund", again)
		if st2 != 200 || !res2.Replayed || res2.RRN != res.RRN || res2.Status != cardpay.StatusApproved {
			t.Fatalf("replay %d %+v", st2, res2)
		}
		if n := acquirerMessages("h-partial"); n != 1 {
			t.Fatalf("%d acquirer messages for one refund", n)
		}
		refused(t, "/refund", refund("h-partial", "hr-2", 6001), http.StatusBadRequest, jifu.CodeInvalid, cardpay.ReasonExceeds)
		refused(t, "/refund", refund("h-partial", "hr-1", 100), http.StatusConflict, jifu.CodeConflict, cardpay.ReasonIDReused)
		refused(t, "/void", refund("h-partial", "hv-1", 10000), http.StatusBadRequest, jifu.CodeInvalid, cardpay.ReasonExceeds)
		if st, res := e.postRefund(t, "/refund", refund("h-partial", "hr-3", 6000)); st != 200 || res.Status != cardpay.StatusApproved {
			t.Fatalf("the rest: %d %+v", st, res)
		}
		refused(t, "/refund", refund("h-partial", "hr-4", 1), http.StatusBadRequest, jifu.CodeInvalid, cardpay.ReasonExceeds)
		if count(t, `SELECT count(*) FROM acqsim_journal WHERE orig_rrn = $1 AND kind = 'refund' AND status = 'approved'`, paid["h-partial"]) != 2 {
			t.Fatal("the acquirer does not hold the two refunds")
		}
	})
	t.Run("full refund the same day is a refund when asked for one", func(t *testing.T) {
		st, res := e.postRefund(t, "/refund", refund("h-full", "hf-1", 3000))
		if st != 200 || res.Status != cardpay.StatusApproved || res.Kind != cardpay.KindRefund {
			t.Fatalf("%d %+v", st, res)
		}
		if count(t, `SELECT count(*) FROM card_payments WHERE order_id = 'h-full' AND status = 'approved'`) != 1 {
			t.Fatal("a refunded payment changed status")
		}
	})
	t.Run("void, then refund refused", func(t *testing.T) {
		st, res := e.postRefund(t, "/void", refund("h-void", "hv-2", 2000))
		if st != 200 || res.Status != cardpay.StatusApproved || res.Kind != cardpay.KindVoid {
			t.Fatalf("%d %+v", st, res)
		}
		if count(t, `SELECT count(*) FROM acqsim_journal WHERE orig_rrn = $1 AND kind = 'void' AND mti = '0200'`, paid["h-void"]) != 1 ||
			count(t, `SELECT count(*) FROM card_payments WHERE order_id = 'h-void' AND status = 'voided'`) != 1 {
			t.Fatal("void not recorded on both sides")
		}
		refused(t, "/refund", refund("h-void", "hv-3", 1), http.StatusConflict, jifu.CodeConflict, cardpay.ReasonVoided)
		refused(t, "/void", refund("h-void", "hv-4", 2000), http.StatusConflict, jifu.CodeConflict, cardpay.ReasonVoided)
		// The void's id is taken for this merchant: a refund under it is refused.
		refused(t, "/refund", refund("h-void", "hv-2", 2000), http.StatusConflict, jifu.CodeConflict, cardpay.ReasonIDReused)
	})
	t.Run("void refusals", func(t *testing.T) {
		refused(t, "/void", refund("h-void-partial", "hvp-1", 500), http.StatusConflict, jifu.CodeConflict, cardpay.ReasonVoidPartial)
		if st, res := e.postRefund(t, "/refund", refund("h-void-partial", "hvp-2", 500)); st != 200 || res.Status != cardpay.StatusApproved {
			t.Fatalf("%d %+v", st, res)
		}
		refused(t, "/void", refund("h-void-partial", "hvp-3", 1500), http.StatusConflict, jifu.CodeConflict, cardpay.ReasonVoidPartial)
		refused(t, "/void", refund("nope", "hvp-4", 1500), http.StatusNotFound, jifu.CodeNotFound, cardpay.ReasonNoPayment)
	})
	t.Run("bad sign, another secret, malformed", func(t *testing.T) {
		req := refund("h-void-partial", "hb-1", 100)
		req.AmountText = "1000" // changed after signing
		refused(t, "/refund", req, http.StatusForbidden, jifu.CodeDenied, "")
		other, _ := cardreader.BuildRefund(req.OrgID, req.MerchantID, "pay-secret-x", "h-void-partial", "hb-2", 100, time.Now())
		refused(t, "/refund", other, http.StatusForbidden, jifu.CodeDenied, "")
		resp, err := http.Post(e.srv.URL+"/refund", "application/json", bytes.NewReader([]byte(`{"amount":1}`)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("malformed: %d", resp.StatusCode)
		}
	})
}
