-- +goose Up
-- A new kind of erroneous transaction: ledger_mismatch (账务不符), a
-- difference between the card core's records and the platform ledger found
-- by the books' reconciliation (a posting missing under its key, or one that
-- moved another amount). The platform's own error: recorded not at fault.
ALTER TABLE card_errors DROP CONSTRAINT card_errors_kind_check;
ALTER TABLE card_errors ADD CONSTRAINT card_errors_kind_check
    CHECK (kind IN ('long', 'short', 'amount_mismatch', 'reversal_unanswered',
                    'retrieval_request', 'chargeback', 'dispute', 'ledger_mismatch'));

-- +goose Down
-- Fails while ledger_mismatch cases exist (they are history: resolve them
-- by migrating forward, not by deleting them).
ALTER TABLE card_errors DROP CONSTRAINT card_errors_kind_check;
ALTER TABLE card_errors ADD CONSTRAINT card_errors_kind_check
    CHECK (kind IN ('long', 'short', 'amount_mismatch', 'reversal_unanswered',
                    'retrieval_request', 'chargeback', 'dispute'));
