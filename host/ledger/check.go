package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Violation is one broken invariant: its stable name and what breaks it.
type Violation struct {
	Invariant string // one of the Invariants
	Detail    string
}

func (v Violation) String() string { return v.Invariant + ": " + v.Detail }

// invariant is a query returning one row (a single text column) per breach.
type invariant struct {
	name, doc, query string
}

// The ledger's invariants, checked in this order.
var invariants = []invariant{
	{"zero_sum", "per currency, all debits equal all credits, posted and pending", `
		SELECT format('currency %s: debits posted %s, credits posted %s, debits pending %s, credits pending %s',
		              currency, sum(debits_posted), sum(credits_posted), sum(debits_pending), sum(credits_pending))
		FROM ledger_accounts GROUP BY currency
		HAVING sum(debits_posted) <> sum(credits_posted) OR sum(debits_pending) <> sum(credits_pending)`},
	{"balance_equals_entries", "each account's four totals equal the sums of its entries", `
		SELECT format('account %s: stored (dp %s, dd %s, cp %s, cd %s), entries (dp %s, dd %s, cp %s, cd %s)',
		              a.id, a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted,
		              coalesce(e.dp, 0), coalesce(e.dd, 0), coalesce(e.cp, 0), coalesce(e.cd, 0))
		FROM ledger_accounts a
		LEFT JOIN (SELECT account_id,
		                  sum(pending) FILTER (WHERE side = 'D') AS dp, sum(posted) FILTER (WHERE side = 'D') AS dd,
		                  sum(pending) FILTER (WHERE side = 'C') AS cp, sum(posted) FILTER (WHERE side = 'C') AS cd
		             FROM ledger_entries GROUP BY account_id) e ON e.account_id = a.id
		WHERE a.debits_pending <> coalesce(e.dp, 0) OR a.debits_posted <> coalesce(e.dd, 0)
		   OR a.credits_pending <> coalesce(e.cp, 0) OR a.credits_posted <> coalesce(e.cd, 0)`},
	{"two_equal_entries", "each transfer has exactly a debit entry on its debit account and an equal credit entry on its credit account", `
		SELECT format('transfer %s: debit entry %s, credit entry %s', t.id,
		              coalesce(d.account_id || ' (' || d.pending || '/' || d.posted || ')', 'missing'),
		              coalesce(c.account_id || ' (' || c.pending || '/' || c.posted || ')', 'missing'))
		FROM ledger_transfers t
		LEFT JOIN ledger_entries d ON d.transfer_id = t.id AND d.side = 'D'
		LEFT JOIN ledger_entries c ON c.transfer_id = t.id AND c.side = 'C'
		WHERE d.transfer_id IS NULL OR c.transfer_id IS NULL
		   OR d.account_id <> t.debit_id OR c.account_id <> t.credit_id
		   OR d.pending <> c.pending OR d.posted <> c.posted
		UNION ALL
		SELECT format('entry of transfer %s without its transfer', e.transfer_id)
		FROM ledger_entries e LEFT JOIN ledger_transfers t ON t.id = e.transfer_id WHERE t.id IS NULL`},
	{"entries_match_kind", "each entry moves what its transfer's kind says", `
		SELECT format('transfer %s (%s, amount %s): entry pending %s, posted %s', t.id, t.kind, t.amount, e.pending, e.posted)
		FROM ledger_transfers t
		JOIN ledger_entries e ON e.transfer_id = t.id AND e.side = 'D'
		LEFT JOIN ledger_transfers p ON p.id = t.pending_id
		WHERE CASE t.kind
		        WHEN 'posted'  THEN e.pending <> 0 OR e.posted <> t.amount OR t.amount <= 0
		        WHEN 'pending' THEN e.pending <> t.amount OR e.posted <> 0 OR t.amount <= 0 OR t.timeout_at IS NULL
		        WHEN 'post'    THEN p.id IS NULL OR e.pending <> -p.amount OR e.posted <> t.amount
		                            OR t.amount <= 0 OR t.amount > p.amount
		        ELSE p.id IS NULL OR e.pending <> -p.amount OR e.posted <> 0 OR t.amount <> p.amount
		      END`},
	{"flags_respected", "no account breaks its balance flags (pending debits and credits counted pessimistically)", `
		SELECT format('account %s (flags %s): debits pending %s + posted %s, credits pending %s + posted %s',
		              id, flags, debits_pending, debits_posted, credits_pending, credits_posted)
		FROM ledger_accounts
		WHERE ((flags & 1) <> 0 AND debits_pending + debits_posted > credits_posted)
		   OR ((flags & 2) <> 0 AND credits_pending + credits_posted > debits_posted)`},
	{"hold_resolved_once", "each hold is posted, voided or expired at most once, by a resolution of a hold", `
		SELECT format('hold %s resolved %s times', pending_id, count(*))
		FROM ledger_transfers WHERE pending_id IS NOT NULL GROUP BY pending_id HAVING count(*) > 1
		UNION ALL
		SELECT format('transfer %s (%s) resolves %s, which is not a hold', t.id, t.kind, t.pending_id)
		FROM ledger_transfers t LEFT JOIN ledger_transfers p ON p.id = t.pending_id
		WHERE (t.kind IN ('post', 'void', 'expire')) <> (t.pending_id IS NOT NULL)
		   OR (t.pending_id IS NOT NULL AND (p.kind IS DISTINCT FROM 'pending'
		       OR p.debit_id <> t.debit_id OR p.credit_id <> t.credit_id))`},
	{"open_holds_match", "the open holds are exactly the unresolved pending transfers", `
		SELECT format('hold %s: %s', coalesce(p.id, h.pending_id),
		              CASE WHEN h.pending_id IS NULL THEN 'unresolved but not open'
		                   WHEN p.id IS NULL THEN 'open but resolved or not a hold'
		                   ELSE 'open hold differs from its transfer' END)
		FROM (SELECT t.* FROM ledger_transfers t
		       WHERE t.kind = 'pending'
		         AND t.id NOT IN (SELECT pending_id FROM ledger_transfers WHERE pending_id IS NOT NULL)) p
		FULL JOIN ledger_holds h ON h.pending_id = p.id
		WHERE p.id IS NULL OR h.pending_id IS NULL
		   OR h.debit_id <> p.debit_id OR h.credit_id <> p.credit_id OR h.amount <> p.amount
		   OR h.timeout_at <> p.timeout_at`},
	{"pending_equals_holds", "each account's pending totals equal its open holds", `
		SELECT format('account %s: pending debits %s, credits %s; open holds debit %s, credit %s',
		              a.id, a.debits_pending, a.credits_pending, coalesce(d.s, 0), coalesce(c.s, 0))
		FROM ledger_accounts a
		LEFT JOIN (SELECT debit_id, sum(amount) AS s FROM ledger_holds GROUP BY debit_id) d ON d.debit_id = a.id
		LEFT JOIN (SELECT credit_id, sum(amount) AS s FROM ledger_holds GROUP BY credit_id) c ON c.credit_id = a.id
		WHERE a.debits_pending <> coalesce(d.s, 0) OR a.credits_pending <> coalesce(c.s, 0)`},
	{"transfer_accounts", "each transfer joins two distinct accounts of one currency", `
		SELECT format('transfer %s: debit %s (%s), credit %s (%s)', t.id, t.debit_id, d.currency, t.credit_id, c.currency)
		FROM ledger_transfers t
		LEFT JOIN ledger_accounts d ON d.id = t.debit_id
		LEFT JOIN ledger_accounts c ON c.id = t.credit_id
		WHERE d.id IS NULL OR c.id IS NULL OR t.debit_id = t.credit_id OR d.currency <> c.currency`},
}

