// Package notify sends SMS and push messages through the platform's channel:
// one-time login codes for the store, and the notify capability of apps.
//
// A Notifier records every send in PostgreSQL (notify_sends), enforces the
// rate limits of one-time codes per recipient there (so they hold across
// processes), and hands the message to a Provider. The local Provider,
// Outbox, writes each message to the notify_outbox table, which the developer
// console lists; a production provider (an SMS carrier, SNS) implements the
// same interface.
//
//	n := notify.New(pool, notify.NewOutbox(pool), notify.Options{})
//	err := n.Send(ctx, notify.Message{Channel: notify.SMS, To: "13800138000",
//		Purpose: notify.PurposeOTP, Body: "Your code is 123456"})
//	msgs, err := notify.NewOutbox(pool).List(ctx, notify.Filter{To: "13800138000"})
package notify

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/database"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the tables notify_sends and notify_outbox.
var Migrations = database.MigrationSet{Name: "notify", FS: database.MustSub(migrationFiles, "migrations")}

// Channels.
const (
	SMS  = "sms"
	Push = "push"
)

// Purposes. One-time codes are rate limited; other purposes are not here
// (an app's sends are bounded by its host-call limit and its own quota).
const (
	PurposeOTP    = "otp"    // a one-time login or confirmation code
	PurposeApp    = "app"    // a message an app sends to its current user
	PurposeSystem = "system" // platform notices
)

// MaxBodyRunes bounds a message body (a long SMS is 10 segments of 70).
const MaxBodyRunes = 700

// Message is one SMS or push notification.
type Message struct {
	Channel string // SMS or Push
	To      string // SMS: a mainland mobile number (11 digits starting with 1); Push: a user reference
	Purpose string // PurposeOTP, PurposeApp, PurposeSystem
	App     string // the sending app's slug, "" for the platform
	Body    string
}

// Provider delivers messages: a carrier, or the local Outbox.
type Provider interface {
	Deliver(ctx context.Context, m Message) error
}

// Options bound one-time code sends per recipient.
type Options struct {
	OTPInterval time.Duration // at least this long between two codes; default 60 s
	OTPPerHour  int           // at most this many codes an hour; default 5
	OTPPerDay   int           // at most this many codes a day; default 10
	Now         func() time.Time
}

// Notifier validates, rate limits, records and delivers messages. It is safe
// for concurrent use.
type Notifier struct {
	pool     *pgxpool.Pool
	provider Provider
	opt      Options
}

// New returns a Notifier recording sends in pool's database (migrated with
// Migrations) and delivering through provider.
func New(pool *pgxpool.Pool, provider Provider, opt Options) *Notifier {
	if opt.OTPInterval <= 0 {
		opt.OTPInterval = 60 * time.Second
	}
	if opt.OTPPerHour <= 0 {
		opt.OTPPerHour = 5
	}
	if opt.OTPPerDay <= 0 {
		opt.OTPPerDay = 10
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Notifier{pool: pool, provider: provider, opt: opt}
}

var phoneRE = regexp.MustCompile(`^1[3-9][0-9]{9}$`)

// ValidPhone reports whether s is a mainland China mobile number.
func ValidPhone(s string) bool { return phoneRE.MatchString(s) }

// Check validates a message: CodeInvalid naming the first bad field.
func (m Message) Check() error {
	switch m.Channel {
	case SMS:
		if !ValidPhone(m.To) {
			return jifu.Errorf(jifu.CodeInvalid, "notify: %q is not a mobile number", m.To)
		}
	case Push:
		if m.To == "" || len(m.To) > 128 {
			return jifu.Errorf(jifu.CodeInvalid, "notify: push recipient must be 1..128 bytes")
		}
	default:
		return jifu.Errorf(jifu.CodeInvalid, "notify: channel %q is not sms or push", m.Channel)
	}
	switch m.Purpose {
	case PurposeOTP, PurposeApp, PurposeSystem:
	default:
		return jifu.Errorf(jifu.CodeInvalid, "notify: purpose %q is unknown", m.Purpose)
	}
	if strings.TrimSpace(m.Body) == "" || !utf8.ValidString(m.Body) || utf8.RuneCountInString(m.Body) > MaxBodyRunes {
		return jifu.Errorf(jifu.CodeInvalid, "notify: body must be 1..%d characters of valid UTF-8", MaxBodyRunes)
	}
	return nil
}

// Send checks m, applies the one-time-code rate limits (CodeLimit when a
// limit is hit, nothing sent), records the send and delivers it. The limit
// check and the record are one transaction holding a per-recipient lock,
// so concurrent sends to one number cannot pass the limit together. The
// delivery runs after the commit (a provider may take its time or use the
// database itself); when it fails, the record is removed so that a send
// that never reached the user does not count against the limit.
func (n *Notifier) Send(ctx context.Context, m Message) error {
	if err := m.Check(); err != nil {
		return err
	}
	var id int64
	err := pgx.BeginFunc(ctx, n.pool, func(tx pgx.Tx) error {
		if m.Purpose == PurposeOTP {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('notify:' || $1))`, m.To); err != nil {
				return err
			}
			if err := n.checkOTPLimits(ctx, tx, m.To); err != nil {
				return err
			}
		}
		return tx.QueryRow(ctx, `INSERT INTO notify_sends (channel, recipient, purpose, app, at) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
			m.Channel, m.To, m.Purpose, m.App, n.opt.Now()).Scan(&id)
	})
	if err != nil {
		if jifu.ErrorCode(err) == jifu.CodeLimit {
			return err
		}
		return database.QueryError(ctx, "notify: send", err)
	}
	if err := n.provider.Deliver(ctx, m); err != nil {
		if _, derr := n.pool.Exec(context.WithoutCancel(ctx), `DELETE FROM notify_sends WHERE id = $1`, id); derr != nil {
			return errors.Join(err, database.QueryError(ctx, "notify: undo send", derr))
		}
		return err
	}
	return nil
}

