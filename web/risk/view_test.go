package risk_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/web/layout"
	"github.com/jifu-open/jifu/web/risk"
	"github.com/jifu-open/jifu/web/webtest"
)

var (
	at   = time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)
	seed = cardpay.RiskStamp{Version: 1, UpdatedAt: at, UpdatedBy: "seed"}
	page = layout.Page{Title: "Risk rules", Area: layout.AreaPortal, Who: "Li", Role: "risk", CSRF: "tok"}
)

func ruleSet() cardpay.RiskRuleSet {
	return cardpay.RiskRuleSet{
		Classes: []cardpay.RiskClass{
			{Class: "紫卡", Priority: 10, PerTx: 5_000_000, PerDay: 10_000_000, PerMonth: 15_000_000, T0PerDay: 10_000_000, NeedCreditOK: true,
				How: "信用卡验证通过", RiskStamp: seed},
			{Class: "红卡1", Priority: 20, PerTx: 10_000_000, PerDay: 20_000_000, PerMonth: 30_000_000, T0PerDay: 10_000_000, NeedBound: true,
				NeedKind: "credit", MinCumulative: 10_000_000, How: "三维绑定", RiskStamp: seed},
			{Class: "IC卡2", Priority: 40, PerTx: 10_000_000, PerDay: 20_000_000, PerMonth: 30_000_000, T0PerDay: 20_000_000, NeedChip: true,
				MinCleanDays: 45, RiskStamp: cardpay.RiskStamp{Version: 3, UpdatedAt: at, UpdatedBy: "risk#3 Li"}},
		},
		TerminalTypes: []cardpay.RiskTerminalType{{TerminalType: "mpos", PerTx: 3_000_000, PerDay: 6_000_000, PerMonth: 9_000_000, RiskStamp: seed}},
		UserLevels: []cardpay.RiskUserLevel{{Level: "101", T0PerDay: 300_000, How: "实名认证", RiskStamp: seed},
			{Level: "102", T0PerDay: 1_000_000, How: "T0累计达0.9", UpgradeFrom: "101", MinT0Cumulative: 900_000, MinCleanDays: 15, RiskStamp: seed}},
	}
}

func changes() []cardpay.RiskChange {
	return []cardpay.RiskChange{{ID: 7, Table: cardpay.RiskTableClass, Key: "IC卡2", Version: 3, Actor: "risk#3 Li", Reason: "工单 12", At: at,
		Fields: []cardpay.RiskFieldChange{{Field: "t0_per_day", Before: "10000000", After: "20000000", Fen: true},
			{Field: "min_clean_days", Before: "30", After: "45"}}}}
}

func TestRules(t *testing.T) {
	v := risk.RulesView{Page: page, Rules: ruleSet(), Changes: changes()}
	doc := webtest.Render(t, risk.Rules(v))
	tests := map[string]string{
		"class-红卡1":         "20 红卡1 100,000.00 (10 万) 200,000.00 (20 万) 300,000.00 (30 万) 100,000.00 (10 万) three-way bound, credit card, cumulative ≥ 100,000.00 三维绑定 v1 · seed · 2026-12-01 09:30 UTC",
		"class-IC卡2-per_tx": "100,000.00 (10 万)",
		"terminal-mpos":     "mpos 30,000.00 (3 万) 60,000.00 (6 万) 90,000.00 (9 万) v1 · seed · 2026-12-01 09:30 UTC",
		"level-101":         "101 3,000.00 (0.3 万) 实名认证 by staff or verification v1 · seed · 2026-12-01 09:30 UTC",
		"level-102-upgrade": "from 101 at T0 volume ≥ 9,000.00, 15 days clean",
		"change-7":          "2026-12-01 09:30 UTC v3 Card class IC卡2 risk#3 Li t0_per_day 100,000.00 → 200,000.00 min_clean_days 30 → 45 工单 12",
	}
	for id, want := range tests {
		if got := webtest.Text(webtest.One(t, doc, id)); got != want {
			t.Errorf("%s = %q\nwant %q", id, got, want)
		}
	}
	if got := webtest.Attr(webtest.One(t, doc, "edit-class-红卡1"), "href"); got != "/risk/classes/%E7%BA%A2%E5%8D%A11" {
		t.Errorf("edit link %q", got)
	}
	if got := webtest.Text(webtest.One(t, doc, "class-IC卡2")); !strings.Contains(got, "chip, 45 days without an erroneous transaction") {
		t.Errorf("IC卡2 conditions: %q", got)
	}
	webtest.Golden(t, "rules", webtest.HTML(t, risk.Rules(v)))
	v.Changes = nil
	webtest.One(t, webtest.Render(t, risk.Rules(v)), "no-changes")
}

