package cardpay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay/dukpt"
)

// Kinds of erroneous transaction (差错交易).
const (
	ErrorLong               = "long"                // 长款: in the acquirer's file, not in our records
	ErrorShort              = "short"               // 短款: in our records, not in the acquirer's file
	ErrorAmountMismatch     = "amount_mismatch"     // in both, with different amounts
	ErrorReversalUnanswered = "reversal_unanswered" // a reversal the acquirer still had not acknowledged on retry
	ErrorRetrievalRequest   = "retrieval_request"   // 调单: the acquirer asks for the sale slip
	ErrorChargeback         = "chargeback"          // 拒付: the issuer takes the money back
	ErrorDispute            = "dispute"             // the cardholder disputes the payment
	ErrorLedgerMismatch     = "ledger_mismatch"     // 账务不符: the ledger's posting is missing or moved another amount than the record (the platform's own books)
)

// ErrorKinds lists every kind, for pickers and validation.
var ErrorKinds = []string{ErrorLong, ErrorShort, ErrorAmountMismatch, ErrorReversalUnanswered,
	ErrorRetrievalRequest, ErrorChargeback, ErrorDispute, ErrorLedgerMismatch}

// Statuses of an erroneous transaction: open, then resolved or written off
// (final).
const (
	ErrorOpen       = "open"
	ErrorResolved   = "resolved"
	ErrorWrittenOff = "written_off"
)

// ActorSystem is the actor of what the card core records and resolves by
// itself (reconciliation, reversal retries, automatic level upgrades).
const ActorSystem = "system"

// ErrorCase is one erroneous transaction. The payment fields are empty (0)
// when the platform does not know the payment (长款 of an unknown RRN).
type ErrorCase struct {
	ID     int64
	Kind   string // one of ErrorKinds
	Ref    string // idempotency reference within the kind (reconciliation day:rrn, payment id, acquirer case number)
	Status string // open, resolved, written_off

	PaymentID         int64
	OrgID, MerchantID string
	CardToken         string // the card's token (an HMAC of the PAN, not the PAN)
	PANMasked         string // first 6, last 4
	TerminalKSN       string // the reader (card_terminals.ksn_prefix)
	AcquirerTID       string
	RRN               string
	OrderID           string

	Day            time.Time // the transaction's business day (Beijing date, at 00:00 CST)
	Amount         int64     // fen at issue
	PlatformAmount int64     // reconciliation: ours (0: none)
	AcquirerAmount int64     // reconciliation: the acquirer's (0: none)
	Note           string
	OpenedBy       string
	OccurredAt     time.Time // when it arose: clean days count from here
	CreatedAt      time.Time

	NotAtFault bool      // resolved as caused by neither the card nor its user: does not count against clean days
	ResolvedBy string    // "" while open
	ResolvedAt time.Time // zero while open
	Resolution string    // the resolver's note

	Replayed bool // set by OpenError when this kind and ref were recorded before
}

// Counts reports whether the case counts against the clean days of its card
// and its user: every case not closed as not at fault.
func (c ErrorCase) Counts() bool { return !c.NotAtFault }

// ErrorEvent is one line of a case's audit trail.
type ErrorEvent struct {
	ID     int64
	Action string // opened, resolved, written_off
	Actor  string
	Note   string
	At     time.Time
}

// NewError is what staff (or the card core) enter to open a case. The
// payment is found by PaymentID, else by OrgID+MerchantID+OrderID, else by
// RRN (a payment's, or a refund's: its payment); OrgID+MerchantID without
// an order tie the case to the merchant only. A reference that finds
// nothing is CodeNotFound. Retrieval requests, chargebacks and disputes
// need the payment; the other kinds may have none.
type NewError struct {
	Kind                       string
	Ref                        string // optional: the acquirer's case number; the same kind and ref again returns the first case
	PaymentID                  int64
	OrgID, MerchantID, OrderID string
	RRN                        string
	Amount                     int64     // fen at issue; 0: the payment's amount
	At                         time.Time // when it arose (the acquirer's date); zero: now; not in the future
	Note                       string
	Actor                      string // who enters it (required)
}

