// Package kvstore is each app's own key-value store, kept in PostgreSQL.
//
// Keys and values are bytes. Every entry carries a version, 1 when created
// and one more at each write, for optimistic concurrency with
// CompareAndSet. Entries live in a namespace that the host chooses for the
// app (the guest never names it), so one app never sees another's keys.
//
//	kv := kvstore.New(pool)
//	v, err := kv.Put(ctx, "app:acme-shop", []byte("cart/42"), []byte(`{"items":3}`))
//	_, err = kv.CompareAndSet(ctx, "app:acme-shop", []byte("cart/42"), v, []byte(`{"items":4}`))
//	if jifu.ErrorCode(err) == jifu.CodeConflict { /* someone wrote first: re-read and retry */ }
//
// Errors are *jifu.Error: CodeInvalid or CodeTooLarge for bad arguments
// (nothing is written), CodeNotFound, CodeConflict, CodeTimeout when ctx's
// deadline passes, CodeUnavailable when the database cannot be reached.
package kvstore

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/database"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the table kv_entries.
var Migrations = database.MigrationSet{Name: "kv", FS: database.MustSub(migrationFiles, "migrations")}

// Limits on what an app may store.
const (
	MaxKeyBytes       = 1024    // a key is 1..MaxKeyBytes bytes
	MaxValueBytes     = 1 << 20 // a value is 0..MaxValueBytes bytes
	MaxScanLimit      = 1000    // Scan returns at most this many entries a call
	MaxNamespaceBytes = 255     // the host's namespace names
)

// Entry is one key, its value and its version, as Scan returns them.
type Entry struct {
	Key     []byte
	Value   []byte
	Version int64
}

// Store reads and writes the entries of every namespace. It is safe for
// concurrent use.
type Store struct {
	pool  *pgxpool.Pool
	reads reads // coalesces concurrent Gets (reads.go)
}

// New returns a Store keeping its entries in pool's database, which must be
// migrated with Migrations.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Get returns the value and version of key; CodeNotFound when it has none.
// Concurrent Gets are coalesced (see MaxReadsInFlight), so the value may be
// shared with other callers: it must not be modified.
func (s *Store) Get(ctx context.Context, ns string, key []byte) (value []byte, version int64, err error) {
	if err := checkKey(ns, key); err != nil {
		return nil, 0, err
	}
	return s.get(ctx, ns, key)
}

// getOne reads one key with a statement of its own.
func (s *Store) getOne(ctx context.Context, ns string, key []byte) (value []byte, version int64, err error) {
	err = s.pool.QueryRow(ctx,
		`SELECT value, version FROM kv_entries WHERE namespace = $1 AND key = $2`,
		ns, key).Scan(&value, &version)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, jifu.Errorf(jifu.CodeNotFound, "kvstore: key not found")
	}
	if err != nil {
		return nil, 0, dbError(ctx, "get", err)
	}
	return value, version, nil
}

// Put sets key to value, creating it at version 1 or bumping its version,
// and returns the new version.
func (s *Store) Put(ctx context.Context, ns string, key, value []byte) (version int64, err error) {
	if err := checkEntry(ns, key, value); err != nil {
		return 0, err
	}
	err = s.pool.QueryRow(ctx, `
		INSERT INTO kv_entries (namespace, key, value) VALUES ($1, $2, $3)
		ON CONFLICT (namespace, key) DO UPDATE
		SET value = EXCLUDED.value, version = kv_entries.version + 1, updated_at = now()
		RETURNING version`,
		ns, key, nonNil(value)).Scan(&version)
	if err != nil {
		return 0, dbError(ctx, "put", err)
	}
	return version, nil
}

