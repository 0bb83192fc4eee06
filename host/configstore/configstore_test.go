package configstore_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/configstore"
	"github.com/jifu-open/jifu/host/database/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

var (
	masterKey = bytes.Repeat([]byte{0x42}, configstore.MasterKeyBytes)
	otherKey  = bytes.Repeat([]byte{0x24}, configstore.MasterKeyBytes)
)

func newStore(t testing.TB, key []byte) *configstore.Store {
	t.Helper()
	s, err := configstore.New(dbtest.Pool(t), key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func appName(t testing.TB) string { return "app:" + t.Name() }

// stored returns the raw bytes kept for app/key.
func stored(t *testing.T, app, key string) ([]byte, bool) {
	t.Helper()
	var v []byte
	var secret bool
	if err := dbtest.Pool(t).QueryRow(context.Background(),
		`SELECT value, secret FROM config_entries WHERE app = $1 AND key = $2`, app, key).Scan(&v, &secret); err != nil {
		t.Fatal(err)
	}
	return v, secret
}

func TestNew(t *testing.T) {
	tests := []struct {
		name string
		key  []byte
		code string
	}{
		{"32 bytes", masterKey, ""},
		{"nil", nil, jifu.CodeInvalid},
		{"16 bytes", masterKey[:16], jifu.CodeInvalid},
		{"33 bytes", append(bytes.Clone(masterKey), 1), jifu.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := configstore.New(dbtest.Pool(t), tt.key)
			if jifu.ErrorCode(err) != tt.code {
				t.Fatalf("New = %v, want code %q", err, tt.code)
			}
		})
	}
}

func TestSetGet(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, masterKey)
	app := appName(t)
	tests := []struct {
		name   string
		key    string
		value  string
		secret bool
	}{
		{"plain", "greeting", "hello", false},
		{"secret", "payment.api_key", "sk_live_0123456789abcdef", true},
		{"empty secret", "empty-secret", "", true},
		{"empty plain", "empty_plain", "", false},
		{"unicode secret", "name", "机付 ✓", true},
		{"largest value", "big", strings.Repeat("x", configstore.MaxValueBytes), true},
		{"longest key", strings.Repeat("k", configstore.MaxKeyLen), "v", false},
		{"secret becomes plain", "greeting", "hi again", false},
		{"plain becomes secret", "greeting", "now hidden", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Set(ctx, app, tt.key, tt.value, tt.secret); err != nil {
				t.Fatal(err)
			}
			v, secret, err := s.Get(ctx, app, tt.key)
			if err != nil || v != tt.value || secret != tt.secret {
				t.Fatalf("Get = %.20q, %v, %v; want %.20q, %v", v, secret, err, tt.value, tt.secret)
			}
			raw, rawSecret := stored(t, app, tt.key)
			if rawSecret != tt.secret {
				t.Errorf("stored secret flag = %v", rawSecret)
			}
			switch {
			case !tt.secret && string(raw) != tt.value:
				t.Errorf("plain value stored as %q, want as is", raw)
			case tt.secret && tt.value != "" && bytes.Contains(raw, []byte(tt.value)):
				t.Errorf("stored secret contains the plaintext")
			case tt.secret && len(raw) < len(tt.value)+1+12+16:
				t.Errorf("stored secret is %d bytes: no room for nonce and tag", len(raw))
			}
		})
	}
}

func TestSecretsUseFreshNonces(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, masterKey)
	app := appName(t)
	if err := s.Set(ctx, app, "a", "same", true); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, app, "b", "same", true); err != nil {
		t.Fatal(err)
	}
	a, _ := stored(t, app, "a")
	b, _ := stored(t, app, "b")
	if bytes.Equal(a, b) {
		t.Error("one plaintext encrypted twice gave the same bytes")
	}
}

func TestInvalidArguments(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, masterKey)
	app := appName(t)
	tests := []struct {
		name, app, key, value string
		code                  string
	}{
		{"empty key", app, "", "v", jifu.CodeInvalid},
		{"key too long", app, strings.Repeat("k", configstore.MaxKeyLen+1), "v", jifu.CodeInvalid},
		{"upper case key", app, "API_KEY", "v", jifu.CodeInvalid},
		{"key with slash", app, "a/b", "v", jifu.CodeInvalid},
		{"key with space", app, "a b", "v", jifu.CodeInvalid},
		{"key with NUL", app, "a\x00b", "v", jifu.CodeInvalid},
		{"empty app", "", "k", "v", jifu.CodeInvalid},
		{"app with NUL", "a\x00b", "k", "v", jifu.CodeInvalid},
		{"value too large", app, "big", strings.Repeat("x", configstore.MaxValueBytes+1), jifu.CodeTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, secret := range []bool{false, true} {
				if err := s.Set(ctx, tt.app, tt.key, tt.value, secret); jifu.ErrorCode(err) != tt.code {
					t.Errorf("Set(secret=%v) = %v, want code %s", secret, err, tt.code)
				}
			}
			if tt.code == jifu.CodeInvalid {
				if _, _, err := s.Get(ctx, tt.app, tt.key); jifu.ErrorCode(err) != jifu.CodeInvalid {
					t.Errorf("Get = %v, want CodeInvalid", err)
				}
				if _, err := s.Delete(ctx, tt.app, tt.key); jifu.ErrorCode(err) != jifu.CodeInvalid {
					t.Errorf("Delete = %v, want CodeInvalid", err)
				}
			}
		})
	}
	if _, err := s.All(ctx, ""); jifu.ErrorCode(err) != jifu.CodeInvalid {
		t.Errorf("All(\"\") = %v, want CodeInvalid", err)
	}
	if vals, err := s.All(ctx, app); err != nil || len(vals) != 0 {
		t.Errorf("rejected writes left values: %v, %v", vals, err)
	}
}