// Resolution closes an open case.
type Resolution struct {
	Status     string // resolved or written_off
	NotAtFault bool   // neither the card(holder) nor the merchant caused it: it stops counting against clean days
	Actor      string // required
	Note       string // required: what was found or done
}

// ErrorFilter selects cases for ListErrors. Empty fields do not filter.
type ErrorFilter struct {
	Status, Kind      string
	OrgID, MerchantID string // MerchantID needs OrgID
	PaymentID         int64
	CardToken         string
	From, To          time.Time // business days, inclusive (their Beijing dates); zero: open-ended
	Limit             int       // default 50, at most 500
	Offset            int
}

// ErrorPage is one page of cases, newest first, and how many match.
type ErrorPage struct {
	Cases []ErrorCase
	Total int
}

// Desk is the risk desk's side of the card core: erroneous transactions
// (差错交易) and user levels. It needs only the database: the portal and
// the CLI build their own with NewDesk; Service.Desk returns the one the
// service records through (it also drops the service's cached card facts
// at once; other instances see a change within their 5 s cache).
//
//	desk := cardpay.NewDesk(pool, cardpay.DeskOptions{})
//	c, err := desk.OpenError(ctx, cardpay.NewError{Kind: cardpay.ErrorChargeback, Ref: "CB-2026-0042",
//		RRN: "000000000007", Actor: "risk:li", Note: "issuer chargeback, reason 4837"})
//	page, err := desk.ListErrors(ctx, cardpay.ErrorFilter{Status: cardpay.ErrorOpen, Limit: 50})
//	c, err = desk.ResolveError(ctx, c.ID, cardpay.Resolution{Status: cardpay.ErrorResolved,
//		NotAtFault: true, Actor: "risk:li", Note: "slip provided, chargeback withdrawn"})
//	ch, err := desk.SetUserLevel(ctx, "ORG1", "M100", "202", "large orders, request #88", "risk:li")
//
// Every change leaves an audit row (card_error_events,
// card_user_level_changes) in the transaction that makes it.
type Desk struct {
	pool   *pgxpool.Pool
	log    *slog.Logger
	now    func() time.Time
	forget func(cardToken string)     // drops a Service's cached card facts
	level  func(org, merchant string) // drops a Service's cached user level
}

// DeskOptions tune a Desk.
type DeskOptions struct {
	Logger *slog.Logger
	Now    func() time.Time // default time.Now
}

// NewDesk returns a Desk over pool (migrated with Migrations).
func NewDesk(pool *pgxpool.Pool, opt DeskOptions) *Desk {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Desk{pool: pool, log: opt.Logger, now: opt.Now, forget: func(string) {}, level: func(string, string) {}}
}

// Desk returns a Desk sharing the service's pool, clock and logger; its
// changes to a card or a user's level take effect in this service at once.
func (s *Service) Desk() *Desk {
	return &Desk{pool: s.pool, log: s.log, now: s.opt.Now, forget: s.forgetCard, level: s.forgetUserLevel}
}

func validKind(k string) bool {
	for _, x := range ErrorKinds {
		if x == k {
			return true
		}
	}
	return false
}

// platformFault: kinds that are the platform's own error, never the card's
// or its user's: recorded not at fault from the start, and staying so when
// closed, so they never count against clean days.
func platformFault(k string) bool { return k == ErrorLedgerMismatch }

// needsPayment: kinds raised against one payment.
func needsPayment(k string) bool {
	return k == ErrorRetrievalRequest || k == ErrorChargeback || k == ErrorDispute
}

func checkText(name, v string, required bool, max int) error {
	switch {
	case required && strings.TrimSpace(v) == "":
		return jifu.Errorf(jifu.CodeInvalid, "cardpay: %s is required", name)
	case len(v) > max || !utf8.ValidString(v):
		return jifu.Errorf(jifu.CodeInvalid, "cardpay: %s must be valid UTF-8 of at most %d bytes", name, max)
	}
	return nil
}

