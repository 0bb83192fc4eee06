package cardpay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu"
)

// RiskDesk lists and edits the risk rule tables (card_risk_classes,
// card_risk_terminal_types, card_risk_user_levels) for risk staff. Who may
// edit is the caller's decision (the portal lets risk staff and admins);
// the desk validates every edit, refuses a stale one, and records each
// accepted change with who, when, why and the fields before and after, in
// the transaction that makes it.
//
// Rule classes, terminal types and user levels are fixed sets (the seed's,
// which the rest of the core names): the desk edits their values, it does
// not add or remove rows.
//
// A Service reads the rules at most every 5 s (rulesTTL). The desk from
// Service.RiskDesk drops that service's cached rules when a change commits,
// so the next payment in this process is judged by the new values; other
// processes (other instances of the card core) pick the change up within
// 5 s.
//
//	desk := svc.RiskDesk()
//	rs, err := desk.Rules(ctx)
//	c := rs.Classes[0]          // c.Version is the version read
//	c.PerTx = 4_000_000         // 4 万元, in fen
//	c, err = desk.UpdateClass(ctx, c, cardpay.RiskEdit{Actor: "risk#3 Li", Reason: "工单 #12"})
//	// jifu.CodeConflict: someone else changed the row since it was read
//	// jifu.CodeInvalid: cardpay.RiskProblems(err) names the fields
type RiskDesk struct {
	pool    *pgxpool.Pool
	changed func() // drops a service's cached rules; nil for none
}

// NewRiskDesk returns a desk over pool (migrated with Migrations) that
// drops no cache: services in this process see its changes within 5 s.
func NewRiskDesk(pool *pgxpool.Pool) *RiskDesk { return &RiskDesk{pool: pool} }

// RiskDesk returns a desk over the service's database that drops the
// service's cached rules as soon as a change commits.
func (s *Service) RiskDesk() *RiskDesk { return &RiskDesk{pool: s.pool, changed: s.dropRules} }

func (s *Service) dropRules() {
	s.mu.Lock()
	s.cachedRules = nil
	s.mu.Unlock()
}

// Limits on edited values.
const (
	// MaxRiskAmount bounds every amount of a rule: 10^12 fen (100 亿元).
	MaxRiskAmount = 1_000_000_000_000
	// MaxCleanDays bounds a class's days without an erroneous transaction.
	MaxCleanDays = 3650
	// MaxRiskPriority bounds a class's priority (1 is checked first).
	MaxRiskPriority = 1_000_000
	maxRiskText     = 200 // characters of how, actor
	maxRiskReason   = 500 // characters of a change's reason
)

// The rule tables, as named in RiskChange.Table.
const (
	RiskTableClass        = "class"
	RiskTableTerminalType = "terminal_type"
	RiskTableUserLevel    = "user_level"
)

// RiskStamp is a row's version and last change.
type RiskStamp struct {
	// Version is the row's version: an edit passes back the version it
	// read and is refused (CodeConflict) when the row has moved on.
	Version   int64
	UpdatedAt time.Time
	UpdatedBy string // "seed" until the first edit
}

// RiskClass is one card class: its limits and how a card gets it. A card
// gets the class with the lowest Priority whose conditions all hold.
type RiskClass struct {
	Class                             string
	Priority                          int   // 1..MaxRiskPriority, unique
	PerTx, PerDay, PerMonth           int64 // fen; PerTx ≤ PerDay ≤ PerMonth
	T0PerDay                          int64 // fen; ≤ PerDay
	NeedCreditOK, NeedBound, NeedChip bool
	NeedKind                          string // "", "credit" or "debit"
	MinCumulative                     int64  // fen of approved volume
	MinCleanDays                      int    // days without an erroneous transaction
	How                               string // the condition in words, for staff
	RiskStamp
}

// RiskTerminalType is the user dimension's limits for one terminal type
// (shared by all the user's cards on readers of that type).
type RiskTerminalType struct {
	TerminalType            string
	PerTx, PerDay, PerMonth int64 // fen; PerTx ≤ PerDay ≤ PerMonth
	RiskStamp
}

