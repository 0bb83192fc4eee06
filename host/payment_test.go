package host_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/abi"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/guesttest"
	"github.com/jifu-open/jifu/host/ledger"
	"github.com/jifu-open/jifu/host/payment"
	"github.com/jifu-open/jifu/host/payment/paymenttest"
)

// consentUsers consents to payment.create for the listed users only.
type consentUsers map[string]bool

func (c consentUsers) Consented(_ context.Context, _, user, scope string) (bool, error) {
	return scope == "payment.create" && c[user], nil
}

// payWorld is a host with the real payment service on the test database.
type payWorld struct {
	*env
	l    *ledger.Ledger
	svc  *payment.Service
	evs  *paymenttest.Events
	bank ledger.Account
}

func newPayWorld(t *testing.T, consent host.ConsentChecker) *payWorld {
	t.Helper()
	pool := dbtest.Pool(t)
	w := &payWorld{l: ledger.New(pool), evs: paymenttest.NewEvents(t, pool)}
	var err error
	if w.svc, err = payment.New(payment.Config{Pool: pool, Ledger: w.l, Events: w.evs}); err != nil {
		t.Fatal(err)
	}
	if w.bank, err = w.l.CreateAccount(context.Background(), ledger.AccountSpec{
		Owner: ledger.Owner{Type: ledger.OwnerBank, ID: "test"}, Name: "settlement"}); err != nil {
		t.Fatal(err)
	}
	w.env = newEnv(t, host.Config{Payments: w.svc, Consent: consent})
	return w
}

func (w *payWorld) fund(t *testing.T, user string, amount int64) {
	t.Helper()
	ctx := context.Background()
	wa, err := payment.OpenWallet(ctx, w.l, user)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.l.Transfer(ctx, "test", ledger.Transfer{ID: "fund-" + user + "-" + strconv.FormatInt(amount, 10),
		Debit: w.bank.ID, Credit: wa.ID, Amount: amount, Code: "topup"}); err != nil {
		t.Fatal(err)
	}
}

