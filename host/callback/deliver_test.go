package callback_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/abi"
	"github.com/jifu-open/jifu/host/callback"
	"github.com/jifu-open/jifu/host/configstore"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/outbox"
)

func testEvent(id string) outbox.Event {
	return outbox.Event{ID: id, App: "acme", Type: "payment.succeeded", User: "u1",
		Payload: json.RawMessage(`{"amount":1999}`), CreatedAt: time.Date(2026, 1, 1, 8, 0, 0, 0, time.FixedZone("CST", 8*3600))}
}

func TestDeliver(t *testing.T) {
	secret := []byte("whsec_deliver")
	now := time.Now()
	tests := []struct {
		name       string
		legacy     bool
		status     int
		answer     string
		hang       bool
		wantStatus int
		code       string
		errHas     string
	}{
		{"200 acknowledges", false, 200, "", false, 200, "", ""},
		{"204 acknowledges", false, 204, "", false, 204, "", ""},
		{"any body with 2xx", false, 200, "whatever", false, 200, "", ""},
		{"500 retries", false, 500, "db down\n", false, 500, jifu.CodeUnavailable, "HTTP 500: db down"},
		{"404 retries", false, 404, "", false, 404, jifu.CodeUnavailable, "HTTP 404"},
		{"redirect is not followed", false, 302, "", false, 302, jifu.CodeUnavailable, "HTTP 302"},
		{"legacy success", true, 200, "success", false, 200, "", ""},
		{"legacy success with newline", true, 200, "success\r\n", false, 200, "", ""},
		{"legacy upper case", true, 200, "SUCCESS", false, 200, jifu.CodeUnavailable, "legacy"},
		{"legacy other body", true, 200, "ok", false, 200, jifu.CodeUnavailable, "legacy"},
		{"legacy empty body", true, 200, "", false, 200, jifu.CodeUnavailable, "legacy"},
		{"legacy success with 500", true, 500, "success", false, 500, jifu.CodeUnavailable, "HTTP 500"},
		{"hang times out", false, 200, "", true, 0, jifu.CodeTimeout, "no answer in time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			type seen struct {
				r    *http.Request
				body []byte
			}
			seenc := make(chan seen, 1)
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				seenc <- seen{r.Clone(context.Background()), b}
				if tt.hang {
					select {
					case <-release:
					case <-r.Context().Done():
					}
					return
				}
				if tt.status == 302 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.answer)
			}))
			defer srv.Close()
			defer close(release)
			timeout := 10 * time.Second // generous: the machine may be loaded
			if tt.hang {
				timeout = 300 * time.Millisecond
			}
			status, err := callback.Deliver(context.Background(), callback.NewHTTPClient(timeout),
				callback.Target{URL: srv.URL + "/notify?x=1", Secret: secret, Legacy: tt.legacy}, testEvent("evt_d1"), now)
			if jifu.ErrorCode(err) != tt.code || status != tt.wantStatus {
				t.Fatalf("Deliver = %d, %v; want %d, code %q", status, err, tt.wantStatus, tt.code)
			}
			if err != nil && !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("error %q lacks %q", err, tt.errHas)
			}
			var got *http.Request
			var gotBody []byte
			select {
			case sn := <-seenc:
				got, gotBody = sn.r, sn.body
			case <-time.After(10 * time.Second):
				t.Fatal("receiver saw nothing")
			}
			if got.Method != "POST" || got.URL.Path != "/notify" || got.URL.RawQuery != "x=1" ||
				got.Header.Get("Content-Type") != "application/json" ||
				got.Header.Get(callback.HeaderEventID) != "evt_d1" || got.Header.Get(callback.HeaderEventType) != "payment.succeeded" {
				t.Errorf("request: %s %s %v", got.Method, got.URL, got.Header)
			}
			if err := callback.Verify(secret, got.Header.Get(callback.HeaderSignature), gotBody, time.Now(), 0); err != nil {
				t.Errorf("receiver cannot verify: %v", err)
			}
			var b callback.Body
			if err := json.Unmarshal(gotBody, &b); err != nil {
				t.Fatal(err)
			}
			if b.ID != "evt_d1" || b.App != "acme" || b.User != "u1" || string(b.Data) != `{"amount":1999}` ||
				!b.CreatedAt.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) || !strings.Contains(string(gotBody), `"created_at":"2026-01-01T00:00:00Z"`) {
				t.Errorf("body = %s", gotBody)
			}
		})
	}
}