// RiskUserLevel is one user level's T0 limit per day and, for a level
// reached automatically, its upgrade conditions (UserLevelRule is the same
// row as the upgrade job reads it).
type RiskUserLevel struct {
	Level    string
	T0PerDay int64  // fen
	How      string // how a user gets the level, in words
	// UpgradeFrom is the level a user is raised from automatically once it
	// has MinT0Cumulative fen of T0 volume and MinCleanDays days without an
	// erroneous transaction; "" for a level set by staff or verification.
	UpgradeFrom     string
	MinT0Cumulative int64 // fen
	MinCleanDays    int
	RiskStamp
}

// RiskRuleSet is every rule, classes by priority, the others by name.
type RiskRuleSet struct {
	Classes       []RiskClass
	TerminalTypes []RiskTerminalType
	UserLevels    []RiskUserLevel
}

// RiskEdit says who makes a change and why; both are required.
type RiskEdit struct {
	Actor  string // who, as the caller names staff (for example "risk#3 Li Wei")
	Reason string // why, kept in the history (1..500 characters)
}

// RiskProblem is one reason an edit was refused, naming its field (the
// column name, such as "per_day", or "reason").
type RiskProblem struct {
	Field, Message string
}

type riskProblems []RiskProblem

func (p riskProblems) Error() string {
	s := make([]string, len(p))
	for i, x := range p {
		s[i] = x.Field + ": " + x.Message
	}
	return strings.Join(s, "; ")
}

// RiskProblems returns the field problems of an edit refused with
// CodeInvalid (nil for any other error).
func RiskProblems(err error) []RiskProblem {
	var p riskProblems
	if errors.As(err, &p) {
		return p
	}
	return nil
}

func invalidEdit(ps riskProblems) error {
	return jifu.Errorf(jifu.CodeInvalid, "cardpay: the rule was not changed: %w", ps)
}

// RiskFieldChange is one field of a change; amounts (Fen) are in fen.
type RiskFieldChange struct {
	Field         string
	Before, After string // the values as text: digits, true/false, or the text itself
	Fen           bool   // the value is an amount in fen
}

// RiskChange is one accepted edit of a rule.
type RiskChange struct {
	ID      int64
	Table   string // RiskTableClass, RiskTableTerminalType or RiskTableUserLevel
	Key     string // the class, terminal type or level
	Version int64  // the row's version after the change
	Actor   string
	Reason  string
	At      time.Time
	Fields  []RiskFieldChange // the fields that changed, in column order
}

// RiskChangeFilter selects changes, newest first.
type RiskChangeFilter struct {
	Table, Key string // "" for any
	BeforeID   int64  // only changes older than this id (paging); 0 for the newest
	Limit      int    // default 50, at most 500
}

// riskField is one editable column of a rule row.
type riskField struct {
	name  string
	value string
	fen   bool
}

func fenField(name string, v int64) riskField { return riskField{name, strconv.FormatInt(v, 10), true} }
func intField(name string, v int64) riskField {
	return riskField{name, strconv.FormatInt(v, 10), false}
}
func boolField(name string, v bool) riskField { return riskField{name, strconv.FormatBool(v), false} }
func textField(name, v string) riskField      { return riskField{name, v, false} }

func (c *RiskClass) fields() []riskField {
	return []riskField{intField("priority", int64(c.Priority)), fenField("per_tx", c.PerTx), fenField("per_day", c.PerDay),
		fenField("per_month", c.PerMonth), fenField("t0_per_day", c.T0PerDay), boolField("need_credit_ok", c.NeedCreditOK),
		boolField("need_bound", c.NeedBound), textField("need_kind", c.NeedKind), boolField("need_chip", c.NeedChip),
		fenField("min_cumulative", c.MinCumulative), intField("min_clean_days", int64(c.MinCleanDays)), textField("how", c.How)}
}

func (t *RiskTerminalType) fields() []riskField {
	return []riskField{fenField("per_tx", t.PerTx), fenField("per_day", t.PerDay), fenField("per_month", t.PerMonth)}
}

