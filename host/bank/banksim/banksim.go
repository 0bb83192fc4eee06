// Package banksim is a faithful local stand-in for the outside bank: a peer
// that speaks the protocol of package bank over HTTP, keeps its own
// customers' accounts in PostgreSQL (migration set "banksim", tables no
// platform code reads), refuses overdrafts, executes each order id at most
// once, answers status queries (closing ids it never received) and gives
// daily statements. Latency and failures are injected on purpose (Faults):
// a refusal, or a lost answer (the order executed or not, the caller cannot
// tell) that only a status query settles.
//
//	sim, _ := banksim.New(banksim.Config{Pool: pool, Merchants: []banksim.Merchant{{ID: "jifu", Secret: secret, Account: "9558800000000001"}}})
//	_ = sim.OpenAccount(ctx, "9558800000000001", "Jifu settlement", 1_000_000_00)
//	_ = sim.OpenAccount(ctx, "6222020200112233445", "u1", 5_000_00)
//	sim.SetFaults(banksim.Faults{FailRate: 0.1, TimeoutRate: 0.05, ExecuteLost: 0.5, Delay: 20 * time.Millisecond})
//	http.Serve(ln, sim) // or `jifu banksim`, its own process
//
// Account numbers appear in its logs masked (bank.Mask).
package banksim

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/bank"
	"github.com/jifu-open/jifu/host/database"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the simulated bank's tables.
var Migrations = database.MigrationSet{Name: "banksim", FS: database.MustSub(migrationFiles, "migrations")}

// Merchant is a client of the bank (the platform): its id, the shared HMAC
// secret, and its settlement account, the other side of every order.
type Merchant struct {
	ID      string
	Secret  []byte
	Account string
}

// Faults is the injected misbehaviour. Each order first waits Delay plus a
// random part of Jitter; then with probability FailRate it is declined
// (recorded: a repeat gets the same refusal), and otherwise with
// probability TimeoutRate its answer is lost: with probability ExecuteLost
// the order executes first, otherwise it never does; either way the bank
// holds the connection until the caller gives up (or HangMax). Status
// queries and statements are not faulted.
type Faults struct {
	FailRate    float64
	TimeoutRate float64
	ExecuteLost float64
	Delay       time.Duration
	Jitter      time.Duration
}

// Config holds the bank's dependencies.
type Config struct {
	Pool      *pgxpool.Pool // a database migrated with Migrations
	Merchants []Merchant
	Faults    Faults
	Logger    *slog.Logger
	Clock     func() time.Time // default time.Now
	Seed      uint64           // seeds the fault dice; 0: random
	// HangMax bounds how long a lost answer holds the connection; default 30 s.
	HangMax time.Duration
}

// Server is the bank: an http.Handler over its books. Safe for concurrent use.
type Server struct {
	cfg       Config
	log       *slog.Logger
	merchants map[string]Merchant
	mux       *http.ServeMux

	mu     sync.Mutex
	faults Faults
	dice   *rand.Rand
}