func (w *payWorld) walletAvailable(t *testing.T, user string) int64 {
	t.Helper()
	av, err := w.svc.Available(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	return av[payment.MethodBalance]
}

var (
	paycallOnce sync.Once
	paycallWasm []byte
	utilityOnce sync.Once
	utilityWasm []byte
)

func loadGuest(t *testing.T, w *payWorld, dir string, once *sync.Once, wasm *[]byte) *host.App {
	t.Helper()
	once.Do(func() { *wasm = guesttest.BuildGo(t, dir) })
	m := mustManifest(t, string(guesttest.ReadFile(t, dir+"/jifu.json")))
	app, err := w.h.Load(context.Background(), host.AppSpec{Slug: m.Slug, Wasm: *wasm, Manifest: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Close(context.Background()) })
	return app
}

// rawCall calls a payment host function through the paycall guest and
// returns its result code and result bytes.
func rawCall(t *testing.T, app *host.App, fn, user, req string) (int64, string) {
	t.Helper()
	resp, err := app.HandleHTTP(context.Background(), host.Caller{User: user}, &abi.Request{Method: "POST", Path: "/" + fn, Body: []byte(req)})
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ := strings.Cut(string(resp.Body), "\n")
	n, err := strconv.ParseInt(code, 10, 64)
	if err != nil {
		t.Fatalf("paycall answered %q", resp.Body)
	}
	return n, out
}

func TestPaymentCapability(t *testing.T) {
	w := newPayWorld(t, consentUsers{"alice": true, "bob": true})
	app := loadGuest(t, w, "host/testdata/paycall", &paycallOnce, &paycallWasm)
	ctx := context.Background()
	w.fund(t, "alice", 10_000)

	res, out := rawCall(t, app, host.FnPaymentCreate, "alice", `{"amount": 2500, "description": "水费 W2001", "key": "o-1"}`)
	var in payment.IntentView
	if res <= 0 || json.Unmarshal([]byte(out), &in) != nil {
		t.Fatalf("create: %d %q", res, out)
	}
	if in.State != payment.StateCreated || in.User != "alice" || in.Amount != 2500 || in.ConfirmURL != "/pay/"+in.ID {
		t.Fatalf("intent %+v", in)
	}
	if w.walletAvailable(t, "alice") != 10_000 {
		t.Fatal("money moved before the user confirmed")
	}

	tests := []struct {
		name, fn, user, req string
		want                int64
	}{
		{"no consent", host.FnPaymentCreate, "carol", `{"amount": 100, "description": "d", "key": "c-1"}`, abi.ErrDenied},
		{"anonymous", host.FnPaymentCreate, "", `{"amount": 100, "description": "d", "key": "c-2"}`, abi.ErrDenied},
		{"malformed", host.FnPaymentCreate, "alice", `{"amount": "lots"}`, abi.ErrInvalid},
		{"app names the user", host.FnPaymentCreate, "alice", `{"amount": 1, "description": "d", "key": "c-3", "user": "bob"}`, abi.ErrInvalid},
		{"zero amount", host.FnPaymentCreate, "alice", `{"amount": 0, "description": "d", "key": "c-4"}`, abi.ErrInvalid},
		{"too large", host.FnPaymentCreate, "alice", `{"description": "` + strings.Repeat("x", 5000) + `"}`, abi.ErrTooLarge},
		{"key reused", host.FnPaymentCreate, "alice", `{"amount": 2600, "description": "水费 W2001", "key": "o-1"}`, abi.ErrConflict},
		{"unknown payee", host.FnPaymentCreate, "alice", `{"amount": 1, "description": "d", "key": "c-5", "payee": "nobody"}`, abi.ErrNotFound},
		{"get unknown", host.FnPaymentGet, "alice", `{"id": "pi_nope"}`, abi.ErrNotFound},
		{"get malformed", host.FnPaymentGet, "alice", `"pi_nope"`, abi.ErrInvalid},
		{"refund unpaid", host.FnPaymentRefund, "", `{"intent_id": "` + in.ID + `", "key": "r-1", "amount": 100}`, abi.ErrConflict},
		{"refund malformed", host.FnPaymentRefund, "", `{"intent_id": "` + in.ID + `", "amount": 100}`, abi.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if res, out := rawCall(t, app, tc.fn, tc.user, tc.req); res != tc.want {
				t.Fatalf("got %d (%s) %q, want %d (%s)", res, abi.ErrorName(res), out, tc.want, abi.ErrorName(tc.want))
			}
		})
	}
	// Refused requests created nothing.
	for _, key := range []string{"c-1", "c-2", "c-3", "c-4", "c-5"} {
		if _, err := w.svc.Create(ctx, payment.CreateRequest{App: "paycall", User: "bob", Amount: 7, Description: "probe", Key: key}); err != nil {
			t.Fatalf("key %s was taken by a refused request: %v", key, err)
		}
	}

	// The same request replays the intent.
	if res, out := rawCall(t, app, host.FnPaymentCreate, "alice", `{"amount": 2500, "description": "水费 W2001", "key": "o-1"}`); res <= 0 || !strings.Contains(out, in.ID) || !strings.Contains(out, `"replayed":true`) {
		t.Fatalf("replay: %d %q", res, out)
	}

	if _, err := w.svc.Confirm(ctx, in.ID, "alice", []payment.Split{{Method: payment.MethodBalance, Amount: 2500}}); err != nil {
		t.Fatal(err)
	}
	res, out = rawCall(t, app, host.FnPaymentGet, "alice", `{"id": "`+in.ID+`"}`)
	if res <= 0 || !strings.Contains(out, `"state":"succeeded"`) {
		t.Fatalf("get: %d %q", res, out)
	}
	res, out = rawCall(t, app, host.FnPaymentRefund, "", `{"intent_id": "`+in.ID+`", "key": "r-1", "amount": 1000}`)
	var r payment.RefundView
	if res <= 0 || json.Unmarshal([]byte(out), &r) != nil || r.State != payment.RefundSucceeded || r.Refunded != 1000 {
		t.Fatalf("refund: %d %q", res, out)
	}
	if res, _ := rawCall(t, app, host.FnPaymentRefund, "", `{"intent_id": "`+in.ID+`", "key": "r-2", "amount": 1501}`); res != abi.ErrConflict {
		t.Fatalf("refund over what was paid: %d", res)
	}
	if got := w.walletAvailable(t, "alice"); got != 10_000-2500+1000 {
		t.Fatalf("wallet %d", got)
	}
}

func TestPaymentCapabilityUnavailable(t *testing.T) {
	w := &payWorld{env: newEnv(t, host.Config{Consent: host.AllowAll{}})}
	app := loadGuest(t, w, "host/testdata/paycall", &paycallOnce, &paycallWasm)
	if res, _ := rawCall(t, app, host.FnPaymentCreate, "alice", `{"amount": 1, "description": "d", "key": "k"}`); res != abi.ErrUnavailable {
		t.Fatalf("without a payment service: %d", res)
	}
}

// deliver hands every event of intent id to the app's on_event, as the
// outbox does, and fails on any refusal.
func deliver(t *testing.T, w *payWorld, app *host.App, id string) {
	t.Helper()
	for _, ev := range w.evs.Of(t, id) {
		res, err := app.OnEvent(context.Background(), host.Caller{User: ev.User},
			&abi.Event{Type: ev.Type, ID: ev.ID, User: ev.User, Payload: ev.Payload})
		if err != nil || res.Status != 0 {
			t.Fatalf("on_event %s: %+v %v", ev.Type, res, err)
		}
	}
}

