package acquirer_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay/acquirer"
	"github.com/jifu-open/jifu/host/cardpay/acquirersim"
	"github.com/jifu-open/jifu/host/cardpay/dukpt"
	"github.com/jifu-open/jifu/host/cardpay/iso8583"
	"github.com/jifu-open/jifu/host/cardpay/pinblock"
	"github.com/jifu-open/jifu/host/database"
	"github.com/jifu-open/jifu/host/database/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

var tmk, _ = dukpt.ParseKey("70F2A84CCBC2AE8625CBB0F2C22AB923")

func start(t *testing.T, timeout time.Duration) (*acquirersim.Sim, *acquirer.Client) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := database.Migrate(ctx, dbtest.URL(t), []database.MigrationSet{acquirersim.Migrations}); err != nil {
		t.Fatal(err)
	}
	rules := acquirersim.DefaultRules()
	rules.SlowAmount[7777] = 3 * time.Second
	sim := acquirersim.New(dbtest.Pool(t), acquirersim.Config{TMK: tmk, Rules: rules})
	if err := sim.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sim.Serve(ctx) }()
	c, err := acquirer.New(acquirer.Config{Addr: sim.Addr(), TMK: tmk, TerminalID: "JIFU0001", MerchantID: "898310048990001",
		PoolSize: 4, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return sim, c
}

const testPAN = "6222021234567890128"

func purchase(c *acquirer.Client, amount int64) *iso8583.Message {
	return &iso8583.Message{MTI: iso8583.MTIFinancial, PAN: testPAN, ProcessingCode: iso8583.ProcPurchase,
		Amount: amount, STAN: c.NextSTAN(), Expiry: "3012", EntryMode: "021", Condition: "00", PINCapture: "12",
		Track2: testPAN + "D30122011234567890", TerminalID: "T0000001", MerchantID: "898310048990001",
		Currency: iso8583.CurrencyCNY, Field60: "22000001"}
}

func journalStatus(t *testing.T, stan string) string {
	var s string
	err := dbtest.Pool(t).QueryRow(context.Background(),
		`SELECT status FROM acqsim_journal WHERE stan = $1 AND kind = 'purchase'`, stan).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPurchaseFlows(t *testing.T) {
	sim, c := start(t, 2*time.Second) // room for a loaded machine; the slow answer comes later
	ctx := context.Background()
	if err := c.SignOn(ctx); err != nil {
		t.Fatal(err)
	}
	// PIN translated to the working key, then checked by the acquirer.
	readerKey, _ := dukpt.ParseKey("042666B49184CF5C68DE9628D0397B36")
	blk, _ := pinblock.EncryptISO0(readerKey, "1234", testPAN)

	t.Run("approve", func(t *testing.T) {
		m := purchase(c, 12345)
		var err error
		if m.PINBlock, err = c.TranslatePIN(ctx, readerKey, blk, testPAN); err != nil {
			t.Fatal(err)
		}
		resp, err := c.Purchase(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ResponseCode != "00" || len(resp.RRN) != 12 || len(resp.AuthCode) != 6 {
			t.Fatalf("resp %v rrn %q auth %q", resp, resp.RRN, resp.AuthCode)
		}
		if journalStatus(t, m.STAN) != "approved" {
			t.Fatal("not journaled as approved")
		}
		// Void it, then the settlement omits it.
		v := *m
		v.STAN, v.ProcessingCode, v.Field60, v.RRN, v.PINBlock = c.NextSTAN(), iso8583.ProcVoidRefund, "23000001", resp.RRN, nil
		vr, err := c.Void(ctx, &v)
		if err != nil || vr.ResponseCode != "00" {
			t.Fatalf("void: %v %v", vr, err)
		}
		if journalStatus(t, m.STAN) != "voided" {
			t.Fatal("not voided")
		}
	})
	t.Run("wrong PIN key", func(t *testing.T) {
		m := purchase(c, 100)
		m.PINBlock = blk // not translated: garbage under the working key
		resp, err := c.Purchase(ctx, m)
		if err != nil || resp.ResponseCode != "55" {
			t.Fatalf("resp %v err %v", resp, err)
		}
	})
	t.Run("decline by amount", func(t *testing.T) {
		resp, err := c.Purchase(ctx, purchase(c, 4444))
		if err != nil || resp.ResponseCode != "51" {
			t.Fatalf("resp %v err %v", resp, err)
		}
	})
	for _, amount := range []int64{8888, 7777} {
		t.Run("unknown result reversed "+map[int64]string{8888: "drop", 7777: "slow"}[amount], func(t *testing.T) {
			m := purchase(c, amount)
			_, err := c.Purchase(ctx, m)
			var re *acquirer.ReversalError
			if !errors.As(err, &re) || !re.Reversed {
				t.Fatalf("err = %v", err)
			}
			if code := jifu.ErrorCode(err); code != jifu.CodeTimeout && code != jifu.CodeUnavailable {
				t.Fatalf("code %s", code)
			}
			if journalStatus(t, m.STAN) != "reversed" {
				t.Fatal("acquirer still holds the purchase")
			}
		})
	}
	t.Run("refund and settlement", func(t *testing.T) {
		m := purchase(c, 20000)
		resp, err := c.Purchase(ctx, m)
		if err != nil || resp.ResponseCode != "00" {
			t.Fatal(resp, err)
		}
		r := &iso8583.Message{MTI: iso8583.MTIAdvice, PAN: testPAN, ProcessingCode: iso8583.ProcVoidRefund, Amount: 5000,
			STAN: c.NextSTAN(), RRN: resp.RRN, TerminalID: "T0000001", MerchantID: "898310048990001", Currency: "156", Field60: "25000001"}
		rr, err := c.Refund(ctx, r)
		if err != nil || rr.ResponseCode != "00" {
			t.Fatal(rr, err)
		}
		r2 := *r
		r2.STAN, r2.Amount = c.NextSTAN(), 15001 // more than what is left
		if rr, err := c.Refund(ctx, &r2); err != nil || rr.ResponseCode != "13" {
			t.Fatalf("over-refund: %v %v", rr, err)
		}
		var buf bytes.Buffer
		if err := sim.WriteSettlement(ctx, time.Now(), &buf); err != nil {
			t.Fatal(err)
		}
		lines, err := acquirersim.ParseSettlement(&buf)
		if err != nil {
			t.Fatal(err)
		}
		var net int64
		for _, l := range lines {
			net += l.Amount
			if len(l.PAN) != len(testPAN) || l.PAN == testPAN {
				t.Fatalf("settlement PAN %q", l.PAN)
			}
		}
		if len(lines) != 2 || net != 15000 {
			t.Fatalf("settlement %d lines net %d: %+v", len(lines), net, lines)
		}
	})
	t.Run("bad MAC", func(t *testing.T) {
		m := purchase(c, 100)
		m.MAC = []byte{}
		b, _ := iso8583.Pack(m, make([]byte, 16))
		out, _, err := sim.Handle(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		resp, _ := iso8583.Unpack(out)
		if resp.ResponseCode != "A0" {
			t.Fatalf("rc %s", resp.ResponseCode)
		}
	})
}

func TestUnreachable(t *testing.T) {
	c, _ := acquirer.New(acquirer.Config{Addr: "127.0.0.1:1", TMK: tmk, DialTimeout: 200 * time.Millisecond})
	if err := c.SignOn(context.Background()); jifu.ErrorCode(err) != jifu.CodeUnavailable {
		t.Fatalf("err = %v", err)
	}
	// A purchase that could not even sign on was never sent: no reversal.
	_, err := c.Purchase(context.Background(), purchase(c, 100))
	var re *acquirer.ReversalError
	if jifu.ErrorCode(err) != jifu.CodeUnavailable || acquirer.Unknown(err) || errors.As(err, &re) {
		t.Fatalf("err = %v", err)
	}
}

// invalidate makes the simulator forget c's working keys: another link
// signs on more often than the simulator's rollover window (4 sign-ons).
func invalidate(t *testing.T, sim *acquirersim.Sim) {
	t.Helper()
	other, err := acquirer.New(acquirer.Config{Addr: sim.Addr(), TMK: tmk, TerminalID: "JIFU0009", MerchantID: "898310048990001", PoolSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for range 5 {
		if err := other.SignOn(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// Keys invalidated by another link's sign-ons: the next payment signs on
// once more and is approved, the same message (STAN, amount) resent, its
// PIN block re-translated under the new PIN key; a burst of concurrent
// payments refused under the same keys makes one sign-on, not one each.
func TestSignOnAgainAfterA0(t *testing.T) {
	sim, c := start(t, 2*time.Second)
	ctx := context.Background()
	if err := c.SignOn(ctx); err != nil {
		t.Fatal(err)
	}
	readerKey, _ := dukpt.ParseKey("042666B49184CF5C68DE9628D0397B36")
	blk, _ := pinblock.EncryptISO0(readerKey, "1234", testPAN)

	t.Run("one payment with PIN", func(t *testing.T) {
		m := purchase(c, 12300)
		var err error
		if m.PINBlock, err = c.TranslatePIN(ctx, readerKey, blk, testPAN); err != nil {
			t.Fatal(err)
		}
		invalidate(t, sim)
		before, ours := sim.SignOns(), c.SignOns()
		resp, err := c.Purchase(ctx, m)
		if err != nil || resp.ResponseCode != "00" || resp.STAN != m.STAN || resp.Amount != 12300 {
			t.Fatalf("resp %+v err %v", resp, err)
		}
		if sim.SignOns()-before != 1 || c.SignOns()-ours != 1 {
			t.Fatalf("sign-ons: simulator +%d, client +%d, want +1", sim.SignOns()-before, c.SignOns()-ours)
		}
		if journalStatus(t, m.STAN) != "approved" {
			t.Fatal("not journaled once as approved")
		}
		// The keys now work: no further sign-on.
		if resp, err := c.Purchase(ctx, purchase(c, 100)); err != nil || resp.ResponseCode != "00" || sim.SignOns()-before != 1 {
			t.Fatalf("next payment %v %v, sign-ons +%d", resp, err, sim.SignOns()-before)
		}
	})
	t.Run("concurrent payments", func(t *testing.T) {
		invalidate(t, sim)
		before := sim.SignOns()
		const n = 12 // more than the pool (4): some wait for a connection
		errs := make(chan error, n)
		for i := range n {
			go func() {
				m := purchase(c, int64(200+i))
				resp, err := c.Purchase(ctx, m)
				if err == nil && resp.ResponseCode != "00" {
					err = errors.New("declined " + resp.ResponseCode)
				}
				errs <- err
			}()
		}
		for range n {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		if got := sim.SignOns() - before; got != 1 {
			t.Fatalf("%d sign-ons for %d refused payments, want 1", got, n)
		}
	})
}

// An acquirer that answers A0 whatever the keys: one new sign-on, one
// resend, then a stable error (CodeUnavailable, ErrKeysRejected), no
// reversal (A0 means the acquirer refused it unprocessed), nothing
// journaled.
func TestA0Forever(t *testing.T) {
	sim, c := start(t, 2*time.Second)
	ctx := context.Background()
	if err := c.SignOn(ctx); err != nil {
		t.Fatal(err)
	}
	before := sim.SignOns()
	m := purchase(c, 6666)
	resp, err := c.Purchase(ctx, m)
	var re *acquirer.ReversalError
	if resp != nil || jifu.ErrorCode(err) != jifu.CodeUnavailable || !errors.Is(err, acquirer.ErrKeysRejected) ||
		errors.As(err, &re) || acquirer.Unknown(err) {
		t.Fatalf("resp %v err %v", resp, err)
	}
	if got := sim.SignOns() - before; got != 1 {
		t.Fatalf("%d sign-ons, want 1", got)
	}
	var rows int
	if err := dbtest.Pool(t).QueryRow(ctx, `SELECT count(*) FROM acqsim_journal WHERE stan = $1`, m.STAN).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("journal rows %d (a reversal or the purchase): %v", rows, err)
	}
	// The link still works for other messages.
	if resp, err := c.Purchase(ctx, purchase(c, 100)); err != nil || resp.ResponseCode != "00" {
		t.Fatalf("%v %v", resp, err)
	}
}