// New returns the bank. Each merchant needs an id, a secret of 16 bytes or
// more and a well-formed settlement account number (opened with
// OpenAccount).
func New(cfg Config) (*Server, error) {
	if cfg.Pool == nil || len(cfg.Merchants) == 0 {
		return nil, jifu.Errorf(jifu.CodeInvalid, "banksim: a pool and at least one merchant are required")
	}
	s := &Server{cfg: cfg, log: cfg.Logger, merchants: map[string]Merchant{}, faults: cfg.Faults}
	for _, m := range cfg.Merchants {
		if m.ID == "" || len(m.Secret) < 16 || !bank.ValidAccount(m.Account) {
			return nil, jifu.Errorf(jifu.CodeInvalid, "banksim: merchant %q needs an id, a 16-byte secret and a settlement account", m.ID)
		}
		s.merchants[m.ID] = m
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.cfg.Clock == nil {
		s.cfg.Clock = time.Now
	}
	if s.cfg.HangMax <= 0 {
		s.cfg.HangMax = 30 * time.Second
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	s.dice = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("POST /v1/orders", s.order)
	s.mux.HandleFunc("GET /v1/orders/{id}", s.status)
	s.mux.HandleFunc("GET /v1/statements/{date}", s.statement)
	return s, nil
}

// SetFaults replaces the injected misbehaviour for the orders that follow.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// OpenAccount opens account no for holder with an opening balance in fen.
// Opening an existing account changes nothing.
func (s *Server) OpenAccount(ctx context.Context, no, holder string, balance int64) error {
	if !bank.ValidAccount(no) || balance < 0 {
		return jifu.Errorf(jifu.CodeInvalid, "banksim: account %s or opening balance is malformed", bank.Mask(no))
	}
	_, err := s.cfg.Pool.Exec(ctx, `INSERT INTO banksim_accounts (account_no, holder, balance) VALUES ($1, $2, $3)
		ON CONFLICT (account_no) DO NOTHING`, no, holder, balance)
	return dbError(err)
}

// Balance returns the balance of account no in fen.
func (s *Server) Balance(ctx context.Context, no string) (int64, error) {
	var b int64
	err := s.cfg.Pool.QueryRow(ctx, `SELECT balance FROM banksim_accounts WHERE account_no = $1`, no).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, jifu.Errorf(jifu.CodeNotFound, "banksim: no account %s", bank.Mask(no))
	}
	return b, dbError(err)
}

// Freeze freezes (or unfreezes) account no: a frozen account takes no orders.
func (s *Server) Freeze(ctx context.Context, no string, frozen bool) error {
	tag, err := s.cfg.Pool.Exec(ctx, `UPDATE banksim_accounts SET frozen = $2 WHERE account_no = $1`, no, frozen)
	if err != nil {
		return dbError(err)
	}
	if tag.RowsAffected() == 0 {
		return jifu.Errorf(jifu.CodeNotFound, "banksim: no account %s", bank.Mask(no))
	}
	return nil
}

// roll decides an order's faults.
func (s *Server) roll() (delay time.Duration, fail, lose, executeFirst bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults
	delay = f.Delay
	if f.Jitter > 0 {
		delay += time.Duration(s.dice.Int64N(int64(f.Jitter)))
	}
	x := s.dice.Float64()
	fail = x < f.FailRate
	lose = !fail && x < f.FailRate+f.TimeoutRate
	executeFirst = s.dice.Float64() < f.ExecuteLost
	return
}

// authenticate reads the body (bounded) and checks the merchant's signature.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (Merchant, []byte, bool) {
	m, ok := s.merchants[r.Header.Get(bank.HeaderMerchant)]
	if !ok {
		s.fail(w, r, Merchant{}, http.StatusUnauthorized, "denied", "unknown merchant")
		return m, nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, bank.MaxBodyBytes))
	if err != nil {
		s.fail(w, r, m, http.StatusRequestEntityTooLarge, "too_large", "body over the limit")
		return m, nil, false
	}
	if err := bank.Verify(r.Header, m.Secret, s.cfg.Clock(), r.Method, r.URL.Path, body); err != nil {
		s.fail(w, r, m, http.StatusUnauthorized, "denied", jifu.ErrorMessage(err))
		return m, nil, false
	}
	return m, body, true
}

func (s *Server) order(w http.ResponseWriter, r *http.Request) {
	m, body, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	var o bank.Order
	if err := json.Unmarshal(body, &o); err != nil {
		s.fail(w, r, m, http.StatusBadRequest, "invalid", "malformed order")
		return
	}
	if err := o.Validate(); err != nil {
		s.fail(w, r, m, http.StatusBadRequest, "invalid", jifu.ErrorMessage(err))
		return
	}
	if r.Header.Get(bank.HeaderIdemKey) != o.ID {
		s.fail(w, r, m, http.StatusBadRequest, "invalid", "Idempotency-Key differs from request_id")
		return
	}
	ctx := r.Context()
	delay, fail, lose, executeFirst := s.roll()
	if !sleep(ctx, delay) {
		return
	}
	if lose && !executeFirst {
		s.log.InfoContext(ctx, "banksim: order lost before execution (injected)", "merchant", m.ID, "id", o.ID)
		s.hang(ctx)
		w.WriteHeader(http.StatusGatewayTimeout)
		return
	}
	res, err := s.execute(ctx, m, o, fail)
	if jifu.ErrorCode(err) == jifu.CodeConflict {
		s.fail(w, r, m, http.StatusConflict, "idempotency_conflict", "request_id used for another order")
		return
	}
	if err != nil {
		s.log.ErrorContext(ctx, "banksim: order failed", "merchant", m.ID, "id", o.ID, "err", err)
		s.fail(w, r, m, http.StatusInternalServerError, "internal", "internal error")
		return
	}
	s.log.InfoContext(ctx, "banksim: order", "merchant", m.ID, "id", o.ID, "kind", o.Kind, "account", bank.Mask(o.Account),
		"amount", o.Amount, "status", res.Status, "reason", res.Reason)
	if lose {
		s.log.InfoContext(ctx, "banksim: answer lost after execution (injected)", "merchant", m.ID, "id", o.ID)
		s.hang(ctx)
	}
	s.reply(w, r, m, res)
}