func (l *RiskUserLevel) fields() []riskField {
	return []riskField{fenField("t0_per_day", l.T0PerDay), textField("how", l.How), textField("upgrade_from", l.UpgradeFrom),
		fenField("min_t0_cumulative", l.MinT0Cumulative), intField("min_clean_days", int64(l.MinCleanDays))}
}

// fenFields are the amount columns of every table (for reading history).
var fenFields = map[string]bool{"per_tx": true, "per_day": true, "per_month": true, "t0_per_day": true, "min_cumulative": true,
	"min_t0_cumulative": true}

func checkAmount(ps *riskProblems, field string, v int64) {
	if v < 0 {
		*ps = append(*ps, RiskProblem{field, "must not be negative"})
	} else if v > MaxRiskAmount {
		*ps = append(*ps, RiskProblem{field, fmt.Sprintf("must be at most %d fen", int64(MaxRiskAmount))})
	}
}

// checkLadder checks per_tx ≤ per_day ≤ per_month once each is in range
// (checkAmount reports the others).
func checkLadder(ps *riskProblems, perTx, perDay, perMonth int64) {
	for _, v := range []int64{perTx, perDay, perMonth} {
		if v < 0 || v > MaxRiskAmount {
			return
		}
	}
	if perTx > perDay {
		*ps = append(*ps, RiskProblem{"per_day", "must be at least the per-transaction limit"})
	}
	if perDay > perMonth {
		*ps = append(*ps, RiskProblem{"per_month", "must be at least the daily limit"})
	}
}

func checkRiskText(ps *riskProblems, field, v string, max int, required bool) {
	switch {
	case !utf8.ValidString(v):
		*ps = append(*ps, RiskProblem{field, "is not valid UTF-8"})
	case required && strings.TrimSpace(v) == "":
		*ps = append(*ps, RiskProblem{field, "is required"})
	case utf8.RuneCountInString(v) > max:
		*ps = append(*ps, RiskProblem{field, fmt.Sprintf("must be at most %d characters", max)})
	case strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' || r == 0x7f }):
		*ps = append(*ps, RiskProblem{field, "must not hold control characters"})
	}
}

func (e RiskEdit) check(ps *riskProblems) {
	checkRiskText(ps, "actor", e.Actor, maxRiskText, true)
	checkRiskText(ps, "reason", e.Reason, maxRiskReason, true)
}

// Validate checks the class's values (not that its priority is free: the
// desk checks that against the table).
func (c *RiskClass) Validate() error {
	var ps riskProblems
	if c.Priority < 1 || c.Priority > MaxRiskPriority {
		ps = append(ps, RiskProblem{"priority", fmt.Sprintf("must be 1..%d", MaxRiskPriority)})
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"per_tx", c.PerTx}, {"per_day", c.PerDay}, {"per_month", c.PerMonth}, {"t0_per_day", c.T0PerDay}, {"min_cumulative", c.MinCumulative}} {
		checkAmount(&ps, f.name, f.v)
	}
	checkLadder(&ps, c.PerTx, c.PerDay, c.PerMonth)
	if c.T0PerDay > c.PerDay {
		ps = append(ps, RiskProblem{"t0_per_day", "must be at most the daily limit (T0 is part of the day's intake)"})
	}
	if c.NeedKind != "" && c.NeedKind != "credit" && c.NeedKind != "debit" {
		ps = append(ps, RiskProblem{"need_kind", `must be empty, "credit" or "debit"`})
	}
	if c.MinCleanDays < 0 || c.MinCleanDays > MaxCleanDays {
		ps = append(ps, RiskProblem{"min_clean_days", fmt.Sprintf("must be 0..%d", MaxCleanDays)})
	}
	checkRiskText(&ps, "how", c.How, maxRiskText, false)
	if len(ps) > 0 {
		return invalidEdit(ps)
	}
	return nil
}

// Validate checks the terminal type's limits.
func (t *RiskTerminalType) Validate() error {
	var ps riskProblems
	checkAmount(&ps, "per_tx", t.PerTx)
	checkAmount(&ps, "per_day", t.PerDay)
	checkAmount(&ps, "per_month", t.PerMonth)
	checkLadder(&ps, t.PerTx, t.PerDay, t.PerMonth)
	if len(ps) > 0 {
		return invalidEdit(ps)
	}
	return nil
}

