// Command utility is the first-party utility-payments app (便民缴费, SPEC
// 7.1): mobile top-up and electricity, water and gas bills. The app looks the
// bill up (demo biller data in its configuration), asks the platform for a
// payment (payment_create) and sends the user to the platform's own
// confirmation page, where the user pays from the wallet balance, the credit
// line or both. The result comes back through on_event; the app keeps each
// user's orders (history and receipts) in its own store.
//
//	GET  /                               forms and the signed-in user's history
//	GET  /bill?type=electricity&account=E1001   the bill and a pay button
//	POST /pay      kind=bill&type=..&account=..  or  kind=topup&phone=..&amount=<fen>
//	               creates the order and the intent, 303 to the confirmation page
//	               (JSON {"order", "intent"} with Accept: application/json)
//	GET  /orders                         the user's orders as JSON
//	GET  /receipt?id=...                 a paid order's receipt
//
// Store layout: order/<user>/<order id> (JSON order; ids sort by time),
// paid/<type>/<account>/<period> (the order that paid a bill),
// open/<user>/<type>/<account>/<period> (a bill order waiting for payment).
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o app.wasm ./plugins/utility
package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"strconv"
	"strings"
	"time"

	"github.com/jifu-open/jifu/sdk"
)

func init() {
	sdk.HandleHTTP(route)
	sdk.OnEvent(onEvent)
}

func main() {}

// biller is one utility company of the demo data.
type biller struct {
	Name  string          `json:"name"`
	Bills map[string]bill `json:"bills"`
}

type bill struct {
	Holder string `json:"holder"`
	Period string `json:"period"`
	Due    int64  `json:"due"` // fen
}

// order is one payment the user started here.
type order struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`
	Kind      string    `json:"kind"` // bill, topup
	Type      string    `json:"type"` // electricity, water, gas, mobile
	Account   string    `json:"account"`
	Period    string    `json:"period,omitempty"`
	Payee     string    `json:"payee"` // the biller's or carrier's name, for people
	Amount    int64     `json:"amount"`
	Intent    string    `json:"intent"`
	Confirm   string    `json:"confirm_url"`
	Status    string    `json:"status"` // pending, paid, failed, expired, refunded, partially_refunded
	Method    string    `json:"method,omitempty"`
	Refunded  int64     `json:"refunded,omitempty"`
	Failure   string    `json:"failure,omitempty"`
	Receipt   string    `json:"receipt,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	PaidAt    time.Time `json:"paid_at,omitzero"`
}

var typeNames = map[string]string{"electricity": "电费 Electricity", "water": "水费 Water", "gas": "燃气费 Gas", "mobile": "话费 Mobile top-up"}

func route(r *sdk.Request) *sdk.Response {
	switch {
	case r.Path == "/" && r.Method == "GET":
		return home(r)
	case r.Path == "/bill" && r.Method == "GET":
		return billPage(r)
	case r.Path == "/pay" && r.Method == "POST":
		return pay(r)
	case r.Path == "/orders" && r.Method == "GET":
		if r.User == "" {
			return sdk.JSON(401, map[string]string{"error": "sign in first"})
		}
		orders, err := history(r.User)
		if err != nil {
			return failure(err)
		}
		return sdk.JSON(200, orders)
	case r.Path == "/receipt" && r.Method == "GET":
		return receipt(r)
	}
	return sdk.Text(404, "not found")
}

func loadBillers() (map[string]biller, error) {
	raw, err := sdk.Config("billers")
	if err != nil {
		return nil, err
	}
	var bs map[string]biller
	if err := json.Unmarshal([]byte(raw), &bs); err != nil {
		return nil, fmt.Errorf("config billers: %w", err)
	}
	return bs, nil
}

func topupAmounts() []int64 {
	raw, _ := sdk.Config("topup_amounts")
	var out []int64
	for _, f := range strings.Split(raw, ",") {
		if v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64); err == nil && v > 0 {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		out = []int64{3000, 5000, 10000}
	}
	return out
}

func yuan(fen int64) string { return fmt.Sprintf("¥%d.%02d", fen/100, fen%100) }

func esc(s string) string { return html.EscapeString(s) }

