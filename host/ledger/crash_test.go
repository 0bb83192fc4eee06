package ledger_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/jifu-open/jifu/host/database"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/ledger"
)

// The crash test's child reads its orders from these variables.
const (
	envCrashURL    = "LEDGER_CRASH_URL"
	envCrashArgs   = "LEDGER_CRASH_ARGS" // caller debit credit
	crashRequests  = 400                 // requests per run; every 4th a batch of 3
	crashKillAfter = 60                  // acknowledgements before SIGKILL
)

// crashRequest is request i of the load: a transfer, or every 4th a batch.
func crashRequest(i int, debit, credit int64) []ledger.Transfer {
	if i%4 == 3 {
		ts := make([]ledger.Transfer, 3)
		for j := range ts {
			ts[j] = ledger.Transfer{ID: fmt.Sprintf("c%d-%d", i, j), Debit: debit, Credit: credit, Amount: int64(1 + j), Code: "load"}
		}
		return ts
	}
	return []ledger.Transfer{{ID: fmt.Sprintf("c%d", i), Debit: debit, Credit: credit, Amount: int64(10 + i%7), Code: "load"}}
}

func crashTotal() (transfers int, amount int64) {
	for i := range crashRequests {
		for _, t := range crashRequest(i, 1, 2) {
			transfers++
			amount += t.Amount
		}
	}
	return transfers, amount
}

// TestCrashChild is the load of TestCrash, run in a child process: four
// workers submit the requests and print "ack i" once request i is booked.
func TestCrashChild(t *testing.T) {
	url := os.Getenv(envCrashURL)
	if url == "" {
		t.Skip("run by TestCrash")
	}
	var caller string
	var debit, credit int64
	if _, err := fmt.Sscan(os.Getenv(envCrashArgs), &caller, &debit, &credit); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pool, err := database.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	l := ledger.New(pool)
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	next := make(chan int)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if _, err := l.Submit(ctx, caller, crashRequest(i, debit, credit)); err != nil {
					t.Errorf("request %d: %v", i, err)
					return
				}
				mu.Lock()
				fmt.Fprintf(out, "ack %d\n", i)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	for i := range crashRequests {
		next <- i
	}
	close(next)
	wg.Wait()
}

// TestCrash kills a load in a child process with SIGKILL mid-flight, checks
// that every acknowledged request is booked, runs the whole load again
// (clients retry after a crash), and checks that every request is then
// booked exactly once and the invariants hold.
func TestCrash(t *testing.T) {
	if os.Getenv(envCrashURL) != "" {
		t.Skip("in the child")
	}
	ctx := context.Background()
	pool := dbtest.Pool(t)
	l := ledger.New(pool)
	bk := newBooks(t, l)
	run := func(kill bool) map[int]bool {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), envCrashURL+"="+dbtest.URL(t),
			fmt.Sprintf("%s=%s %d %d", envCrashArgs, bk.caller, bk.bank.ID, bk.a.ID))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acked := map[int]bool{}
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if s, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
				i, _ := strconv.Atoi(s)
				acked[i] = true
				if kill && len(acked) == crashKillAfter {
					_ = cmd.Process.Signal(syscall.SIGKILL)
				}
			}
		}
		err = cmd.Wait()
		if kill {
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
				t.Fatalf("the child was not killed mid-flight (%v, %d acks): make the load longer", err, len(acked))
			}
		} else if err != nil {
			t.Fatalf("child: %v\n%s", err, stderr.String())
		}
		return acked
	}
	booked := func(key string) int {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM ledger_transfers WHERE caller = $1 AND key = $2`, bk.caller, key).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	acked := run(true)
	for i := range acked {
		for _, tr := range crashRequest(i, 0, 0) {
			if n := booked(tr.ID); n != 1 {
				t.Errorf("acknowledged %s booked %d times after the crash", tr.ID, n)
			}
		}
	}
	mustCheck(t, l)

	run(false)
	wantN, wantSum := crashTotal()
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM ledger_transfers WHERE caller = $1 AND code = 'load'`, bk.caller).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != wantN {
		t.Errorf("%d transfers booked, want %d (each request exactly once)", n, wantN)
	}
	if b := bk.balance(t, bk.a.ID); b.CreditsPosted != wantSum {
		t.Errorf("credited %d, want %d", b.CreditsPosted, wantSum)
	}
	mustCheck(t, l)
}
