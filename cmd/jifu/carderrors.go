package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay"
)

// cardCmd is `jifu card`: the card core's operator commands on the risk
// desk's records (cardpay.Desk). They work on the platform database
// directly; a running serve sees a change to a card or a user's level
// within its 5 s caches.
type cardCmd struct {
	Errors cardErrorsCmd `cmd:"" help:"Erroneous transactions (差错交易): list, show, open, resolve."`
	Level  cardLevelCmd  `cmd:"" help:"User levels (用户等级): set by risk staff, apply the automatic upgrades."`
}

type cardErrorsCmd struct {
	List    cardErrorsListCmd    `cmd:"" help:"List erroneous transactions, newest first."`
	Show    cardErrorsShowCmd    `cmd:"" help:"Show one erroneous transaction and its audit trail."`
	Open    cardErrorsOpenCmd    `cmd:"" help:"Open an erroneous transaction the acquirer raised (调单, 拒付, dispute) or staff found."`
	Resolve cardErrorsResolveCmd `cmd:"" help:"Close an open erroneous transaction as resolved or written off."`
}

type cardLevelCmd struct {
	Set     cardLevelSetCmd     `cmd:"" help:"Set a user's level (201–203 on the customer's request), with the reason."`
	Upgrade cardLevelUpgradeCmd `cmd:"" help:"Apply the automatic upgrade conditions (101→102→103) to every user: a daily job."`
}

// openDesk opens the platform database (migrating it) and returns a Desk
// over it and a func that closes everything.
func openDesk(ctx context.Context, e *env) (*cardpay.Desk, func(), error) {
	db, err := openPlatformDB(ctx, e)
	if err != nil {
		return nil, nil, err
	}
	var pool *pgxpool.Pool
	if pool, err = db.migrateAndOpen(ctx); err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	return cardpay.NewDesk(pool, cardpay.DeskOptions{Logger: e.log}), func() { pool.Close(); _ = db.Close() }, nil
}

// parseDay reads YYYY-MM-DD as a China Standard Time date; "" is the zero time.
func parseDay(flag, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	d, err := time.ParseInLocation(time.DateOnly, v, chinaTime)
	if err != nil {
		return d, jifu.Errorf(jifu.CodeInvalid, "--%s %q is not YYYY-MM-DD", flag, v)
	}
	return d, nil
}

type cardErrorsListCmd struct {
	Status   string `help:"open, resolved or written_off."`
	Kind     string `help:"long, short, amount_mismatch, reversal_unanswered, ledger_mismatch, retrieval_request, chargeback or dispute."`
	Org      string `help:"The merchant's org_id."`
	Merchant string `help:"The merchant_id (with --org)."`
	Payment  int64  `help:"The payment id."`
	From     string `help:"First business day, YYYY-MM-DD (China Standard Time)."`
	To       string `help:"Last business day, YYYY-MM-DD."`
	Limit    int    `default:"50" help:"At most this many (1–500)."`
	Offset   int    `help:"Skip this many."`
}

func (c cardErrorsListCmd) Run(ctx context.Context, e *env) error {
	from, err := parseDay("from", c.From)
	if err != nil {
		return err
	}
	to, err := parseDay("to", c.To)
	if err != nil {
		return err
	}
	desk, closeAll, err := openDesk(ctx, e)
	if err != nil {
		return err
	}
	defer closeAll()
	p, err := desk.ListErrors(ctx, cardpay.ErrorFilter{Status: c.Status, Kind: c.Kind, OrgID: c.Org, MerchantID: c.Merchant,
		PaymentID: c.Payment, From: from, To: to, Limit: c.Limit, Offset: c.Offset})
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tKIND\tSTATUS\tDAY\tMERCHANT\tORDER\tRRN\tCARD\tAMOUNT(fen)\tOPENED BY")
	for _, x := range p.Cases {
		merchant := ""
		if x.MerchantID != "" {
			merchant = x.OrgID + "/" + x.MerchantID
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", x.ID, x.Kind, x.Status, x.Day.Format(time.DateOnly),
			dash(merchant), dash(x.OrderID), dash(x.RRN), dash(x.PANMasked), x.Amount, x.OpenedBy)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%d of %d\n", len(p.Cases), p.Total)
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

type cardErrorsShowCmd struct {
	ID int64 `arg:"" help:"The erroneous transaction's id."`
}

func (c cardErrorsShowCmd) Run(ctx context.Context, e *env) error {
	desk, closeAll, err := openDesk(ctx, e)
	if err != nil {
		return err
	}
	defer closeAll()
	x, evs, err := desk.GetError(ctx, c.ID)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(w, "%s\t%v\n", k, v) }
	row("id", x.ID)
	row("kind", x.Kind)
	row("status", x.Status)
	row("ref", dash(x.Ref))
	row("day", x.Day.Format(time.DateOnly))
	row("occurred", x.OccurredAt.In(chinaTime).Format(time.DateTime))
	if x.PaymentID != 0 {
		row("payment", x.PaymentID)
	}
	if x.MerchantID != "" {
		row("merchant", x.OrgID+"/"+x.MerchantID)
	}
	row("order", dash(x.OrderID))
	row("rrn", dash(x.RRN))
	row("card", dash(x.PANMasked))
	row("terminal", dash(strings.TrimSpace(x.AcquirerTID+" "+x.TerminalKSN)))
	row("amount (fen)", x.Amount)
	if x.PlatformAmount != 0 || x.AcquirerAmount != 0 {
		row("platform / acquirer (fen)", fmt.Sprintf("%d / %d", x.PlatformAmount, x.AcquirerAmount))
	}
	if x.Status != cardpay.ErrorOpen {
		row("closed", fmt.Sprintf("%s by %s (not at fault: %t)", x.ResolvedAt.In(chinaTime).Format(time.DateTime), x.ResolvedBy, x.NotAtFault))
	}
	row("counts against clean days", x.Counts())
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "trail:")
	for _, ev := range evs {
		fmt.Fprintf(e.stdout, "  %s  %-11s  %s  %s\n", ev.At.In(chinaTime).Format(time.DateTime), ev.Action, ev.Actor, ev.Note)
	}
	return nil
}