func TestDeliverBadTarget(t *testing.T) {
	for _, u := range []string{"", "ftp://x/y", "/relative", "http://", "https://user:pw@example.com/"} {
		status, err := callback.Deliver(context.Background(), callback.NewHTTPClient(time.Second),
			callback.Target{URL: u, Secret: []byte("s")}, testEvent("evt_bad"), time.Now())
		if jifu.ErrorCode(err) != jifu.CodeInvalid || status != 0 {
			t.Errorf("URL %q: %d, %v; want invalid", u, status, err)
		}
	}
	// A refused connection is unavailable (retried), and the error does not
	// echo the URL, whose query may hold a token.
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL + "/cb?token=s3cret"
	srv.Close()
	_, err := callback.Deliver(context.Background(), callback.NewHTTPClient(time.Second),
		callback.Target{URL: u, Secret: []byte("s")}, testEvent("evt_refused"), time.Now())
	if jifu.ErrorCode(err) != jifu.CodeUnavailable || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("refused: %v", err)
	}
}

func TestTargetNeverPrintsSecret(t *testing.T) {
	tg := callback.Target{URL: "https://x", Secret: []byte("topsecret")}
	for _, s := range []string{tg.String(), tg.GoString(), tg.LogValue().String()} {
		if strings.Contains(s, "topsecret") {
			t.Errorf("secret printed: %s", s)
		}
	}
}

func TestConfigTargets(t *testing.T) {
	ctx := context.Background()
	cs, err := configstore.New(dbtest.Pool(t), make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	set := func(app, key, value string, secret bool) {
		if err := cs.Set(ctx, app, key, value, secret); err != nil {
			t.Fatal(err)
		}
	}
	set("ct-full", callback.KeyURL, "https://acme.example/cb", false)
	set("ct-full", callback.KeySecret, "whsec_1", true)
	set("ct-legacy", callback.KeyURL, "https://old.example/notify", false)
	set("ct-legacy", callback.KeySecret, "whsec_2", true)
	set("ct-legacy", callback.KeyFormat, "legacy", false)
	set("ct-nosecret", callback.KeyURL, "https://acme.example/cb", false)
	targets := callback.ConfigTargets{Config: cs}
	tests := []struct {
		app  string
		want callback.Target
		code string
	}{
		{"ct-full", callback.Target{URL: "https://acme.example/cb", Secret: []byte("whsec_1")}, ""},
		{"ct-legacy", callback.Target{URL: "https://old.example/notify", Secret: []byte("whsec_2"), Legacy: true}, ""},
		{"ct-nosecret", callback.Target{}, jifu.CodeNotFound},
		{"ct-none", callback.Target{}, jifu.CodeNotFound},
	}
	for _, tt := range tests {
		got, err := targets.Target(ctx, tt.app)
		if jifu.ErrorCode(err) != tt.code || got.URL != tt.want.URL || string(got.Secret) != string(tt.want.Secret) || got.Legacy != tt.want.Legacy {
			t.Errorf("%s: %v, %v; want %v, code %q", tt.app, got, err, tt.want, tt.code)
		}
	}
}

// fakeApps is a Dispatcher answering with a fixed result.
type fakeApps struct {
	res *abi.EventResult
	err error
	got *abi.Event
}

func (f *fakeApps) OnEvent(ctx context.Context, app string, ev *abi.Event) (*abi.EventResult, error) {
	f.got = ev
	return f.res, f.err
}

func TestOnEventSink(t *testing.T) {
	tests := []struct {
		name   string
		apps   *fakeApps
		status int
		code   string
	}{
		{"acknowledged", &fakeApps{res: &abi.EventResult{Status: 0}}, 0, ""},
		{"no on_event", &fakeApps{}, 0, ""},
		{"asks for redelivery", &fakeApps{res: &abi.EventResult{Status: 7, Message: "busy"}}, 7, jifu.CodeUnavailable},
		{"trapped", &fakeApps{err: jifu.Errorf(jifu.CodeGuestFault, "trap")}, 0, jifu.CodeGuestFault},
	}
	for _, tt := range tests {
		s := &callback.OnEvent{Apps: tt.apps}
		status, err := s.Deliver(context.Background(), testEvent("evt_oe"))
		if status != tt.status || jifu.ErrorCode(err) != tt.code {
			t.Errorf("%s: %d, %v; want %d, %q", tt.name, status, err, tt.status, tt.code)
		}
		if ev := tt.apps.got; ev == nil || ev.ID != "evt_oe" || ev.Type != "payment.succeeded" || ev.User != "u1" || string(ev.Payload) != `{"amount":1999}` {
			t.Errorf("%s: guest got %+v", tt.name, ev)
		}
	}
}
