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

// riskPlan is what the risk rules decided before the counters move: the
// card's class and the counters the payment touches (all sorted by key: the
// statement locks rows in that order), or a rule that declines it at once.
type riskPlan struct {
	out           riskOutcome
	token, masked string // the card's
	main, t0, all []counter
}

// planRisk classifies the card and lists the counters the payment moves.
// The counters move in the payment's claim statement (claimRisk): each only
// if it stays within its limit (rows locked in a fixed order), so
// concurrent payments of one card or user never overshoot; settle then
// gives back the moved ones when one refused, and the payment is declined
// naming the rule (under contention this can decline a payment that would
// have fit a moment later: the safe side). T0 counters that refuse only
// make the payment T1.
func (s *Service) planRisk(ctx context.Context, token, masked string, chip bool, m *merchant, t *terminal, amount int64, now time.Time) (riskPlan, error) {
	p := riskPlan{out: riskOutcome{amount: amount}, token: token, masked: masked}
	rs, err := s.rules(ctx)
	if err != nil {
		return p, err
	}
	c, err := s.cardFacts(ctx, token, masked, chip)
	if err != nil {
		return p, err
	}
	cls := classify(rs.classes, c, now)
	if cls == nil {
		p.out.rule = "card_class:none"
		return p, nil
	}
	p.out.class = cls.Class
	tl, ok := rs.types[t.typ]
	switch {
	case !ok:
		p.out.rule = "terminal_type:" + t.typ + ":unknown"
		return p, nil
	case amount > cls.PerTx:
		p.out.rule = "card_class:" + cls.Class + ":per_tx"
		return p, nil
	case amount > tl.perTx:
		p.out.rule = "terminal_type:" + t.typ + ":per_tx"
		return p, nil
	}
	day := "D" + now.In(beijing).Format("2006-01-02")
	month := "M" + now.In(beijing).Format("2006-01")
	user := m.orgID + "/" + m.merchantID
	p.main = []counter{
		{"card", token, day, cls.PerDay, "card_class:" + cls.Class + ":per_day"},
		{"card", token, month, cls.PerMonth, "card_class:" + cls.Class + ":per_month"},
		{"user", user + "/" + t.typ, day, tl.perDay, "terminal_type:" + t.typ + ":per_day"},
		{"user", user + "/" + t.typ, month, tl.perMonth, "terminal_type:" + t.typ + ":per_month"},
	}
	level, err := s.userLevel(ctx, rs, m) // not m.level: levels change (upgrades, risk staff)
	if err != nil {
		return p, err
	}
	p.t0 = []counter{
		{"card_t0", token, day, cls.T0PerDay, "card_class:" + cls.Class + ":t0_per_day"},
		{"user_t0", user, day, rs.levels[level], "user_level:" + level + ":t0_per_day"},
	}
	p.all = append(append([]counter{}, p.main...), p.t0...)
	sort.Slice(p.all, func(i, j int) bool { return p.all[i].key() < p.all[j].key() })
	return p, nil
}

// arrays are the plan's counters as the statement's parameters.
func (p *riskPlan) arrays() (scopes, subjects, periods []string, caps []int64) {
	scopes, subjects, periods, caps = make([]string, len(p.all)), make([]string, len(p.all)), make([]string, len(p.all)), make([]int64, len(p.all))
	for i, c := range p.all {
		scopes[i], subjects[i], periods[i], caps[i] = c.scope, c.subject, c.period, c.limit
	}
	return scopes, subjects, periods, caps
}

// settle reads which counters moved (by key): when a main counter refused,
// the moved ones are given back and the outcome names the rule; when a T0
// counter refused, the moved T0 one is given back and the payment is T1.
func (s *Service) settle(ctx context.Context, p riskPlan, moved map[string]bool) riskOutcome {
	out := p.out
	var applied []counter
	for _, c := range p.all {
		if moved[c.key()] {
			applied = append(applied, c)
		}
	}
	for _, c := range p.main {
		if !moved[c.key()] {
			s.release(ctx, riskOutcome{applied: applied, amount: out.amount})
			out.rule = c.rule
			return out
		}
	}
	if !moved[p.t0[0].key()] || !moved[p.t0[1].key()] {
		var back []counter
		for _, c := range p.t0 {
			if moved[c.key()] {
				back = append(back, c)
			}
		}
		s.release(ctx, riskOutcome{applied: back, amount: out.amount})
		out.applied = p.main
		return out
	}
	out.t0 = true
	out.applied = applied
	return out
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
