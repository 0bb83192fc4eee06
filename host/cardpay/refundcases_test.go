package cardpay_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/cardpay/acquirer"
	"github.com/jifu-open/jifu/host/cardpay/books"
	"github.com/jifu-open/jifu/host/cardpay/dukpt"
	"github.com/jifu-open/jifu/host/cardpay/request"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/ledger"
	"github.com/jifu-open/jifu/sdk/cardreader"
	"github.com/jifu-open/jifu/web/respond"
)

// merchantSecret is the pay_secret env.merchant gave the merchant mid.
func merchantSecret(t *testing.T, mid string) (uint64, string) {
	t.Helper()
	var id uint64
	if _, err := fmt.Sscanf(mid, "M%d", &id); err != nil {
		t.Fatal(err)
	}
	return id, fmt.Sprintf("pay-secret-%016d", id)
}

// A /refund or /void whose timestamp is outside the window is refused as
// /pay refuses one (the same code and HTTP status), before anything is
// stored or sent to the acquirer.
func TestRefundStaleTimestamp(t *testing.T) {
	e := setup(t)
	r := e.merchant(t, cardpay.TerminalMPOS, 1)[0]
	st, paid := e.post(t, build(t, r, pay("ts-1", 2500)))
	if st != 200 || paid.Status != cardpay.StatusApproved {
		t.Fatalf("%d %+v", st, paid)
	}
	org, mid := "ORG1", fmt.Sprintf("M%05d", e.nextID.Load())
	if count(t, `SELECT count(*) FROM card_payments WHERE org_id = $1 AND merchant_id = $2 AND order_id = 'ts-1'`, org, mid) != 1 {
		t.Fatal("not the merchant just registered")
	}
	id, secret := merchantSecret(t, mid)
	const window = 5 * time.Minute // the service's default
	for _, skew := range []time.Duration{-window - time.Minute, window + time.Minute} {
		at := time.Now().Add(skew)
		// /pay with that timestamp: the reference code and status.
		ksn, _ := dukpt.ParseKSN(fmt.Sprintf("FFFF%08X%02X000000", id, 0))
		skewed, err := cardreader.New(cardreader.Config{OrgID: org, MerchantID: mid, PaySecret: secret, IPEK: dukpt.IPEK(testBDK, ksn),
			KSN: ksn, Now: func() time.Time { return at }})
		if err != nil {
			t.Fatal(err)
		}
		payStatus, payRes := e.post(t, build(t, skewed, pay("ts-pay", 100)))
		if payRes.Error == nil || payRes.Error.Code != jifu.CodeInvalid || payStatus != http.StatusBadRequest {
			t.Fatalf("/pay at %s: %d %+v", skew, payStatus, payRes.Error)
		}
		for _, path := range []string{"/refund", "/void"} {
			t.Run(fmt.Sprintf("%s %s", path, skew), func(t *testing.T) {
				req, err := cardreader.BuildRefund(org, mid, secret, "ts-1", "ts-r"+path[1:], 2500, at)
				if err != nil {
					t.Fatal(err)
				}
				refunds := count(t, `SELECT count(*) FROM card_refunds`)
				sent := count(t, `SELECT count(*) FROM acqsim_journal WHERE orig_rrn = $1`, paid.RRN)
				st, res := e.postRefund(t, path, req)
				if st != payStatus || res.Error == nil || res.Error.Code != payRes.Error.Code || res.Error.Reason != "" || res.Status != "" {
					t.Fatalf("%d %+v %+v", st, res, res.Error)
				}
				if count(t, `SELECT count(*) FROM card_refunds`) != refunds ||
					count(t, `SELECT count(*) FROM acqsim_journal WHERE orig_rrn = $1`, paid.RRN) != sent {
					t.Fatal("a stale request was stored or sent to the acquirer")
				}
			})
		}
	}
	if count(t, `SELECT count(*) FROM card_payments WHERE order_id = 'ts-pay'`) != 0 {
		t.Fatal("a stale payment was stored")
	}
	// The same refund with a fresh timestamp goes through: the refusal
	// stored nothing under its refund_id.
	req, err := cardreader.BuildRefund(org, mid, secret, "ts-1", "ts-rvoid", 2500, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st, res := e.postRefund(t, "/void", req); st != 200 || res.Status != cardpay.StatusApproved || res.Kind != cardpay.KindVoid {
		t.Fatalf("fresh void: %d %+v", st, res)
	}
}

// Voids are for the payment's day and before its settlement: a settled
// payment is refused with void:settled, a payment of another day with
// void:not_same_day (409, nothing stored or sent); a refund still works.
// The service runs on days of its own (Options.Now) so that its
// settlement takes no other test's payments.
func TestVoidSettledOrAnotherDay(t *testing.T) {
	e := setup(t)
	var now atomic.Pointer[time.Time]
	set := func(t time.Time) { now.Store(&t) }
	clock := func() time.Time { return *now.Load() }
	day0 := time.Now().AddDate(0, 0, -150)
	set(day0)
	acq, err := acquirer.New(acquirer.Config{Addr: e.sim.Addr(), TMK: testTMK, TerminalID: "JIFU0005",
		MerchantID: "898310048990001", Timeout: 2500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer acq.Close()
	pool := dbtest.Pool(t)
	svc, err := cardpay.New(pool, e.master, acq, cardpay.Options{Now: clock, Poster: books.New(ledger.New(pool))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler(respond.Status))
	defer srv.Close()
	e.merchant(t, cardpay.TerminalMPOS, 1) // registered in the database both services share
	org, mid := "ORG1", fmt.Sprintf("M%05d", e.nextID.Load())
	id, secret := merchantSecret(t, mid)
	ksn, _ := dukpt.ParseKSN(fmt.Sprintf("FFFF%08X%02X000000", id, 0))
	r, err := cardreader.New(cardreader.Config{OrgID: org, MerchantID: mid, PaySecret: secret, IPEK: dukpt.IPEK(testBDK, ksn), KSN: ksn, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	paid := map[string]cardpay.Result{}
	payOn := func(t *testing.T, order string) {
		t.Helper()
		res, err := svc.Authorize(e.ctx, build(t, r, pay(order, 1800)))
		if err != nil || !res.Approved() {
			t.Fatalf("%s: %+v %v", order, res, err)
		}
		paid[order] = res
	}
	refused := func(t *testing.T, order, refundID, reason string) {
		t.Helper()
		req, err := r.Refund(order, refundID, 1800)
		if err != nil {
			t.Fatal(err)
		}
		refunds := count(t, `SELECT count(*) FROM card_refunds`)
		sent := count(t, `SELECT count(*) FROM acqsim_journal WHERE orig_rrn = $1`, paid[order].RRN)
		st, res := postRefundURL(t, srv.URL+"/void", req)
		if st != http.StatusConflict || res.Error == nil || res.Error.Code != jifu.CodeConflict || res.Error.Reason != reason {
			t.Fatalf("%d %+v %+v", st, res, res.Error)
		}
		if count(t, `SELECT count(*) FROM card_refunds`) != refunds ||
			count(t, `SELECT count(*) FROM acqsim_journal WHERE orig_rrn = $1`, paid[order].RRN) != sent {
			t.Fatal("a refused void was stored or sent to the acquirer")
		}
	}
	t.Run("settled", func(t *testing.T) {
		payOn(t, "vs-settled")
		// Settle day 0 in both modes: the payment is in a batch (the same day).
		for _, mode := range []string{cardpay.T0, cardpay.T1} {
			if _, err := svc.Settle(e.ctx, day0, mode); err != nil {
				t.Fatal(err)
			}
		}
		if count(t, `SELECT count(*) FROM card_payments WHERE org_id = $1 AND merchant_id = $2 AND order_id = 'vs-settled' AND settlement_id IS NOT NULL`, org, mid) != 1 {
			t.Fatal("payment not settled")
		}
		refused(t, "vs-settled", "vs-v1", cardpay.ReasonVoidSettled)
	})
	t.Run("another day", func(t *testing.T) {
		set(day0.Add(48 * time.Hour))
		payOn(t, "vs-later") // not settled
		set(day0.Add(72 * time.Hour))
		refused(t, "vs-later", "vs-v2", cardpay.ReasonVoidNotToday)
		// A refund the next day goes through.
		req, err := r.Refund("vs-later", "vs-r2", 1800)
		if err != nil {
			t.Fatal(err)
		}
		if st, res := postRefundURL(t, srv.URL+"/refund", req); st != 200 || res.Status != cardpay.StatusApproved || res.Kind != cardpay.KindRefund {
			t.Fatalf("refund: %d %+v", st, res)
		}
	})
}

// postRefundURL posts a signed refund or void request to url.
func postRefundURL(t *testing.T, url string, req *request.Refund) (int, cardpay.RefundHTTPResult) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(req.Encode()))
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
