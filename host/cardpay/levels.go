package cardpay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu"
)

// User levels (用户等级, the user dimension of 风控规则) set each user's T0
// limit per day. 101 is the start (real-name verified); 102 and 103 are
// reached automatically when their upgrade conditions hold (data in
// card_risk_user_levels: upgrade_from, min_t0_cumulative, min_clean_days;
// seeded 101→102 at 0.9 万 T0 and 15 clean days, 102→103 at 3 万 and 15);
// 201–203 are set by risk staff on the customer's request (SetUserLevel),
// 301/302 by credit-card verification (also SetUserLevel).
//
// A user's T0 cumulative is the gross of its T0 settlement batches (the
// payments it was paid the same day). Its clean days are the whole days
// (24 h) since the later of its registration and its last erroneous
// transaction that counts (see ErrorCase.Counts), as for cards.

// UserLevelRule is one user level and, when it is reached automatically,
// its conditions.
type UserLevelRule struct {
	Level           string
	T0PerDay        int64  // fen
	How             string // the seed's words, for risk staff
	UpgradeFrom     string // "": not automatic
	MinT0Cumulative int64  // fen
	MinCleanDays    int
}

// LevelChange is one change of a user's level (card_user_level_changes).
type LevelChange struct {
	ID                int64 // 0: nothing changed
	OrgID, MerchantID string
	From, To          string
	Reason, Actor     string
	At                time.Time
}

// cleanDays is the number of whole 24-hour days from since to now, 0 when
// since is later (clocks of the host and the database differ): a card or
// user with no erroneous transaction since its first sighting or
// registration counts from then.
func cleanDays(since, now time.Time) int {
	return max(0, int(now.Sub(since)/(24*time.Hour)))
}

// UserLevels returns the level table, by level.
func (d *Desk) UserLevels(ctx context.Context) ([]UserLevelRule, error) {
	rows, err := d.pool.Query(ctx, `SELECT level, t0_per_day, how, upgrade_from, min_t0_cumulative, min_clean_days
		FROM card_risk_user_levels ORDER BY level`)
	if err != nil {
		return nil, dbErr(ctx, "user levels", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (UserLevelRule, error) {
		var u UserLevelRule
		err := r.Scan(&u.Level, &u.T0PerDay, &u.How, &u.UpgradeFrom, &u.MinT0Cumulative, &u.MinCleanDays)
		return u, err
	})
	if err != nil {
		return nil, dbErr(ctx, "user levels", err)
	}
	return out, nil
}

// UserLevel returns the user's (merchant's) current level.
func (d *Desk) UserLevel(ctx context.Context, org, merchant string) (string, error) {
	var l string
	err := d.pool.QueryRow(ctx, `SELECT user_level FROM card_merchants WHERE org_id = $1 AND merchant_id = $2`, org, merchant).Scan(&l)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", jifu.Errorf(jifu.CodeNotFound, "cardpay: no merchant %s/%s", org, merchant)
	}
	if err != nil {
		return "", dbErr(ctx, "user level", err)
	}
	return l, nil
}

