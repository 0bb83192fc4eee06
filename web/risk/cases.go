package risk

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/web/layout"
	"github.com/jifu-open/jifu/web/respond"
)

// Cases is what the 差错 queue and the user-level form need of the card
// core (*cardpay.Desk implements it).
type Cases interface {
	ListErrors(ctx context.Context, f cardpay.ErrorFilter) (cardpay.ErrorPage, error)
	GetError(ctx context.Context, id int64) (cardpay.ErrorCase, []cardpay.ErrorEvent, error)
	OpenError(ctx context.Context, in cardpay.NewError) (cardpay.ErrorCase, error)
	ResolveError(ctx context.Context, id int64, r cardpay.Resolution) (cardpay.ErrorCase, error)
	UserLevel(ctx context.Context, org, merchant string) (string, error)
	SetUserLevel(ctx context.Context, org, merchant, level, reason, actor string) (cardpay.LevelChange, error)
	UserLevelHistory(ctx context.Context, org, merchant string) ([]cardpay.LevelChange, error)
}

// OnRequestLevels are the user levels risk staff set on a customer's
// request (seed 风控规则: 201–203 根据客户大额交易的需求, 风控业务人员处理).
// Other levels come from the upgrade job (102, 103) or verification (301,
// 302); `jifu card level set` sets any level.
var OnRequestLevels = []string{"201", "202", "203"}

// beijing is the business day's zone: filters name Beijing dates.
var beijing = time.FixedZone("CST", 8*3600)

const casesPage = 50

// ErrorFilterForm is the queue's filter as entered.
type ErrorFilterForm struct {
	Status, Kind, Org, Merchant, From, To string
}

// ErrorsView is the 差错 queue: erroneous transactions, newest first.
type ErrorsView struct {
	Page        layout.Page
	Filter      ErrorFilterForm
	Cases       []cardpay.ErrorCase
	Total       int
	Prev, Next  string // other pages' URLs ("" for none)
	First, Last int    // the rows shown, 1-based
	Code, Error string // the filter was refused
}

// ErrorView is one erroneous transaction, its audit trail and, while it is
// open, the form that closes it.
type ErrorView struct {
	Page   layout.Page
	Case   cardpay.ErrorCase
	Events []cardpay.ErrorEvent
	// The close form as entered, and why it was refused.
	Status      string
	NotAtFault  bool
	Note        string
	Code, Error string
	Done        string // "opened" or "closed" after a redirect
}

// OpenForm is the form that records an erroneous transaction raised by
// the acquirer (调单, 拒付, a dispute) as entered.
type OpenForm struct {
	Kind, Ref, RRN, Org, Merchant, Order, Amount, Day, Note string
}

// OpenView is the page of OpenForm.
type OpenView struct {
	Page        layout.Page
	Form        OpenForm
	Code, Error string
}

// MerchantView is a user's (merchant's) level, its history and the form
// that sets an on-request level.
type MerchantView struct {
	Page          layout.Page
	Org, Merchant string
	Found         bool
	Level         string
	History       []cardpay.LevelChange
	NewLevel      string // as entered
	Reason        string
	Code, Error   string
	Done          bool
}

// KindLabel names a kind of erroneous transaction in the seed's words.
func KindLabel(k string) string {
	switch k {
	case cardpay.ErrorLong:
		return "长款 (in the acquirer's file only)"
	case cardpay.ErrorShort:
		return "短款 (in our records only)"
	case cardpay.ErrorAmountMismatch:
		return "金额不符 (amounts differ)"
	case cardpay.ErrorReversalUnanswered:
		return "冲正未应答 (reversal unanswered)"
	case cardpay.ErrorRetrievalRequest:
		return "调单 (retrieval request)"
	case cardpay.ErrorChargeback:
		return "拒付 (chargeback)"
	case cardpay.ErrorLedgerMismatch:
		return "账务不符 (ledger differs from our records)"
	case cardpay.ErrorDispute:
		return "持卡人争议 (cardholder dispute)"
	}
	return k
}

// MerchantPath is the user-level page of a merchant.
func MerchantPath(org, merchant string) string {
	return "/risk/merchants?" + url.Values{"org": {org}, "merchant": {merchant}}.Encode()
}

// Day formats a business day.
func Day(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(beijing).Format(time.DateOnly)
}

func (h *handler) casesRoutes(r chi.Router) {
	r.Get("/errors", h.errors)
	r.Get("/errors/new", h.newError)
	r.Post("/errors", h.openError)
	r.Get("/errors/{id}", h.errorCase)
	r.Post("/errors/{id}/resolve", h.resolveError)
	r.Get("/merchants", h.merchant)
	r.Post("/merchants/level", h.setLevel)
}

