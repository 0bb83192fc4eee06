-- +goose Up
-- Card-present payments. No full PAN, track, PIN block or CVV is stored
-- anywhere: cards are known by card_token (HMAC-SHA256 of the PAN under a
-- key derived from the master key) and pan_masked (first 6, last 4).

-- Base derivation keys, each 0x01 || nonce || AES-256-GCM(master key, BDK).
CREATE TABLE card_bdks (
    id         text        PRIMARY KEY,
    scheme     text        NOT NULL CHECK (scheme IN ('tdes', 'aes')),
    key_enc    bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Merchants (the seed's 商户进件): pay_secret encrypted like the BDKs.
-- The merchant is the "user" of the seed's user dimension.
CREATE TABLE card_merchants (
    org_id         text          NOT NULL,
    merchant_id    text          NOT NULL,
    name           text          NOT NULL DEFAULT '',
    pay_secret_enc bytea         NOT NULL,
    acq_mid        text          NOT NULL CHECK (length(acq_mid) = 15),
    user_level     text          NOT NULL DEFAULT '101',
    fee_rate       numeric(8, 6) NOT NULL DEFAULT 0.006 CHECK (fee_rate >= 0 AND fee_rate < 1),
    notify_url     text          NOT NULL DEFAULT '',
    created_at     timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, merchant_id)
);

-- Readers. ksn_prefix is the initial KSN (counter zeroed) in upper-case hex.
CREATE TABLE card_terminals (
    ksn_prefix    text        PRIMARY KEY,
    org_id        text        NOT NULL,
    merchant_id   text        NOT NULL,
    terminal_type text        NOT NULL CHECK (terminal_type IN ('audio', 'bluetooth', 'mpos')),
    bdk_id        text        NOT NULL REFERENCES card_bdks (id),
    acq_tid       text        NOT NULL CHECK (length(acq_tid) = 8),
    phone         text        NOT NULL DEFAULT '',
    last_counter  bigint      NOT NULL DEFAULT 0,
    active        boolean     NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (org_id, merchant_id) REFERENCES card_merchants (org_id, merchant_id)
);

-- Risk rules, editable by risk staff. Amounts in fen. A card gets the first
-- class (lowest priority) whose conditions all hold.
CREATE TABLE card_risk_classes (
    class            text    PRIMARY KEY,
    priority         int     NOT NULL UNIQUE,
    per_tx           bigint  NOT NULL,
    per_day          bigint  NOT NULL,
    per_month        bigint  NOT NULL,
    t0_per_day       bigint  NOT NULL,
    need_credit_ok   boolean NOT NULL DEFAULT false,
    need_bound       boolean NOT NULL DEFAULT false,
    need_kind        text    NOT NULL DEFAULT '' CHECK (need_kind IN ('', 'credit', 'debit')),
    need_chip        boolean NOT NULL DEFAULT false,
    min_cumulative   bigint  NOT NULL DEFAULT 0,
    min_clean_days   int     NOT NULL DEFAULT 0,
    how              text    NOT NULL DEFAULT ''
);

CREATE TABLE card_risk_terminal_types (
    terminal_type text   PRIMARY KEY,
    per_tx        bigint NOT NULL,
    per_day       bigint NOT NULL,
    per_month     bigint NOT NULL
);

CREATE TABLE card_risk_user_levels (
    level      text   PRIMARY KEY,
    t0_per_day bigint NOT NULL,
    how        text   NOT NULL DEFAULT ''
);

-- Seed values (风控规则), 万元 converted to fen (1 万元 = 1,000,000 fen).
INSERT INTO card_risk_classes (class, priority, per_tx, per_day, per_month, t0_per_day, need_credit_ok, need_bound, need_kind, need_chip, min_cumulative, min_clean_days, how) VALUES
    ('紫卡',  10,  5000000, 10000000, 15000000, 10000000, true,  false, '',       false, 0,        0,  '信用卡验证通过, 优先走这块逻辑'),
    ('红卡1', 20, 10000000, 20000000, 30000000, 10000000, false, true,  'credit', false, 10000000, 0,  '三维绑定, 累计交易额达10w'),
    ('红卡2', 30,  5000000, 10000000, 15000000,  5000000, false, true,  '',       false, 10000000, 0,  '普卡, 三维绑定, 累计交易额达10w'),
    ('IC卡2', 40, 10000000, 20000000, 30000000, 20000000, false, false, '',       true,  0,        45, 'IC卡, 45天后无差错交易'),
    ('IC卡',  50,  5000000, 10000000, 15000000, 10000000, false, false, '',       true,  0,        0,  'IC卡'),
    ('磁条卡', 90,  5000000, 10000000, 15000000,  5000000, false, false, '',       false, 0,        0,  'ours: a magnetic-stripe card with no other class');

INSERT INTO card_risk_terminal_types (terminal_type, per_tx, per_day, per_month) VALUES
    ('audio',     2000000, 4000000, 6000000),
    ('bluetooth', 2000000, 4000000, 6000000),
    ('mpos',      3000000, 6000000, 9000000);

INSERT INTO card_risk_user_levels (level, t0_per_day, how) VALUES
    ('101',   300000, '实名认证'),
    ('102',  1000000, 'T0累计达0.9, 15天内无差错'),
    ('103',  1500000, 'T0累计达3, 15天内无差错'),
    ('201',  3000000, '客户主动要求, 风控人员处理'),
    ('202',  5000000, '客户主动要求, 风控人员处理'),
    ('203', 10000000, '客户主动要求, 风控人员处理'),
    ('301',  3000000, '信用卡认证一张'),
    ('302',  5000000, '信用卡认证二张及以上');

-- What the platform knows about a card, by token.
CREATE TABLE card_cards (
    card_token      text        PRIMARY KEY,
    pan_masked      text        NOT NULL,
    kind            text        NOT NULL DEFAULT '' CHECK (kind IN ('', 'credit', 'debit')),
    chip            boolean     NOT NULL DEFAULT false,
    bound           boolean     NOT NULL DEFAULT false, -- three-way: card, phone, reader
    credit_verified boolean     NOT NULL DEFAULT false,
    agent_class     text        NOT NULL DEFAULT '' CHECK (agent_class IN ('', '红卡1', '红卡2')),
    cumulative      bigint      NOT NULL DEFAULT 0,
    first_seen      timestamptz NOT NULL DEFAULT now(),
    last_error_at   timestamptz
);

-- Risk counters: scope (card, user, card_t0, user_t0), subject, period
-- (Dyyyy-mm-dd, Myyyy-mm). cap is the limit the last write checked against:
-- an increment happens only if the new amount stays within it.
CREATE TABLE card_counters (
    scope   text   NOT NULL,
    subject text   NOT NULL,
    period  text   NOT NULL,
    amount  bigint NOT NULL,
    cap     bigint NOT NULL,
    PRIMARY KEY (scope, subject, period)
);

CREATE TABLE card_payments (
    id            bigserial   PRIMARY KEY,
    org_id        text        NOT NULL,
    merchant_id   text        NOT NULL,
    order_id      text        NOT NULL,
    ksn           text        NOT NULL,
    translog_no   text        NOT NULL,
    terminal_type text        NOT NULL,
    amount        bigint      NOT NULL CHECK (amount > 0),
    product_name  text        NOT NULL,
    params        text        NOT NULL DEFAULT '',
    card_token    text        NOT NULL DEFAULT '',
    pan_masked    text        NOT NULL DEFAULT '',
    card_class    text        NOT NULL DEFAULT '',
    status        text        NOT NULL CHECK (status IN ('pending', 'approved', 'declined', 'reversed', 'reversal_pending', 'failed', 'voided')),
    rule          text        NOT NULL DEFAULT '',
    response_code text        NOT NULL DEFAULT '',
    auth_code     text        NOT NULL DEFAULT '',
    rrn           text        NOT NULL DEFAULT '',
    stan          text        NOT NULL DEFAULT '',
    acq_tid       text        NOT NULL DEFAULT '',
    acq_mid       text        NOT NULL DEFAULT '',
    batch_no      text        NOT NULL DEFAULT '',
    t0            boolean     NOT NULL DEFAULT false,
    settle_date   date,
    settlement_id bigint,
    posted        boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, merchant_id, order_id)
);
CREATE INDEX card_payments_settle ON card_payments (settle_date, status) WHERE status = 'approved';
CREATE INDEX card_payments_rrn ON card_payments (rrn) WHERE rrn <> '';

