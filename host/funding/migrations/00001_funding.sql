-- +goose Up
-- Each user's bound bank account (the one top-ups debit and withdrawals pay).
CREATE TABLE funding_accounts (
    user_id    text PRIMARY KEY COLLATE "C",
    account_no text NOT NULL,
    bound_at   timestamptz NOT NULL
);

-- One row per top-up or withdrawal, created before the bank is called: its
-- id is the order id at the bank, (user_id, key) the caller's idempotency key.
-- A withdrawal's ledger hold is taken in the transaction that inserts it.
CREATE TABLE funding_requests (
    id         text PRIMARY KEY COLLATE "C",
    bank       text NOT NULL COLLATE "C", -- the gateway's name (Config.BankName)
    user_id    text NOT NULL COLLATE "C",
    key        text NOT NULL COLLATE "C",
    kind       text NOT NULL CHECK (kind IN ('topup', 'withdraw')),
    amount     bigint NOT NULL CHECK (amount > 0),
    account_no text NOT NULL,
    state      text NOT NULL CHECK (state IN ('pending', 'unknown', 'succeeded', 'failed')),
    reason     text NOT NULL DEFAULT '',
    hold_id    bigint,
    bank_ref   text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    UNIQUE (user_id, key)
);
CREATE INDEX funding_requests_open ON funding_requests (bank, updated_at) WHERE state IN ('pending', 'unknown');
CREATE INDEX funding_requests_user ON funding_requests (user_id, created_at DESC);
CREATE INDEX funding_requests_day ON funding_requests (bank, created_at) WHERE state = 'succeeded';

-- +goose Down
DROP TABLE funding_requests;
DROP TABLE funding_accounts;
