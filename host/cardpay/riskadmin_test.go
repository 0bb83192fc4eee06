package cardpay_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/database/dbtest"
)

// The package's tests share one database whose seeded rules the payment
// tests rely on: every test here puts back what it changed.
func restoreRules(t *testing.T, desk *cardpay.RiskDesk) {
	t.Helper()
	ctx := context.Background()
	orig, err := desk.Rules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		now, err := desk.Rules(ctx)
		if err != nil {
			t.Fatal(err)
		}
		back := cardpay.RiskEdit{Actor: "test", Reason: "restore after " + t.Name()}
		for _, c := range orig.Classes {
			c.Version = class(t, now, c.Class).Version
			if _, err := desk.UpdateClass(ctx, c, back); err != nil {
				t.Errorf("restore %s: %v", c.Class, err)
			}
		}
		for i, x := range orig.TerminalTypes {
			x.Version = now.TerminalTypes[i].Version
			if _, err := desk.UpdateTerminalType(ctx, x, back); err != nil {
				t.Errorf("restore %s: %v", x.TerminalType, err)
			}
		}
		for i, l := range orig.UserLevels {
			l.Version = now.UserLevels[i].Version
			if _, err := desk.UpdateUserLevel(ctx, l, back); err != nil {
				t.Errorf("restore %s: %v", l.Level, err)
			}
		}
	})
}

func class(t *testing.T, rs cardpay.RiskRuleSet, name string) cardpay.RiskClass {
	t.Helper()
	for _, c := range rs.Classes {
		if c.Class == name {
			return c
		}
	}
	t.Fatalf("no class %s", name)
	return cardpay.RiskClass{}
}