// Validate checks the level's limit and upgrade conditions (not that
// UpgradeFrom names a level, nor that upgrades form no cycle: the desk
// checks those against the table).
func (l *RiskUserLevel) Validate() error {
	var ps riskProblems
	checkAmount(&ps, "t0_per_day", l.T0PerDay)
	checkRiskText(&ps, "how", l.How, maxRiskText, false)
	checkAmount(&ps, "min_t0_cumulative", l.MinT0Cumulative)
	if l.MinCleanDays < 0 || l.MinCleanDays > MaxCleanDays {
		ps = append(ps, RiskProblem{"min_clean_days", fmt.Sprintf("must be 0..%d", MaxCleanDays)})
	}
	if l.UpgradeFrom != "" && l.UpgradeFrom == l.Level {
		ps = append(ps, RiskProblem{"upgrade_from", "a level cannot be reached from itself"})
	}
	if len(ps) > 0 {
		return invalidEdit(ps)
	}
	return nil
}

const (
	classCols = `class, priority, per_tx, per_day, per_month, t0_per_day, need_credit_ok, need_bound, need_chip, need_kind,
		min_cumulative, min_clean_days, how, version, updated_at, updated_by`
	typeCols  = `terminal_type, per_tx, per_day, per_month, version, updated_at, updated_by`
	levelCols = `level, t0_per_day, how, upgrade_from, min_t0_cumulative, min_clean_days, version, updated_at, updated_by`
)

func scanClass(row pgx.CollectableRow) (RiskClass, error) {
	var c RiskClass
	err := row.Scan(&c.Class, &c.Priority, &c.PerTx, &c.PerDay, &c.PerMonth, &c.T0PerDay, &c.NeedCreditOK, &c.NeedBound, &c.NeedChip,
		&c.NeedKind, &c.MinCumulative, &c.MinCleanDays, &c.How, &c.Version, &c.UpdatedAt, &c.UpdatedBy)
	return c, err
}

func scanType(row pgx.CollectableRow) (RiskTerminalType, error) {
	var t RiskTerminalType
	err := row.Scan(&t.TerminalType, &t.PerTx, &t.PerDay, &t.PerMonth, &t.Version, &t.UpdatedAt, &t.UpdatedBy)
	return t, err
}

func scanLevel(row pgx.CollectableRow) (RiskUserLevel, error) {
	var l RiskUserLevel
	err := row.Scan(&l.Level, &l.T0PerDay, &l.How, &l.UpgradeFrom, &l.MinT0Cumulative, &l.MinCleanDays, &l.Version, &l.UpdatedAt, &l.UpdatedBy)
	return l, err
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func collect[T any](ctx context.Context, q querier, what, sql string, scan pgx.RowToFunc[T], args ...any) ([]T, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, dbErr(ctx, what, err)
	}
	out, err := pgx.CollectRows(rows, scan)
	if err != nil {
		return nil, dbErr(ctx, what, err)
	}
	return out, nil
}

// Rules returns every rule as stored now.
func (d *RiskDesk) Rules(ctx context.Context) (RiskRuleSet, error) {
	var rs RiskRuleSet
	var err error
	if rs.Classes, err = collect(ctx, d.pool, "list risk classes", `SELECT `+classCols+` FROM card_risk_classes ORDER BY priority`, scanClass); err != nil {
		return rs, err
	}
	if rs.TerminalTypes, err = collect(ctx, d.pool, "list terminal limits", `SELECT `+typeCols+` FROM card_risk_terminal_types ORDER BY terminal_type`, scanType); err != nil {
		return rs, err
	}
	rs.UserLevels, err = collect(ctx, d.pool, "list user levels", `SELECT `+levelCols+` FROM card_risk_user_levels ORDER BY level`, scanLevel)
	return rs, err
}

func one[T any](ctx context.Context, q querier, what, sql string, scan pgx.RowToFunc[T], key string) (T, error) {
	out, err := collect(ctx, q, what, sql, scan, key)
	if err != nil {
		var zero T
		return zero, err
	}
	if len(out) == 0 {
		var zero T
		return zero, jifu.Errorf(jifu.CodeNotFound, "cardpay: no %s %q", what, key)
	}
	return out[0], nil
}

