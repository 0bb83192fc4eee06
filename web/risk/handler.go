// Package risk is the risk staff's desk: the card core's risk rules (card
// classes with their limits and upgrade conditions, terminal-type limits,
// user levels' T0 limits; SPEC section 8, seed 风控规则) shown and edited
// with htmx forms, each change with a reason and in the history. Only risk
// staff and admins see it; staff log in at /portal/login. Mounted at /risk
// behind the session middleware; every form carries the staff session's
// CSRF token (portal.CSRF).
//
// Amounts are shown and entered in yuan with two decimals and stored in
// fen (ParseYuan states the rule). Edits are optimistic: a form posts the
// version it showed, and a row changed meanwhile is refused with code
// conflict, showing the values stored now.
//
//	r.Mount("/risk", risk.New(risk.Deps{Desk: svc.RiskDesk()}))
package risk

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/marketplace"
	"github.com/jifu-open/jifu/web/layout"
	"github.com/jifu-open/jifu/web/portal"
	"github.com/jifu-open/jifu/web/respond"
	"github.com/jifu-open/jifu/web/session"
)

// Desk is what the pages need of the card core's rules
// (*cardpay.RiskDesk implements it).
type Desk interface {
	Rules(ctx context.Context) (cardpay.RiskRuleSet, error)
	Class(ctx context.Context, class string) (cardpay.RiskClass, error)
	TerminalType(ctx context.Context, typ string) (cardpay.RiskTerminalType, error)
	UserLevel(ctx context.Context, level string) (cardpay.RiskUserLevel, error)
	UpdateClass(ctx context.Context, c cardpay.RiskClass, e cardpay.RiskEdit) (cardpay.RiskClass, error)
	UpdateTerminalType(ctx context.Context, t cardpay.RiskTerminalType, e cardpay.RiskEdit) (cardpay.RiskTerminalType, error)
	UpdateUserLevel(ctx context.Context, l cardpay.RiskUserLevel, e cardpay.RiskEdit) (cardpay.RiskUserLevel, error)
	Changes(ctx context.Context, f cardpay.RiskChangeFilter) ([]cardpay.RiskChange, error)
}

// Deps are the desk's dependencies.
type Deps struct {
	Desk Desk
	// Cases, when set, adds the 差错 queue (/risk/errors) and the user-level
	// form (/risk/merchants).
	Cases  Cases
	Logger *slog.Logger
	Outbox bool // the local SMS outbox is in use: the navigation links it
}

type handler struct{ Deps }

// New returns the desk's handler, to be mounted at /risk behind the
// session middleware.
func New(d Deps) http.Handler {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{Deps: d}
	r := chi.NewRouter()
	r.Use(portal.CSRF(d.Logger, d.Outbox, 64<<10))
	r.Get("/", h.rules)
	r.Get("/history", h.history)
	for _, t := range h.tables() {
		r.Get("/"+t.path+"/{key}", t.show)
		r.Post("/"+t.path+"/{key}", t.save)
	}
	if d.Cases != nil {
		h.casesRoutes(r)
	}
	return r
}

func (h *handler) page(r *http.Request, title string) layout.Page {
	return portal.StaffPage(r, layout.AreaPortal, title, h.Outbox)
}

func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	if jifu.ErrorCode(err) == jifu.CodeDenied { // the desk is no way on
		respond.Error(w, r, h.Logger, h.page(r, "Error"), err, "/portal/", "Back to the portal")
		return
	}
	respond.Error(w, r, h.Logger, h.page(r, "Error"), err, "/risk/", "Back to the risk rules")
}

