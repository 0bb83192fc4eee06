package funding

import (
	"context"
	"time"

	"github.com/jifu-open/jifu/host/bank"
)

// Difference is one disagreement between the bank's daily statement and
// funding's records.
type Difference struct {
	ID         string
	Kind       Kind
	BankAmount int64 // fen on the statement; 0 when the bank did not execute it
	OurAmount  int64 // fen in our records; 0 when we have no such request
	OurState   State // "" when we have no such request
}

// CompareStatement fetches the bank's statement of day's date (China
// Standard Time) and lists every difference from funding's records: an
// executed order we do not hold as succeeded with the same amount, and a
// request we hold as succeeded, started that day, that the bank did not
// execute that day. Unknown requests show up here until Reconcile settles
// them; a request started just before midnight may be booked by the bank
// the next day and appears in both days' lists.
func (s *Service) CompareStatement(ctx context.Context, day time.Time) ([]Difference, error) {
	st, err := s.cfg.Bank.Statement(ctx, day)
	if err != nil {
		return nil, err
	}
	y, m, d := day.In(bank.CST).Date()
	start := time.Date(y, m, d, 0, 0, 0, 0, bank.CST)
	rows, err := s.cfg.Pool.Query(ctx, `SELECT `+requestColumns+` FROM funding_requests
		WHERE bank = $4 AND ((created_at >= $1 AND created_at < $2 AND state = 'succeeded') OR id = ANY($3))`,
		start, start.AddDate(0, 0, 1), lineIDs(st), s.cfg.BankName)
	if err != nil {
		return nil, dbError(ctx, err)
	}
	ours := map[string]Request{}
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			rows.Close()
			return nil, dbError(ctx, err)
		}
		ours[r.ID] = r
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, dbError(ctx, err)
	}
	var out []Difference
	seen := map[string]bool{}
	for _, l := range st.Lines {
		seen[l.ID] = true
		r, ok := ours[l.ID]
		if ok && r.State == StateSucceeded && r.Amount == l.Amount && string(r.Kind) == kindOf(l.Kind) {
			continue
		}
		out = append(out, Difference{ID: l.ID, Kind: Kind(kindOf(l.Kind)), BankAmount: l.Amount, OurAmount: r.Amount, OurState: r.State})
	}
	for id, r := range ours {
		if !seen[id] && r.State == StateSucceeded {
			out = append(out, Difference{ID: id, Kind: r.Kind, OurAmount: r.Amount, OurState: r.State})
		}
	}
	return out, nil
}

func lineIDs(st bank.Statement) []string {
	ids := make([]string, len(st.Lines))
	for i, l := range st.Lines {
		ids[i] = l.ID
	}
	return ids
}

// kindOf maps a bank order kind to a funding kind: the bank debits the
// user's account for a top-up and credits it for a withdrawal.
func kindOf(k bank.Kind) string {
	if k == bank.Debit {
		return string(TopUp)
	}
	return string(Withdraw)
}