// Delete removes key and reports whether it existed.
func (s *Store) Delete(ctx context.Context, ns string, key []byte) (deleted bool, err error) {
	if err := checkKey(ns, key); err != nil {
		return false, err
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM kv_entries WHERE namespace = $1 AND key = $2`, ns, key)
	if err != nil {
		return false, dbError(ctx, "delete", err)
	}
	return tag.RowsAffected() > 0, nil
}

// CompareAndSet sets key to value only if its version is expectVersion,
// where 0 means the key must not exist, and returns the new version. When
// the key's version differs (or it exists, or not, against expectation) it
// returns CodeConflict and writes nothing. Each case is one statement, so
// concurrent callers expecting the same version have exactly one winner.
func (s *Store) CompareAndSet(ctx context.Context, ns string, key []byte, expectVersion int64, value []byte) (version int64, err error) {
	if err := checkEntry(ns, key, value); err != nil {
		return 0, err
	}
	if expectVersion < 0 {
		return 0, jifu.Errorf(jifu.CodeInvalid, "kvstore: expected version %d is negative", expectVersion)
	}
	if expectVersion == 0 {
		err = s.pool.QueryRow(ctx, `
			INSERT INTO kv_entries (namespace, key, value) VALUES ($1, $2, $3)
			ON CONFLICT (namespace, key) DO NOTHING
			RETURNING version`,
			ns, key, nonNil(value)).Scan(&version)
	} else {
		// Under READ COMMITTED a concurrent writer's update makes this one
		// re-check "version = $4" against the committed row: the loser
		// matches nothing.
		err = s.pool.QueryRow(ctx, `
			UPDATE kv_entries SET value = $3, version = version + 1, updated_at = now()
			WHERE namespace = $1 AND key = $2 AND version = $4
			RETURNING version`,
			ns, key, nonNil(value), expectVersion).Scan(&version)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		if expectVersion == 0 {
			return 0, jifu.Errorf(jifu.CodeConflict, "kvstore: key already exists")
		}
		return 0, jifu.Errorf(jifu.CodeConflict, "kvstore: key is not at version %d", expectVersion)
	}
	if err != nil {
		return 0, dbError(ctx, "compare-and-set", err)
	}
	return version, nil
}

// Scan returns, in ascending bytewise key order, at most limit entries whose
// key starts with prefix (every key when prefix is empty) and, when after is
// not nil, is greater than after. more reports whether entries remain past
// the last one returned: pass its key as after to read the next page.
// limit must be 1..MaxScanLimit.
func (s *Store) Scan(ctx context.Context, ns string, prefix, after []byte, limit int) (entries []Entry, more bool, err error) {
	if err := checkNamespace(ns); err != nil {
		return nil, false, err
	}
	if limit < 1 || limit > MaxScanLimit {
		return nil, false, jifu.Errorf(jifu.CodeInvalid, "kvstore: scan limit %d is not within 1..%d", limit, MaxScanLimit)
	}
	if len(prefix) > MaxKeyBytes || len(after) > MaxKeyBytes {
		return nil, false, jifu.Errorf(jifu.CodeTooLarge, "kvstore: scan prefix or cursor is over %d bytes", MaxKeyBytes)
	}

	// A range on the primary key: key >= prefix AND key < successor(prefix),
	// the lower bound raised to "> after" when after lies past prefix.
	q := `SELECT key, value, version FROM kv_entries WHERE namespace = $1`
	args := []any{ns}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if after != nil && bytes.Compare(after, prefix) >= 0 {
		q += ` AND key > ` + arg(after)
	} else if len(prefix) > 0 {
		q += ` AND key >= ` + arg(prefix)
	}
	if end := successor(prefix); end != nil {
		q += ` AND key < ` + arg(end)
	}
	q += ` ORDER BY key LIMIT ` + arg(limit+1)

	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, false, dbError(ctx, "scan", err)
	}
	entries, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Entry, error) {
		var e Entry
		err := r.Scan(&e.Key, &e.Value, &e.Version)
		return e, err
	})
	if err != nil {
		return nil, false, dbError(ctx, "scan", err)
	}
	if len(entries) > limit {
		return entries[:limit], true, nil
	}
	return entries, false, nil
}

// successor returns the smallest byte string greater than every string
// starting with prefix, or nil when there is none (prefix empty or all
// 0xFF bytes).
func successor(prefix []byte) []byte {
	for i := len(prefix) - 1; i >= 0; i-- {
		if prefix[i] != 0xFF {
			s := bytes.Clone(prefix[:i+1])
			s[i]++
			return s
		}
	}
	return nil
}

func checkNamespace(ns string) error {
	if ns == "" || len(ns) > MaxNamespaceBytes {
		return jifu.Errorf(jifu.CodeInvalid, "kvstore: namespace must be 1..%d bytes", MaxNamespaceBytes)
	}
	return nil
}

func checkKey(ns string, key []byte) error {
	if err := checkNamespace(ns); err != nil {
		return err
	}
	if len(key) == 0 {
		return jifu.Errorf(jifu.CodeInvalid, "kvstore: key is empty")
	}
	if len(key) > MaxKeyBytes {
		return jifu.Errorf(jifu.CodeTooLarge, "kvstore: key is %d bytes, over the limit of %d", len(key), MaxKeyBytes)
	}
	return nil
}

func checkEntry(ns string, key, value []byte) error {
	if err := checkKey(ns, key); err != nil {
		return err
	}
	if len(value) > MaxValueBytes {
		return jifu.Errorf(jifu.CodeTooLarge, "kvstore: value is %d bytes, over the limit of %d", len(value), MaxValueBytes)
	}
	return nil
}

// nonNil maps a nil value to an empty one: pgx sends a nil []byte as NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// dbError codes a failed query: the deadline passing is CodeTimeout, an
// error from the server CodeInternal (a bug of ours), anything else (the
// connection) CodeUnavailable.
func dbError(ctx context.Context, op string, err error) error {
	return database.QueryError(ctx, "kvstore: "+op, err)
}