func editor() risk.FormView {
	return risk.FormView{Page: page, Table: cardpay.RiskTableTerminalType, Key: "mpos", Title: "Terminal type mpos",
		Action: "/risk/terminals/mpos", Version: 1, Stamp: seed, Fields: []risk.Field{
			{Name: "per_tx", Label: "Per transaction (元)", Kind: risk.KindYuan, Value: "30000.00"},
			{Name: "per_day", Label: "Per day (元)", Kind: risk.KindYuan, Value: "60000.00"},
			{Name: "per_month", Label: "Per month (元)", Kind: risk.KindYuan, Value: "90000.00"},
		}}
}

func TestEditor(t *testing.T) {
	v := editor()
	doc := webtest.Render(t, risk.Editor(v))
	form := webtest.One(t, doc, "rule-form")
	if webtest.Attr(form, "hx-post") != "/risk/terminals/mpos" || webtest.Attr(form, "action") != "/risk/terminals/mpos" ||
		webtest.Attr(form, "hx-target") != "#rule-editor" {
		t.Errorf("form attributes %v", form.Attr)
	}
	if got := webtest.Attr(webtest.One(t, doc, "input-per_tx"), "value"); got != "30000.00" {
		t.Errorf("per_tx = %q", got)
	}
	for _, id := range []string{"form-error", "saved", "problem-per_day", "stored-per_tx", "reload"} {
		if n := len(webtest.ByTestID(doc, id)); n != 0 {
			t.Errorf("a clean editor shows %s", id)
		}
	}
	webtest.One(t, doc, "no-changes")
	webtest.Golden(t, "editor", webtest.HTML(t, risk.Editor(v)))

	// Refused: the form-level code and each field's problem inline.
	v.Code, v.Error = "invalid", "the rule was not changed: per_day: must be at least the per-transaction limit"
	v.Fields[0].Value, v.Fields[1].Problem, v.ReasonProblem = "70000.00", "must be at least the per-transaction limit", "is required"
	doc = webtest.Render(t, risk.EditorBody(v))
	if e := webtest.One(t, doc, "form-error"); webtest.Attr(e, "data-code") != "invalid" || !strings.Contains(webtest.Text(e), "code invalid") {
		t.Errorf("form error %q %v", webtest.Text(e), e.Attr)
	}
	if got := webtest.Text(webtest.One(t, doc, "problem-per_day")); got != "must be at least the per-transaction limit" {
		t.Errorf("problem %q", got)
	}
	webtest.One(t, doc, "problem-reason")
	if got := webtest.Attr(webtest.One(t, doc, "input-per_tx"), "value"); got != "70000.00" {
		t.Errorf("the entered value is not kept: %q", got)
	}
	if n := len(webtest.ByTestID(doc, "reload")); n != 0 {
		t.Error("an invalid form offers a reload")
	}

	// Conflict: the stored values beside the entered ones, and a reload.
	v = editor()
	v.Code, v.Error = "conflict", "mpos was changed by risk#2 Bob"
	v.Fields[0].Value, v.Fields[0].Stored = "25000.00", "20000.00"
	doc = webtest.Render(t, risk.EditorBody(v))
	if got := webtest.Text(webtest.One(t, doc, "stored-per_tx")); got != "stored now: 20000.00" {
		t.Errorf("stored %q", got)
	}
	if got := webtest.Attr(webtest.One(t, doc, "reload"), "href"); got != "/risk/terminals/mpos" {
		t.Errorf("reload %q", got)
	}

	v = editor()
	v.Saved, v.Stamp.Version, v.Changes = true, 2, changes()
	doc = webtest.Render(t, risk.EditorBody(v))
	if got := webtest.Text(webtest.One(t, doc, "saved")); !strings.Contains(got, "version 2") {
		t.Errorf("saved %q", got)
	}
	webtest.One(t, doc, "change-7")
}

func TestClassEditorFields(t *testing.T) {
	v := editor()
	v.Fields = []risk.Field{
		{Name: "need_chip", Label: "Needs a chip card", Kind: risk.KindBool, Checked: true},
		{Name: "need_kind", Label: "Card kind", Kind: risk.KindCard, Value: "debit"},
		{Name: "min_clean_days", Label: "Days", Kind: risk.KindInt, Value: "45"},
	}
	doc := webtest.Render(t, risk.EditorBody(v))
	if webtest.Attr(webtest.One(t, doc, "input-need_chip"), "checked") == "" && !strings.Contains(webtest.HTML(t, risk.EditorBody(v)), "checked") {
		t.Error("need_chip not checked")
	}
	if !strings.Contains(webtest.HTML(t, risk.EditorBody(v)), `<option value="debit" selected>`) {
		t.Error("need_kind debit not selected")
	}
}

func TestHistory(t *testing.T) {
	v := risk.HistoryView{Page: page, Table: cardpay.RiskTableClass, Key: "IC卡2", Changes: changes(), Next: "/risk/history?before=7"}
	doc := webtest.Render(t, risk.History(v))
	webtest.One(t, doc, "change-7")
	if got := webtest.Attr(webtest.One(t, doc, "older"), "href"); got != "/risk/history?before=7" {
		t.Errorf("older %q", got)
	}
}
