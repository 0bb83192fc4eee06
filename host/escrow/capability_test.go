package escrow_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/abi"
	"github.com/jifu-open/jifu/host/escrow"
)

// The escrow_call host function's own refusals, through the real ABI.
func TestCapability(t *testing.T) {
	e := newEnv(t, true)
	u := e.party("u", "investor", 1_000)
	post := func(app *host.App, user, op, body string) (int, string) {
		t.Helper()
		out, err := app.HandleHTTP(context.Background(), host.Caller{User: user},
			&abi.Request{Method: "POST", Path: "/call/" + op, Body: []byte(body)})
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		return int(out.Status), string(out.Body)
	}
	balance := `{"User":"` + u + `","Role":"investor"}`

	for _, tc := range []struct {
		name       string
		cfg        host.Config
		user, op   string
		body       string
		wantStatus int
		wantBody   string
	}{
		{"a user who has not consented", host.Config{Escrow: e.svc, Consent: host.DenyAll{}}, u, "balance", balance, 502, "code -2"},
		{"unattended needs no consent", host.Config{Escrow: e.svc, Consent: host.DenyAll{}}, "", "balance", balance, 200, `"Available":1000`},
		{"no escrow service", host.Config{Consent: host.AllowAll{}}, "", "balance", balance, 502, "code -9"},
		{"op too long", host.Config{Escrow: e.svc, Consent: host.AllowAll{}}, "", strings.Repeat("x", 33), balance, 502, "code -7"},
		{"request too large", host.Config{Escrow: e.svc, Consent: host.AllowAll{}}, "", "balance", strings.Repeat(" ", escrow.MaxRequestBytes+1), 502, "code -4"},
		{"unknown op answers invalid", host.Config{Escrow: e.svc, Consent: host.AllowAll{}}, "", "steal", balance, 200, `"ErrCode":"invalid"`},
		{"bad json answers invalid", host.Config{Escrow: e.svc, Consent: host.AllowAll{}}, "", "balance", `{"User":`, 200, `"ErrCode":"invalid"`},
		{"a refusal carries its reason", host.Config{Escrow: e.svc, Consent: host.AllowAll{}}, u, "withdraw",
			`{"MerBillNo":"W1","User":"` + u + `","Role":"investor","Amount":1001}`, 200, `"ErrCode":"insufficient_funds"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := e.wasm
			if tc.cfg.Escrow == nil || tc.cfg.Consent != (host.AllowAll{}) {
				app = loadGuest(t, e.app, tc.cfg, true)
			}
			status, body := post(app, tc.user, tc.op, tc.body)
			if status != tc.wantStatus || !strings.Contains(body, tc.wantBody) {
				t.Fatalf("= %d %s, want %d containing %s", status, body, tc.wantStatus, tc.wantBody)
			}
		})
	}
	e.wantBalance(u, "investor", 1_000, 0)
}
