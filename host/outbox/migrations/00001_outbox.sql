-- +goose Up
-- Events the platform owes to apps, written in the same transaction as the
-- state change that caused them (outbox.Enqueue). id is the producer's
-- idempotency key and the receiver's deduplication key.
CREATE TABLE outbox_events (
    id         text        PRIMARY KEY,
    app        text        NOT NULL,
    type       text        NOT NULL,
    user_id    text        NOT NULL DEFAULT '',
    payload    jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per event and sink (webhook, on_event): the delivery's state as the
-- portal shows it. The River job that works it is in river_job.
CREATE TABLE outbox_deliveries (
    event_id        text        NOT NULL REFERENCES outbox_events (id) ON DELETE CASCADE,
    sink            text        NOT NULL,
    app             text        NOT NULL,
    state           text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    last_status     integer     NOT NULL DEFAULT 0,
    last_error      text        NOT NULL DEFAULT '',
    last_attempt_at timestamptz,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    job_id          bigint,     -- the River job of the current run (river_job.id)
    PRIMARY KEY (event_id, sink)
);
CREATE INDEX outbox_deliveries_app_state ON outbox_deliveries (app, state, created_at DESC);

-- Every attempt, kept for the portal.
CREATE TABLE outbox_attempts (
    id          bigserial   PRIMARY KEY,
    event_id    text        NOT NULL,
    sink        text        NOT NULL,
    started_at  timestamptz NOT NULL,
    duration_ms integer     NOT NULL,
    status      integer     NOT NULL,
    error       text        NOT NULL DEFAULT '',
    FOREIGN KEY (event_id, sink) REFERENCES outbox_deliveries (event_id, sink) ON DELETE CASCADE
);
CREATE INDEX outbox_attempts_delivery ON outbox_attempts (event_id, sink, id);

-- +goose Down
DROP TABLE outbox_attempts;
DROP TABLE outbox_deliveries;
DROP TABLE outbox_events;
