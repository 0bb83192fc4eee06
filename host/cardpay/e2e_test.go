package cardpay_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"github.com/jifu-open/jifu/web/respond"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/cardpay/acquirer"
	"github.com/jifu-open/jifu/host/cardpay/acquirersim"
	"github.com/jifu-open/jifu/host/cardpay/books"
	"github.com/jifu-open/jifu/host/cardpay/dukpt"
	"github.com/jifu-open/jifu/host/cardpay/request"
	"github.com/jifu-open/jifu/host/database"
	"github.com/jifu-open/jifu/host/database/dbtest"
	"github.com/jifu-open/jifu/host/ledger"
	"github.com/jifu-open/jifu/host/outbox"
	"github.com/jifu-open/jifu/sdk/cardreader"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// lockedBuffer collects every log line of the run for the card-data scan.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var (
	testBDK, _ = dukpt.ParseKey("0123456789ABCDEFFEDCBA9876543210")
	testTMK, _ = dukpt.ParseKey("70F2A84CCBC2AE8625CBB0F2C22AB923")
)

// env is one running card core: simulator, client, service, HTTP endpoint.
type env struct {
	master []byte
	svc    *cardpay.Service
	sim    *acquirersim.Sim
	srv    *httptest.Server
	logs   *lockedBuffer
	ctx    context.Context
	nextID atomic.Uint64

	stopRelay func() // stops the shared service's notification relay
}

// startRelay runs the shared service's notification relay until stopRelay.
func (e *env) startRelay() {
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { e.svc.RunNotifyRelay(ctx, 0); close(done) }()
	e.stopRelay = func() { cancel(); <-done }
}

var (
	envOnce sync.Once
	shared  *env
	envErr  error
)

func setup(t testing.TB) *env {
	t.Helper()
	envOnce.Do(func() { shared, envErr = start(t) })
	if envErr != nil {
		t.Fatal(envErr)
	}
	return shared
}

// start runs for the whole package (the first test's t owns nothing that
// outlives it: the servers stop with the test binary).
func start(t testing.TB) (*env, error) {
	ctx := context.Background()
	if err := database.Migrate(ctx, dbtest.URL(t), []database.MigrationSet{acquirersim.Migrations}); err != nil {
		return nil, err
	}
	pool := dbtest.Pool(t)
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rules := acquirersim.DefaultRules()
	// The client's timeout leaves room for a loaded machine (2.5 s); the slow
	// answer comes later still.
	rules.SlowAmount[7777] = 4 * time.Second
	// The simulator is another party with its own connections, as in
	// production (there in its own database).
	simPool, err := database.Open(ctx, dbtest.URL(t))
	if err != nil {
		return nil, err
	}
	sim := acquirersim.New(simPool, acquirersim.Config{TMK: testTMK, Rules: rules, Logger: log})
	if err := sim.Listen("127.0.0.1:0"); err != nil {
		return nil, err
	}
	go func() { _ = sim.Serve(context.Background()) }()
	acq, err := acquirer.New(acquirer.Config{Addr: sim.Addr(), TMK: testTMK, TerminalID: "JIFU0001",
		MerchantID: "898310048990001", PoolSize: 16, Timeout: 2500 * time.Millisecond, Logger: log})
	if err != nil {
		return nil, err
	}
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	// As serve runs it: the ledger as the Poster, each result's merchant
	// notification recorded with it and relayed into the outbox (not
	// delivered here: the outbox is not started; TestMerchantNotification
	// delivers).
	sink, err := cardpay.NewNotifySink(pool, master, nil)
	if err != nil {
		return nil, err
	}
	ob, err := outbox.New(outbox.Config{Pool: pool, Queue: cardpay.NotifyQueue, Sinks: map[string]outbox.Sink{cardpay.NotifySinkName: sink}, Logger: log})
	if err != nil {
		return nil, err
	}
	svc, err := cardpay.New(pool, master, acq, cardpay.Options{Poster: books.New(ledger.New(pool)), Notifier: cardpay.OutboxNotifier{Outbox: ob}, Logger: log})
	if err != nil {
		return nil, err
	}
	if err := svc.RegisterBDK(ctx, "bdk-test", "tdes", testBDK); err != nil {
		return nil, err
	}
	e := &env{master: master, svc: svc, sim: sim, logs: logs, ctx: ctx, srv: httptest.NewServer(svc.Handler(respond.Status))}
	e.startRelay() // for the package's run, as the card core starts it
	return e, nil
}

