package cardpay_test

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/cardpay/acquirer"
	"github.com/jifu-open/jifu/host/cardpay/books"
	"github.com/jifu-open/jifu/host/cardpay/iso8583"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/ledger"
)

// proxy relays frames to the simulator, and while refuseReversals is set it
// closes any connection that carries a 0400: an acquirer unreachable just
// when the reversal is due.
type proxy struct {
	ln              net.Listener
	upstream        string
	refuseReversals atomic.Bool
}

func newProxy(t *testing.T, upstream string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, upstream: upstream}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.relay(c)
		}
	}()
	return p
}

func (p *proxy) relay(c net.Conn) {
	defer c.Close()
	up, err := net.Dial("tcp", p.upstream)
	if err != nil {
		return
	}
	defer up.Close()
	for {
		b, err := iso8583.ReadFrame(c)
		if err != nil {
			return
		}
		if p.refuseReversals.Load() && len(b) > 2 && b[0] == 0x04 && b[1] == 0x00 {
			return
		}
		if iso8583.WriteFrame(up, b) != nil {
			return
		}
		r, err := iso8583.ReadFrame(up)
		if err != nil || iso8583.WriteFrame(c, r) != nil {
			return
		}
	}
}

func TestReversalRetried(t *testing.T) {
	e := setup(t)
	px := newProxy(t, e.sim.Addr())
	px.refuseReversals.Store(true)
	acq, err := acquirer.New(acquirer.Config{Addr: px.ln.Addr().String(), TMK: testTMK, TerminalID: "JIFU0002",
		MerchantID: "898310048990001", Timeout: 2500 * time.Millisecond, Reversals: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer acq.Close()
	svc, err := cardpay.New(dbtest.Pool(t), e.master, acq, cardpay.Options{Poster: books.New(ledger.New(dbtest.Pool(t)))})
	if err != nil {
		t.Fatal(err)
	}
	r := e.merchant(t, cardpay.TerminalAudio, 1)[0]
	req := build(t, r, pay("rev-retry", 8888)) // the simulator approves, then drops the connection
	res, err := svc.Authorize(e.ctx, req)
	var re *acquirer.ReversalError
	if !errors.As(err, &re) || re.Reversed || res.Status != cardpay.StatusReversalPending {
		t.Fatalf("%+v %v", res, err)
	}
	var stan, tid string
	if err := dbtest.Pool(t).QueryRow(e.ctx, `SELECT stan, acq_tid FROM card_payments WHERE order_id = 'rev-retry'`).Scan(&stan, &tid); err != nil {
		t.Fatal(err)
	}
	status := func() string {
		var s string
		_ = dbtest.Pool(t).QueryRow(context.Background(), `SELECT status FROM acqsim_journal WHERE tid = $1 AND stan = $2 AND kind = 'purchase'`, tid, stan).Scan(&s)
		return s
	}
	used := func() int {
		return count(t, `SELECT coalesce(sum(amount), 0)::int FROM card_counters WHERE scope = 'user' AND subject = $1 AND period LIKE 'D%'`,
			req.OrgID+"/"+req.MerchantID+"/audio")
	}
	if status() != "approved" || used() != 8888 {
		t.Fatalf("before the retry: acquirer %s, counters %d", status(), used())
	}
	// Still unreachable: nothing changes.
	if n, err := svc.RetryReversals(e.ctx); err != nil || n != 0 {
		t.Fatalf("retry while down: %d %v", n, err)
	}
	px.refuseReversals.Store(false)
	if n, err := svc.RetryReversals(e.ctx); err != nil || n < 1 {
		t.Fatalf("retry: %d %v", n, err)
	}
	if status() != "reversed" || used() != 0 ||
		count(t, `SELECT count(*) FROM card_payments WHERE order_id = 'rev-retry' AND status = 'reversed'`) != 1 {
		t.Fatalf("after the retry: acquirer %s, counters %d", status(), used())
	}
}
