-- +goose Up
-- Throughput (docs/BENCHMARKS.md, Ledger): one transfer through a scalar
-- function, batches without per-row referential checks or speculative
-- insertion. Correctness: a request that waited for its locks while an
-- identical one committed replays it instead of refusing.
--
-- No foreign keys on the hot tables: at a thousand transfers a batch the
-- per-row referential checks cost more than the rest of the work. The
-- functions only write rows whose references they have just locked or read,
-- accounts are never deleted (a trigger now refuses), and jifu ledger check
-- verifies every reference (invariants two_equal_entries, transfer_accounts,
-- open_holds_match).
ALTER TABLE ledger_transfers DROP CONSTRAINT ledger_transfers_debit_id_fkey;
ALTER TABLE ledger_transfers DROP CONSTRAINT ledger_transfers_credit_id_fkey;
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_transfer_id_fkey;
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_account_id_fkey;
ALTER TABLE ledger_holds DROP CONSTRAINT ledger_holds_pending_id_fkey;
CREATE TRIGGER ledger_accounts_kept BEFORE DELETE OR TRUNCATE ON ledger_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();

-- Idempotency keys compare bytewise whatever the database's locale (a
-- DATABASE_URL cluster may default to a linguistic collation: slower, and
-- its equality is not always bytewise).
ALTER TABLE ledger_transfers ALTER COLUMN caller TYPE text COLLATE "C",
                             ALTER COLUMN key TYPE text COLLATE "C";

-- Accounts are the hot rows: every transfer rewrites two. Half-empty pages
-- keep those updates HOT (no index writes, short version chains).
ALTER TABLE ledger_accounts SET (fillfactor = 50);

-- created_at grows with the id: a BRIN index serves the daily report at
-- almost no cost per insert. Entries are read per transfer (the primary
-- key) or all at once (check), never per account.
DROP INDEX ledger_transfers_created;
CREATE INDEX ledger_transfers_created ON ledger_transfers USING brin (created_at);
DROP INDEX ledger_entries_account;

-- ledger_known looks up a request's keys: how many are known, how many of
-- those with the same digest, their ids in request order, when they were
-- booked, and the index of the first known one.
-- +goose StatementBegin
CREATE FUNCTION ledger_known(p_caller text, p_keys text[], p_digests bytea[],
    OUT o_found integer, OUT o_match integer, OUT o_ids bigint[], OUT o_created timestamptz, OUT o_index integer)
LANGUAGE sql STABLE AS $$
    SELECT count(*)::integer, (count(*) FILTER (WHERE t.digest = r.digest))::integer,
           array_agg(t.id ORDER BY r.ord), min(t.created_at), (min(r.ord) - 1)::integer
      FROM unnest(p_keys, p_digests) WITH ORDINALITY AS r(key, digest, ord)
      JOIN ledger_transfers t ON t.caller = p_caller AND t.key = r.key
$$;
-- +goose StatementEnd

-- ledger_submit applies n >= 1 new transfers atomically (all or none) for
-- one caller. p_timeouts holds each hold's timeout in microseconds, 0 for a
-- transfer posted at once. Business refusals are returned, not raised, and
-- write nothing, so a caller's enclosing transaction survives them:
-- o_code '' (done; o_replayed when every key was known with the same
-- digest), 'idempotency_conflict', 'not_found', 'currency_mismatch',
-- 'account_closed', 'insufficient_funds', 'exceeds_credits'. Before it
-- refuses, it looks at the keys again: a concurrent identical request that
-- committed while this one waited for the locks makes it a replay. A
-- concurrent request that wins one of the keys after that makes the insert
-- raise a unique violation on ledger_transfers_caller_key_key: call again
-- (it then replays or conflicts). o_index is the failing transfer's 0-based
-- index (-1: the batch's net effect), o_detail the account id concerned.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION ledger_submit(
    p_caller text, p_now timestamptz, p_keys text[], p_digests bytea[],
    p_debits bigint[], p_credits bigint[], p_amounts bigint[], p_codes text[],
    p_metas jsonb[], p_timeouts bigint[],
    OUT o_code text, OUT o_index integer, OUT o_detail bigint,
    OUT o_ids bigint[], OUT o_created timestamptz, OUT o_replayed boolean)
LANGUAGE plpgsql AS $$
DECLARE
    n     integer := cardinality(p_keys);
    k     record;
    v_row record;
    v_ok  boolean;
