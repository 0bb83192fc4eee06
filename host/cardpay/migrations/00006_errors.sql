-- +goose Up
-- Erroneous transactions (差错交易): reconciliation differences, reversals
-- the acquirer never acknowledged, and what the acquirer raises and staff
-- enter (调单, 拒付, cardholder disputes). Each is tied to the payment (and
-- so the card token, merchant and terminal) when known. A card's and a
-- user's clean days count from the last one that counts against them: every
-- open one, and every closed one not resolved as "not at fault".
CREATE TABLE card_errors (
    id              bigserial   PRIMARY KEY,
    kind            text        NOT NULL CHECK (kind IN ('long', 'short', 'amount_mismatch', 'reversal_unanswered',
                                                         'retrieval_request', 'chargeback', 'dispute')),
    -- ref makes recording idempotent per kind: reconciliation day:rrn, the
    -- payment id of a reversal, the acquirer's case number staff enter.
    ref             text        NOT NULL DEFAULT '',
    status          text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved', 'written_off')),
    payment_id      bigint      REFERENCES card_payments (id),
    org_id          text        NOT NULL DEFAULT '',
    merchant_id     text        NOT NULL DEFAULT '',
    card_token      text        NOT NULL DEFAULT '',
    pan_masked      text        NOT NULL DEFAULT '',
    terminal_ksn    text        NOT NULL DEFAULT '', -- card_terminals.ksn_prefix
    acq_tid         text        NOT NULL DEFAULT '',
    rrn             text        NOT NULL DEFAULT '',
    order_id        text        NOT NULL DEFAULT '',
    day             date        NOT NULL,            -- the transaction's (Beijing) business day
    amount          bigint      NOT NULL DEFAULT 0,  -- fen at issue
    platform_amount bigint      NOT NULL DEFAULT 0,  -- reconciliation: ours (0: none)
    acquirer_amount bigint      NOT NULL DEFAULT 0,  -- reconciliation: the acquirer's (0: none)
    note            text        NOT NULL DEFAULT '',
    opened_by       text        NOT NULL,
    occurred_at     timestamptz NOT NULL,            -- when it arose; clean days count from here
    created_at      timestamptz NOT NULL DEFAULT now(),
    not_at_fault    boolean     NOT NULL DEFAULT false,
    resolved_by     text        NOT NULL DEFAULT '',
    resolved_at     timestamptz,
    resolution      text        NOT NULL DEFAULT '',
    CHECK ((status = 'open') = (resolved_at IS NULL))
);
CREATE UNIQUE INDEX card_errors_ref ON card_errors (kind, ref) WHERE ref <> '';
CREATE INDEX card_errors_list ON card_errors (status, day, id);
CREATE INDEX card_errors_merchant ON card_errors (org_id, merchant_id, day);
CREATE INDEX card_errors_card ON card_errors (card_token, occurred_at) WHERE card_token <> '';
CREATE INDEX card_errors_payment ON card_errors (payment_id) WHERE payment_id IS NOT NULL;

-- The audit trail of each erroneous transaction (opened, resolved, written
-- off), append-only.
CREATE TABLE card_error_events (
    id       bigserial   PRIMARY KEY,
    error_id bigint      NOT NULL REFERENCES card_errors (id),
    action   text        NOT NULL CHECK (action IN ('opened', 'resolved', 'written_off')),
    actor    text        NOT NULL,
    note     text        NOT NULL DEFAULT '',
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX card_error_events_error ON card_error_events (error_id, id);

-- User-level upgrade conditions as data (风控规则): a user at upgrade_from is
-- raised to the level when its T0 volume reaches min_t0_cumulative (fen)
-- and it has min_clean_days days without an erroneous transaction. Levels
-- without upgrade_from are set by risk staff (201–203) or by verification.
ALTER TABLE card_risk_user_levels
    ADD COLUMN upgrade_from      text   NOT NULL DEFAULT '',
    ADD COLUMN min_t0_cumulative bigint NOT NULL DEFAULT 0,
    ADD COLUMN min_clean_days    int    NOT NULL DEFAULT 0;
UPDATE card_risk_user_levels SET upgrade_from = '101', min_t0_cumulative =  900000, min_clean_days = 15 WHERE level = '102';
UPDATE card_risk_user_levels SET upgrade_from = '102', min_t0_cumulative = 3000000, min_clean_days = 15 WHERE level = '103';

-- Every change of a user's level: by the upgrade job (actor "system") or by
-- risk staff, with the reason.
CREATE TABLE card_user_level_changes (
    id          bigserial   PRIMARY KEY,
    org_id      text        NOT NULL,
    merchant_id text        NOT NULL,
    from_level  text        NOT NULL,
    to_level    text        NOT NULL,
    reason      text        NOT NULL,
    actor       text        NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (org_id, merchant_id) REFERENCES card_merchants (org_id, merchant_id)
);
CREATE INDEX card_user_level_changes_merchant ON card_user_level_changes (org_id, merchant_id, id);

-- +goose Down
DROP TABLE card_user_level_changes;
ALTER TABLE card_risk_user_levels DROP COLUMN min_clean_days, DROP COLUMN min_t0_cumulative, DROP COLUMN upgrade_from;
DROP TABLE card_error_events;
DROP TABLE card_errors;
