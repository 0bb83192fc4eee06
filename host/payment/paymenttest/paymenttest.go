// Package paymenttest holds test helpers for code that uses package
// payment: Events, a PostgreSQL-table-backed payment.Events that writes in
// the publishing transaction as the real outbox does, so tests see exactly
// the events that committed.
//
//	ev := paymenttest.NewEvents(t, pool)
//	svc, _ := payment.New(payment.Config{Pool: pool, Ledger: l, Events: ev})
//	...
//	for _, e := range ev.Of(t, intentID) { ... }
package paymenttest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu/host/payment"
)

// Events stores published events in the table test_payment_events.
type Events struct {
	pool *pgxpool.Pool
}

// NewEvents creates the table (once per database) and returns the store.
func NewEvents(t testing.TB, pool *pgxpool.Pool) *Events {
	t.Helper()
	if _, err := pool.Exec(context.Background(), `
		CREATE TABLE IF NOT EXISTS test_payment_events (
			seq bigint GENERATED ALWAYS AS IDENTITY, id text PRIMARY KEY, type text NOT NULL, app text NOT NULL,
			user_id text NOT NULL, intent_id text NOT NULL, payload jsonb NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return &Events{pool: pool}
}

// Publish implements payment.Events: one row, written with tx.
func (e *Events) Publish(ctx context.Context, tx pgx.Tx, ev payment.Event) error {
	_, err := tx.Exec(ctx, `INSERT INTO test_payment_events (id, type, app, user_id, intent_id, payload)
		VALUES ($1, $2, $3, $4, $5, $6)`, ev.ID, ev.Type, ev.App, ev.User, ev.IntentID, ev.Payload)
	return err
}

// Of returns the events published about intent id, in publishing order.
func (e *Events) Of(t testing.TB, id string) []payment.Event {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT id, type, app, user_id, intent_id, payload::text
		FROM test_payment_events WHERE intent_id = $1 ORDER BY seq`, id)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (payment.Event, error) {
		var ev payment.Event
		var payload string
		err := row.Scan(&ev.ID, &ev.Type, &ev.App, &ev.User, &ev.IntentID, &payload)
		ev.Payload = []byte(payload)
		return ev, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Types returns the types of Of(t, id).
func (e *Events) Types(t testing.TB, id string) []string {
	t.Helper()
	var out []string
	for _, ev := range e.Of(t, id) {
		out = append(out, ev.Type)
	}
	return out
}