// staff returns the logged-in risk officer or admin. A visitor is sent to
// the login page; other staff are refused (403, denied).
func (h *handler) staff(w http.ResponseWriter, r *http.Request) (marketplace.Actor, bool) {
	s, ok := session.Staff(r)
	if !ok {
		if r.Method == http.MethodGet {
			respond.Redirect(w, r, "/portal/login?next="+url.QueryEscape(r.URL.RequestURI()))
		} else {
			h.fail(w, r, jifu.Errorf(jifu.CodeDenied, "please log in first"))
		}
		return marketplace.Actor{}, false
	}
	if !s.Actor.Is(marketplace.RoleRisk, marketplace.RoleAdmin) {
		h.fail(w, r, jifu.Errorf(jifu.CodeDenied, "only risk staff and admins see the risk rules"))
		return marketplace.Actor{}, false
	}
	return s.Actor, true
}

// actorName is how the history names a member of staff.
func actorName(a marketplace.Actor) string {
	return fmt.Sprintf("%s#%d %s", a.Role, a.AccountID, a.Name)
}

func (h *handler) rules(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.staff(w, r); !ok {
		return
	}
	rs, err := h.Desk.Rules(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	cs, err := h.Desk.Changes(r.Context(), cardpay.RiskChangeFilter{Limit: 10})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	respond.Page(w, r, http.StatusOK, Rules(RulesView{Page: h.page(r, "Risk rules"), Rules: rs, Changes: cs}))
}

const historyPage = 50

func (h *handler) history(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.staff(w, r); !ok {
		return
	}
	q := r.URL.Query()
	f := cardpay.RiskChangeFilter{Table: q.Get("table"), Key: q.Get("key"), Limit: historyPage}
	if b := q.Get("before"); b != "" {
		id, err := strconv.ParseInt(b, 10, 64)
		if err != nil || id <= 0 {
			h.fail(w, r, jifu.Errorf(jifu.CodeInvalid, "before must be a change number"))
			return
		}
		f.BeforeID = id
	}
	cs, err := h.Desk.Changes(r.Context(), f)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v := HistoryView{Page: h.page(r, "Rule changes"), Table: f.Table, Key: f.Key, Changes: cs}
	if len(cs) == historyPage {
		next := url.Values{"before": {itoa(cs[len(cs)-1].ID)}}
		if f.Table != "" {
			next.Set("table", f.Table)
		}
		if f.Key != "" {
			next.Set("key", f.Key)
		}
		v.Next = "/risk/history?" + next.Encode()
	}
	respond.Page(w, r, http.StatusOK, History(v))
}

// table is one editable rule table: how its rows become form fields and
// back.
type table struct {
	h     *handler
	name  string // cardpay.RiskTable*
	path  string // under /risk/
	label string
	// load returns the stored row's fields and stamp.
	load func(ctx context.Context, key string) ([]Field, cardpay.RiskStamp, error)
	// store parses the form (problems by field) and, when it parses, updates
	// the row; it returns the fields and stamp of the row stored after the
	// edit (the current row on a conflict).
	store func(ctx context.Context, key string, version int64, f *form, e cardpay.RiskEdit) ([]Field, cardpay.RiskStamp, error)
}

func (h *handler) tables() []*table {
	d := func() Desk { return h.Desk }
	return []*table{
		{h: h, name: cardpay.RiskTableClass, path: "classes", label: "Card class",
			load: func(ctx context.Context, key string) ([]Field, cardpay.RiskStamp, error) {
				c, err := d().Class(ctx, key)
				return classFields(c), c.RiskStamp, err
			},
			store: func(ctx context.Context, key string, version int64, f *form, e cardpay.RiskEdit) ([]Field, cardpay.RiskStamp, error) {
				c := cardpay.RiskClass{Class: key, Priority: f.int("priority"), PerTx: f.yuan("per_tx"), PerDay: f.yuan("per_day"),
					PerMonth: f.yuan("per_month"), T0PerDay: f.yuan("t0_per_day"), NeedCreditOK: f.bool("need_credit_ok"),
					NeedBound: f.bool("need_bound"), NeedKind: f.text("need_kind"), NeedChip: f.bool("need_chip"),
					MinCumulative: f.yuan("min_cumulative"), MinCleanDays: f.int("min_clean_days"), How: f.text("how")}
				c.Version = version
				if err := f.err(); err != nil {
					return nil, cardpay.RiskStamp{}, err
				}
				c, err := d().UpdateClass(ctx, c, e)
				return classFields(c), c.RiskStamp, err
			}},
		{h: h, name: cardpay.RiskTableTerminalType, path: "terminals", label: "Terminal type",
			load: func(ctx context.Context, key string) ([]Field, cardpay.RiskStamp, error) {
				t, err := d().TerminalType(ctx, key)
				return typeFields(t), t.RiskStamp, err
			},
			store: func(ctx context.Context, key string, version int64, f *form, e cardpay.RiskEdit) ([]Field, cardpay.RiskStamp, error) {
				t := cardpay.RiskTerminalType{TerminalType: key, PerTx: f.yuan("per_tx"), PerDay: f.yuan("per_day"), PerMonth: f.yuan("per_month")}
				t.Version = version
				if err := f.err(); err != nil {
					return nil, cardpay.RiskStamp{}, err
				}
				t, err := d().UpdateTerminalType(ctx, t, e)
				return typeFields(t), t.RiskStamp, err
			}},
		{h: h, name: cardpay.RiskTableUserLevel, path: "levels", label: "User level",
			load: func(ctx context.Context, key string) ([]Field, cardpay.RiskStamp, error) {
				l, err := d().UserLevel(ctx, key)
				return levelFields(l), l.RiskStamp, err
			},
			store: func(ctx context.Context, key string, version int64, f *form, e cardpay.RiskEdit) ([]Field, cardpay.RiskStamp, error) {
				l := cardpay.RiskUserLevel{Level: key, T0PerDay: f.yuan("t0_per_day"), How: f.text("how"), UpgradeFrom: f.text("upgrade_from"),
					MinT0Cumulative: f.yuan("min_t0_cumulative"), MinCleanDays: f.int("min_clean_days")}
				l.Version = version
				if err := f.err(); err != nil {
					return nil, cardpay.RiskStamp{}, err
				}
				l, err := d().UpdateUserLevel(ctx, l, e)
				return levelFields(l), l.RiskStamp, err
			}},
	}
}

func classFields(c cardpay.RiskClass) []Field {
	return []Field{
		{Name: "priority", Label: "Priority (the lowest whose conditions hold wins)", Kind: KindInt, Value: itoa(int64(c.Priority))},
		{Name: "per_tx", Label: "Per transaction (元)", Kind: KindYuan, Value: InputYuan(c.PerTx)},
		{Name: "per_day", Label: "Per day (元)", Kind: KindYuan, Value: InputYuan(c.PerDay)},
		{Name: "per_month", Label: "Per month (元)", Kind: KindYuan, Value: InputYuan(c.PerMonth)},
		{Name: "t0_per_day", Label: "T0 per day (元)", Kind: KindYuan, Value: InputYuan(c.T0PerDay)},
		{Name: "need_credit_ok", Label: "Needs credit-card verification", Kind: KindBool, Checked: c.NeedCreditOK},
		{Name: "need_bound", Label: "Needs the three-way binding (card–phone–reader)", Kind: KindBool, Checked: c.NeedBound},
		{Name: "need_kind", Label: "Card kind", Kind: KindCard, Value: c.NeedKind},
		{Name: "need_chip", Label: "Needs a chip card", Kind: KindBool, Checked: c.NeedChip},
		{Name: "min_cumulative", Label: "Cumulative approved volume at least (元)", Kind: KindYuan, Value: InputYuan(c.MinCumulative)},
		{Name: "min_clean_days", Label: "Days without an erroneous transaction at least", Kind: KindInt, Value: itoa(int64(c.MinCleanDays))},
		{Name: "how", Label: "How a card gets it (shown to staff)", Kind: KindText, Value: c.How},
	}
}

func typeFields(t cardpay.RiskTerminalType) []Field {
	return []Field{
		{Name: "per_tx", Label: "Per transaction (元)", Kind: KindYuan, Value: InputYuan(t.PerTx)},
		{Name: "per_day", Label: "Per day (元)", Kind: KindYuan, Value: InputYuan(t.PerDay)},
		{Name: "per_month", Label: "Per month (元)", Kind: KindYuan, Value: InputYuan(t.PerMonth)},
	}
}

func levelFields(l cardpay.RiskUserLevel) []Field {
	return []Field{
		{Name: "t0_per_day", Label: "T0 per day (元)", Kind: KindYuan, Value: InputYuan(l.T0PerDay)},
		{Name: "how", Label: "How a user gets it (shown to staff)", Kind: KindText, Value: l.How},
		{Name: "upgrade_from", Label: "Reached automatically from level (empty: set by risk staff or verification)", Kind: KindText, Value: l.UpgradeFrom},
		{Name: "min_t0_cumulative", Label: "… once its T0 volume is at least (元)", Kind: KindYuan, Value: InputYuan(l.MinT0Cumulative)},
		{Name: "min_clean_days", Label: "… and it has this many days without an erroneous transaction", Kind: KindInt, Value: itoa(int64(l.MinCleanDays))},
	}
}

// form reads a posted rule form, collecting a problem per field that does
// not parse.
type form struct {
	r        *http.Request
	problems map[string]string
}

func (f *form) problem(name, msg string) {
	if f.problems == nil {
		f.problems = map[string]string{}
	}
	f.problems[name] = msg
}

func (f *form) text(name string) string { return strings.TrimSpace(f.r.PostFormValue(name)) }

func (f *form) bool(name string) bool {
	v := f.r.PostFormValue(name)
	return v == "on" || v == "true" || v == "1"
}

func (f *form) yuan(name string) int64 {
	n, err := ParseYuan(f.r.PostFormValue(name))
	if err != nil {
		f.problem(name, respond.Message(err))
	}
	return n
}

func (f *form) int(name string) int {
	n, err := strconv.Atoi(f.text(name))
	if err != nil || n < 0 {
		f.problem(name, "write a whole number such as 10")
	}
	return n
}

func (f *form) err() error {
	if len(f.problems) == 0 {
		return nil
	}
	return jifu.Errorf(jifu.CodeInvalid, "some values could not be read")
}

func (t *table) key(r *http.Request) (string, error) {
	k, err := url.PathUnescape(chi.URLParam(r, "key"))
	if err != nil || k == "" {
		return "", jifu.Errorf(jifu.CodeNotFound, "no such %s", strings.ToLower(t.label))
	}
	return k, nil
}

func (t *table) view(r *http.Request, key string) FormView {
	title := t.label + " " + key
	return FormView{Page: t.h.page(r, title), Table: t.name, Key: key, Title: title, Action: RulePath(t.name, key)}
}

func (t *table) changes(ctx context.Context, v *FormView) error {
	cs, err := t.h.Desk.Changes(ctx, cardpay.RiskChangeFilter{Table: t.name, Key: v.Key, Limit: 20})
	v.Changes = cs
	return err
}

func (t *table) show(w http.ResponseWriter, r *http.Request) {
	if _, ok := t.h.staff(w, r); !ok {
		return
	}
	key, err := t.key(r)
	if err != nil {
		t.h.fail(w, r, err)
		return
	}
	v := t.view(r, key)
	if v.Fields, v.Stamp, err = t.load(r.Context(), key); err != nil {
		t.h.fail(w, r, err)
		return
	}
	v.Version = v.Stamp.Version
	switch r.URL.Query().Get("done") {
	case "saved":
		v.Saved = true
	case "unchanged":
		v.Unchanged = true
	}
	if err := t.changes(r.Context(), &v); err != nil {
		t.h.fail(w, r, err)
		return
	}
	respond.Page(w, r, http.StatusOK, Editor(v))
}

// save stores an edit. With htmx (HX-Request) it answers the editor
// fragment, always 200 so that htmx swaps it in (the refusal's code is in
// the fragment); without, a redirect after success and the whole page with
// the refusal's status otherwise.
func (t *table) save(w http.ResponseWriter, r *http.Request) {
	a, ok := t.h.staff(w, r)
	if !ok {
		return
	}
	key, err := t.key(r)
	if err != nil {
		t.h.fail(w, r, err)
		return
	}
	v := t.view(r, key)
	f := &form{r: r}
	version, verr := strconv.ParseInt(r.PostFormValue("version"), 10, 64)
	if verr != nil {
		t.h.fail(w, r, jifu.Errorf(jifu.CodeInvalid, "the form has no version: reload the page"))
		return
	}
	v.Reason = strings.TrimSpace(r.PostFormValue("reason"))
	stored, stamp, err := t.store(r.Context(), key, version, f, cardpay.RiskEdit{Actor: actorName(a), Reason: v.Reason})
	htmx := r.Header.Get("HX-Request") == "true"
	switch code := jifu.ErrorCode(err); code {
	case "":
		v.Fields, v.Stamp, v.Version, v.Reason = stored, stamp, stamp.Version, ""
		v.Saved = stamp.Version != version
		v.Unchanged = !v.Saved
		if !htmx {
			done := "saved"
			if v.Unchanged {
				done = "unchanged"
			}
			respond.Redirect(w, r, RulePath(t.name, key)+"?done="+done)
			return
		}
	case jifu.CodeInvalid, jifu.CodeConflict:
		v.Code, v.Error = code, respond.Message(err)
		v.Fields, v.Version = entered(r, fieldsOf(t, stored)), version
		for _, p := range cardpay.RiskProblems(err) {
			f.problem(p.Field, p.Message)
		}
		for i := range v.Fields {
			v.Fields[i].Problem = f.problems[v.Fields[i].Name]
		}
		v.ReasonProblem = f.problems["reason"]
		if msg := f.problems["actor"]; msg != "" {
			v.Error += " (your account: " + msg + ")"
		}
		if code == jifu.CodeConflict {
			v.Stamp = stamp
			markStored(v.Fields, stored)
		} else if _, v.Stamp, err = t.load(r.Context(), key); err != nil {
			t.h.fail(w, r, err)
			return
		}
	default:
		t.h.fail(w, r, err)
		return
	}
	if err := t.changes(r.Context(), &v); err != nil {
		t.h.fail(w, r, err)
		return
	}
	if htmx {
		respond.Page(w, r, http.StatusOK, EditorBody(v))
		return
	}
	respond.Page(w, r, respond.Status(v.Code), Editor(v))
}

// fieldsOf is the table's field list: the stored row's when there is one,
// else the list of an empty row.
func fieldsOf(t *table, stored []Field) []Field {
	if stored != nil {
		out := make([]Field, len(stored))
		copy(out, stored)
		return out
	}
	switch t.name {
	case cardpay.RiskTableClass:
		return classFields(cardpay.RiskClass{})
	case cardpay.RiskTableTerminalType:
		return typeFields(cardpay.RiskTerminalType{})
	}
	return levelFields(cardpay.RiskUserLevel{})
}

// entered puts the values as posted into fs (for showing a refused form).
func entered(r *http.Request, fs []Field) []Field {
	for i := range fs {
		v := r.PostFormValue(fs[i].Name)
		if fs[i].Kind == KindBool {
			fs[i].Checked = v == "on" || v == "true" || v == "1"
			fs[i].Value = ""
		} else {
			fs[i].Value = v
		}
	}
	return fs
}

// markStored notes beside each field the value stored now when it differs
// from the one entered.
func markStored(fs, stored []Field) {
	for i := range fs {
		if i >= len(stored) {
			return
		}
		s := stored[i]
		switch {
		case fs[i].Kind == KindBool && fs[i].Checked != s.Checked:
			fs[i].Stored = strconv.FormatBool(s.Checked)
		case fs[i].Kind != KindBool && strings.TrimSpace(fs[i].Value) != s.Value:
			fs[i].Stored = s.Value
			if s.Value == "" {
				fs[i].Stored = "(empty)"
			}
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
