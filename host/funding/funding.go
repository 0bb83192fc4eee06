// Package funding moves money between users' bank accounts and their
// platform wallets through the bank gateway (package bank): top-ups and
// withdrawals, each idempotent per (user, key).
//
// A top-up asks the bank to debit the user's bound account and, once the
// bank confirms, credits the wallet from the ledger's bank account. A
// withdrawal first holds the amount in the wallet (a ledger hold, in the
// transaction that records the request), then asks the bank to pay the
// user's account: on success the hold is posted, on a refusal voided. When
// the bank's answer does not come (a timeout) the request stays unknown and
// the money stays held; Reconcile (jifu serve runs it every few seconds)
// asks the bank for the status of every such request and settles it.
//
//	svc, _ := funding.New(funding.Config{Pool: pool, Ledger: l, Bank: client})
//	_ = svc.BindAccount(ctx, "u1", "6222020200112233445")
//	r, err := svc.Withdraw(ctx, "u1", "w-2026-12-03-1", 10000)
//	// r.State: succeeded, failed (r.Reason), or unknown (held until reconciled)
package funding

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"log/slog"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/bank"
	"github.com/jifu-open/jifu/host/database"
	"github.com/jifu-open/jifu/host/ledger"
	"github.com/jifu-open/jifu/host/payment"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the funding tables.
var Migrations = database.MigrationSet{Name: "funding", FS: database.MustSub(migrationFiles, "migrations")}

// LedgerCaller is the ledger caller (key space) of funding's transfers.
const LedgerCaller = "funding"

// Kind is a request's direction.
type Kind string

// Request kinds.
const (
	TopUp    Kind = "topup"
	Withdraw Kind = "withdraw"
)

// State is a request's progress.
type State string

// Request states. Pending: recorded, the bank asked (or about to be);
// unknown: the bank's answer was lost, Reconcile will ask again; succeeded
// and failed are final.
const (
	StatePending   State = "pending"
	StateUnknown   State = "unknown"
	StateSucceeded State = "succeeded"
	StateFailed    State = "failed"
)

// Request is a top-up or withdrawal as recorded.
type Request struct {
	ID        string // the order id at the bank
	User      string
	Key       string
	Kind      Kind
	Amount    int64  // fen
	Account   string // the bank account, masked
	State     State
	Reason    string // the bank's refusal reason when failed
	BankRef   string
	CreatedAt time.Time
	UpdatedAt time.Time
	Replayed  bool // answered from an earlier request with the same key
}

// Config holds a Service's dependencies.
type Config struct {
	Pool   *pgxpool.Pool
	Ledger *ledger.Ledger
	Bank   bank.Gateway
	// BankName names the bank: the owner id of the ledger's account for it
	// (owner type bank, account "settlement"), also recorded with each
	// request so that Reconcile and CompareStatement ask this bank only
	// about its own requests; default "banksim".
	BankName string
	// MaxAmount bounds one request, in fen; default 5,000,000 (50,000 yuan).
	MaxAmount int64
	// HoldTimeout is how long a withdrawal's hold lives; default 30 days,
	// far beyond any reconciliation delay.
	HoldTimeout time.Duration
	// Grace is how old a pending request must be before Reconcile asks the
	// bank about it (its own call may still be running); default 2 minutes.
	// Unknown requests are asked about at once.
	Grace  time.Duration
	Clock  func() time.Time
	Logger *slog.Logger
}

// Service runs top-ups, withdrawals and their reconciliation. Safe for
// concurrent use.
type Service struct {
	cfg Config
	log *slog.Logger
}

