package cardpay_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/cardpay/acquirer"
	"github.com/jifu-open/jifu/host/cardpay/dukpt"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/sdk/cardreader"
)

const day = 24 * time.Hour

// user registers a merchant (a "user") created age ago at level, with
// t0 fen already paid in a past T0 batch. It returns org and merchant ID.
func (e *env) user(t testing.TB, age time.Duration, level string, t0 int64) (string, string) {
	t.Helper()
	id := e.nextID.Add(1)
	org, mid := "ORG1", fmt.Sprintf("U%05d", id)
	if err := e.svc.RegisterMerchant(e.ctx, cardpay.Merchant{OrgID: org, MerchantID: mid, PaySecret: fmt.Sprintf("pay-secret-%016d", id),
		AcquirerMID: fmt.Sprintf("8983100%08d", id), UserLevel: level}); err != nil {
		t.Fatal(err)
	}
	pool := dbtest.Pool(t)
	if _, err := pool.Exec(e.ctx, `UPDATE card_merchants SET created_at = $3 WHERE org_id = $1 AND merchant_id = $2`, org, mid, time.Now().Add(-age)); err != nil {
		t.Fatal(err)
	}
	if t0 > 0 {
		if _, err := pool.Exec(e.ctx, `INSERT INTO card_settlements (org_id, merchant_id, mode, settle_date, count, gross, fee, net, posted)
			VALUES ($1, $2, 'T0', '2026-01-05', 1, $3, 0, $3, true)`, org, mid, t0); err != nil {
			t.Fatal(err)
		}
	}
	return org, mid
}

