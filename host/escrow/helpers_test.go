package escrow_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/abi"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/escrow"
	"github.com/jifu-open/jifu/host/guesttest"
	"github.com/jifu-open/jifu/host/ledger"
	"github.com/jifu-open/jifu/host/manifest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// The test peers keep their state in tables of their own, created here (they
// are not part of the platform's schema).
const peerTables = `
CREATE TABLE IF NOT EXISTS escrow_test_realnames (user_id text PRIMARY KEY, verified boolean NOT NULL, name text NOT NULL, id_number text NOT NULL);
CREATE TABLE IF NOT EXISTS escrow_test_outbox (id bigserial PRIMARY KEY, user_id text NOT NULL, body text NOT NULL);
CREATE TABLE IF NOT EXISTS escrow_test_cards (user_id text PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0));
CREATE TABLE IF NOT EXISTS escrow_test_bank_orders (ref text PRIMARY KEY, user_id text NOT NULL, amount bigint NOT NULL,
	direction text NOT NULL, ok boolean NOT NULL, reason text NOT NULL);`

var peersOnce sync.Once

// realNames is the table-backed RealNames the user store will provide.
type realNames struct{ pool *pgxpool.Pool }

func (r realNames) RealName(ctx context.Context, user string) (escrow.RealName, error) {
	var rn escrow.RealName
	err := r.pool.QueryRow(ctx, `SELECT verified, name, id_number FROM escrow_test_realnames WHERE user_id = $1`, user).
		Scan(&rn.Verified, &rn.Name, &rn.IDNumber)
	if errors.Is(err, pgx.ErrNoRows) {
		return rn, jifu.Errorf(jifu.CodeNotFound, "no user %q", user)
	}
	return rn, err
}

// outbox is the notify channel's local provider: it writes each SMS to a
// table the developer console shows.
type outbox struct {
	pool  *pgxpool.Pool
	fail  atomic.Bool // the carrier is down
	limit atomic.Bool // the channel's rate limit is hit
}

func (o *outbox) SendSMS(ctx context.Context, user, text string) error {
	if o.fail.Load() {
		return errors.New("sms carrier down")
	}
	if o.limit.Load() {
		return jifu.Errorf(jifu.CodeLimit, "notify: too many codes to this phone")
	}
	_, err := o.pool.Exec(ctx, `INSERT INTO escrow_test_outbox (user_id, body) VALUES ($1, $2)`, user, text)
	return err
}

var codeRE = regexp.MustCompile(`验证码 (\d{6})`)

// last returns the last SMS sent to user.
func (o *outbox) last(t testing.TB, user string) string {
	t.Helper()
	var body string
	if err := o.pool.QueryRow(context.Background(), `SELECT body FROM escrow_test_outbox WHERE user_id = $1 ORDER BY id DESC LIMIT 1`,
		user).Scan(&body); err != nil {
		t.Fatalf("no SMS to %s: %v", user, err)
	}
	return body
}

// lastCode returns the code of the last SMS sent to user.
func (o *outbox) lastCode(t testing.TB, user string) string {
	t.Helper()
	body := o.last(t, user)
	m := codeRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("SMS %q holds no code", body)
	}
	return m[1]
}

// fakeBank is a faithful local bank: cards with balances that refuse
// overdraft, orders idempotent by reference, and injected failures: lose
// the next n answers after booking them (the outcome is unknown to the
// caller, the bank did move the money) or fail the next n before booking.
type fakeBank struct {
	pool       *pgxpool.Pool
	loseAnswer atomic.Int32
	failBefore atomic.Int32
}

func (b *fakeBank) Debit(ctx context.Context, o escrow.BankOrder) (escrow.BankResult, error) {
	return b.order(ctx, o, "debit")
}

func (b *fakeBank) Credit(ctx context.Context, o escrow.BankOrder) (escrow.BankResult, error) {
	return b.order(ctx, o, "credit")
}

func (b *fakeBank) order(ctx context.Context, o escrow.BankOrder, dir string) (escrow.BankResult, error) {
	if b.failBefore.Add(-1) >= 0 {
		return escrow.BankResult{}, errors.New("bank: connection reset")
	}
	b.failBefore.Store(0)
	var res escrow.BankResult
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		var ok bool
		var reason string
		err := tx.QueryRow(ctx, `SELECT ok, reason FROM escrow_test_bank_orders WHERE ref = $1`, o.Ref).Scan(&ok, &reason)
		if err == nil {
			res = result(ok, reason)
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		delta := o.Amount
		if dir == "debit" {
			delta = -o.Amount
		}
		tag, err := tx.Exec(ctx, `UPDATE escrow_test_cards SET balance = balance + $2 WHERE user_id = $1 AND balance + $2 >= 0`, o.User, delta)
		if err != nil {
			return err
		}
		ok, reason = tag.RowsAffected() == 1, ""
		if !ok {
			reason = "insufficient balance or no card"
		}
		res = result(ok, reason)
		_, err = tx.Exec(ctx, `INSERT INTO escrow_test_bank_orders (ref, user_id, amount, direction, ok, reason) VALUES ($1, $2, $3, $4, $5, $6)`,
			o.Ref, o.User, o.Amount, dir, ok, reason)
		return err
	})
	if err != nil {
		return escrow.BankResult{}, err
	}
	if b.loseAnswer.Add(-1) >= 0 {
		return escrow.BankResult{}, errors.New("bank: timeout reading the answer")
	}
	b.loseAnswer.Store(0)
	return res, nil
}

