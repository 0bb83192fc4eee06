-- +goose Up
-- Nonces of signed open-API requests, kept until their timestamp leaves the
-- verification window (expires_at); a nonce seen again before then is a
-- replay.
CREATE TABLE opensign_nonces (
    app_key    text        NOT NULL,
    nonce      text        NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (app_key, nonce)
);
CREATE INDEX opensign_nonces_expires ON opensign_nonces (expires_at);

-- +goose Down
DROP TABLE opensign_nonces;