// New returns a Service; Pool, Ledger and Bank are required.
func New(cfg Config) (*Service, error) {
	if cfg.Pool == nil || cfg.Ledger == nil || cfg.Bank == nil {
		return nil, jifu.Errorf(jifu.CodeInvalid, "funding: Pool, Ledger and Bank are required")
	}
	if cfg.BankName == "" {
		cfg.BankName = "banksim"
	}
	if cfg.MaxAmount <= 0 {
		cfg.MaxAmount = 5_000_000
	}
	if cfg.HoldTimeout <= 0 {
		cfg.HoldTimeout = 30 * 24 * time.Hour
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 2 * time.Minute
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	s := &Service{cfg: cfg, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

var keyPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// BindAccount binds user's bank account number (replacing an earlier one):
// the account top-ups debit and withdrawals pay.
func (s *Service) BindAccount(ctx context.Context, user, accountNo string) error {
	if user == "" {
		return jifu.Errorf(jifu.CodeInvalid, "funding: no user")
	}
	if !bank.ValidAccount(accountNo) {
		return jifu.Errorf(jifu.CodeInvalid, "funding: a bank account number has 8 to 32 digits")
	}
	_, err := s.cfg.Pool.Exec(ctx, `INSERT INTO funding_accounts (user_id, account_no, bound_at) VALUES ($1, $2, $3)
		ON CONFLICT (user_id) DO UPDATE SET account_no = EXCLUDED.account_no, bound_at = EXCLUDED.bound_at`,
		user, accountNo, s.cfg.Clock())
	return dbError(ctx, err)
}

// BoundAccount returns user's bound account number (in full: mask it with
// bank.Mask before showing or logging it); CodeNotFound when none is bound.
func (s *Service) BoundAccount(ctx context.Context, user string) (string, error) {
	var no string
	err := s.cfg.Pool.QueryRow(ctx, `SELECT account_no FROM funding_accounts WHERE user_id = $1`, user).Scan(&no)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", jifu.Errorf(jifu.CodeNotFound, "funding: no bank account bound")
	}
	return no, dbError(ctx, err)
}

// Wallet is a user's wallet as the funding page shows it.
type Wallet struct {
	Available int64 // spendable fen
	Held      int64 // fen held by withdrawals (and payments) in flight
}

// Wallet returns user's wallet figures (zero when the wallet does not exist yet).
func (s *Service) Wallet(ctx context.Context, user string) (Wallet, error) {
	a, err := s.cfg.Ledger.FindAccount(ctx, ledger.Owner{Type: ledger.OwnerUser, ID: user}, "wallet")
	if errors.Is(err, ledger.ErrNotFound) {
		return Wallet{}, nil
	}
	if err != nil {
		return Wallet{}, err
	}
	b, err := s.cfg.Ledger.Balance(ctx, a.ID)
	if err != nil {
		return Wallet{}, err
	}
	return Wallet{Available: max(b.Available(), 0), Held: b.DebitsPending}, nil
}

// TopUp debits amount fen from user's bound bank account into the wallet.
// key is the caller's idempotency key: the same key and amount return the
// request as it stands (Replayed), another amount or kind is CodeConflict.
// A bank refusal is a failed request, not an error; an error means nothing
// was recorded (bad input, no bound account) or the database failed.
func (s *Service) TopUp(ctx context.Context, user, key string, amount int64) (Request, error) {
	return s.start(ctx, TopUp, user, key, amount)
}

// Withdraw holds amount fen of user's wallet and pays it to the bound bank
// account; see TopUp for keys and errors. An empty wallet is refused with
// ledger.ErrInsufficientFunds (nothing recorded).
func (s *Service) Withdraw(ctx context.Context, user, key string, amount int64) (Request, error) {
	return s.start(ctx, Withdraw, user, key, amount)
}

func (s *Service) start(ctx context.Context, kind Kind, user, key string, amount int64) (Request, error) {
	switch {
	case user == "":
		return Request{}, jifu.Errorf(jifu.CodeInvalid, "funding: no user")
	case !keyPattern.MatchString(key):
		return Request{}, jifu.Errorf(jifu.CodeInvalid, "funding: key must be 1 to 64 of [A-Za-z0-9._:-]")
	case amount <= 0 || amount > s.cfg.MaxAmount:
		return Request{}, jifu.Errorf(jifu.CodeInvalid, "funding: amount must be between 0.01 and %s yuan", ledger.Yuan(s.cfg.MaxAmount))
	}
	if r, err := s.byKey(ctx, s.cfg.Pool, user, key); err == nil {
		return replay(r, kind, amount)
	} else if jifu.ErrorCode(err) != jifu.CodeNotFound {
		return Request{}, err
	}
	accountNo, err := s.BoundAccount(ctx, user)
	if err != nil {
		return Request{}, err
	}
	id, err := newID()
	if err != nil {
		return Request{}, err
	}
	var (
		r        Request
		existing bool
	)
	err = pgx.BeginFunc(ctx, s.cfg.Pool, func(tx pgx.Tx) error {
		now := s.cfg.Clock()
		tag, err := tx.Exec(ctx, `INSERT INTO funding_requests (id, bank, user_id, key, kind, amount, account_no, state, created_at, updated_at)
			VALUES ($1, $8, $2, $3, $4, $5, $6, 'pending', $7, $7) ON CONFLICT (user_id, key) DO NOTHING`,
			id, user, key, string(kind), amount, accountNo, now, s.cfg.BankName)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 { // a concurrent request with this key committed first
			existing = true
			r, err = s.byKey(ctx, tx, user, key)
			return err
		}
		if kind == Withdraw {
			if err := s.hold(ctx, tx, id, user, amount); err != nil {
				return err
			}
		}
		r, err = s.byKey(ctx, tx, user, key)
		return err
	})
	if err != nil {
		return Request{}, dbError(ctx, err)
	}
	if existing {
		return replay(r, kind, amount)
	}
	o := bank.Order{ID: id, Account: accountNo, Amount: amount}
	var res bank.Result
	if kind == TopUp {
		o.Memo = "Jifu top-up"
		res, err = s.cfg.Bank.Debit(ctx, o)
	} else {
		o.Memo = "Jifu withdrawal"
		res, err = s.cfg.Bank.Credit(ctx, o)
	}
	if err != nil {
		s.log.WarnContext(ctx, "funding: bank call", "id", id, "kind", kind, "account", bank.Mask(accountNo), "status", res.Status, "err", err)
	}
	return s.settle(ctx, id, res)
}

// hold places a withdrawal's hold: wallet to the bank's account.
func (s *Service) hold(ctx context.Context, tx pgx.Tx, id, user string, amount int64) error {
	l := s.cfg.Ledger.WithTx(tx)
	w, err := payment.OpenWallet(ctx, l, user)
	if err != nil {
		return err
	}
	b, err := s.bankAccount(ctx, l)
	if err != nil {
		return err
	}
	h, err := l.Transfer(ctx, LedgerCaller, ledger.Transfer{ID: id + "/hold", Debit: w.ID, Credit: b.ID, Amount: amount,
		Code: "withdraw", Pending: true, Timeout: s.cfg.HoldTimeout, Metadata: map[string]string{"funding": id}})
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE funding_requests SET hold_id = $2 WHERE id = $1`, id, h.ID)
	return err
}

func (s *Service) bankAccount(ctx context.Context, l *ledger.Ledger) (ledger.Account, error) {
	return l.CreateAccount(ctx, ledger.AccountSpec{Owner: ledger.Owner{Type: ledger.OwnerBank, ID: s.cfg.BankName}, Name: "settlement"})
}

// replay answers a repeated key: the stored request when it asked for the
// same thing, CodeConflict otherwise.
func replay(r Request, kind Kind, amount int64) (Request, error) {
	if r.Kind != kind || r.Amount != amount {
		return Request{}, jifu.Errorf(jifu.CodeConflict, "funding: key %q was used for another request", r.Key)
	}
	r.Replayed = true
	return r, nil
}

// settle books the bank's outcome of request id once: a success credits
// the wallet (top-up) or posts the hold (withdrawal), a refusal voids the
// hold; Unknown marks a pending request unknown. A request already settled
// is returned as it is.
func (s *Service) settle(ctx context.Context, id string, res bank.Result) (Request, error) {
	if res.Status != bank.Succeeded && res.Status != bank.Failed {
		_, err := s.cfg.Pool.Exec(ctx, `UPDATE funding_requests SET state = 'unknown', updated_at = $2 WHERE id = $1 AND state = 'pending'`,
			id, s.cfg.Clock())
		if err != nil {
			return Request{}, dbError(ctx, err)
		}
		return s.byID(ctx, id)
	}
	var r Request
	err := pgx.BeginFunc(ctx, s.cfg.Pool, func(tx pgx.Tx) error {
		var (
			user, kind, state string
			amount            int64
			hold              *int64
		)
		err := tx.QueryRow(ctx, `SELECT user_id, kind, amount, state, hold_id FROM funding_requests WHERE id = $1 FOR UPDATE`, id).
			Scan(&user, &kind, &amount, &state, &hold)
		if err != nil {
			return err
		}
		if state == string(StateSucceeded) || state == string(StateFailed) {
			return nil
		}
		l := s.cfg.Ledger.WithTx(tx)
		meta := map[string]string{"funding": id, "bank_ref": res.BankRef}
		switch {
		case res.Status == bank.Succeeded && Kind(kind) == TopUp:
			w, err := payment.OpenWallet(ctx, l, user)
			if err != nil {
				return err
			}
			b, err := s.bankAccount(ctx, l)
			if err != nil {
				return err
			}
			if _, err := l.Transfer(ctx, LedgerCaller, ledger.Transfer{ID: id + "/credit", Debit: b.ID, Credit: w.ID,
				Amount: amount, Code: "topup", Metadata: meta}); err != nil {
				return err
			}
		case res.Status == bank.Succeeded:
			if hold == nil {
				return jifu.Errorf(jifu.CodeInternal, "funding: withdrawal %s has no hold", id)
			}
			if _, err := l.PostPending(ctx, LedgerCaller, id+"/post", *hold, 0); err != nil {
				s.log.ErrorContext(ctx, "funding: the bank paid a withdrawal whose hold cannot be posted", "id", id, "err", err)
				return err
			}
		case hold != nil: // a refused withdrawal
			if _, err := l.VoidPending(ctx, LedgerCaller, id+"/void", *hold); err != nil && !errors.Is(err, ledger.ErrHoldResolved) {
				return err
			}
		}
		_, err = tx.Exec(ctx, `UPDATE funding_requests SET state = $2, reason = $3, bank_ref = $4, updated_at = $5 WHERE id = $1`,
			id, string(res.Status), res.Reason, res.BankRef, s.cfg.Clock())
		return err
	})
	if err != nil {
		return Request{}, dbError(ctx, err)
	}
	r, err = s.byID(ctx, id)
	if err == nil && r.State == StateFailed {
		s.log.InfoContext(ctx, "funding: refused by the bank", "id", id, "kind", r.Kind, "reason", r.Reason)
	}
	return r, err
}

// ReconcileResult counts what one Reconcile pass did.
type ReconcileResult struct {
	Settled    int // requests the bank's status answer settled
	Unresolved int // requests whose status query failed, or whose booking failed (tried again next pass)
}

// Reconcile asks the bank the status of every unknown request and of
// every pending one older than Grace (a crash between recording and
// calling the bank leaves those), at most limit of them (0: 500), and
// settles each. A status query is final (the bank closes ids it never
// received), so each settled request is settled for good.
func (s *Service) Reconcile(ctx context.Context, limit int) (ReconcileResult, error) {
	if limit <= 0 {
		limit = 500
	}
	var out ReconcileResult
	rows, err := s.cfg.Pool.Query(ctx, `SELECT id FROM funding_requests
		WHERE bank = $3 AND (state = 'unknown' OR (state = 'pending' AND updated_at < $1)) ORDER BY updated_at LIMIT $2`,
		s.cfg.Clock().Add(-s.cfg.Grace), limit, s.cfg.BankName)
	if err != nil {
		return out, dbError(ctx, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return out, dbError(ctx, err)
	}
	for _, id := range ids {
		res, err := s.cfg.Bank.Status(ctx, id)
		if res.Status != bank.Succeeded && res.Status != bank.Failed {
			s.log.WarnContext(ctx, "funding: status query unanswered", "id", id, "err", err)
			out.Unresolved++
			continue
		}
		if _, err := s.settle(ctx, id, res); err != nil {
			if ctx.Err() != nil {
				return out, err
			}
			// The bank's answer stands; booking it failed (a withdrawal the
			// bank paid whose hold can no longer be posted needs a person).
			s.log.ErrorContext(ctx, "funding: cannot book the bank's outcome", "id", id, "status", res.Status, "err", err)
			out.Unresolved++
			continue
		}
		out.Settled++
	}
	return out, nil
}

// Run calls Reconcile every interval until ctx ends.
func (s *Service) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if r, err := s.Reconcile(ctx, 0); err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "funding: reconcile", "err", err)
			} else if r.Settled > 0 {
				s.log.InfoContext(ctx, "funding: reconciled", "settled", r.Settled, "unresolved", r.Unresolved)
			}
		}
	}
}

// History returns user's requests, newest first, at most limit (0: 50).
func (s *Service) History(ctx context.Context, user string, limit int) ([]Request, error) {
	if limit <= 0 {
		limit = 50
	}
	rows, err := s.cfg.Pool.Query(ctx, `SELECT `+requestColumns+` FROM funding_requests WHERE user_id = $1
		ORDER BY created_at DESC, id LIMIT $2`, user, limit)
	if err != nil {
		return nil, dbError(ctx, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Request, error) { return scanRequest(row) })
	return out, dbError(ctx, err)
}

// Request returns the request id; CodeNotFound when there is none.
func (s *Service) Request(ctx context.Context, id string) (Request, error) { return s.byID(ctx, id) }

const requestColumns = `id, user_id, key, kind, amount, account_no, state, reason, bank_ref, created_at, updated_at`

func scanRequest(row pgx.Row) (Request, error) {
	var r Request
	var kind, state, account string
	err := row.Scan(&r.ID, &r.User, &r.Key, &kind, &r.Amount, &account, &state, &r.Reason, &r.BankRef, &r.CreatedAt, &r.UpdatedAt)
	r.Kind, r.State, r.Account = Kind(kind), State(state), bank.Mask(account)
	return r, err
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (s *Service) byKey(ctx context.Context, q querier, user, key string) (Request, error) {
	r, err := scanRequest(q.QueryRow(ctx, `SELECT `+requestColumns+` FROM funding_requests WHERE user_id = $1 AND key = $2`, user, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, jifu.Errorf(jifu.CodeNotFound, "funding: no request with key %q", key)
	}
	return r, err
}

func (s *Service) byID(ctx context.Context, id string) (Request, error) {
	r, err := scanRequest(s.cfg.Pool.QueryRow(ctx, `SELECT `+requestColumns+` FROM funding_requests WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, jifu.Errorf(jifu.CodeNotFound, "funding: no request %q", id)
	}
	return r, dbError(ctx, err)
}

func newID() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", jifu.Errorf(jifu.CodeInternal, "funding: random id: %w", err)
	}
	return "jf" + hex.EncodeToString(b), nil
}

func dbError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*jifu.Error](err); ok {
		return err
	}
	if ctx.Err() != nil {
		return jifu.Errorf(jifu.CodeUnavailable, "funding: %w", err)
	}
	return jifu.Errorf(jifu.CodeInternal, "funding: database: %w", err)
}
