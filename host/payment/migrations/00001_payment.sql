-- +goose Up
-- Payment intents, their method parts and their refunds. Package
-- host/payment is the only writer; the money itself lives in the ledger
-- (holds while authorized, posts when captured), written in the same
-- transactions as these rows.

-- One row per intent an app created. (app, app_key) is the app's
-- idempotency key; digest the SHA-256 of what was asked, so that a replay
-- with other content is refused. refunded is what went back to the user;
-- lease_until keeps the Resume sweep off an intent a live process is
-- working on.
CREATE TABLE payment_intents (
    id            text        PRIMARY KEY,
    app           text        NOT NULL,
    app_key       text        NOT NULL,
    digest        bytea       NOT NULL,
    user_id       text        NOT NULL,
    payee         text        NOT NULL,
    payee_account bigint      NOT NULL,
    amount        bigint      NOT NULL CHECK (amount > 0),
    description   text        NOT NULL,
    state         text        NOT NULL CHECK (state IN ('created', 'confirmed', 'authorized', 'succeeded', 'failed',
                                                        'expired', 'refunded', 'partially_refunded')),
    method        text        NOT NULL DEFAULT '',
    refunded      bigint      NOT NULL DEFAULT 0 CHECK (refunded >= 0 AND refunded <= amount),
    failure       text        NOT NULL DEFAULT '',
    lease_until   timestamptz,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    confirmed_at  timestamptz,
    updated_at    timestamptz NOT NULL,
    UNIQUE (app, app_key)
);
CREATE INDEX payment_intents_open ON payment_intents (expires_at) WHERE state = 'created';
CREATE INDEX payment_intents_working ON payment_intents (lease_until) WHERE state IN ('confirmed', 'authorized');
CREATE INDEX payment_intents_user ON payment_intents (user_id, created_at);

-- The split of a confirmed intent across methods, one row per method.
-- holds are the ledger hold ids of the part's authorization.
CREATE TABLE payment_parts (
    intent_id text   NOT NULL REFERENCES payment_intents (id),
    idx       integer NOT NULL CHECK (idx >= 0),
    method    text   NOT NULL,
    amount    bigint NOT NULL CHECK (amount > 0),
    state     text   NOT NULL CHECK (state IN ('pending', 'authorized', 'captured', 'voided', 'failed')),
    holds     bigint[] NOT NULL DEFAULT '{}',
    refunded  bigint NOT NULL DEFAULT 0 CHECK (refunded >= 0 AND refunded <= amount),
    failure   text   NOT NULL DEFAULT '',
    PRIMARY KEY (intent_id, idx)
);

-- Refunds. (app, app_key) is the refund's idempotency key; refunded is
-- what went back (less than amount when a part was refused).
CREATE TABLE payment_refunds (
    id         text        PRIMARY KEY,
    intent_id  text        NOT NULL REFERENCES payment_intents (id),
    app        text        NOT NULL,
    app_key    text        NOT NULL,
    amount     bigint      NOT NULL CHECK (amount > 0),
    refunded   bigint      NOT NULL CHECK (refunded >= 0 AND refunded <= amount),
    state      text        NOT NULL CHECK (state IN ('succeeded', 'partial', 'failed')),
    failure    text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    UNIQUE (app, app_key)
);
CREATE INDEX payment_refunds_intent ON payment_refunds (intent_id);

-- Credit lines: the limit granted to a user. The ledger account
-- (user, credit_line) holds the truth of what is used: its debits are the
-- limit plus what was restored, its credits (pending counted) what was
-- reserved and consumed; the flag credits-must-not-exceed-debits stops a
-- reservation beyond the limit.
CREATE TABLE payment_credit_lines (
    user_id    text        PRIMARY KEY,
    credit_limit bigint    NOT NULL CHECK (credit_limit >= 0),
    version    bigint      NOT NULL,
    updated_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE payment_credit_lines;
DROP TABLE payment_refunds;
DROP TABLE payment_parts;
DROP TABLE payment_intents;