type cardErrorsOpenCmd struct {
	Kind     string `required:"" help:"retrieval_request (调单), chargeback (拒付), dispute, or long, short, amount_mismatch, reversal_unanswered."`
	Ref      string `help:"The acquirer's case number: opening the same kind and ref again returns the first case."`
	Payment  int64  `help:"The payment id."`
	Org      string `help:"The merchant's org_id (with --merchant, and --order to name the payment)."`
	Merchant string `help:"The merchant_id."`
	Order    string `help:"The merchant's order_id."`
	RRN      string `name:"rrn" help:"The acquirer's reference number of the payment or refund."`
	Amount   int64  `help:"Fen at issue (default: the payment's amount)."`
	At       string `help:"When it arose, YYYY-MM-DD (China Standard Time; default now)."`
	Note     string `help:"What the acquirer or staff said."`
	Actor    string `required:"" env:"JIFU_ACTOR" help:"Who enters it (audited)."`
}

func (c cardErrorsOpenCmd) Run(ctx context.Context, e *env) error {
	at, err := parseDay("at", c.At)
	if err != nil {
		return err
	}
	desk, closeAll, err := openDesk(ctx, e)
	if err != nil {
		return err
	}
	defer closeAll()
	x, err := desk.OpenError(ctx, cardpay.NewError{Kind: c.Kind, Ref: c.Ref, PaymentID: c.Payment, OrgID: c.Org, MerchantID: c.Merchant,
		OrderID: c.Order, RRN: c.RRN, Amount: c.Amount, At: at, Note: c.Note, Actor: c.Actor})
	if err != nil {
		return err
	}
	what := "opened"
	if x.Replayed {
		what = "already open as"
		if x.Status != cardpay.ErrorOpen {
			what = "already recorded (" + x.Status + ") as"
		}
	}
	fmt.Fprintf(e.stdout, "%s %s #%d (payment %s, card %s, %d fen)\n", what, x.Kind, x.ID, dash(paymentRef(x.PaymentID)), dash(x.PANMasked), x.Amount)
	return nil
}

func paymentRef(id int64) string {
	if id == 0 {
		return ""
	}
	return strconv.FormatInt(id, 10)
}

type cardErrorsResolveCmd struct {
	ID         int64  `arg:"" help:"The erroneous transaction's id."`
	Status     string `default:"resolved" enum:"resolved,written_off" help:"resolved or written_off."`
	NotAtFault bool   `name:"not-at-fault" help:"Neither the card(holder) nor the merchant caused it: it stops counting against clean days."`
	Note       string `required:"" help:"What was found or done."`
	Actor      string `required:"" env:"JIFU_ACTOR" help:"Who closes it (audited)."`
}

func (c cardErrorsResolveCmd) Run(ctx context.Context, e *env) error {
	desk, closeAll, err := openDesk(ctx, e)
	if err != nil {
		return err
	}
	defer closeAll()
	x, err := desk.ResolveError(ctx, c.ID, cardpay.Resolution{Status: c.Status, NotAtFault: c.NotAtFault, Actor: c.Actor, Note: c.Note})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s #%d %s (counts against clean days: %t)\n", x.Kind, x.ID, x.Status, x.Counts())
	return nil
}

type cardLevelSetCmd struct {
	Org      string `required:"" help:"The merchant's org_id."`
	Merchant string `required:"" help:"The merchant_id (the user)."`
	Level    string `required:"" help:"The new level (101–103, 201–203, 301, 302)."`
	Reason   string `required:"" help:"Why (the customer's request, its ticket)."`
	Actor    string `required:"" env:"JIFU_ACTOR" help:"Who sets it (audited)."`
}

func (c cardLevelSetCmd) Run(ctx context.Context, e *env) error {
	desk, closeAll, err := openDesk(ctx, e)
	if err != nil {
		return err
	}
	defer closeAll()
	ch, err := desk.SetUserLevel(ctx, c.Org, c.Merchant, c.Level, c.Reason, c.Actor)
	if err != nil {
		return err
	}
	if ch.ID == 0 {
		fmt.Fprintf(e.stdout, "%s/%s is already at level %s\n", c.Org, c.Merchant, c.Level)
		return nil
	}
	fmt.Fprintf(e.stdout, "%s/%s: level %s → %s\n", c.Org, c.Merchant, ch.From, ch.To)
	return nil
}

type cardLevelUpgradeCmd struct{}

func (cardLevelUpgradeCmd) Run(ctx context.Context, e *env) error {
	desk, closeAll, err := openDesk(ctx, e)
	if err != nil {
		return err
	}
	defer closeAll()
	chs, err := desk.UpgradeUserLevels(ctx)
	for _, ch := range chs {
		fmt.Fprintf(e.stdout, "%s/%s: level %s → %s (%s)\n", ch.OrgID, ch.MerchantID, ch.From, ch.To, ch.Reason)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%d user(s) upgraded\n", len(chs))
	return nil
}
