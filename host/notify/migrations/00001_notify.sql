-- +goose Up
-- Every message sent through the platform's channel, whatever the provider:
-- the rate limiter counts these rows.
CREATE TABLE notify_sends (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel     text        NOT NULL,
    recipient   text        NOT NULL,
    purpose     text        NOT NULL,
    app         text        NOT NULL DEFAULT '',
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notify_sends_recipient ON notify_sends (recipient, purpose, at);

-- The local provider's outbox: what a real SMS or push carrier would have
-- delivered, shown in the developer console.
CREATE TABLE notify_outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel     text        NOT NULL,
    recipient   text        NOT NULL,
    purpose     text        NOT NULL,
    app         text        NOT NULL DEFAULT '',
    body        text        NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notify_outbox_recipient ON notify_outbox (recipient, id);

-- +goose Down
DROP TABLE notify_outbox;
DROP TABLE notify_sends;
