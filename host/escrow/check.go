package escrow

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu/host/ledger"
)

// Violation is one broken invariant between the escrow records and the
// books, named like the ledger's.
type Violation struct {
	Invariant string
	Detail    string
}

func (v Violation) String() string { return v.Invariant + ": " + v.Detail }

// invariant is one check: a query returning one detail row per violation.
type invariant struct{ name, doc, sql string }

// invariants are what Check verifies. They read the ledger's tables
// (read-only) in the same snapshot as the escrow's own.
func invariants() []invariant {
	return []invariant{
		{"listing_capacity", "capacity left + bids frozen (holds open) + released = the loan amount", `
		SELECT l.app || ' ' || l.bid_no || ': ' || (a.credits_posted - a.debits_posted - a.debits_pending) || ' + ' ||
			coalesce(f.frozen, 0) || ' + ' || l.released || ' != ' || l.amount
		FROM escrow_loans l JOIN ledger_accounts a ON a.id = l.capacity_id
		LEFT JOIN (SELECT b.app, b.bid_no, sum(b.amount) AS frozen FROM escrow_bids b
			JOIN ledger_holds h ON h.pending_id = b.cap_hold_id WHERE b.status = 'frozen' GROUP BY b.app, b.bid_no) f
			ON f.app = l.app AND f.bid_no = l.bid_no
		WHERE a.credits_posted - a.debits_posted - a.debits_pending + coalesce(f.frozen, 0) + l.released != l.amount`},
		{"listing_claims", "the claims on a listing sum to what was released", `
		SELECT l.app || ' ' || l.bid_no || ': claims ' || coalesce(sum(c.principal), 0) || ', released ' || l.released
		FROM escrow_loans l LEFT JOIN escrow_claims c ON c.app = l.app AND c.bid_no = l.bid_no
		GROUP BY l.app, l.bid_no, l.released HAVING coalesce(sum(c.principal), 0) != l.released`},
		{"bid_holds", "a frozen bid's two holds are open or closed together; a settled bid has none open", `
		SELECT b.app || ' ' || b.bid_no || ' bid ' || b.bill_no || ' (' || b.status || '): money hold ' ||
			CASE WHEN m.pending_id IS NULL THEN 'closed' ELSE 'open' END || ', capacity hold ' ||
			CASE WHEN c.pending_id IS NULL THEN 'closed' ELSE 'open' END
		FROM escrow_bids b
		LEFT JOIN ledger_holds m ON m.pending_id = b.hold_id
		LEFT JOIN ledger_holds c ON c.pending_id = b.cap_hold_id
		WHERE (m.pending_id IS NULL) != (c.pending_id IS NULL) OR (b.status != 'frozen' AND m.pending_id IS NOT NULL)`},
		{"claim_reserved", "a claim's reservation equals its frozen debt transfers", `
		SELECT c.app || ' ' || c.bid_no || ' ' || c.holder || ': reserved ' || c.reserved || ', frozen transfers ' || coalesce(d.p, 0)
		FROM escrow_claims c LEFT JOIN (SELECT app, bid_no, seller, sum(principal) AS p FROM escrow_debt_transfers
			WHERE status = 'frozen' GROUP BY app, bid_no, seller) d
			ON d.app = c.app AND d.bid_no = c.bid_no AND d.seller = c.holder
		WHERE c.reserved != coalesce(d.p, 0)`},
		{"withdrawal_holds", "a withdrawal's hold is open exactly while the bank's answer is pending", `
		SELECT o.app || ' ' || o.bill_no || ' (' || o.state || '): hold ' || CASE WHEN h.pending_id IS NULL THEN 'closed' ELSE 'open' END
		FROM escrow_bank_orders o LEFT JOIN ledger_holds h ON h.pending_id = o.hold_id
		WHERE o.direction = 'credit' AND (o.state = 'pending') != (h.pending_id IS NOT NULL)`},
		{"request_states", "every bank-pending request has a pending bank order and every SMS wait a challenge", `
		SELECT r.app || ' ' || r.bill_no || ' (' || r.state || ')'
		FROM escrow_requests r
		LEFT JOIN escrow_bank_orders o ON o.app = r.app AND o.bill_no = r.bill_no
		LEFT JOIN escrow_sms s ON s.app = r.app AND s.bill_no = r.bill_no
		WHERE (r.state = 'bank_pending' AND (o.state IS NULL OR o.state != 'pending'))
		   OR (r.state = 'awaiting_sms' AND s.bill_no IS NULL)`},
	}
}

// Invariants lists the invariants Check verifies: name and meaning.
func Invariants() [][2]string {
	checks := invariants()
	out := make([][2]string, len(checks))
	for i, c := range checks {
		out[i] = [2]string{c.name, c.doc}
	}
	return out
}

// Check verifies that the escrow records agree with the books (run it
// beside ledger.Check, which verifies the books themselves) and returns
// every violation, in one repeatable-read snapshot.
func (s *Service) Check(ctx context.Context) ([]Violation, error) {
	var out []Violation
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		for _, c := range invariants() {
			rows, err := tx.Query(ctx, c.sql)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			details, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			for _, d := range details {
				out = append(out, Violation{Invariant: c.name, Detail: d})
			}
		}
		return nil
	})
	if err != nil {
		return nil, dbError(ctx, err)
	}
	return out, nil
}

// Sweep marks what the ledger's hold expiry returned: frozen bids whose
// holds expired (the listing's deadline passed) become cancelled, and
// frozen debt transfers whose price hold expired are cancelled and free the
// seller's reserved claim. It returns how many it marked. Run it after
// ledger.ExpireHolds (jifu serve does, every minute). A release or transfer
// racing with it waits for the row it locks and then finds it settled.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	var n int
	err := s.inTx(ctx, func(tx pgx.Tx, _ *ledger.Ledger) error {
		tag, err := tx.Exec(ctx, `UPDATE escrow_bids b SET status = 'cancelled'
			WHERE b.status = 'frozen' AND NOT EXISTS (SELECT 1 FROM ledger_holds h WHERE h.pending_id = b.cap_hold_id)
			  AND NOT EXISTS (SELECT 1 FROM ledger_holds h WHERE h.pending_id = b.hold_id)`)
		if err != nil {
			return err
		}
		n = int(tag.RowsAffected())
		var m int
		err = tx.QueryRow(ctx, `
			WITH gone AS (
				UPDATE escrow_debt_transfers d SET status = 'cancelled'
				WHERE d.status = 'frozen' AND NOT EXISTS (SELECT 1 FROM ledger_holds h WHERE h.pending_id = d.hold_id)
				RETURNING d.app, d.bid_no, d.seller, d.principal
			), freed AS (
				UPDATE escrow_claims c SET reserved = c.reserved - g.p
				FROM (SELECT app, bid_no, seller, sum(principal) AS p FROM gone GROUP BY app, bid_no, seller) g
				WHERE c.app = g.app AND c.bid_no = g.bid_no AND c.holder = g.seller
				RETURNING 1
			)
			SELECT count(*) FROM gone`).Scan(&m)
		n += m
		return err
	})
	return n, err
}
