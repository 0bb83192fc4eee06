-- +goose Up
-- The host ledger: double-entry accounts in fen, append-only transfers and
-- entries, open holds. Package host/ledger is the only writer; it calls the
-- functions below, one round trip per request.

-- Accounts. The four totals are the sums of the account's entries (jifu
-- ledger check verifies it); flags: 1 debits must not exceed credits, 2
-- credits must not exceed debits, 4 closed.
CREATE TABLE ledger_accounts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_type      text        NOT NULL CHECK (owner_type IN ('user', 'app', 'merchant', 'escrow', 'platform', 'bank')),
    owner_id        text        NOT NULL,
    name            text        NOT NULL,
    currency        text        NOT NULL DEFAULT 'CNY',
    flags           integer     NOT NULL DEFAULT 0,
    debits_pending  bigint      NOT NULL DEFAULT 0,
    debits_posted   bigint      NOT NULL DEFAULT 0,
    credits_pending bigint      NOT NULL DEFAULT 0,
    credits_posted  bigint      NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (owner_type, owner_id, name)
);

-- Transfers, one row per accepted request, never updated or deleted.
-- kind: posted (moves money at once), pending (a hold), post and void (the
-- resolution of the hold pending_id, at most one each), expire (the void the
-- expiry sweep writes). (caller, key) is the idempotency key; digest the
-- SHA-256 of the canonical request.
CREATE TABLE ledger_transfers (
    id          bigint      PRIMARY KEY,
    caller      text        NOT NULL,
    key         text        NOT NULL,
    digest      bytea       NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('posted', 'pending', 'post', 'void', 'expire')),
    debit_id    bigint      NOT NULL REFERENCES ledger_accounts (id),
    credit_id   bigint      NOT NULL REFERENCES ledger_accounts (id),
    amount      bigint      NOT NULL CHECK (amount >= 0),
    code        text        NOT NULL,
    metadata    jsonb,
    pending_id  bigint,
    timeout_at  timestamptz,
    batch_id    bigint,
    created_at  timestamptz NOT NULL,
    UNIQUE (caller, key)
);
CREATE SEQUENCE ledger_transfers_id_seq OWNED BY ledger_transfers.id;
CREATE UNIQUE INDEX ledger_transfers_resolution ON ledger_transfers (pending_id) WHERE pending_id IS NOT NULL;
CREATE INDEX ledger_transfers_created ON ledger_transfers (created_at);

-- Entries: each transfer has exactly two, D on its debit account and C on
-- its credit account, with the same changes to the side's pending and
-- posted totals.
CREATE TABLE ledger_entries (
    transfer_id bigint NOT NULL REFERENCES ledger_transfers (id),
    side        "char" NOT NULL CHECK (side IN ('D', 'C')),
    account_id  bigint NOT NULL REFERENCES ledger_accounts (id),
    pending     bigint NOT NULL,
    posted      bigint NOT NULL CHECK (posted >= 0),
    PRIMARY KEY (transfer_id, side)
);
CREATE INDEX ledger_entries_account ON ledger_entries (account_id);

-- Open holds: a row per pending transfer not yet posted, voided or expired.
-- Resolving a hold deletes its row (this table is state, not history).
CREATE TABLE ledger_holds (
    pending_id bigint      PRIMARY KEY REFERENCES ledger_transfers (id),
    debit_id   bigint      NOT NULL,
    credit_id  bigint      NOT NULL,
    amount     bigint      NOT NULL,
    timeout_at timestamptz NOT NULL
);
CREATE INDEX ledger_holds_timeout ON ledger_holds (timeout_at);

-- History is append-only: corrections are new reversing transfers.
-- +goose StatementBegin
CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger: % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$;
-- +goose StatementEnd
CREATE TRIGGER ledger_transfers_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger_transfers
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();

