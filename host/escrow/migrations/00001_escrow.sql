-- +goose Up
-- The escrow capability's records. Money never lives here: every amount is
-- moved by the host ledger (ledger_*) in the same transaction that writes
-- these rows, and each row names the ledger accounts or holds it relies on.
-- app is the merchant platform (the calling app's slug); bill_no the
-- merchant's bill number (IPS MerBillNo), the idempotency key of a request.

-- One row per request: the idempotency record. digest is the SHA-256 of the
-- operation and its canonical request; state: done, failed (a bank refusal,
-- final), awaiting_sms (the stored request waits for its SMS code),
-- bank_pending (the bank's answer is not known yet).
CREATE TABLE escrow_requests (
    app        text        NOT NULL,
    bill_no    text        NOT NULL,
    op         text        NOT NULL,
    digest     bytea       NOT NULL,
    state      text        NOT NULL CHECK (state IN ('done', 'failed', 'awaiting_sms', 'bank_pending')),
    actor_user text        NOT NULL,
    request    jsonb       NOT NULL,
    response   jsonb,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (app, bill_no)
);

-- Custody accounts: one ledger account per user and role of a platform.
-- role: investor, borrower, guarantor, platform (the platform's own, user '').
CREATE TABLE escrow_accounts (
    app          text        NOT NULL,
    user_id      text        NOT NULL,
    role         text        NOT NULL CHECK (role IN ('investor', 'borrower', 'guarantor', 'platform')),
    account_id   bigint      NOT NULL REFERENCES ledger_accounts (id),
    real_name    text        NOT NULL,
    ident_masked text        NOT NULL,
    bill_no      text        NOT NULL,
    opened_at    timestamptz NOT NULL,
    PRIMARY KEY (app, user_id, role)
);

-- Loan listings (标的). capacity_id is the no-overdraft account holding the
-- amount still open to bids; each bid holds part of it, so cumulative bids
-- can never exceed amount.
CREATE TABLE escrow_loans (
    app                 text        NOT NULL,
    bid_no              text        NOT NULL,
    bill_no             text        NOT NULL,
    borrower            text        NOT NULL,
    amount              bigint      NOT NULL CHECK (amount > 0),
    rate                numeric     NOT NULL,
    deadline            timestamptz NOT NULL,
    capacity_id         bigint      NOT NULL REFERENCES ledger_accounts (id),
    borrower_margin_id  bigint      NOT NULL REFERENCES ledger_accounts (id),
    guarantor_margin_id bigint      NOT NULL REFERENCES ledger_accounts (id),
    guarantor           text,
    compensated         bigint      NOT NULL DEFAULT 0,
    comp_repaid         bigint      NOT NULL DEFAULT 0 CHECK (comp_repaid <= compensated),
    released            bigint      NOT NULL DEFAULT 0 CHECK (released <= amount),
    created_at          timestamptz NOT NULL,
    PRIMARY KEY (app, bid_no)
);

-- Bids (登记债权人): two ledger holds, the investor's funds (credit: the
-- borrower) and the listing's capacity. status: frozen, released, cancelled.
CREATE TABLE escrow_bids (
    app         text        NOT NULL,
    bill_no     text        NOT NULL,
    bid_no      text        NOT NULL,
    investor    text        NOT NULL,
    amount      bigint      NOT NULL CHECK (amount > 0),
    hold_id     bigint      NOT NULL,
    cap_hold_id bigint      NOT NULL,
    auto        boolean     NOT NULL,
    status      text        NOT NULL CHECK (status IN ('frozen', 'released', 'cancelled')),
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (app, bill_no),
    FOREIGN KEY (app, bid_no) REFERENCES escrow_loans (app, bid_no)
);
CREATE INDEX escrow_bids_loan ON escrow_bids (app, bid_no, status);

-- Claims: who holds how much of a loan's principal; the weights of pro-rata
-- repayment and compensation. reserved is promised to open debt transfers.
CREATE TABLE escrow_claims (
    app       text   NOT NULL,
    bid_no    text   NOT NULL,
    holder    text   NOT NULL,
    principal bigint NOT NULL CHECK (principal >= 0),
    reserved  bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0 AND reserved <= principal),
    PRIMARY KEY (app, bid_no, holder),
    FOREIGN KEY (app, bid_no) REFERENCES escrow_loans (app, bid_no)
);

-- Debt transfers (债权转让): the buyer's frozen price (a hold, credit: the
-- seller) for principal of the seller's claim. status: frozen, done,
-- cancelled.
CREATE TABLE escrow_debt_transfers (
    app       text        NOT NULL,
    bill_no   text        NOT NULL,
    bid_no    text        NOT NULL,
    seller    text        NOT NULL,
    buyer     text        NOT NULL,
    principal bigint      NOT NULL CHECK (principal > 0),
    price     bigint      NOT NULL CHECK (price > 0),
    hold_id   bigint      NOT NULL,
    status    text        NOT NULL CHECK (status IN ('frozen', 'done', 'cancelled')),
    created_at timestamptz NOT NULL,
    PRIMARY KEY (app, bill_no)
);