// Class returns one card class (CodeNotFound for a name that is not one).
func (d *RiskDesk) Class(ctx context.Context, class string) (RiskClass, error) {
	return one(ctx, d.pool, "card class", `SELECT `+classCols+` FROM card_risk_classes WHERE class = $1`, scanClass, class)
}

// TerminalType returns one terminal type's limits.
func (d *RiskDesk) TerminalType(ctx context.Context, typ string) (RiskTerminalType, error) {
	return one(ctx, d.pool, "terminal type", `SELECT `+typeCols+` FROM card_risk_terminal_types WHERE terminal_type = $1`, scanType, typ)
}

// UserLevel returns one user level's limit.
func (d *RiskDesk) UserLevel(ctx context.Context, level string) (RiskUserLevel, error) {
	return one(ctx, d.pool, "user level", `SELECT `+levelCols+` FROM card_risk_user_levels WHERE level = $1`, scanLevel, level)
}

// UpdateClass stores c's values for the class c.Class, provided the row is
// still at c.Version, and returns the stored row. Errors: CodeInvalid
// (RiskProblems names the fields: amounts negative or over MaxRiskAmount,
// per_tx > per_day > per_month out of order, T0 over the day, an unknown
// need_kind, a priority taken by another class, no reason), CodeNotFound
// (no such class), CodeConflict (the row changed since c.Version was read).
// A refused edit changes nothing; on CodeConflict the returned row is the
// current one (to show beside the edit). An edit that changes no value
// stores nothing and returns the row as it is.
func (d *RiskDesk) UpdateClass(ctx context.Context, c RiskClass, e RiskEdit) (RiskClass, error) {
	if err := validateEdit(c.Validate(), e); err != nil {
		return RiskClass{}, err
	}
	var out RiskClass
	err := d.update(ctx, e, RiskTableClass, c.Class, c.Version, c.fields(), func(tx pgx.Tx) ([]riskField, RiskStamp, error) {
		cur, err := one(ctx, tx, "card class", `SELECT `+classCols+` FROM card_risk_classes WHERE class = $1 FOR UPDATE`, scanClass, c.Class)
		out = cur
		return cur.fields(), cur.RiskStamp, err
	}, func(tx pgx.Tx) error {
		var other string
		err := tx.QueryRow(ctx, `SELECT class FROM card_risk_classes WHERE priority = $1 AND class <> $2`, c.Priority, c.Class).Scan(&other)
		if err == nil {
			return invalidEdit(riskProblems{{"priority", fmt.Sprintf("%d is %s's priority already", c.Priority, other)}})
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return dbErr(ctx, "check class priority", err)
		}
		rows, err := tx.Query(ctx, `UPDATE card_risk_classes SET priority = $2, per_tx = $3, per_day = $4, per_month = $5, t0_per_day = $6,
			need_credit_ok = $7, need_bound = $8, need_chip = $9, need_kind = $10, min_cumulative = $11, min_clean_days = $12, how = $13,
			version = version + 1, updated_at = now(), updated_by = $14 WHERE class = $1 RETURNING `+classCols,
			c.Class, c.Priority, c.PerTx, c.PerDay, c.PerMonth, c.T0PerDay, c.NeedCreditOK, c.NeedBound, c.NeedChip, c.NeedKind,
			c.MinCumulative, c.MinCleanDays, c.How, e.Actor)
		if err != nil {
			return err
		}
		out, err = pgx.CollectExactlyOneRow(rows, scanClass)
		return err
	}, func() RiskStamp { return out.RiskStamp })
	return out, err
}