-- ledger_submit applies n >= 1 new transfers atomically (all or none) for
-- one caller. p_timeouts holds each hold's timeout in microseconds, 0 for a
-- transfer posted at once. Business refusals are returned, not raised, and
-- write nothing, so a caller's enclosing transaction survives them:
-- o_code '' (done; o_replayed when every key was known with the same
-- digest), 'idempotency_conflict', 'not_found', 'currency_mismatch',
-- 'account_closed', 'insufficient_funds', 'exceeds_credits', or 'retry' (a
-- concurrent request with one of the keys committed first; call again).
-- o_index is the failing transfer's 0-based index (-1: the batch's net
-- effect), o_detail the account id concerned.
-- +goose StatementBegin
CREATE FUNCTION ledger_submit(
    p_caller text, p_now timestamptz, p_keys text[], p_digests bytea[],
    p_debits bigint[], p_credits bigint[], p_amounts bigint[], p_codes text[],
    p_metas jsonb[], p_timeouts bigint[],
    OUT o_code text, OUT o_index integer, OUT o_detail bigint,
    OUT o_ids bigint[], OUT o_created timestamptz, OUT o_replayed boolean)
LANGUAGE plpgsql AS $$
DECLARE
    n       integer := cardinality(p_keys);
    v_found integer;
    v_match integer;
    v_row   record;
    v_count integer;