func TestGetMissingAndDelete(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, masterKey)
	app := appName(t)
	if _, _, err := s.Get(ctx, app, "missing"); jifu.ErrorCode(err) != jifu.CodeNotFound {
		t.Fatalf("Get missing = %v, want CodeNotFound", err)
	}
	if err := s.Set(ctx, app, "k", "v", true); err != nil {
		t.Fatal(err)
	}
	for _, want := range []bool{true, false} {
		if deleted, err := s.Delete(ctx, app, "k"); err != nil || deleted != want {
			t.Fatalf("Delete = %v, %v; want %v", deleted, err, want)
		}
	}
	if _, _, err := s.Get(ctx, app, "k"); jifu.ErrorCode(err) != jifu.CodeNotFound {
		t.Errorf("Get after Delete = %v, want CodeNotFound", err)
	}
}

func TestAll(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, masterKey)
	app := appName(t)
	want := configstore.Values{"plain": "p", "secret.one": "s1", "secret.two": "s2"}
	for k, v := range want {
		if err := s.Set(ctx, app, k, v, strings.HasPrefix(k, "secret")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Set(ctx, app+"/other", "plain", "not mine", false); err != nil {
		t.Fatal(err)
	}
	got, err := s.All(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("All = %d values, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("All[%q] = %q, want %q", k, got[k], v)
		}
	}
	var asMap map[string]string = got // Values is a plain map underneath
	if asMap["plain"] != "p" {
		t.Error("Values does not work as a map[string]string")
	}
	if vals, err := s.All(ctx, app+"/nobody"); err != nil || vals == nil || len(vals) != 0 {
		t.Errorf("All for an app without config = %v, %v; want an empty map", vals, err)
	}
}

func TestWrongMasterKey(t *testing.T) {
	ctx := context.Background()
	app := appName(t)
	if err := newStore(t, masterKey).Set(ctx, app, "token", "s3cr3t-value", true); err != nil {
		t.Fatal(err)
	}
	if err := newStore(t, masterKey).Set(ctx, app, "plain", "visible", false); err != nil {
		t.Fatal(err)
	}
	wrong := newStore(t, otherKey)
	_, _, err := wrong.Get(ctx, app, "token")
	if jifu.ErrorCode(err) != jifu.CodeInternal || !strings.Contains(err.Error(), "wrong master key") {
		t.Fatalf("Get with the wrong key = %v, want CodeInternal saying wrong master key", err)
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Error("error leaks the secret")
	}
	if _, err := wrong.All(ctx, app); jifu.ErrorCode(err) != jifu.CodeInternal {
		t.Errorf("All with the wrong key = %v, want CodeInternal", err)
	}
	// Plain values need no key.
	if v, _, err := wrong.Get(ctx, app, "plain"); err != nil || v != "visible" {
		t.Errorf("plain Get with another key = %q, %v", v, err)
	}
}

// TestCiphertextBoundToAppAndKey moves a stored secret to another key and
// another app: it must not decrypt there.
func TestCiphertextBoundToAppAndKey(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, masterKey)
	app := appName(t)
	if err := s.Set(ctx, app, "source", "moved secret", true); err != nil {
		t.Fatal(err)
	}
	raw, _ := stored(t, app, "source")
	pool := dbtest.Pool(t)
	tests := []struct{ name, app, key string }{
		{"other key", app, "target"},
		{"other app", app + "/other", "source"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := pool.Exec(ctx, `INSERT INTO config_entries (app, key, value, secret) VALUES ($1, $2, $3, true)`,
				tt.app, tt.key, raw); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.Get(ctx, tt.app, tt.key); jifu.ErrorCode(err) != jifu.CodeInternal {
				t.Errorf("Get of a moved ciphertext = %v, want CodeInternal", err)
			}
		})
	}
	// And a flipped bit is caught.
	raw[len(raw)-1] ^= 1
	if _, err := pool.Exec(ctx, `UPDATE config_entries SET value = $3 WHERE app = $1 AND key = $2`, app, "source", raw); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(ctx, app, "source"); jifu.ErrorCode(err) != jifu.CodeInternal {
		t.Errorf("Get of an altered ciphertext = %v, want CodeInternal", err)
	}
}

func TestNothingPrintsSecrets(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, masterKey)
	app := appName(t)
	const secret = "TOPSECRETVALUE"
	if err := s.Set(ctx, app, "api_key", secret, true); err != nil {
		t.Fatal(err)
	}
	vals, err := s.All(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	log.Info("x", "store", s, "values", vals)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "store", s, "values", vals)
	outputs := map[string]string{
		"%v values":  fmt.Sprintf("%v", vals),
		"%+v values": fmt.Sprintf("%+v", vals),
		"%#v values": fmt.Sprintf("%#v", vals),
		"%s values":  fmt.Sprintf("%s", vals),
		"%v store":   fmt.Sprintf("%v", s),
		"%+v store":  fmt.Sprintf("%+v", s),
		"%#v store":  fmt.Sprintf("%#v", s),
		"slog":       logged.String(),
	}
	for name, out := range outputs {
		if strings.Contains(out, secret) {
			t.Errorf("%s prints the secret: %s", name, out)
		}
		if bytes.Contains([]byte(out), masterKey[:4]) || strings.Contains(out, "BBBB") {
			t.Errorf("%s prints the master key: %s", name, out)
		}
	}
	if !strings.Contains(vals.String(), "api_key") {
		t.Errorf("Values.String() = %q, want the key names", vals.String())
	}
}
