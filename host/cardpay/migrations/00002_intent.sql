-- +goose Up
-- A card payment made at a reader for a payment intent of the payment
-- capability (order_id = the intent's id) is bound to it when the intent's
-- card part is authorized: its money then goes to the intent's payee
-- through the ledger, so merchant settlement batches leave it out.
ALTER TABLE card_payments ADD COLUMN intent_id text;

-- +goose Down
ALTER TABLE card_payments DROP COLUMN intent_id;