BEGIN
    o_code := ''; o_index := -1; o_replayed := false;

    -- Idempotency: all keys known with equal digests is a replay.
    SELECT count(*), count(*) FILTER (WHERE t.digest = r.digest),
           array_agg(t.id ORDER BY r.ord), min(t.created_at), min(r.ord) - 1
      INTO v_found, v_match, o_ids, o_created, o_index
      FROM unnest(p_keys, p_digests) WITH ORDINALITY AS r(key, digest, ord)
      JOIN ledger_transfers t ON t.caller = p_caller AND t.key = r.key;
    IF v_found > 0 THEN
        IF v_found = n AND v_match = n THEN
            o_replayed := true; o_index := -1;
        ELSE
            o_code := 'idempotency_conflict'; o_ids := NULL; o_created := NULL;
        END IF;
        RETURN;
    END IF;
    o_ids := NULL; o_created := NULL; o_index := -1;

    -- Lock every account touched, in id order (no deadlocks between us).
    PERFORM 1 FROM ledger_accounts WHERE id = ANY (p_debits || p_credits) ORDER BY id FOR UPDATE;

    SELECT r.ord - 1 AS idx, r.debit, r.credit, d.id AS did, c.id AS cid,
           d.currency AS dcur, c.currency AS ccur, d.flags AS dflags, c.flags AS cflags
      INTO v_row
      FROM unnest(p_debits, p_credits) WITH ORDINALITY AS r(debit, credit, ord)
      LEFT JOIN ledger_accounts d ON d.id = r.debit
      LEFT JOIN ledger_accounts c ON c.id = r.credit
     WHERE d.id IS NULL OR c.id IS NULL OR d.currency <> c.currency
        OR (d.flags & 4) <> 0 OR (c.flags & 4) <> 0
     ORDER BY r.ord LIMIT 1;
    IF FOUND THEN
        o_index := v_row.idx;
        IF v_row.did IS NULL THEN o_code := 'not_found'; o_detail := v_row.debit;
        ELSIF v_row.cid IS NULL THEN o_code := 'not_found'; o_detail := v_row.credit;
        ELSIF v_row.dcur <> v_row.ccur THEN o_code := 'currency_mismatch'; o_detail := v_row.credit;
        ELSIF (v_row.dflags & 4) <> 0 THEN o_code := 'account_closed'; o_detail := v_row.debit;
        ELSE o_code := 'account_closed'; o_detail := v_row.credit;
        END IF;
        RETURN;
    END IF;

    -- Balance flags on the batch's net effect, pending debits and credits
    -- counted pessimistically.
    SELECT a.id, CASE WHEN (a.flags & 1) <> 0
                       AND a.debits_pending + d.dp + a.debits_posted + d.dd > a.credits_posted + d.cd
                      THEN 'insufficient_funds' ELSE 'exceeds_credits' END AS code
      INTO v_row
      FROM ledger_accounts a
      JOIN (SELECT acct,
                   coalesce(sum(amt) FILTER (WHERE side = 'D' AND pend), 0) AS dp,
                   coalesce(sum(amt) FILTER (WHERE side = 'D' AND NOT pend), 0) AS dd,
                   coalesce(sum(amt) FILTER (WHERE side = 'C' AND pend), 0) AS cp,
                   coalesce(sum(amt) FILTER (WHERE side = 'C' AND NOT pend), 0) AS cd
              FROM (SELECT unnest(p_debits) AS acct, 'D' AS side, unnest(p_amounts) AS amt, unnest(p_timeouts) > 0 AS pend
                    UNION ALL
                    SELECT unnest(p_credits), 'C', unnest(p_amounts), unnest(p_timeouts) > 0) legs
             GROUP BY acct) d ON d.acct = a.id
     WHERE ((a.flags & 1) <> 0 AND a.debits_pending + d.dp + a.debits_posted + d.dd > a.credits_posted + d.cd)
        OR ((a.flags & 2) <> 0 AND a.credits_pending + d.cp + a.credits_posted + d.cd > a.debits_posted + d.dd)
     ORDER BY a.id LIMIT 1;
    IF FOUND THEN
        o_code := v_row.code; o_detail := v_row.id;
        IF n = 1 THEN o_index := 0; END IF;
        RETURN;
    END IF;

    o_ids := ARRAY(SELECT nextval('ledger_transfers_id_seq') FROM generate_series(1, n));
    INSERT INTO ledger_transfers (id, caller, key, digest, kind, debit_id, credit_id, amount,
                                  code, metadata, timeout_at, batch_id, created_at)
    SELECT r.id, p_caller, r.key, r.digest, CASE WHEN r.timeout > 0 THEN 'pending' ELSE 'posted' END,
           r.debit, r.credit, r.amount, r.code, r.meta,
           CASE WHEN r.timeout > 0 THEN p_now + r.timeout * interval '1 microsecond' END,
           CASE WHEN n > 1 THEN o_ids[1] END, p_now
      FROM unnest(o_ids, p_keys, p_digests, p_debits, p_credits, p_amounts, p_codes, p_metas, p_timeouts)
           AS r(id, key, digest, debit, credit, amount, code, meta, timeout)
    ON CONFLICT (caller, key) DO NOTHING;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_count = 0 THEN
        o_code := 'retry'; o_ids := NULL; RETURN;
    ELSIF v_count < n THEN
        -- Part of the batch is written: undo it all; the caller retries.
        RAISE EXCEPTION 'ledger: a concurrent request used a key of this batch'
            USING ERRCODE = 'serialization_failure';
    END IF;

    INSERT INTO ledger_entries (transfer_id, side, account_id, pending, posted)
    SELECT r.id, 'D', r.debit, CASE WHEN r.timeout > 0 THEN r.amount ELSE 0 END,
           CASE WHEN r.timeout > 0 THEN 0 ELSE r.amount END
      FROM unnest(o_ids, p_debits, p_amounts, p_timeouts) AS r(id, debit, amount, timeout)
    UNION ALL
    SELECT r.id, 'C', r.credit, CASE WHEN r.timeout > 0 THEN r.amount ELSE 0 END,
           CASE WHEN r.timeout > 0 THEN 0 ELSE r.amount END
      FROM unnest(o_ids, p_credits, p_amounts, p_timeouts) AS r(id, credit, amount, timeout);

    INSERT INTO ledger_holds (pending_id, debit_id, credit_id, amount, timeout_at)
    SELECT r.id, r.debit, r.credit, r.amount, p_now + r.timeout * interval '1 microsecond'
      FROM unnest(o_ids, p_debits, p_credits, p_amounts, p_timeouts) AS r(id, debit, credit, amount, timeout)
     WHERE r.timeout > 0;

    UPDATE ledger_accounts a
       SET debits_pending  = a.debits_pending  + d.dp,
           debits_posted   = a.debits_posted   + d.dd,
           credits_pending = a.credits_pending + d.cp,
           credits_posted  = a.credits_posted  + d.cd
      FROM (SELECT acct,
                   coalesce(sum(amt) FILTER (WHERE side = 'D' AND pend), 0)::bigint AS dp,
                   coalesce(sum(amt) FILTER (WHERE side = 'D' AND NOT pend), 0)::bigint AS dd,
                   coalesce(sum(amt) FILTER (WHERE side = 'C' AND pend), 0)::bigint AS cp,
                   coalesce(sum(amt) FILTER (WHERE side = 'C' AND NOT pend), 0)::bigint AS cd
              FROM (SELECT unnest(p_debits) AS acct, 'D' AS side, unnest(p_amounts) AS amt, unnest(p_timeouts) > 0 AS pend
                    UNION ALL
                    SELECT unnest(p_credits), 'C', unnest(p_amounts), unnest(p_timeouts) > 0) legs
             GROUP BY acct) d
     WHERE a.id = d.acct;
    o_created := p_now;