func parseDay(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.ParseInLocation(time.DateOnly, s, beijing)
	if err != nil {
		return t, jifu.Errorf(jifu.CodeInvalid, "a day is written 2026-12-01, not %q", clip(s))
	}
	return t, nil
}

func (h *handler) errors(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.staff(w, r); !ok {
		return
	}
	q := r.URL.Query()
	v := ErrorsView{Page: h.page(r, "差错 queue"), Filter: ErrorFilterForm{Status: q.Get("status"), Kind: q.Get("kind"),
		Org: strings.TrimSpace(q.Get("org")), Merchant: strings.TrimSpace(q.Get("merchant")), From: q.Get("from"), To: q.Get("to")}}
	if _, set := q["status"]; !set {
		v.Filter.Status = cardpay.ErrorOpen // the queue: what awaits staff
	}
	f := cardpay.ErrorFilter{Status: v.Filter.Status, Kind: v.Filter.Kind, OrgID: v.Filter.Org, MerchantID: v.Filter.Merchant, Limit: casesPage}
	pageNo, err := strconv.Atoi(q.Get("page"))
	if q.Get("page") == "" {
		pageNo, err = 1, nil
	}
	if err == nil && (pageNo < 1 || pageNo > 10000) {
		err = jifu.Errorf(jifu.CodeInvalid, "no such page")
	}
	if err == nil {
		f.Offset = (pageNo - 1) * casesPage
		if f.From, err = parseDay(v.Filter.From); err == nil {
			f.To, err = parseDay(v.Filter.To)
		}
	}
	var page cardpay.ErrorPage
	if err == nil {
		page, err = h.Cases.ListErrors(r.Context(), f)
	}
	switch code := jifu.ErrorCode(err); code {
	case "":
	case jifu.CodeInvalid:
		v.Code, v.Error = code, respond.Message(err)
		respond.Page(w, r, http.StatusBadRequest, Errors(v))
		return
	default:
		h.fail(w, r, err)
		return
	}
	v.Cases, v.Total = page.Cases, page.Total
	if len(v.Cases) > 0 {
		v.First, v.Last = f.Offset+1, f.Offset+len(v.Cases)
	}
	link := func(n int) string {
		u := url.Values{"status": {v.Filter.Status}, "page": {strconv.Itoa(n)}}
		for k, x := range map[string]string{"kind": v.Filter.Kind, "org": v.Filter.Org, "merchant": v.Filter.Merchant, "from": v.Filter.From, "to": v.Filter.To} {
			if x != "" {
				u.Set(k, x)
			}
		}
		return "/risk/errors?" + u.Encode()
	}
	if pageNo > 1 {
		v.Prev = link(pageNo - 1)
	}
	if f.Offset+len(v.Cases) < page.Total {
		v.Next = link(pageNo + 1)
	}
	respond.Page(w, r, http.StatusOK, Errors(v))
}

func caseID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, jifu.Errorf(jifu.CodeNotFound, "no such erroneous transaction")
	}
	return id, nil
}