// Invariants returns the names and descriptions of what Check verifies.
func Invariants() [][2]string {
	out := make([][2]string, len(invariants))
	for i, inv := range invariants {
		out[i] = [2]string{inv.name, inv.doc}
	}
	return out
}

// maxPerInvariant bounds how many breaches of one invariant Check lists.
const maxPerInvariant = 20

// Check verifies every invariant of the books and returns the violations
// found (none: the books are sound). It reads one consistent snapshot
// (a REPEATABLE READ, read-only transaction) unless the Ledger runs in a
// caller's transaction, whose snapshot it then uses.
func (l *Ledger) Check(ctx context.Context) ([]Violation, error) {
	db := l.db
	if pool, ok := l.db.(*pgxpool.Pool); ok {
		tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			return nil, dbError(ctx, "check", err)
		}
		defer tx.Rollback(context.WithoutCancel(ctx))
		db = tx
	}
	var out []Violation
	for _, inv := range invariants {
		rows, err := db.Query(ctx, inv.query+fmt.Sprintf(" LIMIT %d", maxPerInvariant))
		if err != nil {
			return nil, dbError(ctx, "check "+inv.name, err)
		}
		for rows.Next() {
			var d string
			if err := rows.Scan(&d); err != nil {
				rows.Close()
				return nil, dbError(ctx, "check "+inv.name, err)
			}
			out = append(out, Violation{Invariant: inv.name, Detail: d})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, dbError(ctx, "check "+inv.name, err)
		}
	}
	return out, nil
}

// ReportRow is one line of a day's report: the posted money that moved on
// the accounts of one owner type for one transfer code.
type ReportRow struct {
	OwnerType OwnerType
	Code      string
	Debits    int64 // fen posted to debit entries
	Credits   int64 // fen posted to credit entries
	Transfers int64 // transfers with an entry here
}

// Report returns the totals of the day that starts at the midnight of day
// in day's location (China Standard Time for `jifu ledger report`), per
// account owner type and transfer code, ordered by both. Only posted money
// counts: placing a hold moves none, posting it moves what was posted.
func (l *Ledger) Report(ctx context.Context, day time.Time) ([]ReportRow, error) {
	y, m, d := day.Date()
	from := time.Date(y, m, d, 0, 0, 0, 0, day.Location())
	to := from.AddDate(0, 0, 1)
	rows, err := l.db.Query(ctx, `
		SELECT a.owner_type, t.code,
		       coalesce(sum(e.posted) FILTER (WHERE e.side = 'D'), 0)::bigint,
		       coalesce(sum(e.posted) FILTER (WHERE e.side = 'C'), 0)::bigint,
		       count(DISTINCT t.id)
		FROM ledger_transfers t
		JOIN ledger_entries e ON e.transfer_id = t.id
		JOIN ledger_accounts a ON a.id = e.account_id
		WHERE t.created_at >= $1 AND t.created_at < $2 AND e.posted > 0
		GROUP BY a.owner_type, t.code
		ORDER BY a.owner_type, t.code`, from, to)
	if err != nil {
		return nil, dbError(ctx, "report", err)
	}
	defer rows.Close()
	var out []ReportRow
	for rows.Next() {
		var r ReportRow
		var ot string
		if err := rows.Scan(&ot, &r.Code, &r.Debits, &r.Credits, &r.Transfers); err != nil {
			return nil, dbError(ctx, "report", err)
		}
		r.OwnerType = OwnerType(ot)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError(ctx, "report", err)
	}
	return out, nil
}