END
$$;
-- +goose StatementEnd

-- ledger_resolve posts (p_void false; p_amount 0 means the full amount) or
-- voids the hold p_pending, exactly once. Codes as ledger_submit's, plus
-- 'hold_resolved', 'hold_expired' (a post at or after the timeout, even
-- before the sweep voided it) and 'exceeds_hold'.
-- +goose StatementBegin
CREATE FUNCTION ledger_resolve(
    p_caller text, p_key text, p_digest bytea, p_pending bigint, p_amount bigint,
    p_void boolean, p_now timestamptz,
    OUT o_code text, OUT o_id bigint, OUT o_amount bigint, OUT o_created timestamptz,
    OUT o_replayed boolean, OUT o_debit bigint, OUT o_credit bigint, OUT o_xfer_code text)
LANGUAGE plpgsql AS $$
DECLARE
    v_digest bytea;
    p        record;
    h        record;
    v_posted bigint;
BEGIN
    o_code := ''; o_replayed := false;
    SELECT id, digest, amount, created_at, debit_id, credit_id, code
      INTO o_id, v_digest, o_amount, o_created, o_debit, o_credit, o_xfer_code
      FROM ledger_transfers WHERE caller = p_caller AND key = p_key;
    IF FOUND THEN
        IF v_digest = p_digest THEN
            o_replayed := true;
        ELSE
            o_code := 'idempotency_conflict'; o_id := NULL;
        END IF;
        RETURN;
    END IF;

    SELECT * INTO p FROM ledger_transfers WHERE id = p_pending AND kind = 'pending';
    IF NOT FOUND THEN
        o_code := 'not_found'; RETURN;
    END IF;
    o_debit := p.debit_id; o_credit := p.credit_id; o_xfer_code := p.code;
    PERFORM 1 FROM ledger_accounts WHERE id IN (p.debit_id, p.credit_id) ORDER BY id FOR UPDATE;
    SELECT * INTO h FROM ledger_holds WHERE pending_id = p_pending FOR UPDATE;
    IF NOT FOUND THEN
        o_code := 'hold_resolved'; RETURN;
    END IF;
    IF p_void THEN
        o_amount := p.amount; v_posted := 0;
    ELSE
        IF p_now >= h.timeout_at THEN
            o_code := 'hold_expired'; RETURN;
        END IF;
        IF EXISTS (SELECT 1 FROM ledger_accounts WHERE id IN (p.debit_id, p.credit_id) AND (flags & 4) <> 0) THEN
            o_code := 'account_closed'; RETURN;
        END IF;
        o_amount := CASE WHEN p_amount = 0 THEN p.amount ELSE p_amount END;
        IF o_amount > p.amount THEN
            o_code := 'exceeds_hold'; RETURN;
        END IF;
        v_posted := o_amount;
    END IF;

    o_id := nextval('ledger_transfers_id_seq');
    INSERT INTO ledger_transfers (id, caller, key, digest, kind, debit_id, credit_id, amount,
                                  code, pending_id, created_at)
    VALUES (o_id, p_caller, p_key, p_digest, CASE WHEN p_void THEN 'void' ELSE 'post' END,
            p.debit_id, p.credit_id, o_amount, p.code, p_pending, p_now)
    ON CONFLICT (caller, key) DO NOTHING;
    IF NOT FOUND THEN
        o_code := 'retry'; o_id := NULL; RETURN;
    END IF;
    DELETE FROM ledger_holds WHERE pending_id = p_pending;
    INSERT INTO ledger_entries (transfer_id, side, account_id, pending, posted) VALUES
        (o_id, 'D', p.debit_id, -p.amount, v_posted),
        (o_id, 'C', p.credit_id, -p.amount, v_posted);
    UPDATE ledger_accounts
       SET debits_pending  = debits_pending  - CASE WHEN id = p.debit_id THEN p.amount ELSE 0 END,
           debits_posted   = debits_posted   + CASE WHEN id = p.debit_id THEN v_posted ELSE 0 END,
           credits_pending = credits_pending - CASE WHEN id = p.credit_id THEN p.amount ELSE 0 END,
           credits_posted  = credits_posted  + CASE WHEN id = p.credit_id THEN v_posted ELSE 0 END
     WHERE id IN (p.debit_id, p.credit_id);
    o_created := p_now;