const head = `<!doctype html><html lang="zh"><head><meta charset="utf-8"><title>便民缴费 · Jifu</title>
<style>body{font-family:sans-serif;max-width:40rem;margin:2rem auto}table{border-collapse:collapse}td,th{padding:.2rem .6rem;border-bottom:1px solid #ddd}</style></head><body>`

func home(r *sdk.Request) *sdk.Response {
	var b strings.Builder
	b.WriteString(head)
	b.WriteString(`<h1>便民缴费 Utility payments</h1>`)
	b.WriteString(`<h2>查询账单 Look up a bill</h2><form method="get" action="bill"><select name="type">`)
	for _, t := range []string{"electricity", "water", "gas"} {
		fmt.Fprintf(&b, `<option value="%s">%s</option>`, t, esc(typeNames[t]))
	}
	b.WriteString(`</select> <input name="account" placeholder="E1001" required> <button>Look up</button></form>`)
	b.WriteString(`<h2>手机充值 Mobile top-up</h2><form method="post" action="pay"><input type="hidden" name="kind" value="topup">`)
	b.WriteString(`<input name="phone" placeholder="13800138000" pattern="1[0-9]{10}" required> <select name="amount">`)
	for _, a := range topupAmounts() {
		fmt.Fprintf(&b, `<option value="%d">%s</option>`, a, yuan(a))
	}
	b.WriteString(`</select> <button data-testid="topup">Top up</button></form>`)
	if r.User == "" {
		b.WriteString(`<p>Sign in to pay and to see your history.</p></body></html>`)
		return sdk.HTML(200, b.String())
	}
	orders, err := history(r.User)
	if err != nil {
		return failure(err)
	}
	b.WriteString(`<h2>缴费记录 History</h2><table data-testid="history"><tr><th>When</th><th>What</th><th>Amount</th><th>Status</th><th></th></tr>`)
	for i := len(orders) - 1; i >= 0; i-- {
		o := orders[i]
		link := ""
		switch o.Status {
		case "paid", "refunded", "partially_refunded":
			link = fmt.Sprintf(`<a href="receipt?id=%s">receipt</a>`, esc(o.ID))
		case "pending":
			link = fmt.Sprintf(`<a href="%s">pay now</a>`, esc(o.Confirm))
		}
		fmt.Fprintf(&b, `<tr><td>%s</td><td>%s %s</td><td>%s</td><td>%s</td><td>%s</td></tr>`,
			o.CreatedAt.Format("2006-01-02 15:04"), esc(typeNames[o.Type]), esc(o.Account), yuan(o.Amount), esc(o.Status), link)
	}
	b.WriteString(`</table></body></html>`)
	return sdk.HTML(200, b.String())
}

func billPage(r *sdk.Request) *sdk.Response {
	typ, account := r.Query("type"), r.Query("account")
	bs, err := loadBillers()
	if err != nil {
		return failure(err)
	}
	bl, ok := bs[typ]
	if !ok {
		return sdk.Text(404, "no such biller")
	}
	due, ok := bl.Bills[account]
	if !ok {
		return sdk.Text(404, "no bill for this account")
	}
	paidBy, err := paidOrder(typ, account, due.Period)
	if err != nil {
		return failure(err)
	}
	var b strings.Builder
	b.WriteString(head)
	fmt.Fprintf(&b, `<h1>%s</h1><dl><dt>Biller</dt><dd>%s</dd><dt>Account</dt><dd>%s (%s)</dd><dt>Period</dt><dd>%s</dd>
<dt>Amount due</dt><dd data-testid="due">%s</dd></dl>`, esc(typeNames[typ]), esc(bl.Name), esc(account), esc(due.Holder), esc(due.Period), yuan(due.Due))
	if paidBy != "" {
		b.WriteString(`<p data-testid="paid">This bill is paid.</p>`)
	} else {
		fmt.Fprintf(&b, `<form method="post" action="pay"><input type="hidden" name="kind" value="bill">
<input type="hidden" name="type" value="%s"><input type="hidden" name="account" value="%s">
<button data-testid="pay">Pay %s</button></form>`, esc(typ), esc(account), yuan(due.Due))
	}
	b.WriteString(`<p><a href="./">Back</a></p></body></html>`)
	return sdk.HTML(200, b.String())
}

func paidOrder(typ, account, period string) (string, error) {
	v, _, err := sdk.KV.Get("paid/" + typ + "/" + account + "/" + period)
	if errors.Is(err, sdk.ErrNotFound) {
		return "", nil
	}
	return string(v), err
}

