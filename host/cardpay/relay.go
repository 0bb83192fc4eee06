package cardpay

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu"
)

// Notification relay. The statement that records a payment's result
// inserts its notification into card_notifications (one row per payment,
// committed with the result: autocommit, no transaction block on the
// payment's path). The relay moves the rows to the Notifier in batches: one
// transaction deletes up to RelayBatch rows (FOR UPDATE SKIP LOCKED, so
// several instances share the work) and hands them to the Notifier (for
// OutboxNotifier: one outbox.EnqueueMany, event id
// cardpay.<payment id>.result). A crash before the commit leaves the rows
// for the next run; a row relayed twice (it cannot be: it is deleted in the
// transaction that enqueues it) would be the same event id, which the outbox
// skips.

// RelayBatch is the most notifications one relay transaction moves.
const RelayBatch = 500

// DefaultRelayEvery is RunNotifyRelay's default poll interval: with a batch
// taking a few milliseconds, a notification waits at most about this long
// (plus the batch) before it is in the outbox.
const DefaultRelayEvery = 50 * time.Millisecond

// RelayNotifications moves up to RelayBatch waiting notifications to the
// Notifier in one transaction and returns how many it moved. When the
// Notifier refuses the batch, the rows are tried one at a time: a row
// refused as invalid or conflicting is marked failed (kept, logged, skipped
// from then on) so it cannot hold up the others; other errors leave every
// row for the next run.
func (s *Service) RelayNotifications(ctx context.Context) (int, error) {
	if s.opt.Notifier == nil {
		return 0, nil
	}
	n, err := s.relayBatch(ctx, RelayBatch)
	if err == nil {
		return n, nil
	}
	if c := jifu.ErrorCode(err); c != jifu.CodeInvalid && c != jifu.CodeConflict {
		return 0, err
	}
	// One at a time, to find the row the Notifier refuses.
	moved := 0
	for range RelayBatch {
		n, err := s.relayBatch(ctx, 1)
		if err == nil && n == 0 {
			break
		}
		if err == nil {
			moved++
			continue
		}
		if c := jifu.ErrorCode(err); c != jifu.CodeInvalid && c != jifu.CodeConflict {
			return moved, err
		}
		if ferr := s.markNotificationFailed(ctx, err); ferr != nil {
			return moved, ferr
		}
	}
	return moved, nil
}

// relayBatch moves up to limit rows in one transaction.
func (s *Service) relayBatch(ctx context.Context, limit int) (int, error) {
	moved := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `DELETE FROM card_notifications WHERE payment_id IN (
				SELECT payment_id FROM card_notifications WHERE failed_at IS NULL
				ORDER BY payment_id LIMIT $1 FOR UPDATE SKIP LOCKED)
			RETURNING payment_id, payload`, limit)
		if err != nil {
			return err
		}
		var ns []Notification
		var id int64
		var payload string
		if _, err := pgx.ForEachRow(rows, []any{&id, &payload}, func() error {
			var n Notification
			if err := json.Unmarshal([]byte(payload), &n); err != nil || n.PaymentID != id {
				return jifu.Errorf(jifu.CodeInvalid, "cardpay: notification of payment %d is malformed", id)
			}
			ns = append(ns, n)
			return nil
		}); err != nil {
			return err
		}
		if len(ns) == 0 {
			return nil
		}
		if bn, ok := s.opt.Notifier.(BatchNotifier); ok && len(ns) > 1 {
			if err := bn.NotifyBatch(ctx, tx, ns); err != nil {
				return err
			}
		} else {
			for _, n := range ns {
				if err := s.opt.Notifier.Notify(ctx, tx, n); err != nil {
					return err
				}
			}
		}
		moved = len(ns)
		return nil
	})
	if err != nil {
		return 0, dbErr(ctx, "relay notifications", err)
	}
	return moved, nil
}

// markNotificationFailed marks the first waiting row (the one a batch of 1
// was refused for) failed.
func (s *Service) markNotificationFailed(ctx context.Context, cause error) error {
	var id int64
	err := s.pool.QueryRow(ctx, `UPDATE card_notifications SET failed_at = now(), error = $1 WHERE payment_id = (
			SELECT payment_id FROM card_notifications WHERE failed_at IS NULL ORDER BY payment_id LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING payment_id`, truncateError(jifu.ErrorMessage(cause))).Scan(&id)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return dbErr(ctx, "mark notification failed", err)
	}
	s.log.ErrorContext(ctx, "cardpay: notification refused by the notifier, kept in card_notifications", "payment", id,
		"err", jifu.ErrorMessage(cause))
	return nil
}

func truncateError(s string) string {
	if len(s) > 1000 {
		return s[:1000]
	}
	return s
}

// RunNotifyRelay relays notifications until ctx ends: every interval
// (DefaultRelayEvery when ≤ 0) it moves every waiting notification, batch
// after batch. Errors are logged and retried at the next tick.
func (s *Service) RunNotifyRelay(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultRelayEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for {
			n, err := s.RelayNotifications(ctx)
			if err != nil {
				if ctx.Err() == nil {
					s.log.WarnContext(ctx, "cardpay: relaying notifications", "err", jifu.ErrorMessage(err))
				}
				break
			}
			if n < RelayBatch {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
