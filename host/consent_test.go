package host

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/abi"
	"github.com/jifu-open/jifu/host/manifest"
)

// consentMap consents per user; err fails every check.
type consentMap struct {
	users map[string]bool
	err   error
}

func (c consentMap) Consented(_ context.Context, app, user, scope string) (bool, error) {
	if app != "consent" || scope != "user.probe" {
		return false, errors.New("consent asked about the wrong app or scope")
	}
	return c.users[user], c.err
}

// newProbeHost returns a host with a test-only host function "probe" behind
// scope user.probe, which needs each user's consent.
func newProbeHost(t *testing.T, consent ConsentChecker) *Host {
	t.Helper()
	h, err := New(context.Background(), Config{Consent: consent})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	h.registry.scopes["user.probe"] = Scope{Name: "user.probe", NeedsConsent: true}
	h.registry.functions["probe"] = &hostFunc{name: "probe", capability: "test", scope: "user.probe", result: i32,
		call: func(context.Context, *call) int64 { return 7 }}
	return h
}

func probeApp(t *testing.T, h *Host, granted []string) (*App, error) {
	t.Helper()
	wasm, err := os.ReadFile("testdata/wat/consent.wasm")
	if err != nil {
		t.Fatal(err)
	}
	m, ps := manifest.Parse([]byte(`{"abi":1,"slug":"consent","name":"C","version":"1.0.0","scopes":["user.probe"],"entry_points":["handle_http"]}`))
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	app, err := h.Load(context.Background(), AppSpec{Wasm: wasm, Manifest: m, Granted: granted})
	if app != nil {
		t.Cleanup(func() { _ = app.Close(context.Background()) })
	}
	return app, err
}

func probe(t *testing.T, app *App, user string) int32 {
	t.Helper()
	resp, err := app.HandleHTTP(context.Background(), Caller{User: user}, &abi.Request{Method: "GET", Path: "/"})
	if err != nil {
		t.Fatal(err)
	}
	return int32(binary.LittleEndian.Uint32(resp.Body))
}

func TestConsent(t *testing.T) {
	tests := []struct {
		name    string
		consent ConsentChecker
		user    string
		want    int32
	}{
		{"deny by default", nil, "alice", abi.ErrDenied},
		{"consented", consentMap{users: map[string]bool{"alice": true}}, "alice", 7},
		{"another user", consentMap{users: map[string]bool{"alice": true}}, "bob", abi.ErrDenied},
		{"anonymous", AllowAll{}, "", abi.ErrDenied},
		{"dev mode", AllowAll{}, "carol", 7},
		{"consent store down", consentMap{err: errors.New("down")}, "alice", abi.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newProbeHost(t, tt.consent)
			app, err := probeApp(t, h, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := probe(t, app, tt.user); got != tt.want {
				t.Fatalf("probe = %d, want %d", got, tt.want)
			}
		})
	}
}

// An app is linked only with the functions of the scopes it was granted: a
// module importing a function of an ungranted scope cannot even instantiate.
func TestLinkOnlyGrantedScopes(t *testing.T) {
	h := newProbeHost(t, AllowAll{})
	_, err := probeApp(t, h, []string{})
	if err == nil || !strings.Contains(err.Error(), "probe") {
		t.Fatalf("an app importing an ungranted scope's function: err = %v, want a link failure naming probe", err)
	}
	_, err = probeApp(t, h, []string{"user.teleport"})
	if jifu.ErrorCode(err) != jifu.CodeInvalid {
		t.Fatalf("granting an undeclared scope: %v", err)
	}
}