END
$$;
-- +goose StatementEnd

-- ledger_expire voids up to p_limit holds whose timeout is at or before
-- p_now, in one statement, and returns how many it voided. Each void is a
-- transfer of kind 'expire' by caller 'ledger' with key 'expire/<hold id>'.
-- +goose StatementBegin
CREATE FUNCTION ledger_expire(p_now timestamptz, p_limit integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_ids   bigint[];
    v_accts bigint[];
    v_count integer;
BEGIN
    SELECT array_agg(pending_id), array_agg(debit_id) || array_agg(credit_id)
      INTO v_ids, v_accts
      FROM (SELECT pending_id, debit_id, credit_id FROM ledger_holds
             WHERE timeout_at <= p_now ORDER BY timeout_at LIMIT p_limit) due;
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM 1 FROM ledger_accounts WHERE id = ANY (v_accts) ORDER BY id FOR UPDATE;
    WITH gone AS (
        DELETE FROM ledger_holds WHERE pending_id = ANY (v_ids) RETURNING *
    ), t AS (
        INSERT INTO ledger_transfers (id, caller, key, digest, kind, debit_id, credit_id, amount,
                                      code, pending_id, created_at)
        SELECT nextval('ledger_transfers_id_seq'), 'ledger', 'expire/' || g.pending_id, ''::bytea,
               'expire', g.debit_id, g.credit_id, g.amount, p.code, g.pending_id, p_now
          FROM gone g JOIN ledger_transfers p ON p.id = g.pending_id
        RETURNING id, debit_id, credit_id, amount
    ), e AS (
        INSERT INTO ledger_entries (transfer_id, side, account_id, pending, posted)
        SELECT id, 'D', debit_id, -amount, 0 FROM t
        UNION ALL
        SELECT id, 'C', credit_id, -amount, 0 FROM t
    ), u AS (
        UPDATE ledger_accounts a
           SET debits_pending = a.debits_pending - d.dp, credits_pending = a.credits_pending - d.cp
          FROM (SELECT acct, sum(dp)::bigint AS dp, sum(cp)::bigint AS cp
                  FROM (SELECT debit_id AS acct, amount AS dp, 0 AS cp FROM t
                        UNION ALL
                        SELECT credit_id, 0, amount FROM t) legs
                 GROUP BY acct) d
         WHERE a.id = d.acct
    )
    SELECT count(*) INTO v_count FROM t;
    RETURN v_count;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION ledger_expire(timestamptz, integer);
DROP FUNCTION ledger_resolve(text, text, bytea, bigint, bigint, boolean, timestamptz);
DROP FUNCTION ledger_submit(text, timestamptz, text[], bytea[], bigint[], bigint[], bigint[], text[], jsonb[], bigint[]);
DROP TABLE ledger_holds;
DROP TABLE ledger_entries;
DROP TABLE ledger_transfers;
DROP FUNCTION ledger_append_only();
DROP TABLE ledger_accounts;