func (n *Notifier) checkOTPLimits(ctx context.Context, tx pgx.Tx, to string) error {
	now := n.opt.Now()
	var last *time.Time
	var hour, day int
	err := tx.QueryRow(ctx, `
		SELECT max(at), count(*) FILTER (WHERE at > $3), count(*)
		FROM notify_sends WHERE recipient = $1 AND purpose = 'otp' AND at > $2`,
		to, now.Add(-24*time.Hour), now.Add(-time.Hour)).Scan(&last, &hour, &day)
	if err != nil {
		return err
	}
	switch {
	case last != nil && now.Sub(*last) < n.opt.OTPInterval:
		wait := n.opt.OTPInterval - now.Sub(*last)
		return jifu.Errorf(jifu.CodeLimit, "a code was sent to this number moments ago; try again in %d s", int(wait.Seconds())+1)
	case hour >= n.opt.OTPPerHour:
		return jifu.Errorf(jifu.CodeLimit, "at most %d codes an hour to one number", n.opt.OTPPerHour)
	case day >= n.opt.OTPPerDay:
		return jifu.Errorf(jifu.CodeLimit, "at most %d codes a day to one number", n.opt.OTPPerDay)
	}
	return nil
}

// Outbox is the local Provider: it writes each message to notify_outbox,
// where the developer console (List) shows it instead of a phone.
type Outbox struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

// NewOutbox returns the local provider over pool's database.
func NewOutbox(pool *pgxpool.Pool) *Outbox { return &Outbox{pool: pool, now: time.Now} }

// Deliver implements Provider.
func (o *Outbox) Deliver(ctx context.Context, m Message) error {
	_, err := o.pool.Exec(ctx, `INSERT INTO notify_outbox (channel, recipient, purpose, app, body, at) VALUES ($1, $2, $3, $4, $5, $6)`,
		m.Channel, m.To, m.Purpose, m.App, m.Body, o.now())
	if err != nil {
		return database.QueryError(ctx, "notify: outbox", err)
	}
	return nil
}

// Entry is one delivered message in the outbox.
type Entry struct {
	ID int64
	At time.Time
	Message
}

// Filter selects outbox entries; zero fields match everything.
type Filter struct {
	To    string
	App   string
	Limit int // default 50, at most 500
}

// List returns the newest entries first.
func (o *Outbox) List(ctx context.Context, f Filter) ([]Entry, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	if f.Limit > 500 {
		return nil, jifu.Errorf(jifu.CodeInvalid, "notify: limit %d over 500", f.Limit)
	}
	rows, err := o.pool.Query(ctx, `
		SELECT id, at, channel, recipient, purpose, app, body FROM notify_outbox
		WHERE ($1 = '' OR recipient = $1) AND ($2 = '' OR app = $2)
		ORDER BY id DESC LIMIT $3`, f.To, f.App, f.Limit)
	if err != nil {
		return nil, database.QueryError(ctx, "notify: list", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Entry, error) {
		var e Entry
		err := r.Scan(&e.ID, &e.At, &e.Channel, &e.To, &e.Purpose, &e.App, &e.Body)
		return e, err
	})
	if err != nil {
		return nil, database.QueryError(ctx, "notify: list", err)
	}
	return out, nil
}

// String never shows message bodies (they may hold codes).
func (m Message) String() string {
	return fmt.Sprintf("notify.Message{%s to %s, purpose %s, app %q, body: <%d bytes>}", m.Channel, m.To, m.Purpose, m.App, len(m.Body))
}
