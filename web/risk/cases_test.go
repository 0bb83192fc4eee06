package risk_test

import (
	"strings"
	"testing"

	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/web/risk"
	"github.com/jifu-open/jifu/web/webtest"
)

func chargeback() cardpay.ErrorCase {
	return cardpay.ErrorCase{ID: 42, Kind: cardpay.ErrorChargeback, Ref: "CB-0042", Status: cardpay.ErrorOpen, PaymentID: 7, OrgID: "ORG1",
		MerchantID: "M1", PANMasked: "622202*********0128", RRN: "000000000007", OrderID: "A-1", Day: at, Amount: 10_050,
		OpenedBy: "risk#3 Li", OccurredAt: at, CreatedAt: at, Note: "reason 4837"}
}

func TestErrorsView(t *testing.T) {
	v := risk.ErrorsView{Page: page, Filter: risk.ErrorFilterForm{Status: "open", Kind: "chargeback"}, Cases: []cardpay.ErrorCase{chargeback()},
		Total: 51, First: 1, Last: 1, Next: "/risk/errors?page=2&status=open"}
	doc := webtest.Render(t, risk.Errors(v))
	if got := webtest.Text(webtest.One(t, doc, "case-42")); got != "42 拒付 (chargeback) open 2026-12-01 ORG1/M1 622202*********0128 100.50 risk#3 Li" {
		t.Errorf("row %q", got)
	}
	if got := webtest.Text(webtest.One(t, doc, "cases-count")); got != "1–1 of 51" {
		t.Errorf("count %q", got)
	}
	webtest.One(t, doc, "next")
	if n := len(webtest.ByTestID(doc, "prev")); n != 0 {
		t.Error("a first page links a newer one")
	}
	if !strings.Contains(webtest.HTML(t, risk.Errors(v)), `<option value="chargeback" selected>`) {
		t.Error("the kind filter is not kept")
	}
	v.Cases, v.Code, v.Error = nil, "invalid", "unknown kind"
	doc = webtest.Render(t, risk.Errors(v))
	webtest.One(t, doc, "no-cases")
	if e := webtest.One(t, doc, "form-error"); webtest.Attr(e, "data-code") != "invalid" {
		t.Errorf("error %v", e.Attr)
	}
}

func TestErrorCaseView(t *testing.T) {
	v := risk.ErrorView{Page: page, Case: chargeback(), Events: []cardpay.ErrorEvent{{ID: 1, Action: "opened", Actor: "risk#3 Li", At: at}}}
	doc := webtest.Render(t, risk.ErrorCase(v))
	webtest.One(t, doc, "resolve-form")
	webtest.One(t, doc, "event-opened")
	if got := webtest.Text(webtest.One(t, doc, "case-amount")); got != "100.50" {
		t.Errorf("amount %q", got)
	}
	v.Case.Status, v.Case.ResolvedBy, v.Case.ResolvedAt, v.Case.Resolution, v.Case.NotAtFault = cardpay.ErrorResolved, "risk#3 Li", at, "withdrawn", true
	doc = webtest.Render(t, risk.ErrorCase(v))
	if n := len(webtest.ByTestID(doc, "resolve-form")); n != 0 {
		t.Error("a closed case offers the close form")
	}
	if got := webtest.Text(webtest.One(t, doc, "case-resolution")); got != "withdrawn" {
		t.Errorf("resolution %q", got)
	}
	if !strings.Contains(webtest.Text(webtest.One(t, doc, "case")), "not at fault") {
		t.Error("not at fault not shown")
	}
}

func TestMerchantView(t *testing.T) {
	v := risk.MerchantView{Page: page, Org: "ORG1", Merchant: "M1", Found: true, Level: "101",
		History: []cardpay.LevelChange{{ID: 3, OrgID: "ORG1", MerchantID: "M1", From: "101", To: "202", Reason: "request #88", Actor: "risk#3 Li", At: at}}}
	doc := webtest.Render(t, risk.Merchant(v))
	if got := webtest.Text(webtest.One(t, doc, "current-level")); got != "ORG1/M1 is at level 101 ." {
		t.Errorf("current %q", got)
	}
	webtest.One(t, doc, "level-form")
	if got := webtest.Text(webtest.One(t, doc, "level-change-3")); got != "2026-12-01 09:30 UTC 101 202 risk#3 Li request #88" {
		t.Errorf("history %q", got)
	}
	v.Found, v.Code, v.Error = false, "not_found", "no merchant ORG1/M1"
	doc = webtest.Render(t, risk.Merchant(v))
	if n := len(webtest.ByTestID(doc, "level-form")); n != 0 {
		t.Error("an unknown merchant gets the level form")
	}
	webtest.One(t, doc, "form-error")
}