// hang holds a connection until the caller gives up or HangMax passes.
func (s *Server) hang(ctx context.Context) { sleep(ctx, s.cfg.HangMax) }

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// digest is what an id's content must match for a repeat.
func digest(o bank.Order) string {
	h := sha256.New()
	h.Write([]byte(string(o.Kind) + "\x00" + o.Account + "\x00" + strconv.FormatInt(o.Amount, 10) + "\x00" + o.Memo))
	return hex.EncodeToString(h.Sum(nil))
}

const orderColumns = `request_id, kind, amount, status, reason, bank_ref, booked_at`

func scanResult(row pgx.Row) (bank.Result, error) {
	var r bank.Result
	var kind, status string
	var ref int64
	err := row.Scan(&r.ID, &kind, &r.Amount, &status, &r.Reason, &ref, &r.BookedAt)
	r.Kind, r.Status, r.BankRef = bank.Kind(kind), bank.Status(status), "B"+strconv.FormatInt(ref, 10)
	return r, err
}

// execute books o for m once: the first arrival of an id inserts its row,
// which every repeat then waits for and answers from. fail declines it.
func (s *Server) execute(ctx context.Context, m Merchant, o bank.Order, fail bool) (bank.Result, error) {
	d := digest(o)
	var res bank.Result
	err := pgx.BeginFunc(ctx, s.cfg.Pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO banksim_orders (merchant, request_id, kind, account_no, amount, digest, status, booked_at)
			VALUES ($1, $2, $3, $4, $5, $6, 'failed', $7) ON CONFLICT (merchant, request_id) DO NOTHING`,
			m.ID, o.ID, string(o.Kind), o.Account, o.Amount, d, s.cfg.Clock())
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			var stored string
			if err := tx.QueryRow(ctx, `SELECT digest FROM banksim_orders WHERE merchant = $1 AND request_id = $2`, m.ID, o.ID).Scan(&stored); err != nil {
				return err
			}
			if stored != "" && stored != d {
				return jifu.Errorf(jifu.CodeConflict, "banksim: request id reused")
			}
		} else {
			status, reason := bank.Failed, bank.ReasonDeclined
			if !fail {
				if status, reason, err = s.move(ctx, tx, m, o); err != nil {
					return err
				}
			}
			if _, err := tx.Exec(ctx, `UPDATE banksim_orders SET status = $3, reason = $4 WHERE merchant = $1 AND request_id = $2`,
				m.ID, o.ID, string(status), reason); err != nil {
				return err
			}
		}
		res, err = scanResult(tx.QueryRow(ctx, `SELECT `+orderColumns+` FROM banksim_orders WHERE merchant = $1 AND request_id = $2`, m.ID, o.ID))
		return err
	})
	if jifu.ErrorCode(err) == jifu.CodeConflict {
		return res, err
	}
	return res, dbError(err)
}

// move moves the money of o between the customer's account and the
// merchant's, locking both in account order.
func (s *Server) move(ctx context.Context, tx pgx.Tx, m Merchant, o bank.Order) (bank.Status, string, error) {
	rows, err := tx.Query(ctx, `SELECT account_no, balance, frozen FROM banksim_accounts WHERE account_no = ANY($1)
		ORDER BY account_no FOR UPDATE`, []string{o.Account, m.Account})
	if err != nil {
		return "", "", err
	}
	type acct struct {
		balance int64
		frozen  bool
	}
	accts := map[string]acct{}
	for rows.Next() {
		var no string
		var a acct
		if err := rows.Scan(&no, &a.balance, &a.frozen); err != nil {
			rows.Close()
			return "", "", err
		}
		accts[no] = a
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return "", "", err
	}
	if _, ok := accts[m.Account]; !ok {
		return "", "", jifu.Errorf(jifu.CodeInternal, "banksim: merchant %s has no settlement account %s", m.ID, bank.Mask(m.Account))
	}
	cust, ok := accts[o.Account]
	switch {
	case !ok || o.Account == m.Account:
		return bank.Failed, bank.ReasonNoAccount, nil
	case cust.frozen:
		return bank.Failed, bank.ReasonAccountFrozen, nil
	}
	from, to := o.Account, m.Account
	if o.Kind == bank.Credit {
		from, to = to, from
	}
	if accts[from].balance < o.Amount {
		return bank.Failed, bank.ReasonInsufficientFunds, nil
	}
	if _, err := tx.Exec(ctx, `UPDATE banksim_accounts SET balance = balance + CASE WHEN account_no = $1 THEN -$3::bigint ELSE $3::bigint END
		WHERE account_no IN ($1, $2)`, from, to, o.Amount); err != nil {
		return "", "", err
	}
	return bank.Succeeded, "", nil
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	m, _, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if !bank.ValidID(id) {
		s.fail(w, r, m, http.StatusBadRequest, "invalid", "malformed request_id")
		return
	}
	ctx := r.Context()
	// An id never received is closed now, so that a late copy cannot run.
	_, err := s.cfg.Pool.Exec(ctx, `INSERT INTO banksim_orders (merchant, request_id, status, reason, booked_at)
		VALUES ($1, $2, 'failed', $3, $4) ON CONFLICT (merchant, request_id) DO NOTHING`, m.ID, id, bank.ReasonNotReceived, s.cfg.Clock())
	var res bank.Result
	if err == nil {
		res, err = scanResult(s.cfg.Pool.QueryRow(ctx, `SELECT `+orderColumns+` FROM banksim_orders WHERE merchant = $1 AND request_id = $2`, m.ID, id))
	}
	if err != nil {
		s.log.ErrorContext(ctx, "banksim: status query failed", "merchant", m.ID, "id", id, "err", err)
		s.fail(w, r, m, http.StatusInternalServerError, "internal", "internal error")
		return
	}
	s.reply(w, r, m, res)
}

func (s *Server) statement(w http.ResponseWriter, r *http.Request) {
	m, _, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	day, err := time.ParseInLocation(time.DateOnly, r.PathValue("date"), bank.CST)
	if err != nil {
		s.fail(w, r, m, http.StatusBadRequest, "invalid", "date must be YYYY-MM-DD")
		return
	}
	st, err := s.Statement(r.Context(), m.ID, day)
	if err != nil {
		s.fail(w, r, m, http.StatusInternalServerError, "internal", "internal error")
		return
	}
	s.reply(w, r, m, st)
}

// Statement returns merchant's executed orders of day's date (CST), in the
// order the bank booked them.
func (s *Server) Statement(ctx context.Context, merchant string, day time.Time) (bank.Statement, error) {
	y, mo, d := day.In(bank.CST).Date()
	start := time.Date(y, mo, d, 0, 0, 0, 0, bank.CST)
	st := bank.Statement{Date: start.Format(time.DateOnly), Merchant: merchant, Lines: []bank.Result{}}
	rows, err := s.cfg.Pool.Query(ctx, `SELECT `+orderColumns+` FROM banksim_orders
		WHERE merchant = $1 AND status = 'succeeded' AND booked_at >= $2 AND booked_at < $3 ORDER BY bank_ref`,
		merchant, start, start.AddDate(0, 0, 1))
	if err != nil {
		return st, dbError(err)
	}
	defer rows.Close()
	for rows.Next() {
		res, err := scanResult(rows)
		if err != nil {
			return st, dbError(err)
		}
		res.BookedAt = res.BookedAt.In(bank.CST)
		if res.Kind == bank.Debit {
			st.Debits += res.Amount
		} else {
			st.Credits += res.Amount
		}
		st.Lines = append(st.Lines, res)
	}
	return st, dbError(rows.Err())
}

// reply writes v as a signed JSON answer.
func (s *Server) reply(w http.ResponseWriter, r *http.Request, m Merchant, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	bank.SetSignature(w.Header(), m.Secret, s.cfg.Clock(), "RESPONSE", r.URL.Path, b)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// fail writes an error answer: {"error": {"code", "message"}}.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, m Merchant, status int, code, msg string) {
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	body.Error.Code, body.Error.Message = code, msg
	b, _ := json.Marshal(body)
	if m.ID != "" {
		bank.SetSignature(w.Header(), m.Secret, s.cfg.Clock(), "RESPONSE", r.URL.Path, b)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func dbError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return jifu.Errorf(jifu.CodeUnavailable, "banksim: %w", err)
	}
	if _, ok := errors.AsType[*jifu.Error](err); ok {
		return err
	}
	return jifu.Errorf(jifu.CodeInternal, "banksim: database: %w", err)
}
