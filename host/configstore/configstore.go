// Package configstore keeps each app's configuration values and secrets.
//
// Plain values are stored as they are. Secrets are encrypted at rest with
// AES-256-GCM under the platform's 32-byte master key, with a random nonce
// per write and the app and key names as additional data, so a ciphertext
// copied to another app or key does not decrypt. Nothing in this package
// prints a secret: the Store and the Values it returns redact themselves in
// fmt and slog output.
//
//	cs, err := configstore.New(pool, masterKey)
//	err = cs.Set(ctx, "acme-shop", "payment.api_key", "sk_live_...", true)
//	vals, err := cs.All(ctx, "acme-shop") // decrypted, for loading an app version
//	log.Info("config loaded", "values", vals) // prints keys only
package configstore

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"embed"
	"errors"
	"log/slog"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/database"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the table config_entries.
var Migrations = database.MigrationSet{Name: "config", FS: database.MustSub(migrationFiles, "migrations")}

// Limits.
const (
	MasterKeyBytes = 32       // AES-256
	MaxKeyLen      = 64       // key names match ^[a-z0-9_.-]{1,64}$
	MaxValueBytes  = 64 << 10 // 64 KiB per value
	MaxAppBytes    = 255
)

const (
	formatV1  = 0x01 // stored secret: formatV1 || nonce || ciphertext+tag
	nonceSize = 12
	redacted  = "<redacted>"
)

// Store reads and writes every app's configuration. It is safe for
// concurrent use.
type Store struct {
	pool *pgxpool.Pool
	aead cipher.AEAD // holds the expanded master key; never printed
}

// New returns a Store over pool's database (migrated with Migrations) that
// encrypts secrets with masterKey, which must be MasterKeyBytes long. The
// key is not kept beyond the cipher's expanded form.
func New(pool *pgxpool.Pool, masterKey []byte) (*Store, error) {
	if len(masterKey) != MasterKeyBytes {
		return nil, jifu.Errorf(jifu.CodeInvalid, "configstore: master key is %d bytes, want %d", len(masterKey), MasterKeyBytes)
	}
	block, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeInternal, "configstore: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeInternal, "configstore: %w", err)
	}
	return &Store{pool: pool, aead: aead}, nil
}

// String never shows the key material.
func (s *Store) String() string { return "configstore.Store{master key: " + redacted + "}" }

// GoString never shows the key material (the %#v verb).
func (s *Store) GoString() string { return s.String() }

// LogValue never shows the key material.
func (s *Store) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Set stores value under key for app, encrypted when secret, replacing any
// previous value (and its secret flag).
func (s *Store) Set(ctx context.Context, app, key, value string, secret bool) error {
	if err := checkName(app, key); err != nil {
		return err
	}
	if len(value) > MaxValueBytes {
		return jifu.Errorf(jifu.CodeTooLarge, "configstore: value of %q is %d bytes, over the limit of %d", key, len(value), MaxValueBytes)
	}
	stored := []byte(value)
	if secret {
		var err error
		if stored, err = s.seal(app, key, value); err != nil {
			return err
		}
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO config_entries (app, key, value, secret) VALUES ($1, $2, $3, $4)
		ON CONFLICT (app, key) DO UPDATE
		SET value = EXCLUDED.value, secret = EXCLUDED.secret, updated_at = now()`,
		app, key, stored, secret)
	if err != nil {
		return dbError(ctx, "set", err)
	}
	return nil
}

// Get returns the value of key for app, decrypted if it is a secret;
// CodeNotFound when there is none.
func (s *Store) Get(ctx context.Context, app, key string) (value string, secret bool, err error) {
	if err := checkName(app, key); err != nil {
		return "", false, err
	}
	var stored []byte
	err = s.pool.QueryRow(ctx, `SELECT value, secret FROM config_entries WHERE app = $1 AND key = $2`, app, key).
		Scan(&stored, &secret)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, jifu.Errorf(jifu.CodeNotFound, "configstore: app %q has no config key %q", app, key)
	}
	if err != nil {
		return "", false, dbError(ctx, "get", err)
	}
	value, err = s.reveal(app, key, stored, secret)
	return value, secret, err
}

// Delete removes key of app and reports whether it existed.
func (s *Store) Delete(ctx context.Context, app, key string) (deleted bool, err error) {
	if err := checkName(app, key); err != nil {
		return false, err
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM config_entries WHERE app = $1 AND key = $2`, app, key)
	if err != nil {
		return false, dbError(ctx, "delete", err)
	}
	return tag.RowsAffected() > 0, nil
}