func result(ok bool, reason string) escrow.BankResult {
	if ok {
		return escrow.BankResult{Status: escrow.BankSucceeded}
	}
	return escrow.BankResult{Status: escrow.BankFailed, Reason: reason}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// env is one test's world: its own app (so tests sharing the package's
// database never meet), the service and its peers, and the way calls are
// made: straight to the service or through a real WASM guest.
type env struct {
	t      testing.TB
	app    string // the escrow namespace (the app's)
	prefix string // unique to the test: its users' names start with it
	pool   *pgxpool.Pool
	l      *ledger.Ledger
	svc    *escrow.Service
	sms    *outbox
	bank   *fakeBank
	clock  *clock
	wasm   *host.App // nil: calls go to the service directly
}

var appSeq atomic.Int64

// newEnv returns a test's world. Direct envs get an app of their own; the
// WASM envs share one loaded guest (loading costs seconds under -race), its
// namespace and its service, clock and peers, and stay apart by their own
// user names, listings and bill numbers.
func newEnv(t testing.TB, viaWASM bool) *env {
	t.Helper()
	prefix := fmt.Sprintf("a%d-%d", time.Now().UnixNano()%1e9, appSeq.Add(1))
	if viaWASM {
		w := wasmWorld(t)
		e := *w
		e.t, e.prefix = t, prefix
		return &e
	}
	return world(t, prefix)
}

func world(t testing.TB, app string) *env {
	ctx := context.Background()
	pool := dbtest.Pool(t)
	peersOnce.Do(func() {
		if _, err := pool.Exec(ctx, peerTables); err != nil {
			t.Fatalf("peer tables: %v", err)
		}
	})
	c := &clock{t: time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)}
	l := ledger.New(pool, ledger.WithClock(c.Now))
	e := &env{t: t, pool: pool, l: l, sms: &outbox{pool: pool}, bank: &fakeBank{pool: pool}, clock: c, app: app, prefix: app}
	e.svc = escrow.New(escrow.Config{Pool: pool, Ledger: l, RealNames: realNames{pool}, SMS: e.sms, Bank: e.bank,
		Clock: c.Now, BankName: app + "-bank"})
	return e
}

var (
	wasmOnce   sync.Once
	wasmShared *env
)

func wasmWorld(t testing.TB) *env {
	wasmOnce.Do(func() {
		e := world(t, "wasm-shared")
		e.wasm = loadGuest(t, e.app, host.Config{Escrow: e.svc, Consent: host.AllowAll{}}, false)
		wasmShared = e
	})
	if wasmShared == nil {
		t.Fatal("the shared WASM world did not start")
	}
	return wasmShared
}

var (
	guestOnce sync.Once
	guestWasm []byte
)

// loadGuest loads the test guest as the app of namespace under a host
// built with cfg; closed with the test when cleanup is set.
func loadGuest(t testing.TB, namespace string, cfg host.Config, cleanup bool) *host.App {
	t.Helper()
	guestOnce.Do(func() { guestWasm = guesttest.BuildGo(t, "host/escrow/testdata/guest") })
	if guestWasm == nil {
		t.Fatal("guest did not build")
	}
	ctx := context.Background()
	// One compilation cache for the run (as the host's own tests), so the
	// guest compiles once.
	dir := filepath.Join(os.TempDir(), "jifu-test-wazero-cache")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg.CacheDir = dir
	h, err := host.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, ps := manifest.Parse(guesttest.ReadFile(t, "host/escrow/testdata/guest/jifu.json"))
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	app, err := h.Load(ctx, host.AppSpec{Wasm: guestWasm, Manifest: m, Namespace: namespace})
	if err != nil {
		t.Fatal(err)
	}
	if cleanup {
		t.Cleanup(func() { _ = app.Close(ctx); _ = h.Close(ctx) })
	}
	return app
}

// call makes one request as user ("" unattended) and returns the response
// and the refusal reason ("" when ok). Failures other than refusals end the
// test.
func (e *env) call(user, op string, req any) (escrow.Response, escrow.Reason) {
	e.t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		e.t.Fatal(err)
	}
	if e.wasm == nil {
		resp, err := e.svc.Call(context.Background(), escrow.Actor{App: e.app, User: user}, op, body)
		if err != nil {
			r := escrow.ReasonOf(err)
			if r == "" {
				e.t.Fatalf("%s: %v", op, err)
			}
			return resp, r
		}
		return resp, ""
	}
	out, err := e.wasm.HandleHTTP(context.Background(), host.Caller{User: user},
		&abi.Request{Method: "POST", Path: "/call/" + op, Body: body})
	if err != nil {
		e.t.Fatalf("%s via wasm: %v", op, err)
	}
	if out.Status != 200 {
		e.t.Fatalf("%s via wasm: %d %s", op, out.Status, out.Body)
	}
	var resp escrow.Response
	if err := json.Unmarshal(out.Body, &resp); err != nil {
		e.t.Fatalf("%s via wasm: %v: %s", op, err, out.Body)
	}
	if resp.ErrCode != "ok" {
		return resp, escrow.Reason(resp.ErrCode)
	}
	return resp, ""
}