func TestUtilityPlugin(t *testing.T) {
	w := newPayWorld(t, consentUsers{"ann": true})
	app := loadGuest(t, w, "plugins/utility", &utilityOnce, &utilityWasm)
	ctx := context.Background()
	w.fund(t, "ann", 10_000)
	if _, err := w.svc.SetCreditLimit(ctx, "ann", 5_000); err != nil {
		t.Fatal(err)
	}
	do := func(method, path, query, user, body string) *abi.Response {
		t.Helper()
		resp, err := app.HandleHTTP(ctx, host.Caller{User: user}, &abi.Request{Method: method, Path: path, Query: query,
			Headers: []abi.Header{{Name: "Accept", Value: "application/json"}}, Body: []byte(body)})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	type started struct {
		Order, Intent string
		ConfirmURL    string `json:"confirm_url"`
	}
	start := func(user, form string) started {
		t.Helper()
		resp := do("POST", "/pay", "", user, form)
		var s started
		if resp.Status != 200 || json.Unmarshal(resp.Body, &s) != nil || s.Intent == "" {
			t.Fatalf("pay: %d %s", resp.Status, resp.Body)
		}
		return s
	}

	// The electricity bill E1001 is 128.50: more than the wallet holds, so
	// the user splits it: 100.00 balance + 28.50 credit.
	if resp := do("GET", "/bill", "type=electricity&account=E1001", "ann", ""); resp.Status != 200 || !strings.Contains(string(resp.Body), "¥128.50") {
		t.Fatalf("bill: %d %s", resp.Status, resp.Body)
	}
	s := start("ann", "kind=bill&type=electricity&account=E1001")
	if s.ConfirmURL != payment.ConfirmPath(s.Intent) {
		t.Fatalf("confirm url %q", s.ConfirmURL)
	}
	if again := start("ann", "kind=bill&type=electricity&account=E1001"); again.Intent != s.Intent {
		t.Fatalf("a second click started another payment: %+v vs %+v", again, s)
	}
	if w.walletAvailable(t, "ann") != 10_000 {
		t.Fatal("money moved before the user confirmed")
	}
	in, err := w.svc.Confirm(ctx, s.Intent, "ann", []payment.Split{{Method: payment.MethodBalance, Amount: 10_000}, {Method: payment.MethodCredit, Amount: 2_850}})
	if err != nil || in.State != payment.StateSucceeded {
		t.Fatalf("confirm: %+v %v", in, err)
	}
	deliver(t, w, app, s.Intent)
	deliver(t, w, app, s.Intent) // redelivery changes nothing

	var orders []struct {
		ID, Status, Method, Receipt string
		Amount                      int64
	}
	if resp := do("GET", "/orders", "", "ann", ""); resp.Status != 200 || json.Unmarshal(resp.Body, &orders) != nil || len(orders) != 1 {
		t.Fatalf("orders: %d %s", resp.Status, resp.Body)
	}
	if o := orders[0]; o.Status != "paid" || o.Method != payment.MethodCombined || o.Amount != 12_850 || o.Receipt == "" {
		t.Fatalf("order %+v", o)
	}
	if resp := do("GET", "/receipt", "id="+orders[0].ID, "ann", ""); resp.Status != 200 || !strings.Contains(string(resp.Body), orders[0].Receipt) {
		t.Fatalf("receipt: %d %s", resp.Status, resp.Body)
	}
	if resp := do("GET", "/receipt", "id="+orders[0].ID, "ben", ""); resp.Status != 404 {
		t.Fatalf("another user's receipt: %d", resp.Status)
	}
	if resp := do("GET", "/bill", "type=electricity&account=E1001", "ann", ""); !strings.Contains(string(resp.Body), `data-testid="paid"`) {
		t.Fatalf("bill after payment: %s", resp.Body)
	}
	if resp := do("POST", "/pay", "", "ann", "kind=bill&type=electricity&account=E1001"); resp.Status != 409 {
		t.Fatalf("paying a paid bill: %d", resp.Status)
	}

	// A top-up the wallet cannot cover fails; the order says so.
	s2 := start("ann", "kind=topup&phone=13800138000&amount=5000")
	if in, err := w.svc.Confirm(ctx, s2.Intent, "ann", []payment.Split{{Method: payment.MethodBalance, Amount: 5_000}}); err != nil || in.State != payment.StateFailed {
		t.Fatalf("confirm: %+v %v", in, err)
	}
	deliver(t, w, app, s2.Intent)
	if resp := do("GET", "/orders", "", "ann", ""); json.Unmarshal(resp.Body, &orders) != nil || len(orders) != 2 || orders[1].Status != "failed" {
		t.Fatalf("orders: %s", resp.Body)
	}
	for _, bad := range []string{"kind=topup&phone=12345&amount=5000", "kind=topup&phone=13800138000&amount=4999", "kind=bill&type=electricity&account=NOPE", "kind=steal"} {
		if resp := do("POST", "/pay", "", "ann", bad); resp.Status < 400 || resp.Status >= 500 {
			t.Errorf("%s: %d", bad, resp.Status)
		}
	}

	// Without consent the app cannot even ask: nothing is created.
	if resp := do("POST", "/pay", "", "dan", "kind=topup&phone=13800138000&amount=3000"); resp.Status != 403 {
		t.Fatalf("no consent: %d %s", resp.Status, resp.Body)
	}
	if resp := do("GET", "/orders", "", "dan", ""); string(resp.Body) != "null" {
		t.Fatalf("orders without consent: %s", resp.Body)
	}
}
