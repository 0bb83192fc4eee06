package risk

import (
	"net/url"

	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/web/layout"
)

// Field kinds of a rule form.
const (
	KindYuan = "yuan" // an amount, entered in yuan with at most two decimals, stored in fen
	KindInt  = "int"
	KindBool = "bool"
	KindText = "text"
	KindCard = "card" // the card kind a class needs: "", credit, debit
)

// Field is one input of a rule form.
type Field struct {
	Name    string // the form name, which is the rule's column (per_day, ...)
	Label   string
	Kind    string
	Value   string // as entered, or as stored ("50000.00" for amounts)
	Checked bool   // KindBool
	Stored  string // after a conflict: the value stored now, when it differs
	Problem string // why the value was refused ("" when fine)
}

// FormView is the editor of one rule row (a card class, a terminal type or
// a user level) with the row's change history.
type FormView struct {
	Page    layout.Page
	Table   string // cardpay.RiskTable*
	Key     string // the class, terminal type or level
	Title   string
	Action  string // where the form posts
	Version int64  // the version the form edits
	Stamp   cardpay.RiskStamp
	Fields  []Field
	Reason  string
	// ReasonProblem says why the reason was refused.
	ReasonProblem string
	// Code and Error are a refusal of the whole form (conflict, invalid):
	// the stable code and its message.
	Code, Error string
	Saved       bool // the edit was stored (Stamp is the new version)
	Unchanged   bool // the edit changed no value: nothing was stored
	Changes     []cardpay.RiskChange
}

// RulesView is the risk desk's front page: every rule and the latest
// changes.
type RulesView struct {
	Page    layout.Page
	Rules   cardpay.RiskRuleSet
	Changes []cardpay.RiskChange
}

// HistoryView lists rule changes, newest first, a page at a time.
type HistoryView struct {
	Page       layout.Page
	Table, Key string // the filter ("" for all)
	Changes    []cardpay.RiskChange
	Next       string // the next (older) page's URL; "" at the end
}

// TableLabel names a rule table for people.
func TableLabel(table string) string {
	switch table {
	case cardpay.RiskTableClass:
		return "Card class"
	case cardpay.RiskTableTerminalType:
		return "Terminal type"
	case cardpay.RiskTableUserLevel:
		return "User level"
	}
	return table
}

// RulePath is the editor page of a rule row.
func RulePath(table, key string) string {
	switch table {
	case cardpay.RiskTableClass:
		return "/risk/classes/" + url.PathEscape(key)
	case cardpay.RiskTableTerminalType:
		return "/risk/terminals/" + url.PathEscape(key)
	case cardpay.RiskTableUserLevel:
		return "/risk/levels/" + url.PathEscape(key)
	}
	return "/risk/"
}

// ChangeValue formats a history value (amounts in yuan).
func ChangeValue(v string, fen bool) string {
	if v == "" {
		return "—"
	}
	return fenText(v, fen)
}

// Conditions summarises what a card needs for a class.
func Conditions(c cardpay.RiskClass) []string {
	var out []string
	if c.NeedCreditOK {
		out = append(out, "credit-card verification")
	}
	if c.NeedBound {
		out = append(out, "three-way bound")
	}
	if c.NeedKind != "" {
		out = append(out, c.NeedKind+" card")
	}
	if c.NeedChip {
		out = append(out, "chip")
	}
	if c.MinCumulative > 0 {
		out = append(out, "cumulative ≥ "+FormatYuan(c.MinCumulative))
	}
	if c.MinCleanDays > 0 {
		out = append(out, itoa(int64(c.MinCleanDays))+" days without an erroneous transaction")
	}
	if len(out) == 0 {
		out = append(out, "any card")
	}
	return out
}