func newOrderID() (string, error) {
	rnd := make([]byte, 6)
	if err := sdk.Random(rnd); err != nil {
		return "", err
	}
	// Time first, so that a user's orders list in the order they were made.
	return fmt.Sprintf("%019d-%s", sdk.Now().UnixNano(), hex.EncodeToString(rnd)), nil
}

func pay(r *sdk.Request) *sdk.Response {
	if r.User == "" {
		return sdk.Text(401, "sign in to pay")
	}
	form, err := r.Form()
	if err != nil {
		return sdk.Text(400, "bad form")
	}
	o := order{User: r.User, Kind: form.Get("kind"), Status: "pending", CreatedAt: sdk.Now().UTC()}
	var desc, openKey string
	switch o.Kind {
	case "bill":
		bs, err := loadBillers()
		if err != nil {
			return failure(err)
		}
		o.Type, o.Account = form.Get("type"), form.Get("account")
		bl, ok := bs[o.Type]
		if !ok {
			return sdk.Text(404, "no such biller")
		}
		due, ok := bl.Bills[o.Account]
		if !ok {
			return sdk.Text(404, "no bill for this account")
		}
		if by, err := paidOrder(o.Type, o.Account, due.Period); err != nil {
			return failure(err)
		} else if by != "" {
			return sdk.Text(409, "this bill is already paid")
		}
		o.Period, o.Amount, o.Payee = due.Period, due.Due, bl.Name
		desc = fmt.Sprintf("%s %s %s", typeNames[o.Type], o.Account, o.Period)
		// A bill order still waiting for payment is reused: the same key
		// returns the same intent.
		openKey = "open/" + r.User + "/" + o.Type + "/" + o.Account + "/" + o.Period
		if v, _, err := sdk.KV.Get(openKey); err == nil {
			if prev, err := loadOrder(r.User, string(v)); err == nil && prev.Status == "pending" {
				return started(r, prev)
			}
		}
	case "topup":
		o.Type, o.Account, o.Payee = "mobile", form.Get("phone"), "中国移动 China Mobile"
		if !validPhone(o.Account) {
			return sdk.Text(400, "a mobile number is 11 digits starting with 1")
		}
		amount, err := strconv.ParseInt(form.Get("amount"), 10, 64)
		if err != nil || !allowedTopup(amount) {
			return sdk.Text(400, "choose one of the offered amounts")
		}
		o.Amount = amount
		desc = fmt.Sprintf("%s %s", typeNames["mobile"], o.Account)
	default:
		return sdk.Text(400, "kind must be bill or topup")
	}
	if o.ID, err = newOrderID(); err != nil {
		return failure(err)
	}
	in, err := sdk.Payments.Create(sdk.PaymentRequest{Amount: o.Amount, Description: desc, Key: o.ID})
	switch {
	case errors.Is(err, sdk.ErrDenied):
		return sdk.Text(403, "allow this app to ask you for payments first")
	case err != nil:
		return failure(err)
	}
	o.Intent, o.Confirm = in.ID, in.ConfirmURL
	if err := saveOrder(o); err != nil {
		return failure(err)
	}
	if openKey != "" {
		if _, err := sdk.KV.Put(openKey, []byte(o.ID)); err != nil {
			return failure(err)
		}
	}
	sdk.Logf("order %s: intent %s for %d fen", o.ID, in.ID, o.Amount)
	return started(r, o)
}

// started answers a started payment: the confirmation page, or JSON.
func started(r *sdk.Request, o order) *sdk.Response {
	if strings.Contains(r.Header("Accept"), "application/json") {
		return sdk.JSON(200, map[string]any{"order": o.ID, "intent": o.Intent, "confirm_url": o.Confirm})
	}
	return sdk.Text(303, "").SetHeader("Location", o.Confirm)
}