// merchant registers a new merchant with n readers of one type and returns
// the readers (the SDK), each with its own KSN.
func (e *env) merchant(t testing.TB, typ string, n int) []*cardreader.Reader {
	t.Helper()
	id := e.nextID.Add(1)
	org, mid := "ORG1", fmt.Sprintf("M%05d", id)
	secret := fmt.Sprintf("pay-secret-%016d", id)
	if err := e.svc.RegisterMerchant(e.ctx, cardpay.Merchant{OrgID: org, MerchantID: mid, Name: "测试商户 " + mid,
		PaySecret: secret, AcquirerMID: fmt.Sprintf("8983100%08d", id), UserLevel: "101"}); err != nil {
		t.Fatal(err)
	}
	var out []*cardreader.Reader
	for i := 0; i < n; i++ {
		ksn, _ := dukpt.ParseKSN(fmt.Sprintf("FFFF%08X%02X000000", id, i))
		if err := e.svc.RegisterTerminal(e.ctx, cardpay.Terminal{KSN: ksn.String(), OrgID: org, MerchantID: mid, Type: typ,
			BDKID: "bdk-test", AcquirerTID: fmt.Sprintf("T%07d", id*100+uint64(i))}); err != nil {
			t.Fatal(err)
		}
		r, err := cardreader.New(cardreader.Config{OrgID: org, MerchantID: mid, PaySecret: secret,
			IPEK: dukpt.IPEK(testBDK, ksn), KSN: ksn})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

const (
	cardPAN = "6222021234567890128"
	track2  = cardPAN + "=30121011234567890"
	cardPIN = "123456"
)

func pay(order string, amount int64) cardreader.Payment {
	return cardreader.Payment{OrderID: order, Amount: amount, ProductName: "咖啡", Params: "cup=1&size=L", Track2: track2, PIN: cardPIN}
}

// post sends a request through the HTTP endpoint.
func (e *env) post(t testing.TB, req *request.Request) (int, cardpay.HTTPResult) {
	t.Helper()
	resp, err := http.Post(e.srv.URL+"/pay", "application/json", bytes.NewReader(req.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out cardpay.HTTPResult
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("body %s: %v", b, err)
	}
	return resp.StatusCode, out
}

func build(t testing.TB, r *cardreader.Reader, p cardreader.Payment) *request.Request {
	t.Helper()
	req, err := r.Build(p)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func count(t testing.TB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := dbtest.Pool(t).QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// eventually polls the count query until it reaches want (for at most 20 s:
// the machine may be loaded) and returns the last count.
func eventually(t testing.TB, want int, q string, args ...any) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		n := count(t, q, args...)
		if n >= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEndToEnd(t *testing.T) {
	e := setup(t)
	r := e.merchant(t, cardpay.TerminalMPOS, 1)[0]

	t.Run("approve", func(t *testing.T) {
		req := build(t, r, pay("ord-approve", 12345))
		st, res := e.post(t, req)
		if st != 200 || res.Status != cardpay.StatusApproved || len(res.RRN) != 12 || res.PAN != "622202*********0128" || res.Params != "cup=1&size=L" {
			t.Fatalf("%d %+v", st, res)
		}
		slip, err := e.svc.Slip(e.ctx, req.OrgID, req.MerchantID, "ord-approve")
		if err != nil || slip.RefNo != res.RRN || slip.AmountText != "RMB 123.45" || slip.CardNo != res.PAN || slip.VoucherNo == "" {
			t.Fatalf("slip %+v %v", slip, err)
		}
		if count(t, `SELECT count(*) FROM acqsim_journal WHERE rrn = $1 AND status = 'approved'`, res.RRN) != 1 {
			t.Fatal("acquirer has no approved journal row")
		}
		if count(t, `SELECT count(*) FROM ledger_transfers t JOIN ledger_accounts a ON a.id = t.credit_id
			WHERE t.caller = 'cardpay' AND t.code = 'card.payment' AND t.amount = 12345 AND a.owner_id = $1`, req.OrgID+"/"+req.MerchantID) != 1 {
			t.Fatal("no ledger posting")
		}
		// The same request again: the stored result, nothing new.
		st2, res2 := e.post(t, req)
		if st2 != 200 || res2.RRN != res.RRN {
			t.Fatalf("replay gave %d %+v", st2, res2)
		}
		if count(t, `SELECT count(*) FROM acqsim_journal WHERE kind = 'purchase' AND tid = $1`, slip.TerminalNo) != 1 {
			t.Fatal("replayed request reached the acquirer")
		}
		// One notification for the order, whatever the replays, relayed
		// within moments.
		if n := eventually(t, 1, `SELECT count(*) FROM outbox_events WHERE type = 'card.payment.approved' AND payload->>'order_id' = 'ord-approve'
			AND payload->>'merchant_id' = $1 AND payload->>'params' = 'cup=1&size=L'`, req.MerchantID); n != 1 {
			t.Fatalf("%d notifications for the order", n)
		}
	})
	t.Run("decline by the acquirer", func(t *testing.T) {
		st, res := e.post(t, build(t, r, pay("ord-decline", 4444)))
		if st != 200 || res.Status != cardpay.StatusDeclined || res.Rule != "acquirer:51" || res.ResponseCode != "51" {
			t.Fatalf("%d %+v", st, res)
		}
	})
	t.Run("duplicate order", func(t *testing.T) {
		before := count(t, `SELECT count(*) FROM card_payments`)
		st, res := e.post(t, build(t, r, pay("ord-approve", 500)))
		if st != http.StatusConflict || res.Error == nil || res.Error.Code != jifu.CodeConflict {
			t.Fatalf("%d %+v", st, res)
		}
		if count(t, `SELECT count(*) FROM card_payments`) != before {
			t.Fatal("a rejected duplicate changed the payments")
		}
	})
	t.Run("replayed KSN", func(t *testing.T) {
		r.SetCounter(1) // the reader goes back: next KSN counter 2, long used
		req := build(t, r, pay("ord-replay", 100))
		st, res := e.post(t, req)
		if st != http.StatusForbidden || res.Error == nil || !strings.Contains(res.Error.Message, "replayed") {
			t.Fatalf("%d %+v", st, res)
		}
		if count(t, `SELECT count(*) FROM card_payments WHERE order_id = 'ord-replay'`) != 0 {
			t.Fatal("a replay left a payment")
		}
		r.SetCounter(100)
	})
	t.Run("bad sign", func(t *testing.T) {
		req := build(t, r, pay("ord-badsign", 100))
		req.AmountText = "1" // changed after signing
		st, res := e.post(t, req)
		if st != http.StatusForbidden || res.Error.Code != jifu.CodeDenied {
			t.Fatalf("%d %+v", st, res)
		}
		if count(t, `SELECT count(*) FROM card_payments WHERE order_id = 'ord-badsign'`) != 0 {
			t.Fatal("a bad sign left a payment")
		}
	})
	t.Run("malformed", func(t *testing.T) {
		resp, err := http.Post(e.srv.URL+"/pay", "application/json", strings.NewReader(`{"amount":12}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	for _, c := range []struct {
		name   string
		amount int64
	}{{"acquirer timeout leads to reversal", 7777}, {"dropped connection leads to reversal", 8888}} {
		t.Run(c.name, func(t *testing.T) {
			order := fmt.Sprintf("ord-rev-%d", c.amount)
			st, res := e.post(t, build(t, r, pay(order, c.amount)))
			if res.Status != cardpay.StatusReversed || res.Error == nil || (st != http.StatusGatewayTimeout && st != http.StatusServiceUnavailable) {
				t.Fatalf("%d %+v", st, res)
			}
			var stan, tid string
			if err := dbtest.Pool(t).QueryRow(e.ctx, `SELECT stan, acq_tid FROM card_payments WHERE order_id = $1`, order).Scan(&stan, &tid); err != nil {
				t.Fatal(err)
			}
			if count(t, `SELECT count(*) FROM acqsim_journal WHERE tid = $1 AND stan = $2 AND kind = 'purchase' AND status = 'reversed'`, tid, stan) != 1 {
				t.Fatal("the acquirer still holds the purchase")
			}
		})
	}
	t.Run("card checks", func(t *testing.T) {
		for _, c := range []struct{ track, rule string }{
			{"6222021234567890129=30121011234567890", "card:luhn"},
			{cardPAN + "=20011011234567890", "card:expired"},
			{cardPAN + "=30122011234567890", "card:service_code_chip_fallback"},
		} {
			p := pay("ord-check-"+strings.NewReplacer(":", "-").Replace(c.rule), 100)
			p.Track2, p.PIN = c.track, ""
			_, res := e.post(t, build(t, r, p))
			if res.Status != cardpay.StatusDeclined || res.Rule != c.rule {
				t.Errorf("%s: %+v", c.rule, res)
			}
		}
	})
}

func TestLimits(t *testing.T) {
	e := setup(t)
	t.Run("per transaction and per day", func(t *testing.T) {
		r := e.merchant(t, cardpay.TerminalAudio, 1)[0] // audio: 2/4/6 万
		_, res := e.post(t, build(t, r, pay("lim-tx", 2000001)))
		if res.Status != cardpay.StatusDeclined || res.Rule != "terminal_type:audio:per_tx" {
			t.Fatalf("%+v", res)
		}
		for i, want := range []string{cardpay.StatusApproved, cardpay.StatusApproved, cardpay.StatusDeclined} {
			_, res := e.post(t, build(t, r, pay(fmt.Sprintf("lim-day-%d", i), 1500000)))
			if res.Status != want {
				t.Fatalf("payment %d: %+v", i, res)
			}
			if want == cardpay.StatusDeclined && res.Rule != "terminal_type:audio:per_day" {
				t.Fatalf("rule %q", res.Rule)
			}
		}
		// T0: user level 101 allows 0.3 万 T0 a day, so these settle T1.
		if count(t, `SELECT count(*) FROM card_payments WHERE order_id LIKE 'lim-day-%' AND t0`) != 0 {
			t.Fatal("over-limit payments marked T0")
		}
	})
	t.Run("concurrent payments never overshoot", func(t *testing.T) {
		readers := e.merchant(t, cardpay.TerminalMPOS, 8) // mpos: 6 万 a day
		var wg sync.WaitGroup
		var approved, declined atomic.Int32
		for i, r := range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, err := r.Build(pay(fmt.Sprintf("conc-%d", i), 1000000))
				if err != nil {
					t.Error(err)
					return
				}
				res, err := e.svc.Authorize(e.ctx, req)
				switch {
				case err != nil:
					t.Error(err)
				case res.Status == cardpay.StatusApproved:
					approved.Add(1)
				case res.Rule == "terminal_type:mpos:per_day" || res.Rule == "card_class:磁条卡:per_day":
					declined.Add(1)
				default:
					t.Errorf("unexpected %+v", res)
				}
			}()
		}
		wg.Wait()
		if approved.Load()+declined.Load() != 8 || approved.Load() > 6 {
			t.Fatalf("approved %d declined %d", approved.Load(), declined.Load())
		}
	})
	t.Run("card classes follow the rules", func(t *testing.T) {
		r := e.merchant(t, cardpay.TerminalMPOS, 1)[0]
		const other = "6217001234567890122" // a card no other test uses
		payWith := func(order, tr string, ic []byte) cardpay.Result {
			p := pay(order, 100)
			p.Track2, p.ICData = tr, ic
			res, err := e.svc.Authorize(e.ctx, build(t, r, p))
			if err != nil || !res.Approved() {
				t.Fatalf("%+v %v", res, err)
			}
			return res
		}
		if res := payWith("cls-1", other+"=30121011234567890", nil); res.CardClass != "磁条卡" {
			t.Fatalf("class %q", res.CardClass)
		}
		// Chip data makes it an IC card.
		if res := payWith("cls-2", other+"=30122011234567890", []byte{0x9F, 0x26, 0x02, 0x01, 0x02}); res.CardClass != "IC卡" {
			t.Fatalf("class %q", res.CardClass)
		}
		// Credit-card verification comes first (紫卡); an agent-raised bound card is 红卡1.
		if err := e.svc.SetCardFlags(e.ctx, other, cardpay.CardFlags{CreditVerified: true}); err != nil {
			t.Fatal(err)
		}
		if res := payWith("cls-3", other+"=30121011234567890", nil); res.CardClass != "紫卡" {
			t.Fatalf("class %q", res.CardClass)
		}
		if err := e.svc.SetCardFlags(e.ctx, other, cardpay.CardFlags{Bound: true, AgentClass: "红卡1"}); err != nil {
			t.Fatal(err)
		}
		if res := payWith("cls-4", other+"=30121011234567890", nil); res.CardClass != "红卡1" {
			t.Fatalf("class %q", res.CardClass)
		}
		if err := e.svc.SetCardFlags(e.ctx, "6217001234567890121", cardpay.CardFlags{}); jifu.ErrorCode(err) != jifu.CodeInvalid {
			t.Fatalf("bad PAN: %v", err)
		}
	})
	t.Run("risk tables are data", func(t *testing.T) {
		if n := count(t, `SELECT count(*) FROM card_risk_classes WHERE class IN ('红卡1','红卡2','紫卡','IC卡','IC卡2')`); n != 5 {
			t.Fatalf("%d seeded classes", n)
		}
		if n := count(t, `SELECT count(*) FROM card_risk_user_levels`); n != 8 {
			t.Fatalf("%d user levels", n)
		}
	})
}

func TestRefundAndVoid(t *testing.T) {
	e := setup(t)
	r := e.merchant(t, cardpay.TerminalMPOS, 1)[0]
	req := build(t, r, pay("rf-1", 20000))
	if res, err := e.svc.Authorize(e.ctx, req); err != nil || !res.Approved() {
		t.Fatal(res, err)
	}
	rr := cardpay.RefundRequest{OrgID: req.OrgID, MerchantID: req.MerchantID, OrderID: "rf-1", RefundID: "r1", Amount: 5000}
	res, err := e.svc.Refund(e.ctx, rr)
	if err != nil || res.Status != cardpay.StatusApproved || res.Kind != "refund" || res.RRN == "" {
		t.Fatalf("%+v %v", res, err)
	}
	again, err := e.svc.Refund(e.ctx, rr)
	if err != nil || !again.Replayed || again.RRN != res.RRN {
		t.Fatalf("replay %+v %v", again, err)
	}
	for name, c := range map[string]struct {
		r    cardpay.RefundRequest
		code string
	}{
		"over the payment":    {cardpay.RefundRequest{OrgID: req.OrgID, MerchantID: req.MerchantID, OrderID: "rf-1", RefundID: "r2", Amount: 15001}, jifu.CodeInvalid},
		"refund_id reused":    {cardpay.RefundRequest{OrgID: req.OrgID, MerchantID: req.MerchantID, OrderID: "rf-1", RefundID: "r1", Amount: 1}, jifu.CodeConflict},
		"unknown order":       {cardpay.RefundRequest{OrgID: req.OrgID, MerchantID: req.MerchantID, OrderID: "nope", RefundID: "r3", Amount: 1}, jifu.CodeNotFound},
		"declined payment":    {cardpay.RefundRequest{OrgID: req.OrgID, MerchantID: req.MerchantID, OrderID: "rf-declined", RefundID: "r4", Amount: 1}, jifu.CodeConflict},
		"non-positive amount": {cardpay.RefundRequest{OrgID: req.OrgID, MerchantID: req.MerchantID, OrderID: "rf-1", RefundID: "r5", Amount: 0}, jifu.CodeInvalid},
	} {
		t.Run(name, func(t *testing.T) {
			if name == "declined payment" {
				if res, _ := e.svc.Authorize(e.ctx, build(t, r, pay("rf-declined", 4444))); res.Status != cardpay.StatusDeclined {
					t.Fatal(res)
				}
			}
			if _, err := e.svc.Refund(e.ctx, c.r); jifu.ErrorCode(err) != c.code {
				t.Fatalf("err = %v, want %s", err, c.code)
			}
		})
	}
	// The rest, in full, the same day: still a refund (one was made);
	// a fresh payment refunded in full the same day is a void.
	if res, err := e.svc.Refund(e.ctx, cardpay.RefundRequest{OrgID: req.OrgID, MerchantID: req.MerchantID, OrderID: "rf-1", RefundID: "r6", Amount: 15000}); err != nil || res.Kind != "refund" || res.Status != cardpay.StatusApproved {
		t.Fatalf("%+v %v", res, err)
	}
	if res, err := e.svc.Authorize(e.ctx, build(t, r, pay("rf-2", 3000))); err != nil || !res.Approved() {
		t.Fatal(res, err)
	}
	res, err = e.svc.Refund(e.ctx, cardpay.RefundRequest{OrgID: req.OrgID, MerchantID: req.MerchantID, OrderID: "rf-2", RefundID: "v1", Amount: 3000})
	if err != nil || res.Kind != "void" || res.Status != cardpay.StatusApproved {
		t.Fatalf("void %+v %v", res, err)
	}
	if count(t, `SELECT count(*) FROM card_payments WHERE order_id = 'rf-2' AND status = 'voided'`) != 1 ||
		count(t, `SELECT count(*) FROM acqsim_journal j JOIN card_payments p ON p.rrn = j.rrn WHERE p.order_id = 'rf-2' AND j.status = 'voided'`) != 1 {
		t.Fatal("void not recorded on both sides")
	}
	if count(t, `SELECT count(*) FROM ledger_transfers t JOIN ledger_accounts a ON a.id = t.debit_id
		WHERE t.caller = 'cardpay' AND t.code = 'card.refund' AND a.owner_id = $1`, req.OrgID+"/"+req.MerchantID) != 3 {
		t.Fatal("refund postings missing")
	}
}

func TestSettleAndReconcile(t *testing.T) {
	e := setup(t)
	r := e.merchant(t, cardpay.TerminalMPOS, 1)[0]
	for i, amt := range []int64{10000, 25050, 4444} {
		e.post(t, build(t, r, pay(fmt.Sprintf("set-%d", i), amt)))
	}
	today := time.Now()
	batches, err := e.svc.Settle(e.ctx, today, cardpay.T1)
	if err != nil {
		t.Fatal(err)
	}
	var mine *cardpay.Batch
	for i := range batches {
		if count(t, `SELECT count(*) FROM card_payments WHERE settlement_id = $1 AND order_id LIKE 'set-%'`, batches[i].ID) > 0 {
			mine = &batches[i]
		}
	}
	if mine == nil {
		t.Fatalf("no batch for the merchant: %+v", batches)
	}
	// 35050 fen at 0.006 = 210.3 fen: rounded half up to 210.
	if mine.Gross != 35050 || mine.Fee != 210 || mine.Net != 34840 || mine.Count != 2 {
		t.Fatalf("batch %+v", mine)
	}
	again, err := e.svc.Settle(e.ctx, today, cardpay.T1)
	if err != nil || len(again) != 0 {
		t.Fatalf("second run settled again: %+v %v", again, err)
	}
	var file bytes.Buffer
	if err := e.sim.WriteSettlement(e.ctx, today, &file); err != nil {
		t.Fatal(err)
	}
	lines, err := acquirersim.ParseSettlement(&file)
	if err != nil {
		t.Fatal(err)
	}
	var acq []cardpay.AcquirerLine
	for _, l := range lines {
		acq = append(acq, cardpay.AcquirerLine{RRN: l.RRN, Kind: l.Kind, Amount: l.Amount})
	}
	diffs, err := e.svc.Reconcile(e.ctx, today, acq)
	if err != nil || len(diffs) != 0 {
		t.Fatalf("books differ: %+v %v", diffs, err)
	}
	acq[len(acq)-1].Amount++
	acq = append(acq, cardpay.AcquirerLine{RRN: "999999999999", Kind: "purchase", Amount: 5})
	diffs, _ = e.svc.Reconcile(e.ctx, today, acq[1:])
	kinds := map[string]int{}
	for _, d := range diffs {
		kinds[d.Kind]++
	}
	if kinds["missing_at_acquirer"] != 1 || kinds["missing_on_platform"] != 1 || kinds["amount_mismatch"] != 1 {
		t.Fatalf("differences %+v", diffs)
	}
}

// TestNoCardDataAtRest runs last (by name order it may not; it runs its own
// payments first) and scans every text column of every table and every log
// line for the full PAN, the track and the encrypted PIN block.
func TestNoCardDataAtRest(t *testing.T) {
	e := setup(t)
	r := e.merchant(t, cardpay.TerminalBluetooth, 1)[0]
	var blocks []string
	for i, amt := range []int64{100, 4444, 7777, 2000001} {
		req := build(t, r, pay(fmt.Sprintf("scan-%d", i), amt))
		blocks = append(blocks, req.CardPassword, req.EnTracks)
		e.post(t, req)
	}
	rows, err := dbtest.Pool(t).Query(e.ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		_ = rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	var dump strings.Builder
	for _, tb := range tables {
		rows, err := dbtest.Pool(t).Query(e.ctx, fmt.Sprintf(`SELECT t::text FROM %q t`, tb))
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			_ = rows.Scan(&s)
			dump.WriteString(s + "\n")
		}
		rows.Close()
	}
	if dump.Len() == 0 || !strings.Contains(dump.String(), "622202*********0128") {
		t.Fatal("the dump holds no masked PAN: the scan is not looking at the payments")
	}
	forbidden := []string{cardPAN, "1234567890128", "30121011234567890", strings.ReplaceAll(track2, "=", "D"), cardPIN}
	forbidden = append(forbidden, blocks...)
	for where, text := range map[string]string{"database": dump.String(), "logs": e.logs.String()} {
		for _, f := range forbidden {
			if f != "" && strings.Contains(text, f) {
				t.Errorf("%s holds card data %q", where, f[:4]+"…")
			}
		}
	}
	if !strings.Contains(e.logs.String(), "cardpay: declined") {
		t.Fatal("no logs captured: the scan is not looking at the service's logs")
	}
}