BEGIN
    o_code := ''; o_index := -1; o_replayed := false;

    -- Idempotency: all keys known with equal digests is a replay.
    SELECT * INTO k FROM ledger_known(p_caller, p_keys, p_digests);
    IF k.o_found > 0 THEN
        IF k.o_found = n AND k.o_match = n THEN
            o_replayed := true; o_ids := k.o_ids; o_created := k.o_created;
        ELSE
            o_code := 'idempotency_conflict'; o_index := k.o_index;
        END IF;
        RETURN;
    END IF;

    -- Lock every account touched, in id order (no deadlocks between us).
    -- Fast path: every account exists, none is closed, one currency.
    WITH locked AS (
        SELECT id, flags, currency FROM ledger_accounts
         WHERE id = ANY (p_debits || p_credits) ORDER BY id FOR UPDATE
    )
    SELECT count(*) = (SELECT count(DISTINCT x) FROM unnest(p_debits || p_credits) AS x)
           AND NOT coalesce(bool_or((flags & 4) <> 0), false) AND count(DISTINCT currency) <= 1
      INTO v_ok FROM locked;
    IF NOT v_ok THEN
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
        END IF;
    END IF;

    -- Balance flags on the batch's net effect, pending debits and credits
    -- counted pessimistically.
    IF o_code = '' THEN
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
        END IF;
    END IF;

    IF o_code <> '' THEN
        SELECT * INTO k FROM ledger_known(p_caller, p_keys, p_digests);
        IF k.o_found > 0 THEN
            o_detail := NULL;
            IF k.o_found = n AND k.o_match = n THEN
                o_code := ''; o_index := -1; o_replayed := true; o_ids := k.o_ids; o_created := k.o_created;
            ELSE
                o_code := 'idempotency_conflict'; o_index := k.o_index;
            END IF;
        END IF;
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
           AS r(id, key, digest, debit, credit, amount, code, meta, timeout);
    -- (No ON CONFLICT: at a thousand rows its speculative insertion costs a
    -- fifth of the statement; a lost race raises, and the caller retries.)

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

