package openapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu/host/outbox"
	"github.com/jifu-open/jifu/host/payment"
	"github.com/jifu-open/jifu/marketplace"
	"github.com/jifu-open/jifu/openapi"
	client "github.com/jifu-open/jifu/sdk/openapi"
)

func (e *env) client(a *app, prod bool) *client.Client {
	k := a.key
	if prod {
		k = a.prod
	}
	c := client.New(e.srv.URL, k)
	c.Now = e.clock.Now
	return c
}

func wantAPIError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Status != status || ae.Code != code {
		t.Fatalf("got %v, want %d %s", err, status, code)
	}
}

func TestAppInfoAndVersions(t *testing.T) {
	e := newEnv(t)
	a := e.newApp(marketplace.LevelBasic, "127.0.0.0/8", "::1/128")
	c := e.client(a, false)
	ctx := context.Background()
	info, err := c.App(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Slug != a.app.Slug || info.Environment != marketplace.EnvSandbox || info.ServiceLevel != marketplace.LevelBasic ||
		info.AppKey != a.key.AppKey || !slices.Equal(info.IPWhitelist, []string{"127.0.0.0/8", "::1/128"}) {
		t.Fatalf("app info %+v", info)
	}
	// A manifest for another app is refused with its problems, nothing stored.
	_, err = c.UploadVersion(ctx, helloWasm(t), helloManifest("someone-else", "1.0.0", ""), true)
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Code != "invalid" || len(ae.Problems) == 0 || ae.Problems[0].Field != "slug" {
		t.Fatalf("foreign manifest: %v %+v", err, ae)
	}
	if vs, _ := e.svc.Versions(ctx, a.dev, a.app.ID); len(vs) != 0 {
		t.Fatalf("%d versions after a refused upload", len(vs))
	}
	v, err := c.UploadVersion(ctx, helloWasm(t), helloManifest(a.app.Slug, "1.0.0", ""), true)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Passed || !v.Submitted || v.Status != marketplace.StatusInReview || v.Version != "1.0.0" {
		t.Fatalf("version %+v", v)
	}
}

func TestPayments(t *testing.T) {
	e := newEnv(t)
	a := e.newApp(marketplace.LevelStandard, "127.0.0.1/32", "::1/128")
	e.release(a, "")
	ctx := context.Background()
	sbx, prod := e.client(a, false), e.client(a, true)
	user := "u4242"
	if _, err := e.pay.SetCreditLimit(ctx, user, 100000); err != nil {
		t.Fatal(err)
	}
	req := client.PaymentRequest{User: user, Amount: 1999, Description: "order A1001", Key: "A1001"}
	p, err := prod.CreatePayment(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if p.State != "created" || p.Amount != 1999 || p.ConfirmURL != "/pay/"+p.ID || p.Sandbox {
		t.Fatalf("payment %+v", p)
	}
	again, err := prod.CreatePayment(ctx, req)
	if err != nil || again.ID != p.ID || !again.Replayed {
		t.Fatalf("replayed create: %+v %v", again, err)
	}
	req.Amount = 2000
	_, err = prod.CreatePayment(ctx, req)
	wantAPIError(t, err, 409, "conflict")
	// The sandbox key does not see production data, and its own key space
	// is separate.
	_, err = sbx.Payment(ctx, p.ID)
	wantAPIError(t, err, 404, "not_found")
	sp, err := sbx.CreatePayment(ctx, client.PaymentRequest{User: user, Amount: 5, Description: "test", Key: "A1001"})
	if err != nil || sp.ID == p.ID || !sp.Sandbox {
		t.Fatalf("sandbox payment %+v %v", sp, err)
	}
	// Refund before it is paid: conflict, nothing changed.
	_, err = prod.Refund(ctx, p.ID, client.RefundRequest{Amount: 100, Key: "r1"})
	wantAPIError(t, err, 409, "conflict")
	if _, err := e.pay.Confirm(ctx, p.ID, user, []payment.Split{{Method: payment.MethodCredit, Amount: 1999}}); err != nil {
		t.Fatal(err)
	}
	got, err := prod.Payment(ctx, p.ID)
	if err != nil || got.State != "succeeded" || got.Method != "credit" {
		t.Fatalf("after confirmation %+v %v", got, err)
	}
	rf, err := prod.Refund(ctx, p.ID, client.RefundRequest{Amount: 500, Key: "r1"})
	if err != nil || rf.State != "succeeded" || rf.Refunded != 500 {
		t.Fatalf("refund %+v %v", rf, err)
	}
	if rf2, err := prod.Refund(ctx, p.ID, client.RefundRequest{Amount: 500, Key: "r1"}); err != nil || rf2.ID != rf.ID || !rf2.Replayed {
		t.Fatalf("replayed refund %+v %v", rf2, err)
	}
	_, err = prod.Refund(ctx, p.ID, client.RefundRequest{Amount: 5000, Key: "r2"})
	wantAPIError(t, err, 409, "conflict")
	rs, err := prod.Refunds(ctx, p.ID)
	if err != nil || len(rs) != 1 {
		t.Fatalf("refunds %+v %v", rs, err)
	}
	if got, _ := prod.Payment(ctx, p.ID); got.Refunded != 500 || got.State != "partially_refunded" {
		t.Fatalf("after refund %+v", got)
	}
	_, err = prod.CreatePayment(ctx, client.PaymentRequest{User: "not-a-user", Amount: 1, Description: "x", Key: "k"})
	wantAPIError(t, err, 400, "invalid")
	_, err = prod.CreatePayment(ctx, client.PaymentRequest{User: user, Amount: 0, Description: "x", Key: "k0"})
	wantAPIError(t, err, 400, "invalid")
}

func TestCallbacks(t *testing.T) {
	e := newEnv(t)
	a := e.newApp(marketplace.LevelBasic, "127.0.0.1/32", "::1/128")
	other := e.newApp(marketplace.LevelBasic, "127.0.0.1/32", "::1/128")
	ctx := context.Background()
	enqueue := func(app, id string) {
		err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
			_, err := e.ob.Enqueue(ctx, tx, outbox.Event{ID: id, App: app, Type: "payment.succeeded", Payload: json.RawMessage(`{}`)})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	mine, theirs := outbox.NewID(), outbox.NewID()
	enqueue("sandbox:"+a.app.Slug, mine)
	enqueue("sandbox:"+other.app.Slug, theirs)
	enqueue(a.app.Slug, outbox.NewID()) // production: not the sandbox key's
	c := e.client(a, false)
	ds, err := c.Deliveries(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].EventID != mine || ds[0].State != outbox.StatePending || ds[0].Sink != "webhook" {
		t.Fatalf("deliveries %+v", ds)
	}
	if ds, err := c.Deliveries(ctx, "dead", 10); err != nil || len(ds) != 0 {
		t.Fatalf("dead deliveries %+v %v", ds, err)
	}
	_, err = c.Deliveries(ctx, "lost", 0)
	wantAPIError(t, err, 400, "invalid")
	wantAPIError(t, c.Replay(ctx, mine, ""), 409, "conflict") // still on its way
	wantAPIError(t, c.Replay(ctx, theirs, ""), 404, "not_found")
	wantAPIError(t, c.Replay(ctx, mine, "email"), 400, "invalid")
	// Once dead, it can be replayed.
	if _, err := e.pool.Exec(ctx, `UPDATE outbox_deliveries SET state = 'dead' WHERE event_id = $1`, mine); err != nil {
		t.Fatal(err)
	}
	if err := c.Replay(ctx, mine, "webhook"); err != nil {
		t.Fatal(err)
	}
	if ds, _ := c.Deliveries(ctx, "pending", 0); len(ds) != 1 {
		t.Fatalf("after replay %+v", ds)
	}
}

// TestSpecMatchesRoutes checks /openapi.json against the real router:
// every route under /openapi/v1 and /oauth2 is documented, and every
// documented operation exists.
func TestSpecMatchesRoutes(t *testing.T) {
	e := newEnv(t)
	resp, err := http.Get(e.srv.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for p, ops := range doc.Paths {
		for m := range ops {
			documented[strings.ToUpper(m)+" "+p] = true
		}
	}
	routes := map[string]bool{}
	err = chi.Walk(e.api.Handler(nil).(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		route = strings.TrimSuffix(strings.ReplaceAll(route, "/*/", "/"), "/*")
		if strings.HasPrefix(route, "/openapi/v1/") || strings.HasPrefix(route, "/oauth2/") {
			routes[method+" "+route] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) < 10 {
		t.Fatalf("walked only %v", routes)
	}
	for r := range routes {
		if !documented[r] {
			t.Errorf("route %s is not in /openapi.json", r)
		}
	}
	for d := range documented {
		if !routes[d] {
			t.Errorf("/openapi.json documents %s, which does not exist", d)
		}
	}
}

func TestStatusCodes(t *testing.T) {
	for code, want := range map[string]int{
		"signature_missing": 401, "timestamp_expired": 401, openapi.CodeTimestampFuture: 401, "app_key_unknown": 401,
		"signature_mismatch": 401, "nonce_replayed": 409, openapi.CodeIPDenied: 403, "rate_limited": 429,
		openapi.CodeTokenInvalid: 401, openapi.CodeScopeMissing: 403, "invalid": 400, "internal": 500,
	} {
		if got := openapi.Status(code); got != want {
			t.Errorf("Status(%s) = %d, want %d", code, got, want)
		}
	}
}