// UpdateTerminalType stores t's limits for t.TerminalType, provided the
// row is still at t.Version (errors as for UpdateClass).
func (d *RiskDesk) UpdateTerminalType(ctx context.Context, t RiskTerminalType, e RiskEdit) (RiskTerminalType, error) {
	if err := validateEdit(t.Validate(), e); err != nil {
		return RiskTerminalType{}, err
	}
	var out RiskTerminalType
	err := d.update(ctx, e, RiskTableTerminalType, t.TerminalType, t.Version, t.fields(), func(tx pgx.Tx) ([]riskField, RiskStamp, error) {
		cur, err := one(ctx, tx, "terminal type", `SELECT `+typeCols+` FROM card_risk_terminal_types WHERE terminal_type = $1 FOR UPDATE`, scanType, t.TerminalType)
		out = cur
		return cur.fields(), cur.RiskStamp, err
	}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE card_risk_terminal_types SET per_tx = $2, per_day = $3, per_month = $4,
			version = version + 1, updated_at = now(), updated_by = $5 WHERE terminal_type = $1 RETURNING `+typeCols,
			t.TerminalType, t.PerTx, t.PerDay, t.PerMonth, e.Actor)
		if err != nil {
			return err
		}
		out, err = pgx.CollectExactlyOneRow(rows, scanType)
		return err
	}, func() RiskStamp { return out.RiskStamp })
	return out, err
}

// UpdateUserLevel stores l's T0 limit, text and upgrade conditions for
// l.Level, provided the row is still at l.Version (errors as for
// UpdateClass; also CodeInvalid for an UpgradeFrom that is no level or
// that would make upgrades go round in a cycle). Which level a merchant
// holds is not changed here (Desk.SetUserLevel does that).
func (d *RiskDesk) UpdateUserLevel(ctx context.Context, l RiskUserLevel, e RiskEdit) (RiskUserLevel, error) {
	if err := validateEdit(l.Validate(), e); err != nil {
		return RiskUserLevel{}, err
	}
	var out RiskUserLevel
	err := d.update(ctx, e, RiskTableUserLevel, l.Level, l.Version, l.fields(), func(tx pgx.Tx) ([]riskField, RiskStamp, error) {
		cur, err := one(ctx, tx, "user level", `SELECT `+levelCols+` FROM card_risk_user_levels WHERE level = $1 FOR UPDATE`, scanLevel, l.Level)
		out = cur
		return cur.fields(), cur.RiskStamp, err
	}, func(tx pgx.Tx) error {
		if err := checkUpgradeChain(ctx, tx, l.Level, l.UpgradeFrom); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `UPDATE card_risk_user_levels SET t0_per_day = $2, how = $3, upgrade_from = $4, min_t0_cumulative = $5,
			min_clean_days = $6, version = version + 1, updated_at = now(), updated_by = $7 WHERE level = $1 RETURNING `+levelCols,
			l.Level, l.T0PerDay, l.How, l.UpgradeFrom, l.MinT0Cumulative, l.MinCleanDays, e.Actor)
		if err != nil {
			return err
		}
		out, err = pgx.CollectExactlyOneRow(rows, scanLevel)
		return err
	}, func() RiskStamp { return out.RiskStamp })
	return out, err
}

// checkUpgradeChain refuses an upgrade_from that is not a level or that
// leads back to level (the upgrade job would move users round a cycle).
// The rows are locked (FOR SHARE) so a concurrent edit cannot close a
// cycle between the check and the commit.
func checkUpgradeChain(ctx context.Context, tx pgx.Tx, level, from string) error {
	if from == "" {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT level, upgrade_from FROM card_risk_user_levels ORDER BY level FOR SHARE`)
	if err != nil {
		return dbErr(ctx, "check upgrades", err)
	}
	prev := map[string]string{}
	var l, f string
	if _, err := pgx.ForEachRow(rows, []any{&l, &f}, func() error { prev[l] = f; return nil }); err != nil {
		return dbErr(ctx, "check upgrades", err)
	}
	if _, ok := prev[from]; !ok {
		return invalidEdit(riskProblems{{"upgrade_from", fmt.Sprintf("%q is not a user level", from)}})
	}
	prev[level] = from
	for x, n := from, 0; x != "" && n <= len(prev); x, n = prev[x], n+1 {
		if x == level {
			return invalidEdit(riskProblems{{"upgrade_from", "upgrades would go round in a cycle back to " + level}})
		}
	}
	return nil
}