const errorCols = `id, kind, ref, status, coalesce(payment_id, 0), org_id, merchant_id, card_token, pan_masked, terminal_ksn, acq_tid, rrn,
	order_id, day, amount, platform_amount, acquirer_amount, note, opened_by, occurred_at, created_at, not_at_fault, resolved_by,
	resolved_at, resolution`

func scanCase(row pgx.Row) (ErrorCase, error) {
	var c ErrorCase
	var resolvedAt *time.Time
	err := row.Scan(&c.ID, &c.Kind, &c.Ref, &c.Status, &c.PaymentID, &c.OrgID, &c.MerchantID, &c.CardToken, &c.PANMasked,
		&c.TerminalKSN, &c.AcquirerTID, &c.RRN, &c.OrderID, &c.Day, &c.Amount, &c.PlatformAmount, &c.AcquirerAmount, &c.Note,
		&c.OpenedBy, &c.OccurredAt, &c.CreatedAt, &c.NotAtFault, &c.ResolvedBy, &resolvedAt, &c.Resolution)
	if resolvedAt != nil {
		c.ResolvedAt = *resolvedAt
	}
	c.Day = time.Date(c.Day.Year(), c.Day.Month(), c.Day.Day(), 0, 0, 0, 0, beijing)
	return c, err
}

