package payment_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/ledger"
	"github.com/jifu-open/jifu/host/payment"
	"github.com/jifu-open/jifu/host/payment/paymenttest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// clock is a settable test clock shared by the ledger and the service.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// env is one test's payment world: its own app name and users.
type env struct {
	t    testing.TB
	ctx  context.Context
	pool *pgxpool.Pool
	clk  *clock
	l    *ledger.Ledger
	svc  *payment.Service
	evs  *paymenttest.Events
	app  string
	bank ledger.Account
	n    atomic.Int64
}

type envOption func(*payment.Config)

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	pool := dbtest.Pool(t)
	evs := paymenttest.NewEvents(t, pool)
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	l := ledger.New(pool, ledger.WithClock(clk.Now))
	cfg := payment.Config{Pool: pool, Ledger: l, Events: evs, Clock: clk.Now, Logger: testLogger()}
	for _, o := range opts {
		o(&cfg)
	}
	svc, err := payment.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: context.Background(), pool: pool, clk: clk, l: l, svc: svc, evs: evs, app: "app-" + sanitize(t.Name())}
	e.bank, err = l.CreateAccount(e.ctx, ledger.AccountSpec{Owner: ledger.Owner{Type: ledger.OwnerBank, ID: "test"}, Name: "settlement"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '-'
		}
	}
	if len(b) > 50 {
		b = b[len(b)-50:]
	}
	return string(b)
}

// user returns a fresh user id of this test.
func (e *env) user() string { return e.app + "-u" + itoa(int(e.n.Add(1))) }

// fund tops up user's wallet from the bank.
func (e *env) fund(user string, amount int64) {
	e.t.Helper()
	w, err := payment.OpenWallet(e.ctx, e.l, user)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.l.Transfer(e.ctx, "test", ledger.Transfer{ID: "fund-" + user + "-" + itoa(int(e.n.Add(1))),
		Debit: e.bank.ID, Credit: w.ID, Amount: amount, Code: "topup"}); err != nil {
		e.t.Fatal(err)
	}
}

// balance returns an account's balance by owner and name (zero when absent).
func (e *env) balance(owner ledger.Owner, name string) ledger.Balance {
	e.t.Helper()
	a, err := e.l.FindAccount(e.ctx, owner, name)
	if jifu.ErrorCode(err) == jifu.CodeNotFound {
		return ledger.Balance{}
	}
	if err != nil {
		e.t.Fatal(err)
	}
	b, err := e.l.Balance(e.ctx, a.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

func (e *env) wallet(user string) ledger.Balance {
	return e.balance(ledger.Owner{Type: ledger.OwnerUser, ID: user}, "wallet")
}

func (e *env) payee() ledger.Balance {
	return e.balance(ledger.Owner{Type: ledger.OwnerApp, ID: e.app}, "receivable")
}

func (e *env) create(user string, amount int64, key string) payment.Intent {
	e.t.Helper()
	in, err := e.svc.Create(e.ctx, payment.CreateRequest{App: e.app, User: user, Amount: amount, Description: "test " + key, Key: key})
	if err != nil {
		e.t.Fatal(err)
	}
	return in
}

// events returns the types of the events published about intent id, in order.
func (e *env) events(id string) []string { return e.evs.Types(e.t, id) }

// eventBodies returns the decoded payloads of intent id's events of type typ.
func (e *env) eventBodies(id, typ string) []payment.EventBody {
	e.t.Helper()
	var out []payment.EventBody
	for _, ev := range e.evs.Of(e.t, id) {
		if ev.Type != typ {
			continue
		}
		var body payment.EventBody
		if err := json.Unmarshal(ev.Payload, &body); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, body)
	}
	return out
}

// check runs the ledger's invariant check.
func (e *env) check() {
	e.t.Helper()
	vs, err := e.l.Check(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, v := range vs {
		e.t.Errorf("ledger check: %s", v)
	}
}

func itoa(i int) string { return jsonInt(int64(i)) }

func jsonInt(v int64) string { b, _ := json.Marshal(v); return string(b) }

func balanceOnly(user string, amount int64) []payment.Split {
	return []payment.Split{{Method: payment.MethodBalance, Amount: amount}}
}

func testLogger() *slog.Logger {
	if os.Getenv("PAYMENT_DEBUG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