// SetUserLevel sets the user's level by hand: risk staff raising a user to
// 201–203 on the customer's request, verification setting 301/302, or a
// downgrade. The level must be in card_risk_user_levels; reason and actor
// are required and recorded with the change (card_user_level_changes).
// Setting the level the user already has changes nothing and returns a
// LevelChange with ID 0. The card core uses the new level's T0 limit within
// its rules cache (5 s).
func (d *Desk) SetUserLevel(ctx context.Context, org, merchant, level, reason, actor string) (LevelChange, error) {
	if err := errors.Join(checkText("reason", reason, true, 500), checkText("actor", actor, true, 128)); err != nil {
		return LevelChange{}, jifu.Errorf(jifu.CodeInvalid, "%s", err.Error())
	}
	ch := LevelChange{OrgID: org, MerchantID: merchant, To: level, Reason: reason, Actor: actor}
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		var known bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM card_risk_user_levels WHERE level = $1)`, level).Scan(&known); err != nil {
			return err
		}
		if !known {
			return jifu.Errorf(jifu.CodeInvalid, "cardpay: unknown user level %q", level)
		}
		err := tx.QueryRow(ctx, `SELECT user_level FROM card_merchants WHERE org_id = $1 AND merchant_id = $2 FOR UPDATE`, org, merchant).Scan(&ch.From)
		if errors.Is(err, pgx.ErrNoRows) {
			return jifu.Errorf(jifu.CodeNotFound, "cardpay: no merchant %s/%s", org, merchant)
		}
		if err != nil || ch.From == level {
			return err
		}
		return changeLevel(ctx, tx, &ch)
	})
	if err != nil {
		return LevelChange{}, dbErr(ctx, "set user level", err)
	}
	if ch.ID != 0 {
		d.level(org, merchant)
		d.log.InfoContext(ctx, "cardpay: user level set", "org", org, "merchant", merchant, "from", ch.From, "to", ch.To, "actor", actor)
	}
	return ch, nil
}

// changeLevel moves the user from ch.From to ch.To (only if it is still at
// ch.From) and records the change; ch.ID stays 0 when it was not.
func changeLevel(ctx context.Context, tx pgx.Tx, ch *LevelChange) error {
	tag, err := tx.Exec(ctx, `UPDATE card_merchants SET user_level = $3 WHERE org_id = $1 AND merchant_id = $2 AND user_level = $4`,
		ch.OrgID, ch.MerchantID, ch.To, ch.From)
	if err != nil || tag.RowsAffected() == 0 {
		return err
	}
	return tx.QueryRow(ctx, `INSERT INTO card_user_level_changes (org_id, merchant_id, from_level, to_level, reason, actor)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, at`, ch.OrgID, ch.MerchantID, ch.From, ch.To, ch.Reason, ch.Actor).Scan(&ch.ID, &ch.At)
}

// UserLevelHistory returns the user's level changes, oldest first.
func (d *Desk) UserLevelHistory(ctx context.Context, org, merchant string) ([]LevelChange, error) {
	rows, err := d.pool.Query(ctx, `SELECT id, org_id, merchant_id, from_level, to_level, reason, actor, at FROM card_user_level_changes
		WHERE org_id = $1 AND merchant_id = $2 ORDER BY id`, org, merchant)
	if err != nil {
		return nil, dbErr(ctx, "user level history", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (LevelChange, error) {
		var c LevelChange
		err := r.Scan(&c.ID, &c.OrgID, &c.MerchantID, &c.From, &c.To, &c.Reason, &c.Actor, &c.At)
		return c, err
	})
	if err != nil {
		return nil, dbErr(ctx, "user level history", err)
	}
	return out, nil
}

// UpgradeUserLevels applies the automatic upgrade conditions to every user
// (a daily job; Settle applies them to the users of each new T0 batch):
// a user at a rule's upgrade_from level whose T0 cumulative reaches
// min_t0_cumulative and whose clean days reach min_clean_days is raised,
// by the system, with the figures as the reason. Rules chain (101→102→103
// in one run when both hold). Idempotent: a user is moved only from the
// level the rule names. It returns the changes made.
func (d *Desk) UpgradeUserLevels(ctx context.Context) ([]LevelChange, error) {
	return d.upgrade(ctx, nil, nil)
}

// upgrade applies the rules to every user, or to the users orgs[i]/ids[i].
func (d *Desk) upgrade(ctx context.Context, orgs, ids []string) ([]LevelChange, error) {
	levels, err := d.UserLevels(ctx)
	if err != nil {
		return nil, err
	}
	var rules []UserLevelRule
	for _, l := range levels {
		if l.UpgradeFrom != "" {
			rules = append(rules, l)
		}
	}
	now := d.now()
	var out []LevelChange
	for pass := 0; pass < len(rules); pass++ {
		moved := false
		for _, r := range rules {
			chs, err := d.upgradeBy(ctx, r, now, orgs, ids)
			out = append(out, chs...)
			if err != nil {
				return out, err
			}
			moved = moved || len(chs) > 0
		}
		if !moved {
			break
		}
	}
	return out, nil
}

func (d *Desk) upgradeBy(ctx context.Context, r UserLevelRule, now time.Time, orgs, ids []string) ([]LevelChange, error) {
	type cand struct {
		org, id  string
		since    time.Time
		last     *time.Time
		t0Volume int64
	}
	rows, err := d.pool.Query(ctx, `SELECT m.org_id, m.merchant_id, m.created_at, e.last, t.volume
		FROM card_merchants m
		CROSS JOIN LATERAL (SELECT coalesce(sum(s.gross), 0)::bigint AS volume FROM card_settlements s
			WHERE s.org_id = m.org_id AND s.merchant_id = m.merchant_id AND s.mode = 'T0') t
		CROSS JOIN LATERAL (SELECT max(occurred_at) AS last FROM card_errors e
			WHERE e.org_id = m.org_id AND e.merchant_id = m.merchant_id AND NOT e.not_at_fault) e
		WHERE m.user_level = $1 AND t.volume >= $2
		AND ($3::text[] IS NULL OR (m.org_id, m.merchant_id) IN (SELECT * FROM unnest($3::text[], $4::text[])))
		ORDER BY 1, 2`, r.UpgradeFrom, r.MinT0Cumulative, orgs, ids)
	if err != nil {
		return nil, dbErr(ctx, "user level upgrades", err)
	}
	cs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (cand, error) {
		var c cand
		err := row.Scan(&c.org, &c.id, &c.since, &c.last, &c.t0Volume)
		return c, err
	})
	if err != nil {
		return nil, dbErr(ctx, "user level upgrades", err)
	}
	var out []LevelChange
	for _, c := range cs {
		since := c.since
		if c.last != nil && c.last.After(since) {
			since = *c.last
		}
		days := cleanDays(since, now)
		if days < r.MinCleanDays {
			continue
		}
		ch := LevelChange{OrgID: c.org, MerchantID: c.id, From: r.UpgradeFrom, To: r.Level, Actor: ActorSystem,
			Reason: fmt.Sprintf("automatic: T0 cumulative %d fen >= %d, %d days without an erroneous transaction >= %d",
				c.t0Volume, r.MinT0Cumulative, days, r.MinCleanDays)}
		if err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error { return changeLevel(ctx, tx, &ch) }); err != nil {
			return out, dbErr(ctx, "upgrade user level", err)
		}
		if ch.ID != 0 {
			d.level(c.org, c.id)
			d.log.InfoContext(ctx, "cardpay: user level upgraded", "org", c.org, "merchant", c.id, "from", ch.From, "to", ch.To)
			out = append(out, ch)
		}
	}
	return out, nil
}

// upgradeAfterT0 applies the upgrade conditions to the users of new T0
// batches; a failure is logged (the daily UpgradeUserLevels catches up).
func (s *Service) upgradeAfterT0(ctx context.Context, bs []Batch) {
	orgs, ids := make([]string, 0, len(bs)), make([]string, 0, len(bs))
	for _, b := range bs {
		orgs, ids = append(orgs, b.OrgID), append(ids, b.MerchantID)
	}
	if _, err := s.Desk().upgrade(ctx, orgs, ids); err != nil {
		s.log.WarnContext(ctx, "cardpay: user level upgrades after T0 settlement", "err", jifu.ErrorMessage(err))
	}
}

// userLevel returns the merchant's current level, read at most once per
// rules generation (rulesTTL): a level changed by the upgrade job, by risk
// staff or in another process applies here within 5 s.
func (s *Service) userLevel(ctx context.Context, rs *rules, m *merchant) (string, error) {
	key := m.orgID + "\x00" + m.merchantID
	rs.userMu.RLock()
	l, ok := rs.users[key]
	rs.userMu.RUnlock()
	if ok {
		return l, nil
	}
	err := s.pool.QueryRow(ctx, `SELECT user_level FROM card_merchants WHERE org_id = $1 AND merchant_id = $2`, m.orgID, m.merchantID).Scan(&l)
	if err != nil {
		return "", dbErr(ctx, "load user level", err)
	}
	rs.userMu.Lock()
	if rs.users == nil || len(rs.users) >= maxCardCache {
		rs.users = map[string]string{}
	}
	rs.users[key] = l
	rs.userMu.Unlock()
	return l, nil
}

// forgetUserLevel drops the merchant's level from the current rules
// generation, so that this service reads it again at the next payment.
func (s *Service) forgetUserLevel(org, merchant string) {
	s.mu.RLock()
	rs := s.cachedRules
	s.mu.RUnlock()
	if rs == nil {
		return
	}
	rs.userMu.Lock()
	delete(rs.users, org+"\x00"+merchant)
	rs.userMu.Unlock()
}
