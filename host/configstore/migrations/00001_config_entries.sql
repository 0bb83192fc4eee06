-- +goose Up
-- Per-app configuration. For a secret, value holds
-- 0x01 || 12-byte nonce || AES-256-GCM ciphertext and tag; else the plain UTF-8 text.
CREATE TABLE config_entries (
    app        text        NOT NULL,
    key        text        NOT NULL,
    value      bytea       NOT NULL,
    secret     boolean     NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app, key)
);

-- +goose Down
DROP TABLE config_entries;
