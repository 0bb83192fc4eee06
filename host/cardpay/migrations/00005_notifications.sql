-- +goose Up
-- Merchant notifications waiting for the relay (Service.RelayNotifications):
-- the statement that records a payment's result also inserts its
-- notification here, so both commit together (autocommit, no transaction
-- block); the relay moves them in batches into the outbox (event id
-- cardpay.<payment_id>.result) and deletes them in the same transaction.
-- One row per payment: a payment has one result notification. No foreign
-- key (it would cost a lookup per payment; rows live for milliseconds).
-- failed_at marks a row the outbox refused for good (an operator looks).
CREATE TABLE card_notifications (
    payment_id bigint      PRIMARY KEY,
    payload    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    failed_at  timestamptz,
    error      text        NOT NULL DEFAULT ''
);

-- +goose Down
DROP TABLE card_notifications;