// OpenError records an erroneous transaction (open) and its "opened" audit
// event; the card's clean days restart at its time. Bad input is
// CodeInvalid, an unknown payment CodeNotFound; in both cases nothing is
// recorded. The same kind and Ref again returns the first case (Replayed).
func (d *Desk) OpenError(ctx context.Context, in NewError) (ErrorCase, error) {
	if !validKind(in.Kind) {
		return ErrorCase{}, jifu.Errorf(jifu.CodeInvalid, "cardpay: unknown kind %q of erroneous transaction (one of %s)", in.Kind, strings.Join(ErrorKinds, ", "))
	}
	if err := errors.Join(checkText("actor", in.Actor, true, 128), checkText("ref", in.Ref, false, 128),
		checkText("note", in.Note, false, 2000)); err != nil {
		return ErrorCase{}, jifu.Errorf(jifu.CodeInvalid, "%s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if in.Amount < 0 {
		return ErrorCase{}, jifu.Errorf(jifu.CodeInvalid, "cardpay: amount must not be negative")
	}
	row := ErrorCase{Kind: in.Kind, Ref: in.Ref, Amount: in.Amount, Note: in.Note, OpenedBy: in.Actor, OccurredAt: in.At,
		NotAtFault: platformFault(in.Kind)}
	if row.OccurredAt.IsZero() {
		row.OccurredAt = d.now()
	}
	if row.OccurredAt.After(d.now().Add(time.Hour)) {
		return ErrorCase{}, jifu.Errorf(jifu.CodeInvalid, "cardpay: an erroneous transaction cannot arise in the future")
	}
	found, err := d.findPayment(ctx, &row, in)
	if err != nil {
		return ErrorCase{}, err
	}
	if !found && needsPayment(in.Kind) {
		return ErrorCase{}, jifu.Errorf(jifu.CodeInvalid, "cardpay: a %s needs the payment (payment id, order, or RRN)", in.Kind)
	}
	if row.Day.IsZero() {
		row.Day = row.OccurredAt.In(beijing)
	}
	return d.open(ctx, row)
}

// findPayment fills the payment's fields when in names one; false when it
// names none.
func (d *Desk) findPayment(ctx context.Context, c *ErrorCase, in NewError) (bool, error) {
	var where string
	var args []any
	switch {
	case in.PaymentID != 0:
		where, args = `p.id = $1`, []any{in.PaymentID}
	case in.OrderID != "":
		if in.OrgID == "" || in.MerchantID == "" {
			return false, jifu.Errorf(jifu.CodeInvalid, "cardpay: an order_id needs its org_id and merchant_id")
		}
		where, args = `p.org_id = $1 AND p.merchant_id = $2 AND p.order_id = $3`, []any{in.OrgID, in.MerchantID, in.OrderID}
	case in.RRN != "":
		where, args = `p.id = coalesce((SELECT id FROM card_payments WHERE rrn = $1 ORDER BY id LIMIT 1),
			(SELECT payment_id FROM card_refunds WHERE rrn = $1 ORDER BY id LIMIT 1))`, []any{in.RRN}
	case in.OrgID != "" || in.MerchantID != "":
		// The merchant alone: a case of the user, no payment.
		var ok bool
		if err := d.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM card_merchants WHERE org_id = $1 AND merchant_id = $2)`,
			in.OrgID, in.MerchantID).Scan(&ok); err != nil {
			return false, dbErr(ctx, "find merchant", err)
		}
		if !ok {
			return false, jifu.Errorf(jifu.CodeNotFound, "cardpay: no merchant %s/%s", in.OrgID, in.MerchantID)
		}
		c.OrgID, c.MerchantID = in.OrgID, in.MerchantID
		return false, nil
	default:
		return false, nil
	}
	ok, err := d.loadPayment(ctx, c, where, args...)
	if err != nil {
		return false, err
	}
	if !ok {
		return false, jifu.Errorf(jifu.CodeNotFound, "cardpay: no such payment for the erroneous transaction")
	}
	if in.RRN != "" {
		c.RRN = in.RRN // a refund's RRN stays the reference
	}
	if c.Amount == 0 && in.Amount == 0 {
		c.Amount = c.PlatformAmount
	}
	c.PlatformAmount = 0
	return true, nil
}

// loadPayment copies the payment's identity into c (its amount into
// PlatformAmount, for the caller to use); false when there is none.
func (d *Desk) loadPayment(ctx context.Context, c *ErrorCase, where string, args ...any) (bool, error) {
	var ksn string
	var day time.Time
	err := d.pool.QueryRow(ctx, `SELECT p.id, p.org_id, p.merchant_id, p.card_token, p.pan_masked, p.ksn, p.acq_tid, p.rrn, p.order_id,
		coalesce(p.settle_date, (p.created_at AT TIME ZONE 'Asia/Shanghai')::date), p.amount FROM card_payments p WHERE `+where, args...).
		Scan(&c.PaymentID, &c.OrgID, &c.MerchantID, &c.CardToken, &c.PANMasked, &ksn, &c.AcquirerTID, &c.RRN, &c.OrderID, &day, &c.PlatformAmount)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, dbErr(ctx, "find payment", err)
	}
	if k, err := dukpt.ParseKSN(ksn); err == nil {
		c.TerminalKSN = k.Initial().String()
	}
	c.Day = time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, beijing)
	return true, nil
}

// open inserts the case (or finds the one with its kind and ref), its
// audit event and the card's last error, in one transaction.
func (d *Desk) open(ctx context.Context, c ErrorCase) (ErrorCase, error) {
	var out ErrorCase
	var token string
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		var pid *int64
		if c.PaymentID != 0 {
			pid = &c.PaymentID
		}
		var err error
		out, err = scanCase(tx.QueryRow(ctx, `INSERT INTO card_errors (kind, ref, payment_id, org_id, merchant_id, card_token, pan_masked,
			terminal_ksn, acq_tid, rrn, order_id, day, amount, platform_amount, acquirer_amount, note, opened_by, occurred_at, not_at_fault)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
			ON CONFLICT (kind, ref) WHERE ref <> '' DO NOTHING RETURNING `+errorCols,
			c.Kind, c.Ref, pid, c.OrgID, c.MerchantID, c.CardToken, c.PANMasked, c.TerminalKSN, c.AcquirerTID, c.RRN, c.OrderID,
			c.Day.Format(time.DateOnly), c.Amount, c.PlatformAmount, c.AcquirerAmount, c.Note, c.OpenedBy, c.OccurredAt, c.NotAtFault))
		if errors.Is(err, pgx.ErrNoRows) {
			out, err = scanCase(tx.QueryRow(ctx, `SELECT `+errorCols+` FROM card_errors WHERE kind = $1 AND ref = $2`, c.Kind, c.Ref))
			out.Replayed = true
			return err
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO card_error_events (error_id, action, actor, note) VALUES ($1, 'opened', $2, $3)`,
			out.ID, c.OpenedBy, c.Note); err != nil {
			return err
		}
		token = out.CardToken
		return refreshCardError(ctx, tx, token)
	})
	if err != nil {
		return out, dbErr(ctx, "open erroneous transaction", err)
	}
	if token != "" {
		d.forget(token)
	}
	if !out.Replayed {
		d.log.InfoContext(ctx, "cardpay: erroneous transaction opened", "id", out.ID, "kind", out.Kind, "payment", out.PaymentID,
			"rrn", out.RRN, "pan", out.PANMasked, "actor", out.OpenedBy)
	}
	return out, nil
}

