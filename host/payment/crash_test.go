package payment_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jifu-open/jifu/host/database"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/ledger"
	"github.com/jifu-open/jifu/host/payment"
	"github.com/jifu-open/jifu/host/payment/paymenttest"
)

// The crash test's child reads its orders from these variables.
const (
	envCrashURL    = "PAYMENT_CRASH_URL"
	envCrashArgs   = "PAYMENT_CRASH_ARGS" // app user
	crashPayments  = 300
	crashKillAfter = 25 // acknowledged payments before SIGKILL
	crashLease     = 300 * time.Millisecond
)

// crashSplit is payment i's split of 300 fen: every third is combined.
func crashSplit(i int) []payment.Split {
	if i%3 == 2 {
		return []payment.Split{{Method: payment.MethodBalance, Amount: 200}, {Method: payment.MethodCredit, Amount: 100}}
	}
	return []payment.Split{{Method: payment.MethodBalance, Amount: 300}}
}

// TestCrashChild is TestCrash's load, in a child process: four workers each
// create and confirm payments and print "ack i" once payment i succeeded.
func TestCrashChild(t *testing.T) {
	url := os.Getenv(envCrashURL)
	if url == "" {
		t.Skip("run by TestCrash")
	}
	var app, user string
	if _, err := fmt.Sscan(os.Getenv(envCrashArgs), &app, &user); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pool, err := database.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	svc, err := payment.New(payment.Config{Pool: pool, Ledger: ledger.New(pool), Events: paymenttest.NewEvents(t, pool), Lease: crashLease})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	next := make(chan int, crashPayments) // filled up front: a failing worker blocks nobody
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				in, err := svc.Create(ctx, payment.CreateRequest{App: app, User: user, Amount: 300, Description: "crash", Key: fmt.Sprint("crash-", i)})
				if err != nil {
					t.Errorf("create %d: %v", i, err)
					return
				}
				done, err := svc.Confirm(ctx, in.ID, user, crashSplit(i))
				if err != nil || done.State != payment.StateSucceeded {
					t.Errorf("confirm %d: %v %v", i, done.State, err)
					return
				}
				mu.Lock()
				fmt.Fprintf(out, "ack %s\n", in.ID)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	for i := range crashPayments {
		next <- i
	}
	close(next)
	wg.Wait()
}

// TestCrash kills a child paying in a loop with SIGKILL mid-flight, then
// runs Resume: every confirmed payment ends succeeded (the funds cover them
// all), exactly once, with one event; no hold is left open; the wallet,
// the credit line and the payee agree with the succeeded payments; the
// ledger's invariants hold.
func TestCrash(t *testing.T) {
	if os.Getenv(envCrashURL) != "" {
		t.Skip("in the child")
	}
	e := newEnv(t, func(c *payment.Config) { c.Clock = time.Now; c.Lease = crashLease })
	e.app += fmt.Sprint("-", time.Now().UnixNano()) // its own payee and keys, run after run
	e.l = ledger.New(e.pool)                        // the real clock, as the child's
	svc, err := payment.New(payment.Config{Pool: e.pool, Ledger: e.l, Events: e.evs, Lease: crashLease})
	if err != nil {
		t.Fatal(err)
	}
	user := e.user()
	e.fund(user, 1_000_000)
	if _, err := svc.SetCreditLimit(e.ctx, user, 1_000_000); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), envCrashURL+"="+dbtest.URL(t), envCrashArgs+"="+e.app+" "+user)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
			acked[id] = true
			if len(acked) == crashKillAfter {
				_ = cmd.Process.Signal(syscall.SIGKILL)
			}
		}
	}
	_ = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("the child was not killed mid-flight (%d acks): %s", len(acked), stderr.String())
	}

	time.Sleep(2 * crashLease)
	resumed := 0
	for {
		n, err := svc.Resume(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		resumed += n
	}
	t.Logf("%d payments acknowledged before the kill, %d resumed", len(acked), resumed)

	rows, err := e.pool.Query(e.ctx, `SELECT id, state FROM payment_intents WHERE app = $1`, e.app)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for rows.Next() {
		var id, state string
		if err := rows.Scan(&id, &state); err != nil {
			t.Fatal(err)
		}
		states[id] = state
	}
	var balancePaid, creditPaid, succeeded int64
	for id, state := range states {
		switch state {
		case "succeeded":
			succeeded++
			in, err := svc.Intent(e.ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range in.Parts {
				if p.Method == payment.MethodCredit {
					creditPaid += p.Amount
				} else {
					balancePaid += p.Amount
				}
			}
			if got := e.events(id); len(got) != 1 || got[0] != payment.EventSucceeded {
				t.Errorf("intent %s: events %v", id, got)
			}
		case "created":
			// created, never confirmed before the kill: nothing to do
		default:
			t.Errorf("intent %s is %s after Resume", id, state)
		}
	}
	for id := range acked {
		if states[id] != "succeeded" {
			t.Errorf("acknowledged %s is %s", id, states[id])
		}
	}
	if w := e.wallet(user); w.DebitsPending != 0 || w.DebitsPosted != balancePaid {
		t.Errorf("wallet %+v, want %d debited and nothing held", w, balancePaid)
	}
	if c, err := svc.CreditLine(e.ctx, user); err != nil || c.Used != creditPaid {
		t.Errorf("credit line %+v %v, want %d used", c, err, creditPaid)
	}
	if p := e.payee(); p.CreditsPending != 0 || p.CreditsPosted != balancePaid+creditPaid || p.CreditsPosted != succeeded*300 {
		t.Errorf("payee %+v, want %d", p, succeeded*300)
	}
	e.check()
}