func validPhone(s string) bool {
	if len(s) != 11 || s[0] != '1' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func allowedTopup(amount int64) bool {
	for _, a := range topupAmounts() {
		if a == amount {
			return true
		}
	}
	return false
}

func orderKey(user, id string) string { return "order/" + user + "/" + id }

func loadOrder(user, id string) (order, error) {
	v, _, err := sdk.KV.Get(orderKey(user, id))
	if err != nil {
		return order{}, err
	}
	var o order
	return o, json.Unmarshal(v, &o)
}

func saveOrder(o order) error {
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	_, err = sdk.KV.Put(orderKey(o.User, o.ID), b)
	return err
}

func history(user string) ([]order, error) {
	var out []order
	after := ""
	for {
		entries, more, err := sdk.KV.Scan("order/"+user+"/", after, 100)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			var o order
			if err := json.Unmarshal(e.Value, &o); err == nil {
				out = append(out, o)
			}
			after = e.Key
		}
		if !more || len(out) >= 500 {
			return out, nil
		}
	}
}

func receipt(r *sdk.Request) *sdk.Response {
	if r.User == "" {
		return sdk.Text(401, "sign in first")
	}
	o, err := loadOrder(r.User, r.Query("id"))
	if errors.Is(err, sdk.ErrNotFound) || (err == nil && o.Receipt == "") {
		return sdk.Text(404, "no receipt")
	}
	if err != nil {
		return failure(err)
	}
	var b strings.Builder
	b.WriteString(head)
	fmt.Fprintf(&b, `<h1>电子回单 Receipt</h1><dl data-testid="receipt">
<dt>Receipt no.</dt><dd data-testid="receipt-no">%s</dd><dt>Paid to</dt><dd>%s</dd><dt>For</dt><dd>%s %s %s</dd>
<dt>Amount</dt><dd data-testid="amount">%s</dd><dt>Paid with</dt><dd>%s</dd><dt>Paid at</dt><dd>%s</dd><dt>Payment</dt><dd>%s</dd>`,
		esc(o.Receipt), esc(o.Payee), esc(typeNames[o.Type]), esc(o.Account), esc(o.Period), yuan(o.Amount), esc(o.Method),
		o.PaidAt.Format("2006-01-02 15:04:05 UTC"), esc(o.Intent))
	if o.Refunded > 0 {
		fmt.Fprintf(&b, `<dt>Refunded</dt><dd>%s</dd>`, yuan(o.Refunded))
	}
	b.WriteString(`</dl><p><a href="./">Back</a></p></body></html>`)
	return sdk.HTML(200, b.String())
}

// onEvent applies a payment's outcome to its order. Events may arrive more
// than once: applying one twice changes nothing.
func onEvent(ev *sdk.Event) error {
	if !strings.HasPrefix(ev.Type, "payment.") {
		return nil
	}
	pe, err := sdk.PaymentEventOf(ev)
	if err != nil {
		_ = sdk.Log(sdk.LevelWarn, "undecodable payment event "+ev.ID+": "+err.Error())
		return nil // redelivery would not help
	}
	in := pe.Intent
	o, err := loadOrder(in.User, in.Key)
	if errors.Is(err, sdk.ErrNotFound) {
		_ = sdk.Log(sdk.LevelWarn, "payment event for an unknown order "+in.Key)
		return nil
	}
	if err != nil {
		return err // the store is down: redeliver later
	}
	switch pe.Type {
	case "payment.succeeded":
		if o.Status == "paid" {
			return nil
		}
		o.Status, o.Method, o.PaidAt = "paid", in.Method, sdk.Now().UTC()
		o.Receipt = "JF" + strings.ReplaceAll(o.ID[:19], "-", "")
		if o.Kind == "bill" {
			if _, err := sdk.KV.Put("paid/"+o.Type+"/"+o.Account+"/"+o.Period, []byte(o.ID)); err != nil {
				return err
			}
		}
	case "payment.failed", "payment.expired":
		if o.Status != "pending" {
			return nil
		}
		o.Status, o.Failure = strings.TrimPrefix(pe.Type, "payment."), in.Failure
	case "payment.refunded":
		o.Status, o.Refunded = string(in.State), in.Refunded
	default:
		return nil
	}
	if err := saveOrder(o); err != nil {
		return err
	}
	if o.Kind == "bill" && o.Status != "pending" {
		if _, err := sdk.KV.Delete("open/" + o.User + "/" + o.Type + "/" + o.Account + "/" + o.Period); err != nil {
			return err
		}
	}
	return nil
}

func failure(err error) *sdk.Response {
	_ = sdk.Log(sdk.LevelError, err.Error())
	return sdk.Text(503, "service unavailable, try again")
}