func TestRiskDeskSeed(t *testing.T) {
	desk := cardpay.NewRiskDesk(dbtest.Pool(t))
	rs, err := desk.Rules(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range rs.Classes {
		names = append(names, c.Class)
		if c.Version < 1 || c.UpdatedBy == "" {
			t.Errorf("%s: stamp %+v", c.Class, c.RiskStamp)
		}
	}
	if want := []string{"紫卡", "红卡1", "红卡2", "IC卡2", "IC卡", "磁条卡"}; !slices.Equal(names, want) {
		t.Fatalf("classes by priority %v, want %v", names, want)
	}
	if c := class(t, rs, "红卡1"); c.PerTx != 10_000_000 || c.PerDay != 20_000_000 || c.PerMonth != 30_000_000 || c.T0PerDay != 10_000_000 ||
		!c.NeedBound || c.MinCumulative != 10_000_000 {
		t.Errorf("红卡1 = %+v, want the seed's 10/20/30 万, T0 10 万, bound, cumulative 10 万", c)
	}
	if len(rs.TerminalTypes) != 3 || rs.TerminalTypes[2].TerminalType != "mpos" || rs.TerminalTypes[2].PerTx != 3_000_000 {
		t.Errorf("terminal types %+v", rs.TerminalTypes)
	}
	if len(rs.UserLevels) != 8 || rs.UserLevels[0].Level != "101" || rs.UserLevels[0].T0PerDay != 300_000 {
		t.Errorf("user levels %+v", rs.UserLevels)
	}
}

func changeCount(t *testing.T) int {
	t.Helper()
	return count(t, `SELECT count(*) FROM card_risk_changes WHERE actor <> 'test'`)
}

// Every refused edit names its fields with a stable code and changes
// nothing: not the rules, not their versions, not the history.
func TestRiskDeskRefusals(t *testing.T) {
	ctx := context.Background()
	desk := cardpay.NewRiskDesk(dbtest.Pool(t))
	before, err := desk.Rules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	changes := changeCount(t)
	ok := cardpay.RiskEdit{Actor: "risk#1 Test", Reason: "ticket 1"}
	red := class(t, before, "红卡1")
	classCase := func(f func(c *cardpay.RiskClass)) cardpay.RiskClass { c := red; f(&c); return c }
	classes := []struct {
		name   string
		c      cardpay.RiskClass
		e      cardpay.RiskEdit
		code   string
		fields []string
	}{
		{"negative per_tx", classCase(func(c *cardpay.RiskClass) { c.PerTx = -1 }), ok, jifu.CodeInvalid, []string{"per_tx"}},
		{"per_tx over per_day", classCase(func(c *cardpay.RiskClass) { c.PerTx = c.PerDay + 1 }), ok, jifu.CodeInvalid, []string{"per_day"}},
		{"per_day over per_month", classCase(func(c *cardpay.RiskClass) { c.PerDay = c.PerMonth + 1 }), ok, jifu.CodeInvalid, []string{"per_month"}},
		{"T0 over the day", classCase(func(c *cardpay.RiskClass) { c.T0PerDay = c.PerDay + 1 }), ok, jifu.CodeInvalid, []string{"t0_per_day"}},
		{"over the maximum", classCase(func(c *cardpay.RiskClass) { c.PerMonth = cardpay.MaxRiskAmount + 1 }), ok, jifu.CodeInvalid, []string{"per_month"}},
		{"negative T0", classCase(func(c *cardpay.RiskClass) { c.T0PerDay = -5 }), ok, jifu.CodeInvalid, []string{"t0_per_day"}},
		{"negative cumulative", classCase(func(c *cardpay.RiskClass) { c.MinCumulative = -1 }), ok, jifu.CodeInvalid, []string{"min_cumulative"}},
		{"clean days", classCase(func(c *cardpay.RiskClass) { c.MinCleanDays = -1 }), ok, jifu.CodeInvalid, []string{"min_clean_days"}},
		{"kind", classCase(func(c *cardpay.RiskClass) { c.NeedKind = "prepaid" }), ok, jifu.CodeInvalid, []string{"need_kind"}},
		{"priority zero", classCase(func(c *cardpay.RiskClass) { c.Priority = 0 }), ok, jifu.CodeInvalid, []string{"priority"}},
		{"priority taken", classCase(func(c *cardpay.RiskClass) { c.Priority = class(t, before, "紫卡").Priority }), ok, jifu.CodeInvalid, []string{"priority"}},
		{"no reason", classCase(func(c *cardpay.RiskClass) { c.PerTx = 1 }), cardpay.RiskEdit{Actor: "risk#1", Reason: "  "}, jifu.CodeInvalid, []string{"reason"}},
		{"no actor", classCase(func(c *cardpay.RiskClass) { c.PerTx = 1 }), cardpay.RiskEdit{Reason: "x"}, jifu.CodeInvalid, []string{"actor"}},
		{"several at once", classCase(func(c *cardpay.RiskClass) { c.PerTx, c.PerMonth = -1, -1 }), cardpay.RiskEdit{Actor: "a"}, jifu.CodeInvalid,
			[]string{"per_tx", "per_month", "reason"}},
		{"unknown class", classCase(func(c *cardpay.RiskClass) { c.Class = "金卡"; c.Priority = 999 }), ok, jifu.CodeNotFound, nil},
		{"stale version", classCase(func(c *cardpay.RiskClass) { c.Version--; c.PerTx = 1 }), ok, jifu.CodeConflict, nil},
	}
	for _, tt := range classes {
		t.Run("class/"+tt.name, func(t *testing.T) {
			_, err := desk.UpdateClass(ctx, tt.c, tt.e)
			if jifu.ErrorCode(err) != tt.code {
				t.Fatalf("err = %v, want code %s", err, tt.code)
			}
			var fields []string
			for _, p := range cardpay.RiskProblems(err) {
				fields = append(fields, p.Field)
				if p.Message == "" {
					t.Errorf("%s: no message", p.Field)
				}
			}
			slices.Sort(fields)
			slices.Sort(tt.fields)
			if !slices.Equal(fields, tt.fields) {
				t.Fatalf("problems %v, want %v (%v)", fields, tt.fields, err)
			}
		})
	}
	mpos := before.TerminalTypes[2]
	types := []struct {
		name string
		f    func(x *cardpay.RiskTerminalType)
		code string
	}{
		{"negative", func(x *cardpay.RiskTerminalType) { x.PerDay = -1 }, jifu.CodeInvalid},
		{"ladder", func(x *cardpay.RiskTerminalType) { x.PerTx = x.PerMonth + 1 }, jifu.CodeInvalid},
		{"unknown type", func(x *cardpay.RiskTerminalType) { x.TerminalType = "pos" }, jifu.CodeNotFound},
		{"stale", func(x *cardpay.RiskTerminalType) { x.Version = 99; x.PerTx = 1 }, jifu.CodeConflict},
	}
	for _, tt := range types {
		t.Run("terminal/"+tt.name, func(t *testing.T) {
			x := mpos
			tt.f(&x)
			if _, err := desk.UpdateTerminalType(ctx, x, ok); jifu.ErrorCode(err) != tt.code {
				t.Fatalf("err = %v, want code %s", err, tt.code)
			}
		})
	}
	lvl := before.UserLevels[0]
	for name, f := range map[string]func(l *cardpay.RiskUserLevel){
		"negative":             func(l *cardpay.RiskUserLevel) { l.T0PerDay = -1 },
		"over":                 func(l *cardpay.RiskUserLevel) { l.T0PerDay = cardpay.MaxRiskAmount + 1 },
		"how":                  func(l *cardpay.RiskUserLevel) { l.How = strings.Repeat("长", 201) },
		"control":              func(l *cardpay.RiskUserLevel) { l.How = "a\x00b" },
		"upgrade from itself":  func(l *cardpay.RiskUserLevel) { l.UpgradeFrom = l.Level },
		"negative volume":      func(l *cardpay.RiskUserLevel) { l.MinT0Cumulative = -1 },
		"clean days":           func(l *cardpay.RiskUserLevel) { l.MinCleanDays = cardpay.MaxCleanDays + 1 },
		"unknown upgrade from": func(l *cardpay.RiskUserLevel) { l.UpgradeFrom = "999" },
		"upgrade cycle":        func(l *cardpay.RiskUserLevel) { l.UpgradeFrom = "103" }, // 101 ← 103 ← 102 ← 101
	} {
		t.Run("level/"+name, func(t *testing.T) {
			l := lvl
			f(&l)
			if _, err := desk.UpdateUserLevel(ctx, l, ok); jifu.ErrorCode(err) != jifu.CodeInvalid || len(cardpay.RiskProblems(err)) != 1 {
				t.Fatalf("err = %v, want one invalid field", err)
			}
		})
	}
	if _, err := desk.UpdateUserLevel(ctx, cardpay.RiskUserLevel{Level: "999", T0PerDay: 1}, ok); jifu.ErrorCode(err) != jifu.CodeNotFound {
		t.Fatalf("unknown level: %v", err)
	}

	after, err := desk.Rules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !equalRules(before, after) {
		t.Fatalf("refused edits changed the rules:\nbefore %+v\nafter  %+v", before, after)
	}
	if n := changeCount(t); n != changes {
		t.Fatalf("refused edits left %d history rows", n-changes)
	}
}

func equalRules(a, b cardpay.RiskRuleSet) bool {
	return slices.Equal(a.Classes, b.Classes) && slices.Equal(a.TerminalTypes, b.TerminalTypes) && slices.Equal(a.UserLevels, b.UserLevels)
}

// Two staff edit the same row from the same read: the first wins, the
// second gets conflict with the current row, and nothing of it is stored.
func TestRiskDeskConflictAndHistory(t *testing.T) {
	ctx := context.Background()
	desk := cardpay.NewRiskDesk(dbtest.Pool(t))
	restoreRules(t, desk)
	read, err := desk.TerminalType(ctx, "audio")
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := read, read
	alice.PerTx = 1_500_000
	bob.PerTx = 1_000_000
	got, err := desk.UpdateTerminalType(ctx, alice, cardpay.RiskEdit{Actor: "risk#1 Alice", Reason: "工单 7: lower audio readers"})
	if err != nil {
		t.Fatal(err)
	}
	if got.PerTx != 1_500_000 || got.Version != read.Version+1 || got.UpdatedBy != "risk#1 Alice" || !got.UpdatedAt.After(read.UpdatedAt) {
		t.Fatalf("stored %+v", got)
	}
	cur, err := desk.UpdateTerminalType(ctx, bob, cardpay.RiskEdit{Actor: "risk#2 Bob", Reason: "mine"})
	if jifu.ErrorCode(err) != jifu.CodeConflict || !strings.Contains(jifu.ErrorMessage(err), "risk#1 Alice") {
		t.Fatalf("second edit: %v, want a conflict naming Alice", err)
	}
	if cur.PerTx != 1_500_000 || cur.Version != got.Version {
		t.Fatalf("conflict returned %+v, want the current row", cur)
	}
	if now, _ := desk.TerminalType(ctx, "audio"); now != got {
		t.Fatalf("after the conflict %+v, want %+v", now, got)
	}
	// An edit that changes nothing stores nothing.
	if same, err := desk.UpdateTerminalType(ctx, got, cardpay.RiskEdit{Actor: "risk#1 Alice", Reason: "again"}); err != nil || same != got {
		t.Fatalf("no-op edit: %+v %v", same, err)
	}

	cs, err := desk.Changes(ctx, cardpay.RiskChangeFilter{Table: cardpay.RiskTableTerminalType, Key: "audio"})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 {
		t.Fatalf("%d changes, want 1: %+v", len(cs), cs)
	}
	c := cs[0]
	want := []cardpay.RiskFieldChange{{Field: "per_tx", Before: "2000000", After: "1500000", Fen: true}}
	if c.Actor != "risk#1 Alice" || c.Reason != "工单 7: lower audio readers" || c.Version != got.Version || c.At.IsZero() ||
		!slices.Equal(c.Fields, want) {
		t.Fatalf("change %+v, want fields %+v", c, want)
	}

	// User levels carry the upgrade conditions (as the upgrade job reads them).
	l103, err := desk.UserLevel(ctx, "103")
	if err != nil || l103.UpgradeFrom != "102" || l103.MinT0Cumulative != 3_000_000 || l103.MinCleanDays != 15 {
		t.Fatalf("103 = %+v %v, want the seed's 102 → 103 at 3 万 and 15 days", l103, err)
	}
	l103.MinT0Cumulative, l103.MinCleanDays = 2_500_000, 10
	if l103, err = desk.UpdateUserLevel(ctx, l103, cardpay.RiskEdit{Actor: "risk#1 Alice", Reason: "faster upgrades"}); err != nil {
		t.Fatal(err)
	}
	rules, err := cardpay.NewDesk(dbtest.Pool(t), cardpay.DeskOptions{}).UserLevels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if r.Level == "103" && (r.MinT0Cumulative != 2_500_000 || r.MinCleanDays != 10 || r.UpgradeFrom != "102") {
			t.Fatalf("the upgrade job reads %+v", r)
		}
	}

	// A class edit changing several fields lists each, in column order.
	rs, _ := desk.Rules(ctx)
	ic := class(t, rs, "IC卡2")
	ic.MinCleanDays, ic.T0PerDay, ic.How = 30, 15_000_000, "IC卡, 30天无差错"
	if _, err := desk.UpdateClass(ctx, ic, cardpay.RiskEdit{Actor: "risk#1 Alice", Reason: "pilot"}); err != nil {
		t.Fatal(err)
	}
	cs, err = desk.Changes(ctx, cardpay.RiskChangeFilter{Limit: 1})
	if err != nil || len(cs) != 1 {
		t.Fatalf("%v %v", cs, err)
	}
	var fields []string
	for _, f := range cs[0].Fields {
		fields = append(fields, f.Field)
	}
	if cs[0].Key != "IC卡2" || !slices.Equal(fields, []string{"t0_per_day", "min_clean_days", "how"}) {
		t.Fatalf("change %+v", cs[0])
	}
	if older, err := desk.Changes(ctx, cardpay.RiskChangeFilter{BeforeID: cs[0].ID, Table: cardpay.RiskTableTerminalType}); err != nil || len(older) == 0 || older[0].ID >= cs[0].ID {
		t.Fatalf("paging: %+v %v", older, err)
	}
}

