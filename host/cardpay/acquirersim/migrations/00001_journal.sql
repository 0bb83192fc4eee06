-- +goose Up
-- The acquirer simulator's journal: one row per message it answered. No
-- full PAN, track or PIN block is ever stored: pan holds first 6 / last 4.
CREATE TABLE acqsim_journal (
    id            bigserial   PRIMARY KEY,
    settle_date   date        NOT NULL,
    mti           text        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('signon', 'purchase', 'void', 'refund', 'reversal')),
    tid           text        NOT NULL,
    mid           text        NOT NULL,
    stan          text        NOT NULL,
    rrn           text        NOT NULL GENERATED ALWAYS AS (lpad(id::text, 12, '0')) STORED,
    orig_rrn      text        NOT NULL DEFAULT '',
    amount        bigint      NOT NULL DEFAULT 0,
    pan           text        NOT NULL DEFAULT '',
    response_code text        NOT NULL,
    auth_code     text        NOT NULL GENERATED ALWAYS AS
                  (CASE WHEN response_code = '00' AND kind <> 'reversal' THEN lpad((id % 1000000)::text, 6, '0') ELSE '' END) STORED,
    status        text        NOT NULL CHECK (status IN ('approved', 'declined', 'voided', 'reversed', 'refunded')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tid, stan, mti, settle_date)
);
CREATE INDEX acqsim_journal_rrn ON acqsim_journal (rrn);
CREATE INDEX acqsim_journal_date ON acqsim_journal (settle_date, kind);

-- +goose Down
DROP TABLE acqsim_journal;
