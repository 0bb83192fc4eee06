package ledger

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jifu-open/jifu"
)

// retry retries deadlocks, serialization failures and lost key races,
// counts them, and leaves other errors and caller transactions alone.
func TestRetry(t *testing.T) {
	ctx := context.Background()
	deadlock := &pgconn.PgError{Code: "40P01"}
	serialization := &pgconn.PgError{Code: "40001"}
	keyRace := &pgconn.PgError{Code: "23505", ConstraintName: "ledger_transfers_caller_key_key"}
	otherUnique := &pgconn.PgError{Code: "23505", ConstraintName: "something_else"}
	refusal := fail(ErrInsufficientFunds, "account 1")

	cases := []struct {
		name      string
		inTx      bool
		errs      []error // what fn returns at each attempt; nil after the list ends
		wantCalls int
		wantErr   error  // errors.Is target; nil for success
		wantCode  string // jifu code when failing
		retries   int64
		deadlocks int64
	}{
		{"success", false, nil, 1, nil, "", 0, 0},
		{"deadlock then success", false, []error{deadlock, deadlock}, 3, nil, "", 2, 2},
		{"serialization then success", false, []error{serialization}, 2, nil, "", 1, 0},
		{"lost key race then replay", false, []error{keyRace, errRetryInternal}, 3, nil, "", 2, 0},
		{"refusal is final", false, []error{refusal}, 1, ErrInsufficientFunds, jifu.CodeConflict, 0, 0},
		{"other unique violation is final", false, []error{otherUnique}, 1, otherUnique, "", 0, 0},
		{"gives up", false, []error{deadlock, deadlock, deadlock, deadlock, deadlock, deadlock, deadlock, deadlock, deadlock, deadlock, deadlock, deadlock},
			maxAttempts, deadlock, jifu.CodeUnavailable, maxAttempts - 1, maxAttempts - 1},
		{"in a transaction: deadlock aborts it", true, []error{deadlock}, 1, deadlock, jifu.CodeConflict, 0, 0},
		{"in a transaction: lost race, then replay", true, []error{errRetryInternal}, 2, nil, "", 0, 0},
		{"in a transaction: lost race twice", true, []error{errRetryInternal, errRetryInternal}, 2, ErrRetry, jifu.CodeConflict, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			l := &Ledger{inTx: tc.inTx, log: New(nil).log, stats: &counters{}}
			WithMetrics(reg)(l)
			calls := 0
			err := l.retry(ctx, "test", func() error {
				calls++
				if calls <= len(tc.errs) {
					return tc.errs[calls-1]
				}
				return nil
			})
			if calls != tc.wantCalls {
				t.Errorf("%d calls, want %d", calls, tc.wantCalls)
			}
			switch {
			case tc.wantErr == nil && err != nil:
				t.Errorf("err = %v, want success", err)
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			case tc.wantCode != "" && jifu.ErrorCode(err) != tc.wantCode:
				t.Errorf("code = %s, want %s", jifu.ErrorCode(err), tc.wantCode)
			}
			if s := l.Stats(); s.Retries != tc.retries || s.Deadlocks != tc.deadlocks {
				t.Errorf("stats %+v, want %d retries, %d deadlocks", s, tc.retries, tc.deadlocks)
			}
			if got := counted(t, reg, "deadlock"); int64(got) != tc.deadlocks {
				t.Errorf("deadlock counter %v, want %d", got, tc.deadlocks)
			}
		})
	}
}

// counted reads jifu_ledger_retries_total{reason} from reg.
func counted(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "jifu_ledger_retries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "reason" && lp.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
