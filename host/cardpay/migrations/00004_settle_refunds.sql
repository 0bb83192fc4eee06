-- +goose Up
-- Settlement batches net the merchant's approved refunds not settled yet
-- (refunds, in fen): a refund is settled in at most one batch.
ALTER TABLE card_settlements ADD COLUMN refunds bigint NOT NULL DEFAULT 0;
ALTER TABLE card_refunds ADD COLUMN settlement_id bigint;

-- +goose Down
ALTER TABLE card_refunds DROP COLUMN settlement_id;
ALTER TABLE card_settlements DROP COLUMN refunds;
