package cardpay

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu"
)

// Risk rules are rows of card_risk_classes, card_risk_terminal_types and
// card_risk_user_levels (seeded with the seed's 风控规则, editable by risk
// staff). The service reads them at most every rulesTTL.
const rulesTTL = 5 * time.Second

// ClassRule is one card class and how a card gets it.
type ClassRule struct {
	Class                   string
	Priority                int
	PerTx, PerDay, PerMonth int64 // fen
	T0PerDay                int64
	NeedCreditOK, NeedBound bool
	NeedKind                string
	NeedChip                bool
	MinCumulative           int64
	MinCleanDays            int
}

type limits struct{ perTx, perDay, perMonth int64 }

type rules struct {
	loaded  time.Time
	classes []ClassRule // by priority
	types   map[string]limits
	levels  map[string]int64 // T0 per day
}

type cardFacts struct {
	kind                  string
	chip, bound, creditOK bool
	agentClass            string
	cumulative            int64
	firstSeen             time.Time
	lastError             *time.Time
}

// classify returns the first class whose conditions the card meets; an
// agent-raised class applies to a bound card.
func classify(rs []ClassRule, c cardFacts, now time.Time) *ClassRule {
	find := func(name string) *ClassRule {
		for i := range rs {
			if rs[i].Class == name {
				return &rs[i]
			}
		}
		return nil
	}
	if c.agentClass != "" && c.bound {
		if r := find(c.agentClass); r != nil {
			return r
		}
	}
	clean := c.firstSeen
	if c.lastError != nil {
		clean = *c.lastError
	}
	cleanDays := int(now.Sub(clean) / (24 * time.Hour))
	for i := range rs {
		r := &rs[i]
		if r.NeedCreditOK && !c.creditOK || r.NeedBound && !c.bound || r.NeedChip && !c.chip ||
			r.NeedKind != "" && r.NeedKind != c.kind || c.cumulative < r.MinCumulative || cleanDays < r.MinCleanDays {
			continue
		}
		return r
	}
	return nil
}

func (s *Service) rules(ctx context.Context) (*rules, error) {
	s.mu.RLock()
	r := s.cachedRules
	s.mu.RUnlock()
	if r != nil && s.opt.Now().Sub(r.loaded) < rulesTTL {
		return r, nil
	}
	r = &rules{loaded: s.opt.Now(), types: map[string]limits{}, levels: map[string]int64{}}
	rows, err := s.pool.Query(ctx, `SELECT class, priority, per_tx, per_day, per_month, t0_per_day, need_credit_ok, need_bound,
		need_kind, need_chip, min_cumulative, min_clean_days FROM card_risk_classes ORDER BY priority`)
	if err != nil {
		return nil, dbErr(ctx, "load risk classes", err)
	}
	r.classes, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (ClassRule, error) {
		var c ClassRule
		err := row.Scan(&c.Class, &c.Priority, &c.PerTx, &c.PerDay, &c.PerMonth, &c.T0PerDay, &c.NeedCreditOK, &c.NeedBound,
			&c.NeedKind, &c.NeedChip, &c.MinCumulative, &c.MinCleanDays)
		return c, err
	})
	if err != nil {
		return nil, dbErr(ctx, "load risk classes", err)
	}
	rows, err = s.pool.Query(ctx, `SELECT terminal_type, per_tx, per_day, per_month FROM card_risk_terminal_types`)
	if err != nil {
		return nil, dbErr(ctx, "load terminal limits", err)
	}
	var typ string
	var l limits
	if _, err := pgx.ForEachRow(rows, []any{&typ, &l.perTx, &l.perDay, &l.perMonth}, func() error { r.types[typ] = l; return nil }); err != nil {
		return nil, dbErr(ctx, "load terminal limits", err)
	}
	rows, err = s.pool.Query(ctx, `SELECT level, t0_per_day FROM card_risk_user_levels`)
	if err != nil {
		return nil, dbErr(ctx, "load user levels", err)
	}
	var lvl string
	var t0 int64
	if _, err := pgx.ForEachRow(rows, []any{&lvl, &t0}, func() error { r.levels[lvl] = t0; return nil }); err != nil {
		return nil, dbErr(ctx, "load user levels", err)
	}
	s.mu.Lock()
	s.cachedRules = r
	s.mu.Unlock()
	return r, nil
}

type counter struct {
	scope, subject, period string
	limit                  int64
	rule                   string
}

type riskOutcome struct {
	class   string
	t0      bool
	rule    string // non-empty: declined by this rule
	applied []counter
	amount  int64
}

// errDeclined rolls the risk transaction back.
var errDeclined = errors.New("declined by a risk rule")