// refreshCardError sets card_cards.last_error_at from the record: the
// latest case of the card that counts. The card's row is locked first, so
// that the recomputation (a new statement, a new snapshot) sees every case
// committed by a transaction that held the lock before.
func refreshCardError(ctx context.Context, tx pgx.Tx, token string) error {
	if token == "" {
		return nil
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM card_cards WHERE card_token = $1 FOR UPDATE`, token); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `UPDATE card_cards SET last_error_at = (SELECT max(occurred_at) FROM card_errors
		WHERE card_token = $1 AND NOT not_at_fault) WHERE card_token = $1`, token)
	return err
}

// ResolveError closes an open case as resolved or written off, with who,
// when and a note, and its audit event; resolved as not at fault, it stops
// counting against the card's and the user's clean days. Closing a case
// that is not open is CodeConflict, an unknown id CodeNotFound; nothing
// changes then.
func (d *Desk) ResolveError(ctx context.Context, id int64, r Resolution) (ErrorCase, error) {
	if r.Status != ErrorResolved && r.Status != ErrorWrittenOff {
		return ErrorCase{}, jifu.Errorf(jifu.CodeInvalid, "cardpay: a case is closed as %s or %s", ErrorResolved, ErrorWrittenOff)
	}
	if err := errors.Join(checkText("actor", r.Actor, true, 128), checkText("note", r.Note, true, 2000)); err != nil {
		return ErrorCase{}, jifu.Errorf(jifu.CodeInvalid, "%s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	var out ErrorCase
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		var status, kind string
		err := tx.QueryRow(ctx, `SELECT status, kind FROM card_errors WHERE id = $1 FOR UPDATE`, id).Scan(&status, &kind)
		if errors.Is(err, pgx.ErrNoRows) {
			return jifu.Errorf(jifu.CodeNotFound, "cardpay: no erroneous transaction %d", id)
		}
		if err != nil {
			return err
		}
		if status != ErrorOpen {
			return jifu.Errorf(jifu.CodeConflict, "cardpay: erroneous transaction %d is already %s", id, status)
		}
		r.NotAtFault = r.NotAtFault || platformFault(kind)
		out, err = scanCase(tx.QueryRow(ctx, `UPDATE card_errors SET status = $2, not_at_fault = $3, resolved_by = $4, resolved_at = $5,
			resolution = $6 WHERE id = $1 RETURNING `+errorCols, id, r.Status, r.NotAtFault, r.Actor, d.now(), r.Note))
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO card_error_events (error_id, action, actor, note) VALUES ($1, $2, $3, $4)`,
			id, r.Status, r.Actor, notAtFaultNote(r)); err != nil {
			return err
		}
		return refreshCardError(ctx, tx, out.CardToken)
	})
	if err != nil {
		return ErrorCase{}, dbErr(ctx, "resolve erroneous transaction", err)
	}
	if out.CardToken != "" {
		d.forget(out.CardToken)
	}
	d.log.InfoContext(ctx, "cardpay: erroneous transaction closed", "id", id, "status", r.Status, "not_at_fault", r.NotAtFault, "actor", r.Actor)
	return out, nil
}

