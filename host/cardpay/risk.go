package cardpay

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

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

	userMu sync.RWMutex
	users  map[string]string // merchant (org\x00id) → its user level, read once per generation (userLevel)
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
	// Clean days count from the card's last erroneous transaction that
	// counts (card_cards.last_error_at, kept by the Desk from card_errors),
	// else from its first sighting.
	clean := c.firstSeen
	if c.lastError != nil && c.lastError.After(clean) {
		clean = *c.lastError
	}
	days := cleanDays(clean, now)
	for i := range rs {
		r := &rs[i]
		if r.NeedCreditOK && !c.creditOK || r.NeedBound && !c.bound || r.NeedChip && !c.chip ||
			r.NeedKind != "" && r.NeedKind != c.kind || c.cumulative < r.MinCumulative || days < r.MinCleanDays {
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

// applyRisk classifies the card and moves every counter the payment
// touches. Each counter moves only if it stays within its limit (one
// statement, rows locked in a fixed order), so concurrent payments of one
// card or user never overshoot; when one counter refuses, the ones that
// moved are given back and the payment is declined naming the rule (under
// contention this can decline a payment that would have fit a moment later:
// the safe side). T0 counters that refuse only make the payment T1.
func (s *Service) applyRisk(ctx context.Context, paymentID int64, token, masked string, chip bool, m *merchant, t *terminal, amount int64, now time.Time, stan string) (riskOutcome, error) {
	rs, err := s.rules(ctx)
	if err != nil {
		return riskOutcome{}, err
	}
	out := riskOutcome{amount: amount}
	c, err := s.cardFacts(ctx, token, masked, chip)
	if err != nil {
		return out, err
	}
	cls := classify(rs.classes, c, now)
	if cls == nil {
		out.rule = "card_class:none"
		return out, nil
	}
	out.class = cls.Class
	tl, ok := rs.types[t.typ]
	switch {
	case !ok:
		out.rule = "terminal_type:" + t.typ + ":unknown"
		return out, nil
	case amount > cls.PerTx:
		out.rule = "card_class:" + cls.Class + ":per_tx"
		return out, nil
	case amount > tl.perTx:
		out.rule = "terminal_type:" + t.typ + ":per_tx"
		return out, nil
	}
	day := "D" + now.In(beijing).Format("2006-01-02")
	month := "M" + now.In(beijing).Format("2006-01")
	user := m.orgID + "/" + m.merchantID
	main := []counter{
		{"card", token, day, cls.PerDay, "card_class:" + cls.Class + ":per_day"},
		{"card", token, month, cls.PerMonth, "card_class:" + cls.Class + ":per_month"},
		{"user", user + "/" + t.typ, day, tl.perDay, "terminal_type:" + t.typ + ":per_day"},
		{"user", user + "/" + t.typ, month, tl.perMonth, "terminal_type:" + t.typ + ":per_month"},
	}
	level, err := s.userLevel(ctx, rs, m) // not m.level: levels change (upgrades, risk staff)
	if err != nil {
		return out, err
	}
	t0 := []counter{
		{"card_t0", token, day, cls.T0PerDay, "card_class:" + cls.Class + ":t0_per_day"},
		{"user_t0", user, day, rs.levels[level], "user_level:" + level + ":t0_per_day"},
	}
	all := append(append([]counter{}, main...), t0...)
	sort.Slice(all, func(i, j int) bool { return all[i].key() < all[j].key() })
	scopes, subjects, periods, caps := make([]string, len(all)), make([]string, len(all)), make([]string, len(all)), make([]int64, len(all))
	for i, c := range all {
		scopes[i], subjects[i], periods[i], caps[i] = c.scope, c.subject, c.period, c.limit
	}
	rows, err := s.pool.Query(ctx, `WITH moved AS (
			INSERT INTO card_counters (scope, subject, period, amount, cap)
			SELECT s, u, p, $4::bigint, l FROM unnest($1::text[], $2::text[], $3::text[], $5::bigint[]) WITH ORDINALITY AS x(s, u, p, l, n)
			WHERE $4::bigint <= l ORDER BY n
			ON CONFLICT (scope, subject, period) DO UPDATE SET amount = card_counters.amount + EXCLUDED.amount, cap = EXCLUDED.cap
			WHERE card_counters.amount + EXCLUDED.amount <= EXCLUDED.cap
			RETURNING scope, subject, period),
		pay AS (
			UPDATE card_payments SET card_class = $7, card_token = $8, pan_masked = $9, stan = $10, acq_tid = $11, acq_mid = $12,
			batch_no = $13, t0 = ((SELECT count(*) FROM moved WHERE scope IN ('card_t0', 'user_t0')) = 2) WHERE id = $6)
		SELECT scope, subject, period FROM moved`,
		scopes, subjects, periods, amount, caps, paymentID, cls.Class, token, masked, stan, t.acqTID, m.acqMID, s.opt.BatchNo)
	if err != nil {
		return out, dbErr(ctx, "apply risk rules", err)
	}
	moved := map[string]bool{}
	var sc, su, pe string
	if _, err := pgx.ForEachRow(rows, []any{&sc, &su, &pe}, func() error {
		moved[counter{scope: sc, subject: su, period: pe}.key()] = true
		return nil
	}); err != nil {
		return out, dbErr(ctx, "apply risk rules", err)
	}
	var applied []counter
	for _, c := range all {
		if moved[c.key()] {
			applied = append(applied, c)
		}
	}
	for _, c := range main {
		if !moved[c.key()] {
			s.release(ctx, riskOutcome{applied: applied, amount: amount})
			out.rule = c.rule
			return out, nil
		}
	}
	if !moved[t0[0].key()] || !moved[t0[1].key()] {
		var back []counter
		for _, c := range t0 {
			if moved[c.key()] {
				back = append(back, c)
			}
		}
		s.release(ctx, riskOutcome{applied: back, amount: amount})
		out.applied = main
		return out, nil
	}
	out.t0 = true
	out.applied = applied
	return out, nil
}

// cardFactsTTL bounds how stale a card's cached facts may be: a class
// upgrade (binding, cumulative volume) takes effect within it.
const (
	cardFactsTTL = 5 * time.Second
	maxCardCache = 100000
)

type cachedCard struct {
	facts cardFacts
	at    time.Time
}

// cardFacts returns what the platform knows about the card, creating its
// row on first sight and recording that it was read by its chip.
func (s *Service) cardFacts(ctx context.Context, token, masked string, chip bool) (cardFacts, error) {
	now := time.Now()
	s.mu.RLock()
	cc, ok := s.cards[token]
	s.mu.RUnlock()
	if ok && now.Sub(cc.at) < cardFactsTTL && (cc.facts.chip || !chip) {
		return cc.facts, nil
	}
	var c cardFacts
	load := func(q string, args ...any) error {
		return s.pool.QueryRow(ctx, q, args...).
			Scan(&c.kind, &c.chip, &c.bound, &c.creditOK, &c.agentClass, &c.cumulative, &c.firstSeen, &c.lastError)
	}
	const cols = `kind, chip, bound, credit_verified, agent_class, cumulative, first_seen, last_error_at`
	err := load(`SELECT `+cols+` FROM card_cards WHERE card_token = $1`, token)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && chip && !c.chip {
		err = load(`INSERT INTO card_cards (card_token, pan_masked, chip) VALUES ($1, $2, $3)
			ON CONFLICT (card_token) DO UPDATE SET chip = card_cards.chip OR EXCLUDED.chip RETURNING `+cols, token, masked, chip)
	}
	if err != nil {
		return c, dbErr(ctx, "load card", err)
	}
	s.mu.Lock()
	if len(s.cards) >= maxCardCache {
		clear(s.cards)
	}
	s.cards[token] = cachedCard{facts: c, at: now}
	s.mu.Unlock()
	return c, nil
}

func (s *Service) forgetCard(token string) {
	s.mu.Lock()
	delete(s.cards, token)
	s.mu.Unlock()
}

func (c counter) key() string { return c.scope + "\x00" + c.subject + "\x00" + c.period }

func unbump(ctx context.Context, tx *pgxpool.Pool, cs []counter, amount int64) error {
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
	err := unbump(context.WithoutCancel(ctx), s.pool, rk.applied, rk.amount)
	if err != nil {
		s.log.ErrorContext(ctx, "cardpay: releasing risk counters failed", "err", jifu.ErrorMessage(err))
	}
}
