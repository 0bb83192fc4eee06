-- +goose Up
-- The simulated bank's own books: its customers' accounts (a merchant's
-- settlement account among them) and every order it received. Nothing of
-- the platform reads these tables: they stand for another institution.
CREATE TABLE banksim_accounts (
    account_no text PRIMARY KEY COLLATE "C",
    holder     text NOT NULL,
    balance    bigint NOT NULL CHECK (balance >= 0),
    frozen     boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE banksim_orders (
    merchant   text NOT NULL COLLATE "C",
    request_id text NOT NULL COLLATE "C",
    kind       text NOT NULL DEFAULT '' CHECK (kind IN ('', 'debit', 'credit')),
    account_no text NOT NULL DEFAULT '',
    amount     bigint NOT NULL DEFAULT 0 CHECK (amount >= 0),
    digest     text NOT NULL DEFAULT '',
    status     text NOT NULL CHECK (status IN ('succeeded', 'failed')),
    reason     text NOT NULL DEFAULT '',
    bank_ref   bigint GENERATED ALWAYS AS IDENTITY,
    booked_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant, request_id)
);
CREATE INDEX banksim_orders_booked ON banksim_orders (merchant, booked_at);

-- +goose Down
DROP TABLE banksim_orders;
DROP TABLE banksim_accounts;