// ok makes a request that must succeed.
func (e *env) ok(user, op string, req any) escrow.Response {
	e.t.Helper()
	resp, r := e.call(user, op, req)
	if r != "" {
		e.t.Fatalf("%s %+v: refused %s: %s", op, req, r, resp.ErrMsg)
	}
	return resp
}

// refused makes a request that must be refused with want.
func (e *env) refused(want escrow.Reason, user, op string, req any) {
	e.t.Helper()
	resp, r := e.call(user, op, req)
	if r != want {
		e.t.Fatalf("%s %+v: got %q (%+v), want %s", op, req, r, resp, want)
	}
}

var billSeq atomic.Int64

func bill(prefix string) string { return fmt.Sprintf("%s%d", prefix, billSeq.Add(1)) }

// person creates a real-name verified user with a bank card holding card
// fen; name is made unique to the env.
func (e *env) person(name string, card int64) string {
	e.t.Helper()
	u := e.prefix + "-" + name
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `INSERT INTO escrow_test_realnames VALUES ($1, true, $2, '110101199001011234')`, u, "张"+name); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `INSERT INTO escrow_test_cards VALUES ($1, $2)`, u, card); err != nil {
		e.t.Fatal(err)
	}
	return u
}

// open opens user's custody account in role (SMS-confirmed).
func (e *env) open(user, role string) int64 {
	e.t.Helper()
	b := bill("OA")
	if r := e.ok(user, escrow.OpOpenAccount, escrow.OpenAccount{MerBillNo: b, Role: role}); r.State != escrow.StateAwaitingSMS {
		e.t.Fatalf("open: state %s", r.State)
	}
	r := e.ok(user, escrow.OpSMSConfirm, escrow.SMSConfirm{MerBillNo: b, SmsCode: e.sms.lastCode(e.t, user)})
	if r.AccountID == 0 {
		e.t.Fatalf("open: no account: %+v", r)
	}
	return r.AccountID
}

// topUp funds user's custody account in role by online banking.
func (e *env) topUp(user, role string, amount int64) {
	e.t.Helper()
	r := e.ok(user, escrow.OpTopUp, escrow.TopUp{MerBillNo: bill("TU"), User: user, Role: role, Amount: amount, Channel: "online_bank"})
	if r.State != escrow.StateDone {
		e.t.Fatalf("top-up: %+v", r)
	}
}

// party is a user with a funded custody account in role.
func (e *env) party(name, role string, funds int64) string {
	e.t.Helper()
	u := e.person(name, funds+1_000_000)
	e.open(u, role)
	if funds > 0 {
		e.topUp(u, role, funds)
	}
	return u
}

// listing registers and confirms a listing of amount with a borrower margin.
func (e *env) listing(borrower string, amount, margin int64) string {
	e.t.Helper()
	bidNo := bill("L")
	b := bill("RL")
	r := e.ok("", escrow.OpRegisterLoan, escrow.RegisterLoan{MerBillNo: b, BidNo: bidNo, Borrower: borrower, LendAmt: amount,
		GuaranteesAmt: margin, TrdLendRate: "10.00", RaiseDays: 30})
	if r.State != escrow.StateAwaitingSMS {
		e.t.Fatalf("register loan: %+v", r)
	}
	e.ok(borrower, escrow.OpSMSConfirm, escrow.SMSConfirm{MerBillNo: b, SmsCode: e.sms.lastCode(e.t, borrower)})
	return bidNo
}

// balance returns a custody account's available and frozen amounts.
func (e *env) balance(user, role string) (available, frozen int64) {
	e.t.Helper()
	r, reason := e.call("", escrow.OpBalance, escrow.Balance{User: user, Role: role})
	if reason != "" {
		e.t.Fatalf("balance of %s: %s", user, reason)
	}
	return r.Available, r.Frozen
}

func (e *env) wantBalance(user, role string, available, frozen int64) {
	e.t.Helper()
	a, f := e.balance(user, role)
	if a != available || f != frozen {
		e.t.Errorf("%s %s: available %d frozen %d, want %d %d", strings.TrimPrefix(user, e.prefix+"-"), role, a, f, available, frozen)
	}
}

func (e *env) card(user string) int64 {
	e.t.Helper()
	var n int64
	if err := e.pool.QueryRow(context.Background(), `SELECT balance FROM escrow_test_cards WHERE user_id = $1`, user).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// check verifies every ledger invariant and every escrow one.
func (e *env) check() {
	e.t.Helper()
	vs, err := e.l.Check(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, v := range vs {
		e.t.Errorf("ledger invariant broken: %s", v)
	}
	evs, err := e.svc.Check(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, v := range evs {
		e.t.Errorf("escrow invariant broken: %s", v)
	}
}
