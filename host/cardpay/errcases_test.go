package cardpay_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/sdk/cardreader"
)

var panSeq atomic.Int64

// freshPAN returns a Luhn-valid PAN no other test uses, so that its card's
// clean days and class depend on this test only.
func freshPAN(t testing.TB) string {
	t.Helper()
	body := fmt.Sprintf("621700%012d", time.Now().UnixNano()%1e9*1000+panSeq.Add(1))
	sum := 0
	for i := len(body) - 1; i >= 0; i-- {
		d := int(body[i] - '0')
		if (len(body)-1-i)%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return body + fmt.Sprint((10-sum%10)%10)
}

// payCard is pay() with another card; chip adds chip data (an IC card).
func payCard(order string, amount int64, cardNo string, chip bool) cardreader.Payment {
	p := pay(order, amount)
	p.Track2 = cardNo + "=30121011234567890"
	if chip {
		p.Track2 = cardNo + "=30122011234567890"
		p.ICData = []byte{0x9F, 0x26, 0x02, 0x01, 0x02}
	}
	return p
}

func lastError(t testing.TB, token string) *time.Time {
	t.Helper()
	var at *time.Time
	if err := dbtest.Pool(t).QueryRow(context.Background(), `SELECT last_error_at FROM card_cards WHERE card_token = $1`, token).Scan(&at); err != nil {
		t.Fatal(err)
	}
	return at
}

func TestErrorCases(t *testing.T) {
	e := setup(t)
	desk := e.svc.Desk()
	r := e.merchant(t, cardpay.TerminalMPOS, 1)[0]
	card := freshPAN(t)
	req := build(t, r, payCard("err-1", 20000, card, false))
	res, err := e.svc.Authorize(e.ctx, req)
	if err != nil || !res.Approved() {
		t.Fatal(res, err)
	}
	cases := func() int { return count(t, `SELECT count(*) FROM card_errors`) }

	t.Run("bad input records nothing", func(t *testing.T) {
		before := cases()
		for _, c := range []struct {
			name string
			in   cardpay.NewError
			code string
		}{
			{"unknown kind", cardpay.NewError{Kind: "oops", RRN: res.RRN, Actor: "risk:li"}, jifu.CodeInvalid},
			{"no actor", cardpay.NewError{Kind: cardpay.ErrorChargeback, RRN: res.RRN}, jifu.CodeInvalid},
			{"chargeback without payment", cardpay.NewError{Kind: cardpay.ErrorChargeback, Actor: "risk:li"}, jifu.CodeInvalid},
			{"negative amount", cardpay.NewError{Kind: cardpay.ErrorDispute, RRN: res.RRN, Amount: -1, Actor: "risk:li"}, jifu.CodeInvalid},
			{"order without merchant", cardpay.NewError{Kind: cardpay.ErrorDispute, OrderID: "err-1", Actor: "risk:li"}, jifu.CodeInvalid},
			{"in the future", cardpay.NewError{Kind: cardpay.ErrorDispute, RRN: res.RRN, Actor: "risk:li", At: time.Now().Add(2 * time.Hour)}, jifu.CodeInvalid},
			{"unknown merchant", cardpay.NewError{Kind: cardpay.ErrorLong, OrgID: req.OrgID, MerchantID: "nobody", Actor: "risk:li"}, jifu.CodeNotFound},
			{"note too long", cardpay.NewError{Kind: cardpay.ErrorDispute, RRN: res.RRN, Actor: "risk:li", Note: strings.Repeat("x", 2001)}, jifu.CodeInvalid},
			{"unknown RRN", cardpay.NewError{Kind: cardpay.ErrorChargeback, RRN: "000000000000", Actor: "risk:li"}, jifu.CodeNotFound},
			{"unknown payment id", cardpay.NewError{Kind: cardpay.ErrorRetrievalRequest, PaymentID: 1 << 40, Actor: "risk:li"}, jifu.CodeNotFound},
			{"unknown order", cardpay.NewError{Kind: cardpay.ErrorDispute, OrgID: req.OrgID, MerchantID: req.MerchantID, OrderID: "nope", Actor: "risk:li"}, jifu.CodeNotFound},
		} {
			t.Run(c.name, func(t *testing.T) {
				if _, err := desk.OpenError(e.ctx, c.in); jifu.ErrorCode(err) != c.code {
					t.Fatalf("err = %v, want %s", err, c.code)
				}
			})
		}
		if cases() != before {
			t.Fatal("refused input recorded a case")
		}
	})

	var cb cardpay.ErrorCase
	t.Run("open a chargeback by RRN", func(t *testing.T) {
		at := time.Now().Add(-48 * time.Hour).Truncate(time.Microsecond)
		cb, err = desk.OpenError(e.ctx, cardpay.NewError{Kind: cardpay.ErrorChargeback, Ref: "CB-" + res.RRN, RRN: res.RRN, At: at,
			Actor: "risk:li", Note: "issuer chargeback 4837"})
		if err != nil {
			t.Fatal(err)
		}
		if cb.Status != cardpay.ErrorOpen || cb.PaymentID != res.PaymentID || cb.OrgID != req.OrgID || cb.MerchantID != req.MerchantID ||
			cb.OrderID != "err-1" || cb.PANMasked != res.PANMasked || cb.CardToken == "" || cb.TerminalKSN == "" || cb.AcquirerTID == "" ||
			cb.Amount != 20000 || !cb.OccurredAt.Equal(at) || cb.OpenedBy != "risk:li" || cb.Replayed || !cb.Counts() {
			t.Fatalf("%+v", cb)
		}
		if cb.Day.Format(time.DateOnly) != time.Now().In(time.FixedZone("CST", 8*3600)).Format(time.DateOnly) {
			t.Fatalf("day %v: want the payment's business day", cb.Day)
		}
		if le := lastError(t, cb.CardToken); le == nil || !le.Equal(at) {
			t.Fatalf("card last_error_at %v, want %v", le, at)
		}
		// The same kind and case number again: the first case.
		again, err := desk.OpenError(e.ctx, cardpay.NewError{Kind: cardpay.ErrorChargeback, Ref: "CB-" + res.RRN, RRN: res.RRN, Actor: "risk:wang"})
		if err != nil || !again.Replayed || again.ID != cb.ID || again.OpenedBy != "risk:li" {
			t.Fatalf("again %+v %v", again, err)
		}
		if count(t, `SELECT count(*) FROM card_errors WHERE ref = $1`, "CB-"+res.RRN) != 1 {
			t.Fatal("duplicated")
		}
	})

	t.Run("resolve", func(t *testing.T) {
		for _, c := range []struct {
			name string
			id   int64
			r    cardpay.Resolution
			code string
		}{
			{"bad status", cb.ID, cardpay.Resolution{Status: "open", Actor: "risk:li", Note: "x"}, jifu.CodeInvalid},
			{"no note", cb.ID, cardpay.Resolution{Status: cardpay.ErrorResolved, Actor: "risk:li"}, jifu.CodeInvalid},
			{"no actor", cb.ID, cardpay.Resolution{Status: cardpay.ErrorResolved, Note: "x"}, jifu.CodeInvalid},
			{"unknown", 1 << 40, cardpay.Resolution{Status: cardpay.ErrorResolved, Actor: "risk:li", Note: "x"}, jifu.CodeNotFound},
		} {
			t.Run(c.name, func(t *testing.T) {
				if _, err := desk.ResolveError(e.ctx, c.id, c.r); jifu.ErrorCode(err) != c.code {
					t.Fatalf("err = %v, want %s", err, c.code)
				}
			})
		}
		if got, _, _ := desk.GetError(e.ctx, cb.ID); got.Status != cardpay.ErrorOpen {
			t.Fatal("a refused resolution changed the case")
		}
		done, err := desk.ResolveError(e.ctx, cb.ID, cardpay.Resolution{Status: cardpay.ErrorResolved, NotAtFault: true,
			Actor: "risk:wang", Note: "slip provided; chargeback withdrawn"})
		if err != nil || done.Status != cardpay.ErrorResolved || !done.NotAtFault || done.ResolvedBy != "risk:wang" || done.ResolvedAt.IsZero() ||
			done.Resolution != "slip provided; chargeback withdrawn" || done.Counts() {
			t.Fatalf("%+v %v", done, err)
		}
		if le := lastError(t, cb.CardToken); le != nil {
			t.Fatalf("a case not at fault still counts: last_error_at %v", le)
		}
		if _, err := desk.ResolveError(e.ctx, cb.ID, cardpay.Resolution{Status: cardpay.ErrorWrittenOff, Actor: "risk:li", Note: "x"}); jifu.ErrorCode(err) != jifu.CodeConflict {
			t.Fatalf("closing twice: %v", err)
		}
		_, evs, err := desk.GetError(e.ctx, cb.ID)
		if err != nil || len(evs) != 2 || evs[0].Action != "opened" || evs[0].Actor != "risk:li" || evs[1].Action != "resolved" ||
			evs[1].Actor != "risk:wang" || !strings.Contains(evs[1].Note, "not at fault") {
			t.Fatalf("trail %+v %v", evs, err)
		}
		if _, _, err := desk.GetError(e.ctx, 1<<40); jifu.ErrorCode(err) != jifu.CodeNotFound {
			t.Fatal(err)
		}
	})

	t.Run("concurrent opens of one case", func(t *testing.T) {
		ids := make(chan int64, 8)
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := desk.OpenError(e.ctx, cardpay.NewError{Kind: cardpay.ErrorRetrievalRequest, Ref: "RR-" + res.RRN, RRN: res.RRN, Actor: "risk:li"})
				if err != nil {
					t.Error(err)
				}
				ids <- c.ID
			}()
		}
		wg.Wait()
		close(ids)
		first := <-ids
		for id := range ids {
			if id != first {
				t.Fatalf("ids %d and %d for one case", first, id)
			}
		}
		if count(t, `SELECT count(*) FROM card_errors WHERE ref = $1`, "RR-"+res.RRN) != 1 ||
			count(t, `SELECT count(*) FROM card_error_events v JOIN card_errors c ON c.id = v.error_id WHERE c.ref = $1`, "RR-"+res.RRN) != 1 {
			t.Fatal("not exactly one case and one audit event")
		}
	})

	t.Run("written off at fault counts", func(t *testing.T) {
		d, err := desk.OpenError(e.ctx, cardpay.NewError{Kind: cardpay.ErrorDispute, OrgID: req.OrgID, MerchantID: req.MerchantID,
			OrderID: "err-1", Amount: 5000, Actor: "risk:li"})
		if err != nil || d.Amount != 5000 {
			t.Fatal(d, err)
		}
		if _, err := desk.ResolveError(e.ctx, d.ID, cardpay.Resolution{Status: cardpay.ErrorWrittenOff, Actor: "risk:li", Note: "refunded the cardholder"}); err != nil {
			t.Fatal(err)
		}
		if le := lastError(t, d.CardToken); le == nil || !le.Equal(d.OccurredAt) {
			t.Fatalf("last_error_at %v, want %v", le, d.OccurredAt)
		}
	})

	t.Run("list", func(t *testing.T) {
		ret, err := desk.OpenError(e.ctx, cardpay.NewError{Kind: cardpay.ErrorRetrievalRequest, PaymentID: res.PaymentID, Actor: "risk:li"})
		if err != nil {
			t.Fatal(err)
		}
		today := time.Now()
		mine := cardpay.ErrorFilter{OrgID: req.OrgID, MerchantID: req.MerchantID}
		for _, c := range []struct {
			name  string
			f     func(cardpay.ErrorFilter) cardpay.ErrorFilter
			total int
			first int64
		}{
			{"merchant", func(f cardpay.ErrorFilter) cardpay.ErrorFilter { return f }, 4, ret.ID},
			{"open", func(f cardpay.ErrorFilter) cardpay.ErrorFilter { f.Status = cardpay.ErrorOpen; return f }, 2, ret.ID},
			{"resolved", func(f cardpay.ErrorFilter) cardpay.ErrorFilter { f.Status = cardpay.ErrorResolved; return f }, 1, cb.ID},
			{"kind", func(f cardpay.ErrorFilter) cardpay.ErrorFilter { f.Kind = cardpay.ErrorChargeback; return f }, 1, cb.ID},
			{"today", func(f cardpay.ErrorFilter) cardpay.ErrorFilter { f.From, f.To = today, today; return f }, 4, ret.ID},
			{"tomorrow on", func(f cardpay.ErrorFilter) cardpay.ErrorFilter { f.From = today.AddDate(0, 0, 1); return f }, 0, 0},
			{"until yesterday", func(f cardpay.ErrorFilter) cardpay.ErrorFilter { f.To = today.AddDate(0, 0, -1); return f }, 0, 0},
			{"payment", func(f cardpay.ErrorFilter) cardpay.ErrorFilter {
				f = cardpay.ErrorFilter{PaymentID: res.PaymentID}
				return f
			}, 4, ret.ID},
			{"card", func(f cardpay.ErrorFilter) cardpay.ErrorFilter { f.CardToken = cb.CardToken; return f }, 4, ret.ID},
			{"second page", func(f cardpay.ErrorFilter) cardpay.ErrorFilter { f.Limit, f.Offset = 1, 3; return f }, 4, cb.ID},
		} {
			t.Run(c.name, func(t *testing.T) {
				p, err := desk.ListErrors(e.ctx, c.f(mine))
				if err != nil || p.Total != c.total {
					t.Fatalf("%+v %v", p, err)
				}
				if c.total > 0 && (len(p.Cases) == 0 || p.Cases[0].ID != c.first) {
					t.Fatalf("first %+v, want id %d", p.Cases, c.first)
				}
			})
		}
		for name, f := range map[string]cardpay.ErrorFilter{
			"status":          {Status: "closed"},
			"kind":            {Kind: "nope"},
			"merchant no org": {MerchantID: req.MerchantID},
			"range backwards": {From: today, To: today.AddDate(0, 0, -1)},
			"limit":           {Limit: 501},
			"offset":          {Offset: -1},
		} {
			if _, err := desk.ListErrors(e.ctx, f); jifu.ErrorCode(err) != jifu.CodeInvalid {
				t.Errorf("%s: %v", name, err)
			}
		}
	})
}