func TestUserLevelUpgrades(t *testing.T) {
	e := setup(t)
	desk := e.svc.Desk()
	type errAt struct {
		after      time.Duration // after the user's creation
		notAtFault bool          // resolved as not at fault
		atFault    bool          // resolved, at fault
	}
	cases := []struct {
		name   string
		age    time.Duration
		level  string
		t0     int64
		errors []errAt
		want   string
	}{
		{"0.9 万 exactly, 15 days", 15*day + time.Minute, "101", 900000, nil, "102"},
		{"one fen short of 0.9 万", 30 * day, "101", 899999, nil, "101"},
		{"day 14", 15*day - time.Hour, "101", 900000, nil, "101"},
		{"an error on day 10 resets", 20 * day, "101", 900000, []errAt{{after: 10 * day}}, "101"},
		{"15 days after the error on day 10", 25*day + time.Minute, "101", 900000, []errAt{{after: 10 * day}}, "102"},
		{"the error on day 10 not at fault", 20 * day, "101", 900000, []errAt{{after: 10 * day, notAtFault: true}}, "102"},
		{"the error on day 10 resolved at fault", 20 * day, "101", 900000, []errAt{{after: 10 * day, atFault: true}}, "101"},
		{"an error before the last 15 days", 40 * day, "101", 900000, []errAt{{after: 2 * day}}, "102"},
		{"3 万 chains to 103", 30 * day, "101", 3000000, nil, "103"},
		{"102 one fen short of 3 万", 30 * day, "102", 2999999, nil, "102"},
		{"102 at 3 万", 30 * day, "102", 3000000, nil, "103"},
		{"103 stays", 30 * day, "103", 9000000, nil, "103"},
		{"201 is set by staff only", 30 * day, "201", 9000000, nil, "201"},
	}
	users := make([][2]string, len(cases))
	for i, c := range cases {
		org, mid := e.user(t, c.age, c.level, c.t0)
		users[i] = [2]string{org, mid}
		created := time.Now().Add(-c.age)
		for _, x := range c.errors {
			ec, err := desk.OpenError(e.ctx, cardpay.NewError{Kind: cardpay.ErrorLong, OrgID: org, MerchantID: mid,
				At: created.Add(x.after), Actor: "risk:li"})
			if err != nil {
				t.Fatal(err)
			}
			if x.notAtFault || x.atFault {
				if _, err := desk.ResolveError(e.ctx, ec.ID, cardpay.Resolution{Status: cardpay.ErrorResolved, NotAtFault: x.notAtFault,
					Actor: "risk:li", Note: "checked"}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	changes, err := desk.UpgradeUserLevels(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	mine := func(chs []cardpay.LevelChange) map[string][]cardpay.LevelChange {
		m := map[string][]cardpay.LevelChange{}
		for _, ch := range chs {
			m[ch.MerchantID] = append(m[ch.MerchantID], ch)
		}
		return m
	}(changes)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			org, mid := users[i][0], users[i][1]
			got, err := desk.UserLevel(e.ctx, org, mid)
			if err != nil || got != c.want {
				t.Fatalf("level %s %v, want %s", got, err, c.want)
			}
			hist, err := desk.UserLevelHistory(e.ctx, org, mid)
			if err != nil || len(hist) != len(mine[mid]) {
				t.Fatalf("history %+v, changes %+v, %v", hist, mine[mid], err)
			}
			if c.want != c.level {
				last := hist[len(hist)-1]
				if hist[0].From != c.level || last.To != c.want || last.Actor != cardpay.ActorSystem || !strings.Contains(last.Reason, "T0 cumulative") {
					t.Fatalf("history %+v", hist)
				}
			}
		})
	}
	// Again: nothing more to do for these users.
	again, err := desk.UpgradeUserLevels(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range again {
		for _, u := range users {
			if ch.MerchantID == u[1] {
				t.Fatalf("upgraded twice: %+v", ch)
			}
		}
	}
}

func TestSetUserLevel(t *testing.T) {
	e := setup(t)
	desk := e.svc.Desk()
	org, mid := e.user(t, day, "101", 0)
	for _, c := range []struct {
		name                           string
		org, mid, level, reason, actor string
		code                           string
	}{
		{"unknown level", org, mid, "204", "asked", "risk:li", jifu.CodeInvalid},
		{"no reason", org, mid, "202", " ", "risk:li", jifu.CodeInvalid},
		{"no actor", org, mid, "202", "asked", "", jifu.CodeInvalid},
		{"unknown merchant", org, "nobody", "202", "asked", "risk:li", jifu.CodeNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := desk.SetUserLevel(e.ctx, c.org, c.mid, c.level, c.reason, c.actor); jifu.ErrorCode(err) != c.code {
				t.Fatalf("err = %v, want %s", err, c.code)
			}
		})
	}
	if l, _ := desk.UserLevel(e.ctx, org, mid); l != "101" {
		t.Fatalf("a refused change moved the level to %s", l)
	}
	ch, err := desk.SetUserLevel(e.ctx, org, mid, "202", "customer asked for large orders, ticket 88", "risk:li")
	if err != nil || ch.ID == 0 || ch.From != "101" || ch.To != "202" {
		t.Fatalf("%+v %v", ch, err)
	}
	same, err := desk.SetUserLevel(e.ctx, org, mid, "202", "again", "risk:li")
	if err != nil || same.ID != 0 {
		t.Fatalf("same level: %+v %v", same, err)
	}
	hist, err := desk.UserLevelHistory(e.ctx, org, mid)
	if err != nil || len(hist) != 1 || hist[0].Actor != "risk:li" || hist[0].Reason != "customer asked for large orders, ticket 88" {
		t.Fatalf("%+v %v", hist, err)
	}
	if _, err := desk.UserLevel(e.ctx, org, "nobody"); jifu.ErrorCode(err) != jifu.CodeNotFound {
		t.Fatal(err)
	}
	levels, err := desk.UserLevels(e.ctx)
	if err != nil || len(levels) != 8 || levels[1].Level != "102" || levels[1].UpgradeFrom != "101" || levels[1].MinT0Cumulative != 900000 ||
		levels[1].MinCleanDays != 15 || levels[2].MinT0Cumulative != 3000000 {
		t.Fatalf("%+v %v", levels, err)
	}
}

// TestUpgradeOnT0Settlement goes through payments: a user 16 days old with
// 8970 yuan settled T0 before pays 30 yuan T0; the day's T0 batch brings it
// to 0.9 万 exactly and it becomes 102 at once, so its next payment of 5000
// yuan (over 101's 3000 a day) is T0. The service runs on a day of its own
// (Options.Now) so that its T0 batch takes no other test's payments.
func TestUpgradeOnT0Settlement(t *testing.T) {
	e := setup(t)
	now := time.Now().AddDate(0, 0, -100)
	clock := func() time.Time { return now }
	acq, err := acquirer.New(acquirer.Config{Addr: e.sim.Addr(), TMK: testTMK, TerminalID: "JIFU0004",
		MerchantID: "898310048990001", Timeout: 2500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer acq.Close()
	svc, err := cardpay.New(dbtest.Pool(t), e.master, acq, cardpay.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	org, mid := e.user(t, 0, "101", 897000)
	if _, err := dbtest.Pool(t).Exec(e.ctx, `UPDATE card_merchants SET created_at = $3 WHERE org_id = $1 AND merchant_id = $2`,
		org, mid, now.Add(-16*day)); err != nil {
		t.Fatal(err)
	}
	var id uint64
	fmt.Sscanf(mid, "U%d", &id)
	ksn, _ := dukpt.ParseKSN(fmt.Sprintf("FFFF%08X%02X000000", id, 0))
	if err := svc.RegisterTerminal(e.ctx, cardpay.Terminal{KSN: ksn.String(), OrgID: org, MerchantID: mid, Type: cardpay.TerminalMPOS,
		BDKID: "bdk-test", AcquirerTID: fmt.Sprintf("T%07d", id*100)}); err != nil {
		t.Fatal(err)
	}
	r, err := cardreader.New(cardreader.Config{OrgID: org, MerchantID: mid, PaySecret: fmt.Sprintf("pay-secret-%016d", id),
		IPEK: dukpt.IPEK(testBDK, ksn), KSN: ksn, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	card := freshPAN(t)
	res, err := svc.Authorize(e.ctx, build(t, r, payCard("t0-a", 3000, card, false)))
	if err != nil || !res.Approved() || !res.T0 {
		t.Fatalf("%+v %v", res, err)
	}
	big := payCard("t0-b", 500000, card, false)
	if res, err := svc.Authorize(e.ctx, build(t, r, big)); err != nil || !res.Approved() || res.T0 {
		t.Fatalf("over 101's T0 limit: %+v %v", res, err)
	}
	bs, err := svc.Settle(e.ctx, now, cardpay.T0)
	if err != nil || len(bs) != 1 || bs[0].Gross != 3000 {
		t.Fatalf("%+v %v", bs, err)
	}
	if l, _ := svc.Desk().UserLevel(e.ctx, org, mid); l != "102" {
		t.Fatalf("level %s after 0.9 万 settled T0", l)
	}
	big.OrderID = "t0-c"
	if res, err := svc.Authorize(e.ctx, build(t, r, big)); err != nil || !res.Approved() || !res.T0 {
		t.Fatalf("within 102's T0 limit: %+v %v", res, err)
	}
}

// TestCardCleanDays: IC卡2 needs 45 days without an erroneous transaction;
// an error that counts brings the card back to IC卡 until 45 days pass or it
// is resolved as not at fault.
func TestCardCleanDays(t *testing.T) {
	e := setup(t)
	desk := e.svc.Desk()
	r := e.merchant(t, cardpay.TerminalMPOS, 1)[0]
	card := freshPAN(t)
	n := 0
	var paymentID int64
	class := func() string {
		t.Helper()
		n++
		res, err := e.svc.Authorize(e.ctx, build(t, r, payCard(fmt.Sprintf("clean-%d", n), 100, card, true)))
		if err != nil || !res.Approved() {
			t.Fatalf("%+v %v", res, err)
		}
		paymentID = res.PaymentID
		return res.CardClass
	}
	if first := class(); first != "IC卡" {
		t.Fatalf("a new chip card is %s", first)
	}
	// Seen first 60 days ago.
	if _, err := dbtest.Pool(t).Exec(e.ctx, `UPDATE card_cards SET first_seen = now() - interval '60 days' WHERE pan_masked = $1 AND chip`,
		card[:6]+strings.Repeat("*", len(card)-10)+card[len(card)-4:]); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.SetCardFlags(e.ctx, card, cardpay.CardFlags{}); err != nil { // drops the cached facts
		t.Fatal(err)
	}
	if c := class(); c != "IC卡2" {
		t.Fatalf("60 clean days: %s", c)
	}
	for _, c := range []struct {
		name       string
		ago        time.Duration
		notAtFault bool
		want       string
	}{
		{"an error 10 days ago", 10 * day, false, "IC卡"},
		{"an error 44 days ago", 45*day - time.Hour, false, "IC卡"},
		{"an error 45 days ago", 45*day + time.Minute, false, "IC卡2"},
		{"an error 10 days ago, not at fault", 10 * day, true, "IC卡2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ec, err := desk.OpenError(e.ctx, cardpay.NewError{Kind: cardpay.ErrorDispute, PaymentID: paymentID,
				At: time.Now().Add(-c.ago), Actor: "risk:li", Note: c.name})
			if err != nil {
				t.Fatal(err)
			}
			if c.notAtFault {
				if _, err := desk.ResolveError(e.ctx, ec.ID, cardpay.Resolution{Status: cardpay.ErrorResolved, NotAtFault: true, Actor: "risk:li", Note: "not the card"}); err != nil {
					t.Fatal(err)
				}
			}
			if got := class(); got != c.want {
				t.Fatalf("class %s, want %s", got, c.want)
			}
			// Clear it for the next case.
			if !c.notAtFault {
				if _, err := desk.ResolveError(e.ctx, ec.ID, cardpay.Resolution{Status: cardpay.ErrorResolved, NotAtFault: true, Actor: "risk:li", Note: "cleared"}); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
