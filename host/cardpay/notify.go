package cardpay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/callback"
	"github.com/jifu-open/jifu/host/outbox"
)

// Notifier receives payments' results. The statement that records a result
// also writes its notification to card_notifications (so the notification
// exists exactly when the result does), and the relay
// (Service.RelayNotifications, RunNotifyRelay) hands those rows to the
// Notifier in tx, the transaction that deletes them: each is handed over
// once, or again after a failure (so Notify must be idempotent on
// Notification.EventID). OutboxNotifier implements it over host/outbox.
type Notifier interface {
	Notify(ctx context.Context, tx pgx.Tx, n Notification) error
}

// BatchNotifier is a Notifier that takes a batch in one call; the relay
// uses it when the Notifier implements it.
type BatchNotifier interface {
	Notifier
	NotifyBatch(ctx context.Context, tx pgx.Tx, ns []Notification) error
}

// Notification is the result of a payment as the merchant's notify_url
// receives it (the callback's data). The PAN is masked.
type Notification struct {
	PaymentID  int64  `json:"payment_id"`
	OrgID      string `json:"org_id"`
	MerchantID string `json:"merchant_id"`
	OrderID    string `json:"order_id"`
	Status     string `json:"status"` // approved, declined, reversed
	Amount     int64  `json:"amount"` // fen
	Params     string `json:"params"` // the request's params, as sent
	Rule       string `json:"rule,omitempty"`
	RRN        string `json:"rrn,omitempty"`
	AuthCode   string `json:"auth_code,omitempty"`
	PAN        string `json:"pan,omitempty"`
}

// EventType is the outbox event type of a notification: card.payment.<status>.
func (n Notification) EventType() string { return "card.payment." + n.Status }

// EventID is the notification's event id: one per payment, so a merchant
// gets exactly one result per order (and deduplicates retries on it).
func (n Notification) EventID() string { return fmt.Sprintf("cardpay.%d.result", n.PaymentID) }

// NotifyQueue is the River queue of merchant notifications (an Outbox of
// its own, whose one sink is NotifySink).
const NotifyQueue = "card_notify"

// NotifySinkName is the outbox sink name of merchant notifications.
const NotifySinkName = "card_notify"

// OutboxNotifier enqueues notifications in an Outbox whose sink is a
// NotifySink.
type OutboxNotifier struct{ Outbox *outbox.Outbox }

// Notify implements Notifier.
func (o OutboxNotifier) Notify(ctx context.Context, tx pgx.Tx, n Notification) error {
	body, err := json.Marshal(n)
	if err != nil {
		return jifu.Errorf(jifu.CodeInternal, "cardpay: notification: %w", err)
	}
	_, err = o.Outbox.Enqueue(ctx, tx, outbox.Event{ID: n.EventID(), App: "merchant:" + n.OrgID + "/" + n.MerchantID,
		Type: n.EventType(), Payload: body})
	return err
}

// NotifyBatch implements BatchNotifier: one outbox.EnqueueMany.
func (o OutboxNotifier) NotifyBatch(ctx context.Context, tx pgx.Tx, ns []Notification) error {
	evs := make([]outbox.Event, len(ns))
	for i, n := range ns {
		body, err := json.Marshal(n)
		if err != nil {
			return jifu.Errorf(jifu.CodeInternal, "cardpay: notification: %w", err)
		}
		evs[i] = outbox.Event{ID: n.EventID(), App: "merchant:" + n.OrgID + "/" + n.MerchantID, Type: n.EventType(), Payload: body}
	}
	_, err := o.Outbox.EnqueueMany(ctx, tx, evs)
	return err
}

// NotifySink delivers notifications to the merchant's notify_url as a
// signed callback (host/callback: Jifu-Signature, HMAC-SHA256 keyed with
// the merchant's pay_secret over "<t>.<body>"). A merchant without a
// notify_url acknowledges at once: there is no one to tell.
type NotifySink struct {
	pool   *pgxpool.Pool
	vault  *vault
	client *http.Client
	now    func() time.Time
}

// NewNotifySink reads merchants from pool (migrated with Migrations) and
// opens their pay_secret with the master key. client nil: callback's
// default client.
func NewNotifySink(pool *pgxpool.Pool, masterKey []byte, client *http.Client) (*NotifySink, error) {
	v, err := newVault(masterKey)
	if err != nil {
		return nil, err
	}
	if client == nil {
		client = callback.NewHTTPClient(0)
	}
	return &NotifySink{pool: pool, vault: v, client: client, now: time.Now}, nil
}

// Deliver implements outbox.Sink.
func (s *NotifySink) Deliver(ctx context.Context, ev outbox.Event) (int, error) {
	var n Notification
	if err := json.Unmarshal(ev.Payload, &n); err != nil {
		return 0, jifu.Errorf(jifu.CodeInvalid, "cardpay: notification %s: %w", ev.ID, err)
	}
	var sealed []byte
	var url string
	err := s.pool.QueryRow(ctx, `SELECT pay_secret_enc, notify_url FROM card_merchants WHERE org_id = $1 AND merchant_id = $2`,
		n.OrgID, n.MerchantID).Scan(&sealed, &url)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, dbErr(ctx, "notify: merchant", err)
	}
	if strings.TrimSpace(url) == "" {
		return 0, nil
	}
	secret, err := s.vault.open("pay_secret:"+n.OrgID+"\x00"+n.MerchantID, sealed)
	if err != nil {
		return 0, err
	}
	defer wipe(secret)
	return callback.Deliver(ctx, s.client, callback.Target{URL: url, Secret: secret}, ev, s.now())
}

// notification is the result's notification as stored in
// card_notifications by the statement that records the result; nil when
// there is no Notifier (or no merchant), and nothing is stored.
func (s *Service) notification(res Result, m *merchant, amount int64) *string {
	if s.opt.Notifier == nil || m == nil {
		return nil
	}
	// Strings and integers only: Marshal cannot fail.
	b, _ := json.Marshal(Notification{PaymentID: res.PaymentID, OrgID: m.orgID, MerchantID: m.merchantID,
		OrderID: res.OrderID, Status: res.Status, Amount: amount, Params: res.Params, Rule: res.Rule, RRN: res.RRN,
		AuthCode: res.AuthCode, PAN: res.PANMasked})
	p := string(b)
	return &p
}