// validateEdit merges the row's problems with the edit's own.
func validateEdit(rowErr error, e RiskEdit) error {
	ps := riskProblems(RiskProblems(rowErr))
	if rowErr != nil && ps == nil {
		return rowErr
	}
	e.check(&ps)
	if len(ps) > 0 {
		return invalidEdit(ps)
	}
	return nil
}

// update is the one transaction of every edit: lock the row (load), check
// its version, store it (store), record the change, commit, then drop the
// service's cached rules. stamp reads the stored row's stamp after store.
func (d *RiskDesk) update(ctx context.Context, e RiskEdit, table, key string, version int64, after []riskField,
	load func(pgx.Tx) ([]riskField, RiskStamp, error), store func(pgx.Tx) error, stamp func() RiskStamp) error {
	changed := false
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		before, cur, err := load(tx)
		if err != nil {
			return err
		}
		if cur.Version != version {
			return jifu.Errorf(jifu.CodeConflict, "cardpay: %s was changed by %s at %s (now version %d, you edited version %d): reload it and apply your change again",
				key, cur.UpdatedBy, cur.UpdatedAt.In(beijing).Format("2006-01-02 15:04:05"), cur.Version, version)
		}
		bj, aj := fieldsJSON(before), fieldsJSON(after)
		if string(bj) == string(aj) {
			return nil
		}
		if err := store(tx); err != nil {
			if isUnique(err) {
				return jifu.Errorf(jifu.CodeConflict, "cardpay: another change to the %s rules took that value at the same time: reload and try again", table)
			}
			return dbErr(ctx, "store the rule", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO card_risk_changes (rule_table, rule_key, version, actor, reason, before, after)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, table, key, stamp().Version, e.Actor, strings.TrimSpace(e.Reason), bj, aj); err != nil {
			return dbErr(ctx, "record the rule change", err)
		}
		changed = true
		return nil
	})
	if err != nil {
		return dbErr(ctx, "change a rule", err)
	}
	if changed && d.changed != nil {
		d.changed()
	}
	return nil
}

// fieldsJSON is the fields as one JSON object of strings, in column order
// (keys sorted by encoding/json, which is what the history reads back).
func fieldsJSON(fs []riskField) []byte {
	m := make(map[string]string, len(fs))
	for _, f := range fs {
		m[f.name] = f.value
	}
	b, _ := json.Marshal(m)
	return b
}

// columnOrder lists each table's editable columns in the order the
// history shows them.
var columnOrder = map[string][]string{
	RiskTableClass: {"priority", "per_tx", "per_day", "per_month", "t0_per_day", "need_credit_ok", "need_bound", "need_kind",
		"need_chip", "min_cumulative", "min_clean_days", "how"},
	RiskTableTerminalType: {"per_tx", "per_day", "per_month"},
	RiskTableUserLevel:    {"t0_per_day", "how", "upgrade_from", "min_t0_cumulative", "min_clean_days"},
}

// Changes lists accepted edits, newest first.
func (d *RiskDesk) Changes(ctx context.Context, f RiskChangeFilter) ([]RiskChange, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	f.Limit = min(f.Limit, 500)
	rows, err := d.pool.Query(ctx, `SELECT id, rule_table, rule_key, version, actor, reason, at, before, after FROM card_risk_changes
		WHERE ($1 = '' OR rule_table = $1) AND ($2 = '' OR rule_key = $2) AND ($3 = 0 OR id < $3)
		ORDER BY id DESC LIMIT $4`, f.Table, f.Key, f.BeforeID, f.Limit)
	if err != nil {
		return nil, dbErr(ctx, "list rule changes", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (RiskChange, error) {
		var c RiskChange
		var before, after map[string]string
		if err := row.Scan(&c.ID, &c.Table, &c.Key, &c.Version, &c.Actor, &c.Reason, &c.At, &before, &after); err != nil {
			return c, err
		}
		for _, name := range columnOrder[c.Table] {
			if b, a := before[name], after[name]; b != a {
				c.Fields = append(c.Fields, RiskFieldChange{Field: name, Before: b, After: a, Fen: fenFields[name]})
			}
		}
		return c, nil
	})
	if err != nil {
		return nil, dbErr(ctx, "list rule changes", err)
	}
	return out, nil
}
