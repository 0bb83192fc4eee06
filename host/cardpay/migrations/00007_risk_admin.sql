-- +goose Up
-- Risk staff edit the rule tables from the portal (riskadmin.go). Each row
-- carries a version for optimistic concurrency (an edit names the version
-- it read; a stale one is refused with conflict) and who changed it last;
-- every change leaves one row in card_risk_changes, written in the same
-- transaction. The CHECKs repeat the API's validation, so no other writer
-- can store a rule set the service would misread. (After 00006, which
-- gives user levels their upgrade conditions.)
ALTER TABLE card_risk_classes
    ADD COLUMN version    bigint      NOT NULL DEFAULT 1,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN updated_by text        NOT NULL DEFAULT 'seed',
    ADD CONSTRAINT card_risk_classes_valid CHECK (
        priority > 0 AND per_tx >= 0 AND per_tx <= per_day AND per_day <= per_month
        AND t0_per_day >= 0 AND t0_per_day <= per_day AND min_cumulative >= 0 AND min_clean_days >= 0);

ALTER TABLE card_risk_terminal_types
    ADD COLUMN version    bigint      NOT NULL DEFAULT 1,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN updated_by text        NOT NULL DEFAULT 'seed',
    ADD CONSTRAINT card_risk_terminal_types_valid CHECK (per_tx >= 0 AND per_tx <= per_day AND per_day <= per_month);

ALTER TABLE card_risk_user_levels
    ADD COLUMN version    bigint      NOT NULL DEFAULT 1,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN updated_by text        NOT NULL DEFAULT 'seed',
    ADD CONSTRAINT card_risk_user_levels_valid CHECK (
        t0_per_day >= 0 AND min_t0_cumulative >= 0 AND min_clean_days >= 0 AND upgrade_from <> level);

-- The change history: one row per accepted edit. before and after hold the
-- row's editable fields (amounts in fen); version is the row's version
-- after the change. Rows are never updated or deleted.
CREATE TABLE card_risk_changes (
    id         bigserial   PRIMARY KEY,
    rule_table text        NOT NULL CHECK (rule_table IN ('class', 'terminal_type', 'user_level')),
    rule_key   text        NOT NULL,
    version    bigint      NOT NULL,
    actor      text        NOT NULL CHECK (actor <> ''),
    reason     text        NOT NULL CHECK (reason <> ''),
    before     jsonb       NOT NULL,
    after      jsonb       NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX card_risk_changes_rule ON card_risk_changes (rule_table, rule_key, id);

-- +goose Down
DROP TABLE card_risk_changes;
ALTER TABLE card_risk_user_levels DROP CONSTRAINT card_risk_user_levels_valid,
    DROP COLUMN updated_by, DROP COLUMN updated_at, DROP COLUMN version;
ALTER TABLE card_risk_terminal_types DROP CONSTRAINT card_risk_terminal_types_valid,
    DROP COLUMN updated_by, DROP COLUMN updated_at, DROP COLUMN version;
ALTER TABLE card_risk_classes DROP CONSTRAINT card_risk_classes_valid,
    DROP COLUMN updated_by, DROP COLUMN updated_at, DROP COLUMN version;
