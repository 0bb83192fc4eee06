-- +goose Up
-- Whether an approved void or refund is booked in the ledger (the Poster
-- succeeded); RetryPostings books the rest, as for payments.
ALTER TABLE card_refunds ADD COLUMN posted boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE card_refunds DROP COLUMN posted;
