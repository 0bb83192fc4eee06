package cardpay_test

import (
	"sync"
	"testing"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/cardpay/request"
)

// TestClaimRace: requests racing with one new order_id and different KSN
// counters (the claim and the risk counters are one statement): one
// payment, the others refused as a conflict or a replay, and the risk
// counters moved for that one payment only.
func TestClaimRace(t *testing.T) {
	e := setup(t)
	r := e.merchant(t, cardpay.TerminalMPOS, 1)[0]
	const n = 6
	reqs := make([]*request.Request, n)
	for i := range reqs {
		reqs[i] = build(t, r, pay("race-1", 1000+int64(i)))
	}
	results, errs := make([]cardpay.Result, n), make([]error, n)
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = e.svc.Authorize(e.ctx, reqs[i])
		}()
	}
	wg.Wait()
	var approved []int64
	for i := range reqs {
		if errs[i] == nil && results[i].Approved() {
			approved = append(approved, reqs[i].Amount)
			continue
		}
		if c := jifu.ErrorCode(errs[i]); c != jifu.CodeConflict && c != jifu.CodeDenied {
			t.Fatalf("request %d: %+v %v", i, results[i], errs[i])
		}
	}
	if len(approved) != 1 {
		t.Fatalf("%d approved", len(approved))
	}
	if n := count(t, `SELECT count(*) FROM card_payments WHERE merchant_id = $1 AND order_id = 'race-1'`, reqs[0].MerchantID); n != 1 {
		t.Fatalf("%d payments for the order", n)
	}
	used := count(t, `SELECT coalesce(sum(amount), 0)::int FROM card_counters WHERE scope = 'user' AND subject = $1`,
		reqs[0].OrgID+"/"+reqs[0].MerchantID+"/mpos")
	if int64(used) != 2*approved[0] { // day and month
		t.Fatalf("user counters hold %d, want twice %d", used, approved[0])
	}
}