-- Standing authorizations a user gave a platform: auto_bid (自动投标签约),
-- auto_repay (自动还款签约), withhold (代扣委托). One live row per kind;
-- signing again replaces it. used counts what auto_bid has spent.
CREATE TABLE escrow_authorizations (
    app         text        NOT NULL,
    user_id     text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('auto_bid', 'auto_repay', 'withhold')),
    bill_no     text        NOT NULL,
    max_amount  bigint      NOT NULL CHECK (max_amount > 0),
    total_limit bigint      NOT NULL CHECK (total_limit >= 0),
    used        bigint      NOT NULL DEFAULT 0 CHECK (used >= 0),
    min_rate    numeric     NOT NULL DEFAULT 0,
    bid_no      text        NOT NULL DEFAULT '',
    valid_until timestamptz NOT NULL,
    revoked_at  timestamptz,
    signed_at   timestamptz NOT NULL,
    PRIMARY KEY (app, user_id, kind)
);

-- SMS confirmations of requests waiting in escrow_requests. code_hash is
-- SHA-256 over app, bill number and code; the code itself is never stored.
CREATE TABLE escrow_sms (
    app        text        NOT NULL,
    bill_no    text        NOT NULL,
    user_id    text        NOT NULL,
    code_hash  bytea       NOT NULL,
    expires_at timestamptz NOT NULL,
    attempts   integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (app, bill_no),
    FOREIGN KEY (app, bill_no) REFERENCES escrow_requests (app, bill_no)
);

-- Orders sent to the bank for top-ups (debit the user's card) and
-- withdrawals (credit it). hold_id: a withdrawal's hold on the custody
-- account until the bank answers. state: pending, succeeded, failed.
CREATE TABLE escrow_bank_orders (
    app        text        NOT NULL,
    bill_no    text        NOT NULL,
    user_id    text        NOT NULL,
    role       text        NOT NULL,
    direction  text        NOT NULL CHECK (direction IN ('debit', 'credit')),
    channel    text        NOT NULL,
    amount     bigint      NOT NULL CHECK (amount > 0),
    hold_id    bigint,
    state      text        NOT NULL CHECK (state IN ('pending', 'succeeded', 'failed')),
    created_at timestamptz NOT NULL,
    PRIMARY KEY (app, bill_no)
);

-- +goose Down
DROP TABLE escrow_bank_orders;
DROP TABLE escrow_sms;
DROP TABLE escrow_authorizations;
DROP TABLE escrow_debt_transfers;
DROP TABLE escrow_claims;
DROP TABLE escrow_bids;
DROP TABLE escrow_loans;
DROP TABLE escrow_accounts;
DROP TABLE escrow_requests;
