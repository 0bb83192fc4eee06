-- +goose Up
-- Each app's key-value store. namespace is chosen by the host (one per app),
-- never by the guest. bytea compares bytewise, so the primary key's order is
-- the scan order.
CREATE TABLE kv_entries (
    namespace  text        NOT NULL,
    key        bytea       NOT NULL,
    value      bytea       NOT NULL,
    version    bigint      NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, key)
);

-- +goose Down
DROP TABLE kv_entries;
