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
	"github.com/jifu-open/jifu/host/callback"
	"github.com/jifu-open/jifu/host/configstore"
	"github.com/jifu-open/jifu/host/database/dbtest"
)

func TestQualify(t *testing.T) {
	secret := []byte("whsec_q")
	tests := []struct {
		name     string
		status   int
		answer   string
		hang     bool
		allowDef bool
		want     callback.Decision
		reason   string // substring of the reason
	}{
		{"allowed", 200, `{"allowed":true}`, false, false, callback.Decision{Allowed: true, Status: 200}, ""},
		{"refused with reason", 200, `{"allowed":false,"reason":"one phone number per ID card"}`, false, true,
			callback.Decision{Allowed: false, Status: 200, Reason: "one phone number per ID card"}, "one phone"},
		{"500: default deny", 500, `oops`, false, false, callback.Decision{Allowed: false, Defaulted: true, Status: 500}, "Internal Server Error: oops"},
		{"500: default allow", 500, ``, false, true, callback.Decision{Allowed: true, Defaulted: true, Status: 500}, "HTTP"},
		{"not JSON", 200, `yes`, false, true, callback.Decision{Allowed: true, Defaulted: true, Status: 200}, "not {"},
		{"allowed missing", 200, `{"ok":true}`, false, false, callback.Decision{Defaulted: true, Status: 200}, "not {"},
		{"allowed not a boolean", 200, `{"allowed":"true"}`, false, false, callback.Decision{Defaulted: true, Status: 200}, "not {"},
		{"hangs: default within the timeout", 200, ``, true, true, callback.Decision{Allowed: true, Defaulted: true}, "no answer within 300ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			verified := make(chan error, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				verified <- callback.Verify(secret, r.Header.Get(callback.HeaderSignature), body, time.Now(), 0)
				if tt.hang {
					<-r.Context().Done()
					return
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.answer)
			}))
			defer srv.Close()
			timeout := 5 * time.Second // generous: the machine may be loaded
			if tt.hang {
				timeout = 300 * time.Millisecond
			}
			start := time.Now()
			d := callback.Qualify(context.Background(), callback.NewHTTPClient(0),
				callback.Qualifier{Target: callback.Target{URL: srv.URL, Secret: secret}, Timeout: timeout, Allow: tt.allowDef},
				callback.QualifyRequest{ID: "q1", App: "acme", Type: "order.qualify", User: "u1", Data: json.RawMessage(`{"sku":"x"}`)}, time.Now())
			if d.Allowed != tt.want.Allowed || d.Defaulted != tt.want.Defaulted || d.Status != tt.want.Status || !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("Qualify = %+v, want %+v with reason containing %q", d, tt.want, tt.reason)
			}
			if tt.hang && time.Since(start) > 5*time.Second {
				t.Errorf("a hanging app held the order for %v", time.Since(start))
			}
			if err := <-verified; err != nil {
				t.Errorf("the app cannot verify the check: %v", err)
			}
		})
	}
	d := callback.Qualify(context.Background(), callback.NewHTTPClient(0), callback.Qualifier{Target: callback.Target{URL: "ftp://x"}, Allow: true},
		callback.QualifyRequest{ID: "q2", Type: "order.qualify"}, time.Now())
	if !d.Allowed || !d.Defaulted {
		t.Errorf("bad URL: %+v, want the default", d)
	}
}

func TestConfigQualifier(t *testing.T) {
	ctx := context.Background()
	cs, err := configstore.New(dbtest.Pool(t), make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	set := func(app string, kv ...string) {
		for i := 0; i < len(kv); i += 2 {
			if err := cs.Set(ctx, app, kv[i], kv[i+1], kv[i] == callback.KeySecret); err != nil {
				t.Fatal(err)
			}
		}
	}
	set("q-min", callback.KeyQualifyURL, "https://acme.example/qualify", callback.KeySecret, "s1")
	set("q-full", callback.KeyQualifyURL, "https://acme.example/qualify", callback.KeySecret, "s2",
		callback.KeyQualifyDefault, "allow", callback.KeyQualifyTimeout, "1500ms")
	set("q-baddef", callback.KeyQualifyURL, "https://x.example/q", callback.KeySecret, "s", callback.KeyQualifyDefault, "maybe")
	set("q-badtime", callback.KeyQualifyURL, "https://x.example/q", callback.KeySecret, "s", callback.KeyQualifyTimeout, "1m")
	set("q-nosecret", callback.KeyQualifyURL, "https://x.example/q")
	targets := callback.ConfigTargets{Config: cs}
	tests := []struct {
		app     string
		allow   bool
		timeout time.Duration
		code    string
	}{
		{"q-min", false, callback.DefaultQualifyTimeout, ""},
		{"q-full", true, 1500 * time.Millisecond, ""},
		{"q-baddef", false, 0, jifu.CodeInvalid},
		{"q-badtime", false, 0, jifu.CodeInvalid},
		{"q-nosecret", false, 0, jifu.CodeNotFound},
		{"q-none", false, 0, jifu.CodeNotFound},
	}
	for _, tt := range tests {
		q, err := targets.Qualifier(ctx, tt.app)
		if jifu.ErrorCode(err) != tt.code {
			t.Errorf("%s: %v, want %q", tt.app, err, tt.code)
			continue
		}
		if err == nil && (q.Allow != tt.allow || q.Timeout != tt.timeout || q.Target.URL == "" || len(q.Target.Secret) == 0) {
			t.Errorf("%s: %+v", tt.app, q)
		}
	}
}