-- ledger_transfer is ledger_submit for one transfer (the common case),
-- written with scalars: same results, a third of the work. Its insert
-- keeps ON CONFLICT (cheap for one row): a lost race returns o_code
-- 'retry', having written nothing; call again.
-- +goose StatementBegin
CREATE FUNCTION ledger_transfer(
    p_caller text, p_now timestamptz, p_key text, p_digest bytea,
    p_debit bigint, p_credit bigint, p_amount bigint, p_code text, p_meta jsonb, p_timeout bigint,
    OUT o_code text, OUT o_detail bigint, OUT o_id bigint, OUT o_created timestamptz, OUT o_replayed boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_digest  bytea;
    a         ledger_accounts;
    d         ledger_accounts;
    c         ledger_accounts;
    v_pending bigint := CASE WHEN p_timeout > 0 THEN p_amount ELSE 0 END;
    v_posted  bigint := CASE WHEN p_timeout > 0 THEN 0 ELSE p_amount END;
BEGIN
    o_code := ''; o_replayed := false;
    SELECT id, digest, created_at INTO o_id, v_digest, o_created
      FROM ledger_transfers WHERE caller = p_caller AND key = p_key;
    IF FOUND THEN
        IF v_digest = p_digest THEN
            o_replayed := true;
        ELSE
            o_code := 'idempotency_conflict'; o_id := NULL; o_created := NULL;
        END IF;
        RETURN;
    END IF;

    FOR a IN SELECT * FROM ledger_accounts WHERE id IN (p_debit, p_credit) ORDER BY id FOR UPDATE LOOP
        IF a.id = p_debit THEN d := a; ELSE c := a; END IF;
    END LOOP;
    IF d.id IS NULL THEN
        o_code := 'not_found'; o_detail := p_debit;
    ELSIF c.id IS NULL THEN
        o_code := 'not_found'; o_detail := p_credit;
    ELSIF d.currency <> c.currency THEN
        o_code := 'currency_mismatch'; o_detail := p_credit;
    ELSIF (d.flags & 4) <> 0 THEN
        o_code := 'account_closed'; o_detail := p_debit;
    ELSIF (c.flags & 4) <> 0 THEN
        o_code := 'account_closed'; o_detail := p_credit;
    ELSIF (d.flags & 1) <> 0 AND d.debits_pending + d.debits_posted + p_amount > d.credits_posted THEN
        o_code := 'insufficient_funds'; o_detail := p_debit;
    ELSIF (c.flags & 2) <> 0 AND c.credits_pending + c.credits_posted + p_amount > c.debits_posted THEN
        o_code := 'exceeds_credits'; o_detail := p_credit;
    END IF;
    IF o_code <> '' THEN
        -- An identical request may have committed while this one waited for
        -- the locks: then its result is the answer.
        SELECT id, digest, created_at INTO o_id, v_digest, o_created
          FROM ledger_transfers WHERE caller = p_caller AND key = p_key;
        IF FOUND THEN
            o_detail := NULL;
            IF v_digest = p_digest THEN
                o_code := ''; o_replayed := true;
            ELSE
                o_code := 'idempotency_conflict'; o_id := NULL; o_created := NULL;
            END IF;
        END IF;
        RETURN;
    END IF;

    o_id := nextval('ledger_transfers_id_seq');
    INSERT INTO ledger_transfers (id, caller, key, digest, kind, debit_id, credit_id, amount,
                                  code, metadata, timeout_at, created_at)
    VALUES (o_id, p_caller, p_key, p_digest, CASE WHEN p_timeout > 0 THEN 'pending' ELSE 'posted' END,
            p_debit, p_credit, p_amount, p_code, p_meta,
            CASE WHEN p_timeout > 0 THEN p_now + p_timeout * interval '1 microsecond' END, p_now)
    ON CONFLICT (caller, key) DO NOTHING;
    IF NOT FOUND THEN
        o_code := 'retry'; o_id := NULL; RETURN;
    END IF;
    INSERT INTO ledger_entries (transfer_id, side, account_id, pending, posted) VALUES
        (o_id, 'D', p_debit, v_pending, v_posted),
        (o_id, 'C', p_credit, v_pending, v_posted);
    IF p_timeout > 0 THEN
        INSERT INTO ledger_holds (pending_id, debit_id, credit_id, amount, timeout_at)
        VALUES (o_id, p_debit, p_credit, p_amount, p_now + p_timeout * interval '1 microsecond');
    END IF;
    UPDATE ledger_accounts
       SET debits_pending  = debits_pending  + CASE WHEN id = p_debit THEN v_pending ELSE 0 END,
           debits_posted   = debits_posted   + CASE WHEN id = p_debit THEN v_posted ELSE 0 END,
           credits_pending = credits_pending + CASE WHEN id = p_credit THEN v_pending ELSE 0 END,
           credits_posted  = credits_posted  + CASE WHEN id = p_credit THEN v_posted ELSE 0 END
     WHERE id IN (p_debit, p_credit);
    o_created := p_now;
END
$$;
-- +goose StatementEnd

-- ledger_resolve posts (p_void false; p_amount 0 means the full amount) or
-- voids the hold p_pending, exactly once. Codes as ledger_submit's, plus
-- 'hold_resolved', 'hold_expired' (a post at or after the timeout, even
-- before the sweep voided it) and 'exceeds_hold'. Like ledger_transfer, it
-- looks at its key again before refusing, and returns 'retry' when it lost
-- a race for its key.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION ledger_resolve(
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
    v_id      bigint;
    v_amount  bigint;
    v_created timestamptz;
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
        o_code := 'hold_resolved';
    ELSIF NOT p_void AND p_now >= h.timeout_at THEN
        o_code := 'hold_expired';
    ELSIF NOT p_void AND EXISTS (SELECT 1 FROM ledger_accounts
                                  WHERE id IN (p.debit_id, p.credit_id) AND (flags & 4) <> 0) THEN
        o_code := 'account_closed';
    ELSIF NOT p_void AND p_amount > p.amount THEN
        o_code := 'exceeds_hold';
    END IF;
    IF o_code <> '' THEN
        -- An identical request may have committed while this one waited for
        -- the locks (and resolved the hold): then its result is the answer.
        SELECT id, digest, amount, created_at INTO v_id, v_digest, v_amount, v_created
          FROM ledger_transfers WHERE caller = p_caller AND key = p_key;
        IF FOUND THEN
            IF v_digest = p_digest THEN
                o_code := ''; o_replayed := true;
                o_id := v_id; o_amount := v_amount; o_created := v_created;
            ELSE
                o_code := 'idempotency_conflict';
            END IF;
        END IF;
        RETURN;
    END IF;
    IF p_void THEN
        o_amount := p.amount; v_posted := 0;
    ELSE
        o_amount := CASE WHEN p_amount = 0 THEN p.amount ELSE p_amount END;
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

-- +goose Down
ALTER TABLE ledger_accounts RESET (fillfactor);
ALTER TABLE ledger_transfers ALTER COLUMN caller TYPE text COLLATE "default",
                             ALTER COLUMN key TYPE text COLLATE "default";
DROP FUNCTION ledger_transfer(text, timestamptz, text, bytea, bigint, bigint, bigint, text, jsonb, bigint);
-- (ledger_submit and ledger_resolve keep their new bodies: same signatures,
-- same results. ledger_submit needs ledger_known.)
CREATE INDEX ledger_entries_account ON ledger_entries (account_id);
DROP INDEX ledger_transfers_created;
CREATE INDEX ledger_transfers_created ON ledger_transfers (created_at);
DROP TRIGGER ledger_accounts_kept ON ledger_accounts;
ALTER TABLE ledger_holds ADD FOREIGN KEY (pending_id) REFERENCES ledger_transfers (id);
ALTER TABLE ledger_entries ADD FOREIGN KEY (account_id) REFERENCES ledger_accounts (id);
ALTER TABLE ledger_entries ADD FOREIGN KEY (transfer_id) REFERENCES ledger_transfers (id);
ALTER TABLE ledger_transfers ADD FOREIGN KEY (credit_id) REFERENCES ledger_accounts (id);
ALTER TABLE ledger_transfers ADD FOREIGN KEY (debit_id) REFERENCES ledger_accounts (id);
