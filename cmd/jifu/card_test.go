package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jifu-open/jifu/host/database/dbtest"
)

// acquirerSim starts `jifu acquirer-sim` on a free port and returns its
// address and a stop function.
func (c *cmdEnv) acquirerSim() (string, func()) {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stderr := &lockedBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--data-dir", c.dataDir, "acquirer-sim", "--addr", "127.0.0.1:0"}, c.getenv, pw, stderr)
		pw.Close()
	}()
	re := regexp.MustCompile(`acquirer simulator on (\S+)`)
	sc := bufio.NewScanner(pr)
	var addr string
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1]
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if addr == "" {
		cancel()
		c.t.Fatalf("acquirer-sim did not start: exit %d\n%s", <-done, stderr.String())
	}
	return addr, func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				c.t.Errorf("acquirer-sim exited %d\n%s", code, stderr.String())
			}
		case <-time.After(20 * time.Second):
			c.t.Error("acquirer-sim did not stop")
		}
	}
}

// The two processes' commands end to end: the simulator, the platform with
// the card core, the demo reader, and the day's settlement file.
func TestCardPaymentThroughCommands(t *testing.T) {
	c := newCmdEnv(t)
	c.vars["ACQSIM_DATABASE_URL"] = dbtest.URL(t)
	addr, stopSim := c.acquirerSim()
	defer stopSim()
	// The card jobs tick fast and the T0 cut-off has passed: the day's T0
	// batch is made (and booked) as soon as there is a T0 payment.
	base, stop := c.serve("--acquirer-addr", addr, "--t0-cutoff", "00:00", "--card-jobs-every", "200ms")
	defer stop()

	code, out, errs := c.run("terminal", "pay", "--server", base, "--amount", "2345", "--order", "cmd-1")
	if code != 0 {
		t.Fatalf("terminal pay: exit %d\n%s\n%s", code, out, errs)
	}
	var res struct{ Status, RRN, PAN string }
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Status != "approved" || res.PAN != "622202*********0128" {
		t.Fatalf("result %s (%v)", out, err)
	}
	st, body := httpDo(t, "GET", base+"/card/slip?org_id=ORG1&merchant_id=M100&order_id=cmd-1", nil)
	if st != 200 || !strings.Contains(body, res.RRN) || !strings.Contains(body, "RMB 23.45") {
		t.Fatalf("slip %d %s", st, body)
	}
	// The approved payment is in the ledger (books: clearing → the
	// merchant's card receivable), and the books are sound.
	var posted int64
	if err := dbtest.Pool(t).QueryRow(context.Background(), `SELECT coalesce(sum(amount), 0) FROM ledger_transfers
		WHERE caller = 'cardpay' AND code = 'card.payment' AND metadata->>'rrn' = $1`, res.RRN).Scan(&posted); err != nil || posted != 2345 {
		t.Fatalf("ledger posting of the payment: %d fen, %v", posted, err)
	}
	// The scheduled T0 settlement pays the merchant through the ledger.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		if err := dbtest.Pool(t).QueryRow(context.Background(), `SELECT count(*) FROM ledger_transfers
			WHERE caller = 'cardpay' AND code = 'card.settlement' AND metadata->>'mode' = 'T0'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no T0 settlement booked by the card jobs (%d)", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, out, errs := c.run("ledger", "check"); code != 0 {
		t.Fatalf("ledger check: exit %d\n%s\n%s", code, out, errs)
	}
	// A declined amount exits non-zero with the rule in the answer.
	if code, out, _ := c.run("terminal", "pay", "--server", base, "--amount", "5555"); code == 0 || !strings.Contains(out, "acquirer:05") {
		t.Fatalf("decline: exit %d %s", code, out)
	}
	code, out, errs = c.run("acquirer-sim", "--settle-day", time.Now().In(time.FixedZone("CST", 8*3600)).Format("2006-01-02"),
		"--settle-dir", filepath.Join(c.dataDir, "settle"))
	if code != 0 {
		t.Fatalf("settle: exit %d %s %s", code, out, errs)
	}
	file, err := os.ReadFile(strings.TrimSpace(out))
	if err != nil || !strings.Contains(string(file), res.RRN) || strings.Contains(string(file), "6222021234567890128") {
		t.Fatalf("settlement file %q: %v", file, err)
	}
}