func (h *handler) errorCase(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.staff(w, r); !ok {
		return
	}
	id, err := caseID(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v := ErrorView{Page: h.page(r, "差错 "+itoa(id)), Status: cardpay.ErrorResolved, Done: r.URL.Query().Get("done")}
	if v.Case, v.Events, err = h.Cases.GetError(r.Context(), id); err != nil {
		h.fail(w, r, err)
		return
	}
	respond.Page(w, r, http.StatusOK, ErrorCase(v))
}

func (h *handler) resolveError(w http.ResponseWriter, r *http.Request) {
	a, ok := h.staff(w, r)
	if !ok {
		return
	}
	id, err := caseID(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v := ErrorView{Page: h.page(r, "差错 "+itoa(id)), Status: r.PostFormValue("status"), NotAtFault: r.PostFormValue("not_at_fault") == "on",
		Note: strings.TrimSpace(r.PostFormValue("note"))}
	_, err = h.Cases.ResolveError(r.Context(), id, cardpay.Resolution{Status: v.Status, NotAtFault: v.NotAtFault, Actor: actorName(a), Note: v.Note})
	code := jifu.ErrorCode(err)
	switch code {
	case "":
		respond.Redirect(w, r, "/risk/errors/"+itoa(id)+"?done=closed")
		return
	case jifu.CodeInvalid, jifu.CodeConflict:
		v.Code, v.Error = code, respond.Message(err)
	default:
		h.fail(w, r, err)
		return
	}
	if v.Case, v.Events, err = h.Cases.GetError(r.Context(), id); err != nil {
		h.fail(w, r, err)
		return
	}
	respond.Page(w, r, respond.Status(code), ErrorCase(v))
}

func (h *handler) newError(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.staff(w, r); !ok {
		return
	}
	respond.Page(w, r, http.StatusOK, OpenError(OpenView{Page: h.page(r, "Record an erroneous transaction"),
		Form: OpenForm{Kind: cardpay.ErrorChargeback}}))
}

func (h *handler) openError(w http.ResponseWriter, r *http.Request) {
	a, ok := h.staff(w, r)
	if !ok {
		return
	}
	v := OpenView{Page: h.page(r, "Record an erroneous transaction")}
	t := func(name string) string { return strings.TrimSpace(r.PostFormValue(name)) }
	v.Form = OpenForm{Kind: t("kind"), Ref: t("ref"), RRN: t("rrn"), Org: t("org"), Merchant: t("merchant"), Order: t("order"),
		Amount: t("amount"), Day: t("day"), Note: t("note")}
	in := cardpay.NewError{Kind: v.Form.Kind, Ref: v.Form.Ref, RRN: v.Form.RRN, OrgID: v.Form.Org, MerchantID: v.Form.Merchant,
		OrderID: v.Form.Order, Note: v.Form.Note, Actor: actorName(a)}
	var err error
	if v.Form.Amount != "" {
		in.Amount, err = ParseYuan(v.Form.Amount)
	}
	if err == nil {
		in.At, err = parseDay(v.Form.Day)
	}
	var c cardpay.ErrorCase
	if err == nil {
		c, err = h.Cases.OpenError(r.Context(), in)
	}
	switch code := jifu.ErrorCode(err); code {
	case "":
		respond.Redirect(w, r, "/risk/errors/"+itoa(c.ID)+"?done=opened")
	case jifu.CodeInvalid, jifu.CodeNotFound, jifu.CodeConflict:
		v.Code, v.Error = code, respond.Message(err)
		respond.Page(w, r, respond.Status(code), OpenError(v))
	default:
		h.fail(w, r, err)
	}
}

func (h *handler) merchant(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.staff(w, r); !ok {
		return
	}
	q := r.URL.Query()
	v := MerchantView{Page: h.page(r, "User level"), Org: strings.TrimSpace(q.Get("org")), Merchant: strings.TrimSpace(q.Get("merchant")),
		Done: q.Get("done") == "level"}
	status, err := h.loadMerchant(r.Context(), &v)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	respond.Page(w, r, status, Merchant(v))
}

// loadMerchant fills the merchant's level and history and returns the
// page's status: a merchant that is not there is an inline not_found. err
// is any other failure.
func (h *handler) loadMerchant(ctx context.Context, v *MerchantView) (int, error) {
	if v.Org == "" || v.Merchant == "" {
		return http.StatusOK, nil
	}
	level, err := h.Cases.UserLevel(ctx, v.Org, v.Merchant)
	if err == nil {
		v.History, err = h.Cases.UserLevelHistory(ctx, v.Org, v.Merchant)
	}
	code := jifu.ErrorCode(err)
	switch code {
	case "":
		v.Found, v.Level = true, level
		return http.StatusOK, nil
	case jifu.CodeNotFound, jifu.CodeInvalid:
		v.Code, v.Error = code, respond.Message(err)
		return respond.Status(code), nil
	}
	return 0, err
}

func (h *handler) setLevel(w http.ResponseWriter, r *http.Request) {
	a, ok := h.staff(w, r)
	if !ok {
		return
	}
	t := func(name string) string { return strings.TrimSpace(r.PostFormValue(name)) }
	v := MerchantView{Page: h.page(r, "User level"), Org: t("org"), Merchant: t("merchant"), NewLevel: t("level"), Reason: t("reason")}
	var err error
	if !slices.Contains(OnRequestLevels, v.NewLevel) {
		err = jifu.Errorf(jifu.CodeInvalid, "risk staff set %s on request here; other levels come from upgrades and verification",
			strings.Join(OnRequestLevels, ", "))
	} else {
		_, err = h.Cases.SetUserLevel(r.Context(), v.Org, v.Merchant, v.NewLevel, v.Reason, actorName(a))
	}
	code := jifu.ErrorCode(err)
	switch code {
	case "":
		respond.Redirect(w, r, "/risk/merchants?"+url.Values{"org": {v.Org}, "merchant": {v.Merchant}, "done": {"level"}}.Encode())
		return
	case jifu.CodeInvalid, jifu.CodeNotFound, jifu.CodeConflict:
	default:
		h.fail(w, r, err)
		return
	}
	if _, err := h.loadMerchant(r.Context(), &v); err != nil {
		h.fail(w, r, err)
		return
	}
	v.Code, v.Error = code, respond.Message(err)
	respond.Page(w, r, respond.Status(code), Merchant(v))
}
