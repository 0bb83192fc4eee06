package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jifu-open/jifu/host/callback"
	"github.com/jifu-open/jifu/host/configstore"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/guesttest"
	"github.com/jifu-open/jifu/host/payment"
)

// A bill paid through `jifu serve`, with the utility app loaded directly
// (--dev-apps) and published through the marketplace: the app asks for the
// payment, the host's page takes the demo user's confirmation, and the
// outcome travels through the platform outbox exactly once to the app's
// on_event (found in the AppSet or through the marketplace's serving
// version) and to the developer's server as a signed callback; in the
// marketplace the payment counts in the app's payment volume; the books
// still check.
func TestServePayment(t *testing.T) {
	ctx := context.Background()
	c := newCmdEnv(t)
	key := make([]byte, 32)
	key[0] = 9
	c.vars["JIFU_MASTER_KEY"] = hex.EncodeToString(key)
	apps := t.TempDir()
	code, out, errs := c.run("app", "build", filepath.Join(guesttest.Root(t), "plugins/utility"), "-o", filepath.Join(apps, "utility", "app.wasm"))
	if code != 0 {
		t.Fatalf("app build: exit %d\n%s\n%s", code, out, errs)
	}

	const secret = "whsec_utility"
	type hook struct{ id, typ, err string }
	hooks := make(chan hook, 16)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h := hook{id: r.Header.Get(callback.HeaderEventID), typ: r.Header.Get(callback.HeaderEventType)}
		if err := callback.Verify([]byte(secret), r.Header.Get(callback.HeaderSignature), body, time.Now(), 0); err != nil {
			h.err = err.Error()
		}
		hooks <- h
	}))
	defer recv.Close()
	pool := dbtest.Pool(t)
	cs, err := configstore.New(pool, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.Set(ctx, "utility", callback.KeyURL, recv.URL+"/jifu", false); err != nil {
		t.Fatal(err)
	}
	if err := cs.Set(ctx, "utility", callback.KeySecret, secret, true); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, user, bill, account string
		fen                       int64
		args                      []string
		market                    bool
	}{
		{"dev-apps", "u1", "gas", "G3001", 6075, []string{"--dev-apps", apps, "--dev"}, false},
		{"marketplace", "u2", "water", "W2001", 4520, []string{"--plugins", apps, "--dev"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, stop := c.serve(append(tc.args, "--allow-private-callbacks")...) // the receiver is on loopback
			defer stop()
			intent := payBill(t, base, tc.user, tc.bill, tc.account, tc.fen)
			eventID := outboxEventID(intent + "/" + payment.EventSucceeded)

			select {
			case h := <-hooks:
				if h.err != "" || h.id != eventID || h.typ != payment.EventSucceeded {
					t.Fatalf("callback %+v, want a signed %s for %s", h, payment.EventSucceeded, eventID)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("no callback reached the developer's server")
			}
			waitPaid(t, base, tc.user, intent)

			// Exactly once: one event for the intent, each sink delivered
			// at its first attempt, and no second callback.
			var events, delivered, attempts int
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM outbox_events WHERE id LIKE $1 || ':%'),
					(SELECT count(*) FROM outbox_deliveries WHERE event_id = $2 AND state = 'delivered'),
					(SELECT count(*) FROM outbox_attempts WHERE event_id = $2)`, intent, eventID).Scan(&events, &delivered, &attempts); err != nil {
					t.Fatal(err)
				}
				if delivered == 3 || time.Now().After(deadline) {
					break
				}
			}
			if events != 1 || delivered != 3 || attempts != 3 {
				t.Fatalf("outbox: %d events, %d deliveries delivered, %d attempts; want 1, 3 (webhook, on_event, payment_stats), 3", events, delivered, attempts)
			}
			select {
			case h := <-hooks:
				t.Fatalf("a second callback: %+v", h)
			case <-time.After(300 * time.Millisecond):
			}

			var recorded int64
			if err := pool.QueryRow(ctx, `SELECT coalesce(sum(p.amount_fen), 0) FROM mp_payments p JOIN mp_apps a ON a.id = p.app_id
				WHERE a.slug = 'utility' AND p.idem_key = $1 AND p.user_ref = $2`, intent, tc.user).Scan(&recorded); err != nil {
				t.Fatal(err)
			}
			if tc.market && recorded != tc.fen {
				t.Fatalf("payment volume recorded %d fen for %s, want %d", recorded, intent, tc.fen)
			}
		})
	}
	if code, out, errs := c.run("ledger", "check"); code != 0 {
		t.Fatalf("ledger check: exit %d\n%s\n%s", code, out, errs)
	}
}

// payBill asks the utility app to pay the bill (gas, water, ...) of account
// as user, checks the host's page asks for fen, and confirms it with the
// wallet balance. It returns the intent id.
func payBill(t *testing.T, base, user, bill, account string, fen int64) string {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(path string, form url.Values) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Jifu-User", user)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := post("/apps/utility/pay", url.Values{"kind": {"bill"}, "type": {bill}, "account": {account}})
	loc := resp.Header.Get("Location")
	if resp.StatusCode != 303 || !strings.HasPrefix(loc, "/pay/pi_") {
		t.Fatalf("pay: %d %q\n%s", resp.StatusCode, loc, body)
	}
	st, page := httpDo(t, "GET", base+loc, map[string]string{"X-Jifu-User": user})
	m := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(page)
	if st != 200 || m == nil || !strings.Contains(page, fmt.Sprintf("¥%d.%02d", fen/100, fen%100)) {
		t.Fatalf("confirmation page: %d\n%s", st, page)
	}
	if st, _ := httpDo(t, "GET", base+loc, map[string]string{"X-Jifu-User": user + "0"}); st != 404 {
		t.Fatalf("another user's confirmation page: %d", st)
	}
	resp, body = post(loc, url.Values{"token": {m[1]}, "method": {"balance"}})
	if resp.StatusCode != 200 || !strings.Contains(body, `data-state="succeeded"`) {
		t.Fatalf("confirm: %d\n%s", resp.StatusCode, body)
	}
	return strings.TrimPrefix(strings.SplitN(loc, "?", 2)[0], "/pay/")
}

// waitPaid waits until the app's orders show intent paid (its on_event ran).
func waitPaid(t *testing.T, base, user, intent string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body := httpDo(t, "GET", base+"/apps/utility/orders", map[string]string{"X-Jifu-User": user})
		var orders []struct{ Intent, Status string }
		_ = json.Unmarshal([]byte(body), &orders)
		for _, o := range orders {
			if o.Intent == intent && o.Status == "paid" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the app never learnt of payment %s: %s", intent, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
