package payment

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/database"
	"github.com/jifu-open/jifu/host/ledger"
)

// Confirm records user's confirmation of intent id with the split chosen on
// the host's page, then moves the money: it authorizes every part, then
// captures them all in one transaction; a refused part voids the others and
// fails the intent. It returns the intent in its final state (succeeded or
// failed). Only the intent's user may confirm (CodeDenied), only once
// (CodeConflict), and only before it expires (CodeConflict; the intent
// turns expired). The caller (the page) has checked the user's form token.
//
// If the process dies after the confirmation is recorded, Resume finishes
// the payment.
func (s *Service) Confirm(ctx context.Context, id, user string, splits []Split) (Intent, error) {
	var expired bool
	err := s.inTx(ctx, "confirm", func(tx pgx.Tx) error {
		expired = false
		in, err := s.load(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if user == "" || in.User != user {
			return jifu.Errorf(jifu.CodeDenied, "payment: intent %s belongs to another user", id)
		}
		if in.State != StateCreated {
			return jifu.Errorf(jifu.CodeConflict, "payment: intent %s is %s, not waiting for confirmation", id, in.State)
		}
		now := s.now().UTC().Truncate(time.Microsecond)
		if !now.Before(in.ExpiresAt) {
			expired = true
			return s.expireOne(ctx, tx, in, now)
		}
		method, err := s.checkSplits(in.Amount, splits)
		if err != nil {
			return err
		}
		for i, sp := range splits {
			if _, err := tx.Exec(ctx, `INSERT INTO payment_parts (intent_id, idx, method, amount, state)
				VALUES ($1, $2, $3, $4, 'pending')`, id, i, sp.Method, sp.Amount); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `UPDATE payment_intents SET state = 'confirmed', method = $2, confirmed_at = $3,
			updated_at = $3, lease_until = $4 WHERE id = $1`, id, method, now, now.Add(s.cfg.Lease))
		return err
	})
	if err != nil {
		return Intent{}, err
	}
	if expired {
		return Intent{}, jifu.Errorf(jifu.CodeConflict, "payment: intent %s expired before it was confirmed", id)
	}
	return s.process(ctx, id)
}

// checkSplits validates the user's split of amount and names the intent's
// method.
func (s *Service) checkSplits(amount int64, splits []Split) (string, error) {
	if len(splits) == 0 || len(splits) > len(s.methods) {
		return "", jifu.Errorf(jifu.CodeInvalid, "payment: choose 1..%d methods", len(s.methods))
	}
	var sum int64
	seen := map[string]bool{}
	for _, sp := range splits {
		if _, ok := s.methods[sp.Method]; !ok {
			return "", jifu.Errorf(jifu.CodeInvalid, "payment: no method %q", sp.Method)
		}
		if seen[sp.Method] {
			return "", jifu.Errorf(jifu.CodeInvalid, "payment: method %q chosen twice", sp.Method)
		}
		seen[sp.Method] = true
		if sp.Amount <= 0 || sp.Amount > amount {
			return "", jifu.Errorf(jifu.CodeInvalid, "payment: each method's share must be 1..%d fen", amount)
		}
		sum += sp.Amount
	}
	if sum != amount {
		return "", jifu.Errorf(jifu.CodeInvalid, "payment: the shares add up to %d fen, not %d", sum, amount)
	}
	if len(splits) == 1 {
		return splits[0].Method, nil
	}
	return MethodCombined, nil
}

// errCaptureRefused carries a capture refusal out of its (rolled back)
// transaction.
type errCaptureRefused struct{ err error }

func (e errCaptureRefused) Error() string { return "capture refused: " + e.err.Error() }

// process drives a confirmed intent to its end, one transaction per step,
// and returns it. Each step re-reads the state under the intent's row lock,
// and every ledger key is derived from the intent, so two processes (a slow
// one and Resume) can never move money twice.
func (s *Service) process(ctx context.Context, id string) (Intent, error) {
	for {
		var done bool
		err := s.inTx(ctx, "process", func(tx pgx.Tx) error {
			var err error
			done, err = s.step(ctx, tx, id)
			return err
		})
		var cr errCaptureRefused
		if errors.As(err, &cr) {
			err = s.inTx(ctx, "fail", func(tx pgx.Tx) error {
				in, payee, err := s.loadRow(ctx, tx, id, true)
				if err != nil {
					return err
				}
				return s.fail(ctx, tx, in, payee, "capture refused: "+jifu.ErrorMessage(cr.err))
			})
			done = true
		}
		if err != nil {
			return Intent{}, err
		}
		if done {
			return s.load(ctx, s.pool, id, false)
		}
	}
}

// step takes one step of intent id's payment in tx: authorize the next
// pending part, or capture all parts once each is authorized. It reports
// whether the intent has reached a final state.
func (s *Service) step(ctx context.Context, tx pgx.Tx, id string) (bool, error) {
	in, payee, err := s.loadRow(ctx, tx, id, true)
	if err != nil {
		return false, err
	}
	if in.State != StateConfirmed && in.State != StateAuthorized {
		return true, nil
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	l := s.ledger.WithTx(tx)
	if in.State == StateConfirmed {
		for i, p := range in.Parts {
			if p.State != "pending" {
				continue
			}
			m := s.methods[p.Method]
			if m == nil {
				return true, s.fail(ctx, tx, in, payee, "method "+p.Method+" is not offered any more")
			}
			h, err := m.Authorize(ctx, l, s.ref(in, payee, p), s.cfg.HoldTimeout)
			if refusal(err) {
				if _, err := tx.Exec(ctx, `UPDATE payment_parts SET state = 'failed', failure = $3
					WHERE intent_id = $1 AND idx = $2`, id, p.Index, jifu.ErrorMessage(err)); err != nil {
					return false, err
				}
				in.Parts[i].State = "failed"
				return true, s.fail(ctx, tx, in, payee, p.Method+": "+jifu.ErrorMessage(err))
			}
			if err != nil {
				return false, err
			}
			if _, err := tx.Exec(ctx, `UPDATE payment_parts SET state = 'authorized', holds = $3
				WHERE intent_id = $1 AND idx = $2`, id, p.Index, h); err != nil {
				return false, err
			}
			state := StateConfirmed
			if i == len(in.Parts)-1 {
				state = StateAuthorized
			}
			_, err = tx.Exec(ctx, `UPDATE payment_intents SET state = $2, updated_at = $3, lease_until = $4 WHERE id = $1`,
				id, string(state), now, now.Add(s.cfg.Lease))
			return false, err
		}
		return false, jifu.Errorf(jifu.CodeInternal, "payment: intent %s confirmed with no pending part", id)
	}
	// Authorized: capture every part, all or nothing.
	for _, p := range in.Parts {
		m := s.methods[p.Method]
		if m == nil {
			return false, errCaptureRefused{jifu.Errorf(jifu.CodeInvalid, "method %s is not offered any more", p.Method)}
		}
		if err := m.Capture(ctx, l, s.ref(in, payee, p), p.holds); err != nil {
			if refusal(err) {
				return false, errCaptureRefused{err}
			}
			return false, err
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE payment_parts SET state = 'captured' WHERE intent_id = $1`, id); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `UPDATE payment_intents SET state = 'succeeded', updated_at = $2, lease_until = NULL
		WHERE id = $1`, id, now); err != nil {
		return false, err
	}
	in.State, in.UpdatedAt = StateSucceeded, now
	for i := range in.Parts {
		in.Parts[i].State = "captured"
	}
	return true, s.publish(ctx, tx, EventSucceeded, in, nil)
}

func (s *Service) ref(in Intent, payee int64, p Part) Ref {
	return Ref{IntentID: in.ID, Index: p.Index, User: in.User, PayeeAccount: payee, Amount: p.Amount}
}

// fail voids every authorized part of in and fails it, in tx, with the
// event. A hold the ledger already expired counts as voided.
func (s *Service) fail(ctx context.Context, tx pgx.Tx, in Intent, payee int64, why string) error {
	if in.State != StateConfirmed && in.State != StateAuthorized {
		return nil
	}
	l := s.ledger.WithTx(tx)
	for i, p := range in.Parts {
		switch p.State {
		case "authorized":
			if m := s.methods[p.Method]; m != nil {
				if err := m.Void(ctx, l, s.ref(in, payee, p), p.holds); err != nil {
					return err
				}
			}
			fallthrough
		case "pending":
			in.Parts[i].State = "voided"
			if _, err := tx.Exec(ctx, `UPDATE payment_parts SET state = 'voided' WHERE intent_id = $1 AND idx = $2`,
				in.ID, p.Index); err != nil {
				return err
			}
		}
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	if len(why) > 500 {
		why = why[:500]
	}
	if _, err := tx.Exec(ctx, `UPDATE payment_intents SET state = 'failed', failure = $2, updated_at = $3, lease_until = NULL
		WHERE id = $1`, in.ID, why, now); err != nil {
		return err
	}
	in.State, in.Failure, in.UpdatedAt = StateFailed, why, now
	return s.publish(ctx, tx, EventFailed, in, nil)
}

// Resume finishes the payments whose process died: confirmed or authorized
// intents whose lease ran out are completed, or failed with every hold
// voided when a part is refused (a hold that expired meanwhile included).
// It returns how many it took over, and the first error of those it could
// not finish. jifu serve runs it periodically.
func (s *Service) Resume(ctx context.Context) (int, error) {
	var ids []string
	err := s.inTx(ctx, "resume", func(tx pgx.Tx) error {
		ids = ids[:0]
		now := s.now().UTC().Truncate(time.Microsecond)
		rows, err := tx.Query(ctx, `SELECT id FROM payment_intents
			WHERE state IN ('confirmed', 'authorized') AND lease_until <= $1
			ORDER BY lease_until LIMIT 100 FOR UPDATE SKIP LOCKED`, now)
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE payment_intents SET lease_until = $2 WHERE id = ANY($1)`, ids, now.Add(s.cfg.Lease))
		return err
	})
	if err != nil {
		return 0, err
	}
	// One intent that cannot proceed now (its lease is renewed, so it is
	// retried a lease later) does not hold up the others.
	var first error
	for _, id := range ids {
		if _, err := s.process(ctx, id); err != nil {
			s.log.WarnContext(ctx, "payment: resume failed", "intent", id, "err", err)
			if first == nil {
				first = err
			}
			continue
		}
		s.log.InfoContext(ctx, "payment: resumed", "intent", id)
	}
	return len(ids), first
}

// ExpireIntents turns every created intent past its expiry expired, with
// its event, and returns how many.
func (s *Service) ExpireIntents(ctx context.Context) (int, error) {
	total := 0
	for {
		n := 0
		err := s.inTx(ctx, "expire", func(tx pgx.Tx) error {
			n = 0
			now := s.now().UTC().Truncate(time.Microsecond)
			rows, err := tx.Query(ctx, `SELECT id FROM payment_intents WHERE state = 'created' AND expires_at <= $1
				ORDER BY expires_at LIMIT 500 FOR UPDATE SKIP LOCKED`, now)
			if err != nil {
				return err
			}
			ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			for _, id := range ids {
				in, err := s.load(ctx, tx, id, false)
				if err != nil {
					return err
				}
				if err := s.expireOne(ctx, tx, in, now); err != nil {
					return err
				}
			}
			n = len(ids)
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
		if n < 500 {
			return total, nil
		}
	}
}

func (s *Service) expireOne(ctx context.Context, tx pgx.Tx, in Intent, now time.Time) error {
	if _, err := tx.Exec(ctx, `UPDATE payment_intents SET state = 'expired', updated_at = $2 WHERE id = $1`, in.ID, now); err != nil {
		return err
	}
	in.State, in.UpdatedAt = StateExpired, now
	return s.publish(ctx, tx, EventExpired, in, nil)
}

// Run sweeps every interval until ctx ends: expiry of unconfirmed intents
// and Resume of abandoned payments. Errors are logged.
func (s *Service) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := s.ExpireIntents(ctx); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "payment: expiry sweep", "err", err)
		}
		if _, err := s.Resume(ctx); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "payment: resume sweep", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RefundRequest asks for amount of a paid intent back.
type RefundRequest struct {
	IntentID string
	Key      string // the app's idempotency key for this refund
	Amount   int64  // fen
}

// Validate reports the first problem of r as a CodeInvalid error.
func (r *RefundRequest) Validate() error {
	switch {
	case !validText(r.IntentID, 64):
		return jifu.Errorf(jifu.CodeInvalid, "payment: refund: intent id is required")
	case !validText(r.Key, MaxKeyBytes):
		return jifu.Errorf(jifu.CodeInvalid, "payment: refund: key must be 1..%d bytes of printable UTF-8", MaxKeyBytes)
	case r.Amount <= 0 || r.Amount > MaxAmount:
		return jifu.Errorf(jifu.CodeInvalid, "payment: refund: amount must be 1..%d fen", int64(MaxAmount))
	}
	return nil
}

// Refund gives amount of app's paid intent back to the user, part by part
// (each method returns what it took). The sum of refunds never exceeds what
// was paid: each is reserved under the intent's row lock (CodeConflict
// beyond it). The same key returns the original refund (Replayed); with
// another intent or amount it is CodeConflict. When a method refuses (the
// payee no longer holds the money), what already went back stays back and
// the refund is partial (or failed, when nothing went back); either way the
// key is spent and the outcome published.
func (s *Service) Refund(ctx context.Context, app string, req RefundRequest) (Refund, error) {
	if err := req.Validate(); err != nil {
		return Refund{}, err
	}
	var out Refund
	err := s.inTx(ctx, "refund", func(tx pgx.Tx) error {
		in, payee, err := s.loadRow(ctx, tx, req.IntentID, true)
		if err == nil && in.App != app {
			err = jifu.Errorf(jifu.CodeNotFound, "payment: no intent %q", req.IntentID)
		}
		if err != nil {
			return err
		}
		if r, found, err := refundByKey(ctx, tx, app, req.Key); found || err != nil {
			if err == nil && (r.IntentID != req.IntentID || r.Amount != req.Amount) {
				err = jifu.Errorf(jifu.CodeConflict, "payment: refund key %q was used for another refund", req.Key)
			}
			r.Replayed = true
			out = r
			return err
		}
		if !in.State.Paid() {
			return jifu.Errorf(jifu.CodeConflict, "payment: intent %s is %s: nothing to refund", in.ID, in.State)
		}
		if left := in.Amount - in.Refunded; req.Amount > left {
			return jifu.Errorf(jifu.CodeConflict, "payment: refund of %d fen is over the %d fen still refundable", req.Amount, left)
		}
		id, err := s.newID("re_")
		if err != nil {
			return err
		}
		now := s.now().UTC().Truncate(time.Microsecond)
		r := Refund{ID: id, IntentID: in.ID, Key: req.Key, Amount: req.Amount, CreatedAt: now}
		l := s.ledger.WithTx(tx)
		left := req.Amount
		for i, p := range in.Parts {
			x := min(left, p.Amount-p.Refunded)
			if x <= 0 {
				continue
			}
			m := s.methods[p.Method]
			if m == nil {
				r.Failure = "method " + p.Method + " is not offered any more"
				break
			}
			err := m.Refund(ctx, l, s.ref(in, payee, p), x, "refund/"+id+"/"+itoa(p.Index))
			if refusal(err) {
				r.Failure = p.Method + ": " + jifu.ErrorMessage(err)
				break
			}
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE payment_parts SET refunded = refunded + $3 WHERE intent_id = $1 AND idx = $2`,
				in.ID, p.Index, x); err != nil {
				return err
			}
			in.Parts[i].Refunded += x
			r.Refunded += x
			left -= x
			if left == 0 {
				break
			}
		}
		switch {
		case r.Refunded == r.Amount:
			r.State = RefundSucceeded
		case r.Refunded > 0:
			r.State = RefundPartial
		default:
			r.State = RefundFailed
		}
		if _, err := tx.Exec(ctx, `INSERT INTO payment_refunds (id, intent_id, app, app_key, amount, refunded, state, failure, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			r.ID, r.IntentID, app, r.Key, r.Amount, r.Refunded, r.State, r.Failure, now); err != nil {
			return err
		}
		typ := EventRefundFailed
		if r.Refunded > 0 {
			in.Refunded += r.Refunded
			in.State = StatePartiallyRefunded
			if in.Refunded == in.Amount {
				in.State = StateRefunded
			}
			in.UpdatedAt = now
			if _, err := tx.Exec(ctx, `UPDATE payment_intents SET refunded = $2, state = $3, updated_at = $4 WHERE id = $1`,
				in.ID, in.Refunded, string(in.State), now); err != nil {
				return err
			}
			typ = EventRefunded
		}
		out = r
		return s.publish(ctx, tx, typ, in, &r)
	})
	if err != nil {
		return Refund{}, err
	}
	return out, nil
}

func refundByKey(ctx context.Context, q querier, app, key string) (Refund, bool, error) {
	var r Refund
	err := q.QueryRow(ctx, `SELECT id, intent_id, app_key, amount, refunded, state, failure, created_at
		FROM payment_refunds WHERE app = $1 AND app_key = $2`, app, key).
		Scan(&r.ID, &r.IntentID, &r.Key, &r.Amount, &r.Refunded, &r.State, &r.Failure, &r.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Refund{}, false, nil
	}
	if err != nil {
		return Refund{}, false, database.QueryError(ctx, "payment: refund", err)
	}
	return r, true, nil
}

// Refunds lists the refunds of app's intent id, oldest first.
func (s *Service) Refunds(ctx context.Context, app, id string) ([]Refund, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, intent_id, app_key, amount, refunded, state, failure, created_at
		FROM payment_refunds WHERE app = $1 AND intent_id = $2 ORDER BY created_at, id`, app, id)
	if err != nil {
		return nil, database.QueryError(ctx, "payment: refunds", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Refund, error) {
		var r Refund
		err := row.Scan(&r.ID, &r.IntentID, &r.Key, &r.Amount, &r.Refunded, &r.State, &r.Failure, &r.CreatedAt)
		return r, err
	})
	if err != nil {
		return nil, database.QueryError(ctx, "payment: refunds", err)
	}
	return out, nil
}

// SetCreditLimit sets user's credit limit, opening the line when needed.
// Lowering it below what is used is refused (ledger.ErrExceedsCredits).
func (s *Service) SetCreditLimit(ctx context.Context, user string, limit int64) (CreditLine, error) {
	if !validText(user, ledger.MaxOwnerIDBytes) || limit < 0 || limit > MaxAmount {
		return CreditLine{}, jifu.Errorf(jifu.CodeInvalid, "payment: credit limit must be 0..%d fen for a user", int64(MaxAmount))
	}
	err := s.inTx(ctx, "credit limit", func(tx pgx.Tx) error {
		l := s.ledger.WithTx(tx)
		line, err := l.CreateAccount(ctx, creditLineSpec(user))
		if err != nil {
			return err
		}
		limits, err := l.CreateAccount(ctx, creditLimits)
		if err != nil {
			return err
		}
		var old, version int64
		err = tx.QueryRow(ctx, `SELECT credit_limit, version FROM payment_credit_lines WHERE user_id = $1 FOR UPDATE`, user).
			Scan(&old, &version)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		version++
		key := "credit-limit/" + user + "/" + itoa(int(version))
		switch delta := limit - old; {
		case delta > 0:
			_, err = l.Transfer(ctx, LedgerCaller, ledger.Transfer{ID: key, Debit: line.ID, Credit: limits.ID, Amount: delta, Code: "credit.limit"})
		case delta < 0:
			_, err = l.Transfer(ctx, LedgerCaller, ledger.Transfer{ID: key, Debit: limits.ID, Credit: line.ID, Amount: -delta, Code: "credit.limit"})
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO payment_credit_lines (user_id, credit_limit, version, updated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (user_id) DO UPDATE SET credit_limit = $2, version = $3, updated_at = $4`,
			user, limit, version, s.now().UTC())
		return err
	})
	if err != nil {
		return CreditLine{}, err
	}
	return s.CreditLine(ctx, user)
}

// CreditLine returns user's credit line (all zero without one). It never
// creates accounts.
func (s *Service) CreditLine(ctx context.Context, user string) (CreditLine, error) {
	c := CreditLine{User: user}
	err := s.pool.QueryRow(ctx, `SELECT credit_limit FROM payment_credit_lines WHERE user_id = $1`, user).Scan(&c.Limit)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return CreditLine{}, database.QueryError(ctx, "payment: credit line", err)
	}
	if c.Available, err = (Credit{}).Available(ctx, s.ledger, user); err != nil {
		return CreditLine{}, err
	}
	c.Used = c.Limit - c.Available
	return c, nil
}