// A change through the service's desk judges the very next payment in
// this process by the new limit (the cached rules are dropped).
func TestRiskDeskNextPayment(t *testing.T) {
	e := setup(t)
	desk := e.svc.RiskDesk()
	restoreRules(t, desk)
	r := e.merchant(t, "mpos", 1)[0]
	// Warm the service's rule cache with the seed's limits. (Other tests'
	// sign-ons may have invalidated the shared client's keys: it signs on
	// again and resends by itself.)
	if res, err := e.svc.Authorize(e.ctx, build(t, r, pay("rd-1", 20_000))); err != nil || !res.Approved() {
		t.Fatalf("first payment: %+v %v", res, err)
	}
	mpos, err := desk.TerminalType(e.ctx, "mpos")
	if err != nil {
		t.Fatal(err)
	}
	mpos.PerTx = 10_000 // 100.00 元
	if _, err := desk.UpdateTerminalType(e.ctx, mpos, cardpay.RiskEdit{Actor: "risk#1", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	res, err := e.svc.Authorize(e.ctx, build(t, r, pay("rd-2", 10_001)))
	if err != nil || res.Status != cardpay.StatusDeclined || res.Rule != "terminal_type:mpos:per_tx" {
		t.Fatalf("over the new limit: %+v %v", res, err)
	}
	if res, err := e.svc.Authorize(e.ctx, build(t, r, pay("rd-3", 10_000))); err != nil || !res.Approved() {
		t.Fatalf("at the new limit: %+v %v", res, err)
	}
}