-- Voids and refunds of approved payments; refund_id is the merchant's
-- idempotency key.
CREATE TABLE card_refunds (
    id            bigserial   PRIMARY KEY,
    payment_id    bigint      NOT NULL REFERENCES card_payments (id),
    org_id        text        NOT NULL,
    merchant_id   text        NOT NULL,
    refund_id     text        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('void', 'refund')),
    amount        bigint      NOT NULL CHECK (amount > 0),
    status        text        NOT NULL CHECK (status IN ('pending', 'approved', 'declined', 'failed')),
    response_code text        NOT NULL DEFAULT '',
    rrn           text        NOT NULL DEFAULT '',
    stan          text        NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, merchant_id, refund_id)
);

-- Settlement batches to merchants (T0 the same day, T1 the next).
CREATE TABLE card_settlements (
    id          bigserial   PRIMARY KEY,
    org_id      text        NOT NULL,
    merchant_id text        NOT NULL,
    mode        text        NOT NULL CHECK (mode IN ('T0', 'T1')),
    settle_date date        NOT NULL,
    count       int         NOT NULL,
    gross       bigint      NOT NULL,
    fee         bigint      NOT NULL,
    net         bigint      NOT NULL,
    posted      boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, merchant_id, mode, settle_date)
);

-- +goose Down
DROP TABLE card_settlements;
DROP TABLE card_refunds;
DROP TABLE card_payments;
DROP TABLE card_counters;
DROP TABLE card_cards;
DROP TABLE card_risk_user_levels;
DROP TABLE card_risk_terminal_types;
DROP TABLE card_risk_classes;
DROP TABLE card_terminals;
DROP TABLE card_merchants;
DROP TABLE card_bdks;