func notAtFaultNote(r Resolution) string {
	if r.NotAtFault {
		return "[not at fault] " + r.Note
	}
	return r.Note
}

// GetError returns one case and its audit trail (oldest first).
func (d *Desk) GetError(ctx context.Context, id int64) (ErrorCase, []ErrorEvent, error) {
	c, err := scanCase(d.pool.QueryRow(ctx, `SELECT `+errorCols+` FROM card_errors WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, nil, jifu.Errorf(jifu.CodeNotFound, "cardpay: no erroneous transaction %d", id)
	}
	if err != nil {
		return c, nil, dbErr(ctx, "get erroneous transaction", err)
	}
	rows, err := d.pool.Query(ctx, `SELECT id, action, actor, note, at FROM card_error_events WHERE error_id = $1 ORDER BY id`, id)
	if err != nil {
		return c, nil, dbErr(ctx, "erroneous transaction history", err)
	}
	evs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ErrorEvent, error) {
		var e ErrorEvent
		err := r.Scan(&e.ID, &e.Action, &e.Actor, &e.Note, &e.At)
		return e, err
	})
	if err != nil {
		return c, nil, dbErr(ctx, "erroneous transaction history", err)
	}
	return c, evs, nil
}

// ListErrors returns a page of cases matching f, newest first (by id), and
// the number of matches. A bad filter (unknown status or kind, From after
// To, negative paging, MerchantID without OrgID) is CodeInvalid.
func (d *Desk) ListErrors(ctx context.Context, f ErrorFilter) (ErrorPage, error) {
	switch {
	case f.Status != "" && f.Status != ErrorOpen && f.Status != ErrorResolved && f.Status != ErrorWrittenOff:
		return ErrorPage{}, jifu.Errorf(jifu.CodeInvalid, "cardpay: unknown status %q", f.Status)
	case f.Kind != "" && !validKind(f.Kind):
		return ErrorPage{}, jifu.Errorf(jifu.CodeInvalid, "cardpay: unknown kind %q", f.Kind)
	case f.MerchantID != "" && f.OrgID == "":
		return ErrorPage{}, jifu.Errorf(jifu.CodeInvalid, "cardpay: a merchant filter needs its org")
	case !f.From.IsZero() && !f.To.IsZero() && f.From.In(beijing).Format(time.DateOnly) > f.To.In(beijing).Format(time.DateOnly):
		return ErrorPage{}, jifu.Errorf(jifu.CodeInvalid, "cardpay: day range ends before it starts")
	case f.Limit < 0 || f.Offset < 0 || f.Limit > 500:
		return ErrorPage{}, jifu.Errorf(jifu.CodeInvalid, "cardpay: limit must be 0..500 and offset not negative")
	}
	if f.Limit == 0 {
		f.Limit = 50
	}
	var conds []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, fmt.Sprintf(cond, len(args)))
	}
	if f.Status != "" {
		add("status = $%d", f.Status)
	}
	if f.Kind != "" {
		add("kind = $%d", f.Kind)
	}
	if f.OrgID != "" {
		add("org_id = $%d", f.OrgID)
	}
	if f.MerchantID != "" {
		add("merchant_id = $%d", f.MerchantID)
	}
	if f.PaymentID != 0 {
		add("payment_id = $%d", f.PaymentID)
	}
	if f.CardToken != "" {
		add("card_token = $%d", f.CardToken)
	}
	if !f.From.IsZero() {
		add("day >= $%d::date", f.From.In(beijing).Format(time.DateOnly))
	}
	if !f.To.IsZero() {
		add("day <= $%d::date", f.To.In(beijing).Format(time.DateOnly))
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	var page ErrorPage
	if err := d.pool.QueryRow(ctx, `SELECT count(*) FROM card_errors`+where, args...).Scan(&page.Total); err != nil {
		return page, dbErr(ctx, "list erroneous transactions", err)
	}
	args = append(args, f.Limit, f.Offset)
	rows, err := d.pool.Query(ctx, fmt.Sprintf(`SELECT %s FROM card_errors%s ORDER BY id DESC LIMIT $%d OFFSET $%d`,
		errorCols, where, len(args)-1, len(args)), args...)
	if err != nil {
		return page, dbErr(ctx, "list erroneous transactions", err)
	}
	page.Cases, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ErrorCase, error) { return scanCase(r) })
	if err != nil {
		return page, dbErr(ctx, "list erroneous transactions", err)
	}
	return page, nil
}

// recordDifferences opens a case for each reconciliation difference of day
// d (idempotent: the ref is day:rrn, so reconciling a day again adds
// nothing), tied to the payment when the RRN is one of ours (a payment's
// or a refund's).
func (d *Desk) recordDifferences(ctx context.Context, day time.Time, diffs []Difference) error {
	dd := day.In(beijing).Format(time.DateOnly)
	var errs []error
	for _, x := range diffs {
		c := ErrorCase{Ref: dd + ":" + x.RRN, RRN: x.RRN, OpenedBy: ActorSystem, OccurredAt: d.now(),
			Note: "reconciliation of " + dd + ": " + x.Kind}
		switch x.Kind {
		case "missing_on_platform":
			c.Kind = ErrorLong
		case "missing_at_acquirer":
			c.Kind = ErrorShort
		case "amount_mismatch":
			c.Kind = ErrorAmountMismatch
		default:
			continue
		}
		if x.RRN != "" {
			if _, err := d.loadPayment(ctx, &c, `p.id = coalesce((SELECT id FROM card_payments WHERE rrn = $1 ORDER BY id LIMIT 1),
				(SELECT payment_id FROM card_refunds WHERE rrn = $1 ORDER BY id LIMIT 1))`, x.RRN); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		c.RRN = x.RRN
		c.Day = time.Date(day.In(beijing).Year(), day.In(beijing).Month(), day.In(beijing).Day(), 0, 0, 0, 0, beijing)
		c.PlatformAmount, c.AcquirerAmount = x.Platform, x.Acquirer
		c.Amount = abs(x.Acquirer - x.Platform)
		if _, err := d.open(ctx, c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// recordUnansweredReversal opens (once per payment) the case of a payment
// whose reversal the acquirer still did not acknowledge on retry.
func (d *Desk) recordUnansweredReversal(ctx context.Context, paymentID int64) error {
	c := ErrorCase{Kind: ErrorReversalUnanswered, Ref: fmt.Sprint(paymentID), OpenedBy: ActorSystem, OccurredAt: d.now(),
		Note: "reversal not acknowledged by the acquirer; retried by the scheduler"}
	ok, err := d.loadPayment(ctx, &c, `p.id = $1`, paymentID)
	if err != nil || !ok {
		return err
	}
	c.Amount, c.PlatformAmount = c.PlatformAmount, 0
	_, err = d.open(ctx, c)
	return err
}

// resolveReversal closes the open unanswered-reversal case of a payment
// whose reversal was acknowledged at last: not at fault (the link, not the
// card). No case: nothing to do.
func (d *Desk) resolveReversal(ctx context.Context, paymentID int64) error {
	var id int64
	err := d.pool.QueryRow(ctx, `SELECT id FROM card_errors WHERE kind = $1 AND ref = $2 AND status = 'open'`,
		ErrorReversalUnanswered, fmt.Sprint(paymentID)).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return dbErr(ctx, "find reversal case", err)
	}
	_, err = d.ResolveError(ctx, id, Resolution{Status: ErrorResolved, NotAtFault: true, Actor: ActorSystem,
		Note: "the acquirer acknowledged the reversal on retry"})
	if jifu.ErrorCode(err) == jifu.CodeConflict {
		return nil // closed meanwhile
	}
	return err
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
