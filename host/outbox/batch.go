package outbox

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/database"
)

// MaxBatch is the most events EnqueueMany takes in one call.
const MaxBatch = 1000

// EnqueueMany is Enqueue for many events in tx: each event is written with
// one delivery job per sink, visible and delivered only if tx commits. It
// costs two statements whatever the number of events and sinks (one writes
// the events and their delivery rows, checks for duplicates and takes the
// jobs' ids from River's sequence; River's one insert of all the jobs),
// plus one read when an id was committed by a racing transaction meanwhile.
// An event already stored with the same content is skipped; one stored
// with other content fails the call with CodeConflict (nothing of the call
// is written then, once tx rolls back). The ids must be distinct. It
// returns how many events were new.
func (o *Outbox) EnqueueMany(ctx context.Context, tx pgx.Tx, evs []Event) (created int, err error) {
	if len(evs) == 0 {
		return 0, nil
	}
	if len(evs) > MaxBatch {
		return 0, jifu.Errorf(jifu.CodeInvalid, "outbox: %d events in one batch, over %d", len(evs), MaxBatch)
	}
	n := len(evs)
	ids, apps, types, users, payloads := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	seen := make(map[string]bool, n)
	for i := range evs {
		ev := &evs[i]
		if err := ev.Validate(); err != nil {
			return 0, err
		}
		if seen[ev.ID] {
			return 0, jifu.Errorf(jifu.CodeInvalid, "outbox: event id %s twice in one batch", ev.ID)
		}
		seen[ev.ID] = true
		ids[i], apps[i], types[i], users[i], payloads[i] = ev.ID, ev.App, ev.Type, ev.User, string(ev.Payload)
	}
	// As in Enqueue, the statement's snapshot predates its own inserts: the
	// comparison reads only rows that existed before (an id not inserted and
	// not found there was committed by a racing transaction while the insert
	// waited on it, and is read afterwards).
	var (
		inserted, differ, older []string
		dlEvents, dlSinks       []string
		jobs                    []int64
	)
	err = tx.QueryRow(ctx, `
		WITH input AS (
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY
				AS x (id, app, type, user_id, payload, n)
		), ins AS (
			INSERT INTO outbox_events (id, app, type, user_id, payload)
			SELECT id, app, type, user_id, payload::jsonb FROM input ORDER BY n
			ON CONFLICT (id) DO NOTHING RETURNING id, app
		), dl AS (
			INSERT INTO outbox_deliveries (event_id, sink, app, job_id)
			SELECT ins.id, s.sink, ins.app, nextval('river_job_id_seq') FROM ins, unnest($6::text[]) AS s (sink)
			RETURNING event_id, sink, job_id
		), old AS (
			SELECT i.id, e.app = i.app AND e.type = i.type AND e.user_id = i.user_id AND e.payload = i.payload::jsonb AS same
			FROM input i JOIN outbox_events e ON e.id = i.id
		)
		SELECT (SELECT coalesce(array_agg(id), '{}') FROM ins),
			(SELECT coalesce(array_agg(id), '{}') FROM old WHERE NOT same),
			(SELECT coalesce(array_agg(id), '{}') FROM old),
			(SELECT coalesce(array_agg(event_id ORDER BY job_id), '{}') FROM dl),
			(SELECT coalesce(array_agg(sink ORDER BY job_id), '{}') FROM dl),
			(SELECT coalesce(array_agg(job_id ORDER BY job_id), '{}') FROM dl)`,
		ids, apps, types, users, payloads, o.names).Scan(&inserted, &differ, &older, &dlEvents, &dlSinks, &jobs)
	if err != nil {
		return 0, database.QueryError(ctx, "outbox: enqueue batch", err)
	}
	if len(differ) > 0 {
		return 0, jifu.Errorf(jifu.CodeConflict, "outbox: event id %s was already used for another event", differ[0])
	}
	if len(inserted)+len(older) < n {
		// Ids committed by racing transactions: compare them now.
		known := make(map[string]bool, len(inserted)+len(older))
		for _, id := range append(append([]string{}, inserted...), older...) {
			known[id] = true
		}
		var racedIDs, rApps, rTypes, rUsers, rPayloads []string
		for i, id := range ids {
			if !known[id] {
				racedIDs, rApps, rTypes, rUsers, rPayloads = append(racedIDs, id), append(rApps, apps[i]),
					append(rTypes, types[i]), append(rUsers, users[i]), append(rPayloads, payloads[i])
			}
		}
		var bad []string
		err := tx.QueryRow(ctx, `
			SELECT coalesce(array_agg(x.id), '{}')
			FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS x (id, app, type, user_id, payload)
			LEFT JOIN outbox_events e ON e.id = x.id
			WHERE e.id IS NULL OR NOT (e.app = x.app AND e.type = x.type AND e.user_id = x.user_id AND e.payload = x.payload::jsonb)`,
			racedIDs, rApps, rTypes, rUsers, rPayloads).Scan(&bad)
		if err != nil {
			return 0, database.QueryError(ctx, "outbox: enqueue batch", err)
		}
		if len(bad) > 0 {
			return 0, jifu.Errorf(jifu.CodeConflict, "outbox: event id %s was already used for another event", bad[0])
		}
	}
	if len(jobs) != len(inserted)*len(o.names) || len(dlSinks) != len(jobs) || len(dlEvents) != len(jobs) {
		return 0, jifu.Errorf(jifu.CodeInternal, "outbox: enqueue batch: %d delivery rows for %d events and %d sinks",
			len(jobs), len(inserted), len(o.names))
	}
	if len(jobs) == 0 {
		return 0, nil
	}
	params := make([]river.InsertManyParams, len(jobs))
	for i := range jobs {
		params[i] = river.InsertManyParams{Args: DeliverArgs{EventID: dlEvents[i], Sink: dlSinks[i]}, InsertOpts: o.insertOpts()}
	}
	res, err := o.client.InsertManyTx(context.WithValue(ctx, jobIDsKey{}, jobs), tx, params)
	if err != nil {
		return 0, jifu.Errorf(jifu.CodeUnavailable, "outbox: enqueue delivery jobs: %w", err)
	}
	if len(res) != len(jobs) {
		return 0, jifu.Errorf(jifu.CodeInternal, "outbox: enqueue batch: river inserted %d jobs for %d deliveries", len(res), len(jobs))
	}
	for i, r := range res {
		if r.Job.ID != jobs[i] {
			return 0, jifu.Errorf(jifu.CodeInternal, "outbox: enqueue batch: river gave job %d the id %d, not %d", i, r.Job.ID, jobs[i])
		}
	}
	return len(inserted), nil
}