// All returns every value of app, secrets decrypted: what the host loads
// once per app version. An app without config gets an empty map.
func (s *Store) All(ctx context.Context, app string) (Values, error) {
	if err := checkApp(app); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT key, value, secret FROM config_entries WHERE app = $1`, app)
	if err != nil {
		return nil, dbError(ctx, "list", err)
	}
	defer rows.Close()
	vals := Values{}
	for rows.Next() {
		var (
			key    string
			stored []byte
			secret bool
		)
		if err := rows.Scan(&key, &stored, &secret); err != nil {
			return nil, dbError(ctx, "list", err)
		}
		v, err := s.reveal(app, key, stored, secret)
		if err != nil {
			return nil, err
		}
		vals[key] = v
	}
	if err := rows.Err(); err != nil {
		return nil, dbError(ctx, "list", err)
	}
	return vals, nil
}

// Values is an app's configuration, key to value, secrets included in the
// clear. Printing it with fmt or slog shows the keys only.
type Values map[string]string

// String lists the keys, never the values.
func (v Values) String() string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString("configstore.Values{")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k + ": " + redacted)
	}
	b.WriteString("}")
	return b.String()
}

// GoString lists the keys, never the values (the %#v verb).
func (v Values) GoString() string { return v.String() }

// LogValue lists the keys, never the values.
func (v Values) LogValue() slog.Value { return slog.StringValue(v.String()) }

func (s *Store) seal(app, key, plaintext string) ([]byte, error) {
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(plaintext)+s.aead.Overhead())
	out[0] = formatV1
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, jifu.Errorf(jifu.CodeInternal, "configstore: nonce: %w", err)
	}
	return s.aead.Seal(out, out[1:], []byte(plaintext), additionalData(app, key)), nil
}

func (s *Store) reveal(app, key string, stored []byte, secret bool) (string, error) {
	if !secret {
		return string(stored), nil
	}
	if len(stored) < 1+nonceSize+s.aead.Overhead() || stored[0] != formatV1 {
		return "", jifu.Errorf(jifu.CodeInternal, "configstore: secret %q of app %q is not in a known format", key, app)
	}
	plain, err := s.aead.Open(nil, stored[1:1+nonceSize], stored[1+nonceSize:], additionalData(app, key))
	if err != nil {
		return "", jifu.Errorf(jifu.CodeInternal,
			"configstore: cannot decrypt secret %q of app %q: wrong master key, or the stored value was altered", key, app)
	}
	return string(plain), nil
}

// additionalData binds a ciphertext to its app and key. Neither holds a
// NUL (checkName), so the encoding is unambiguous.
func additionalData(app, key string) []byte {
	return []byte("jifu/configstore/v1\x00" + app + "\x00" + key)
}

func checkApp(app string) error {
	if app == "" || len(app) > MaxAppBytes || strings.ContainsRune(app, 0) {
		return jifu.Errorf(jifu.CodeInvalid, "configstore: app name must be 1..%d bytes without NUL", MaxAppBytes)
	}
	return nil
}

// ValidKey reports whether key is an acceptable config key name:
// ^[a-z0-9_.-]{1,64}$.
func ValidKey(key string) bool {
	if key == "" || len(key) > MaxKeyLen {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func checkName(app, key string) error {
	if err := checkApp(app); err != nil {
		return err
	}
	if !ValidKey(key) {
		return jifu.Errorf(jifu.CodeInvalid, "configstore: config key %q must match ^[a-z0-9_.-]{1,%d}$", key, MaxKeyLen)
	}
	return nil
}

func dbError(ctx context.Context, op string, err error) error {
	return database.QueryError(ctx, "configstore: "+op, err)
}