// applyRisk classifies the card and moves every counter the payment
// touches in one transaction, with row locks in a fixed order so that
// concurrent payments of one card or user serialize and never overshoot.
func (s *Service) applyRisk(ctx context.Context, paymentID int64, token, masked string, chip bool, m *merchant, t *terminal, amount int64, now time.Time, stan string) (riskOutcome, error) {
	rs, err := s.rules(ctx)
	if err != nil {
		return riskOutcome{}, err
	}
	out := riskOutcome{amount: amount}
	day := "D" + now.In(beijing).Format("2006-01-02")
	month := "M" + now.In(beijing).Format("2006-01")
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var c cardFacts
		err := tx.QueryRow(ctx, `INSERT INTO card_cards (card_token, pan_masked, chip) VALUES ($1, $2, $3)
			ON CONFLICT (card_token) DO UPDATE SET chip = card_cards.chip OR EXCLUDED.chip
			RETURNING kind, chip, bound, credit_verified, agent_class, cumulative, first_seen, last_error_at`, token, masked, chip).
			Scan(&c.kind, &c.chip, &c.bound, &c.creditOK, &c.agentClass, &c.cumulative, &c.firstSeen, &c.lastError)
		if err != nil {
			return err
		}
		cls := classify(rs.classes, c, now)
		if cls == nil {
			out.rule = "card_class:none"
			return errDeclined
		}
		out.class = cls.Class
		tl, ok := rs.types[t.typ]
		if !ok {
			out.rule = "terminal_type:" + t.typ + ":unknown"
			return errDeclined
		}
		if amount > cls.PerTx {
			out.rule = "card_class:" + cls.Class + ":per_tx"
			return errDeclined
		}
		if amount > tl.perTx {
			out.rule = "terminal_type:" + t.typ + ":per_tx"
			return errDeclined
		}
		user := m.orgID + "/" + m.merchantID
		cs := []counter{
			{"card", token, day, cls.PerDay, "card_class:" + cls.Class + ":per_day"},
			{"card", token, month, cls.PerMonth, "card_class:" + cls.Class + ":per_month"},
			{"user", user + "/" + t.typ, day, tl.perDay, "terminal_type:" + t.typ + ":per_day"},
			{"user", user + "/" + t.typ, month, tl.perMonth, "terminal_type:" + t.typ + ":per_month"},
		}
		if rule, err := bump(ctx, tx, cs, amount); err != nil || rule != "" {
			if err == nil {
				out.rule, err = rule, errDeclined
			}
			return err
		}
		out.applied = cs
		// T0 eligibility: within the card class's and the user level's T0
		// day limits; otherwise the payment settles T1 (not a decline).
		t0 := []counter{
			{"card_t0", token, day, cls.T0PerDay, "card_class:" + cls.Class + ":t0_per_day"},
			{"user_t0", user, day, rs.levels[m.level], "user_level:" + m.level + ":t0_per_day"},
		}
		rule, err := bump(ctx, tx, t0, amount)
		if err != nil {
			return err
		}
		if rule != "" {
			if err := unbump(ctx, tx, t0, amount); err != nil {
				return err
			}
		} else {
			out.t0 = true
			out.applied = append(out.applied, t0...)
		}
		_, err = tx.Exec(ctx, `UPDATE card_payments SET card_class = $2, t0 = $3, card_token = $4, pan_masked = $5,
			stan = $6, acq_tid = $7, acq_mid = $8, batch_no = $9 WHERE id = $1`,
			paymentID, cls.Class, out.t0, token, masked, stan, t.acqTID, m.acqMID, s.opt.BatchNo)
		return err
	})
	if errors.Is(err, errDeclined) {
		return out, nil
	}
	if err != nil {
		return out, dbErr(ctx, "apply risk rules", err)
	}
	return out, nil
}

// bump adds amount to every counter in one statement, taking the row
// locks in a fixed order (so concurrent payments of one card or user
// serialize without deadlocks), and returns the rule of the first counter
// now over its limit.
func bump(ctx context.Context, tx pgx.Tx, cs []counter, amount int64) (string, error) {
	sort.Slice(cs, func(i, j int) bool {
		a, b := cs[i], cs[j]
		if a.scope != b.scope {
			return a.scope < b.scope
		}
		if a.subject != b.subject {
			return a.subject < b.subject
		}
		return a.period < b.period
	})
	scopes, subjects, periods := make([]string, len(cs)), make([]string, len(cs)), make([]string, len(cs))
	for i, c := range cs {
		scopes[i], subjects[i], periods[i] = c.scope, c.subject, c.period
	}
	rows, err := tx.Query(ctx, `INSERT INTO card_counters (scope, subject, period, amount)
		SELECT s, u, p, $4::bigint FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS x(s, u, p, n) ORDER BY n
		ON CONFLICT (scope, subject, period) DO UPDATE SET amount = card_counters.amount + EXCLUDED.amount
		RETURNING scope, subject, period, amount`, scopes, subjects, periods, amount)
	if err != nil {
		return "", err
	}
	totals := map[[3]string]int64{}
	var sc, su, pe string
	var total int64
	if _, err := pgx.ForEachRow(rows, []any{&sc, &su, &pe, &total}, func() error {
		totals[[3]string{sc, su, pe}] = total
		return nil
	}); err != nil {
		return "", err
	}
	for _, c := range cs {
		if totals[[3]string{c.scope, c.subject, c.period}] > c.limit {
			return c.rule, nil
		}
	}
	return "", nil
}

func unbump(ctx context.Context, tx pgx.Tx, cs []counter, amount int64) error {
	scopes, subjects, periods := make([]string, len(cs)), make([]string, len(cs)), make([]string, len(cs))
	for i, c := range cs {
		scopes[i], subjects[i], periods[i] = c.scope, c.subject, c.period
	}
	_, err := tx.Exec(ctx, `UPDATE card_counters c SET amount = c.amount - $4
		FROM unnest($1::text[], $2::text[], $3::text[]) AS x(s, u, p)
		WHERE c.scope = x.s AND c.subject = x.u AND c.period = x.p`, scopes, subjects, periods, amount)
	return err
}

// release gives back the counters of a payment that did not go through
// (declined by the acquirer, reversed).
func (s *Service) release(ctx context.Context, rk riskOutcome) {
	if len(rk.applied) == 0 {
		return
	}
	err := pgx.BeginFunc(context.WithoutCancel(ctx), s.pool, func(tx pgx.Tx) error {
		return unbump(ctx, tx, rk.applied, rk.amount)
	})
	if err != nil {
		s.log.ErrorContext(ctx, "cardpay: releasing risk counters failed", "err", jifu.ErrorMessage(err))
	}
}
