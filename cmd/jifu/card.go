package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/jifu-open/jifu/web/respond"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/cardpay/dukpt"
	"github.com/jifu-open/jifu/sdk/cardreader"
)

// The demo readers of local runs: the public X9.24-1 (TDES) and X9.24-3
// (AES-128) test BDKs, their test KSNs, and a demo merchant. `jifu serve`
// with the card core and --seed registers them; `jifu terminal pay [--scheme
// aes]` plays those readers. Test keys only.
const (
	demoBDK       = "0123456789ABCDEFFEDCBA9876543210"
	demoKSN       = "FFFF9876543210E00000"
	demoAESBDK    = "FEDCBA9876543210F1F1F1F1F1F1F1F1"
	demoAESKSN    = "123456789012345600000000"
	demoOrg       = "ORG1"
	demoMerchant  = "M100"
	demoPaySecret = "demo-pay-secret-0123456789"
)

// cardFlags are serve's card-core options: the core is mounted at /card/
// when an acquirer address is configured.
type cardFlags struct {
	AcquirerAddr string `name:"acquirer-addr" env:"JIFU_ACQUIRER_ADDR" help:"Acquirer host:port (ISO 8583); enables the card core at /card/."`
	// CardSim runs the local acquirer inside serve when no address is given.
	CardSim     bool   `name:"card-sim" env:"JIFU_CARD_SIM" default:"true" negatable:"" help:"Without --acquirer-addr, run the local acquirer simulator inside serve and mount the card core at /card/ (development)."`
	AcquirerTMK string `name:"acquirer-tmk" env:"JIFU_ACQ_TMK" default:"${dev_tmk}" help:"Terminal master key shared with the acquirer (32 hex digits)."`
	AcquirerTID string `name:"acquirer-tid" default:"JIFU0001" help:"The link's terminal ID at the acquirer (sign-on)."`
	AcquirerMID string `name:"acquirer-mid" default:"898310048990001" help:"The link's merchant ID at the acquirer (sign-on)."`
	// The scheduled jobs (cardJobs).
	AcquirerFiles string        `name:"acquirer-files" type:"path" help:"Folder of the acquirer's daily settlement files to reconcile (default DATA_DIR/acqsim, where acquirer-sim writes)."`
	T0Cutoff      string        `name:"t0-cutoff" default:"22:00" help:"Beijing time (HH:MM) after which the day's T0 batches are made."`
	CardJobsEvery time.Duration `name:"card-jobs-every" default:"1m" help:"How often the card core's jobs run (reversal and posting retries, settlement, reconciliation)."`
}

// withCard mounts the card core in front of h at /card/ (POST /card/pay,
// GET /card/slip) when serve built one; otherwise it returns h. It seeds the
// demo reader and starts the core's notifications and scheduled jobs; the
// returned func stops them.
func withCard(ctx context.Context, c *cardCore, every time.Duration, seed bool, h http.Handler) (http.Handler, func(), error) {
	if c == nil {
		return h, func() {}, nil
	}
	if seed {
		if err := seedCard(ctx, c.svc); err != nil {
			return nil, nil, err
		}
	}
	stop, err := c.start(ctx, every)
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/card/", http.StripPrefix("/card", c.svc.Handler(respond.Status)))
	mux.Handle("/", h)
	return mux, stop, nil
}

// seedCard registers the demo BDK, merchant and reader (idempotent).
func seedCard(ctx context.Context, svc *cardpay.Service) error {
	bdk, _ := dukpt.ParseKey(demoBDK)
	if err := svc.SeedBDK(ctx, "demo-bdk", cardpay.SchemeTDES, bdk); err != nil {
		return err
	}
	if err := svc.RegisterMerchant(ctx, cardpay.Merchant{OrgID: demoOrg, MerchantID: demoMerchant, Name: "演示商户",
		PaySecret: demoPaySecret, AcquirerMID: "898310048990001"}); err != nil {
		return err
	}
	err := svc.RegisterTerminal(ctx, cardpay.Terminal{KSN: demoKSN, OrgID: demoOrg, MerchantID: demoMerchant,
		Type: cardpay.TerminalMPOS, BDKID: "demo-bdk", AcquirerTID: "T0000001"})
	if err != nil && jifu.ErrorCode(err) != jifu.CodeConflict {
		return err
	}
	return seedCardAES(ctx, svc)
}

type terminalCmd struct {
	Pay    terminalPayCmd    `cmd:"" help:"Play the demo card reader: build a signed card payment and send it to a server."`
	Refund terminalRefundCmd `cmd:"" help:"As the demo merchant, refund part or all of a card payment (POST /card/refund)."`
	Void   terminalVoidCmd   `cmd:"" help:"As the demo merchant, void a card payment of today in full (POST /card/void)."`
}

type terminalPayCmd struct {
	Server  string `default:"http://localhost:8080" help:"Platform base URL."`
	Order   string `help:"Order ID (default: a new one)."`
	Amount  int64  `default:"100" help:"Amount in fen."`
	Track2  string `default:"6222021234567890128=30121011234567890" help:"Track 2 of the test card."`
	PIN     string `default:"123456" help:"PIN (empty: none)."`
	Counter uint32 `help:"KSN counter to start after (default: the one kept in DATA_DIR/demo-reader[-aes].counter)."`
	Scheme  string `default:"tdes" enum:"tdes,aes" help:"The reader's DUKPT: tdes (X9.24-1) or aes (X9.24-3, AES-128)."`
}

func (c terminalPayCmd) Run(ctx context.Context, e *env) error {
	r, counterName, err := demoReader(c.Scheme)
	if err != nil {
		return err
	}
	// A reader keeps its counter: a used counter is refused as a replay.
	counterFile := filepath.Join(e.cli.DataDir, counterName)
	counter := c.Counter
	if counter == 0 {
		if b, err := os.ReadFile(counterFile); err == nil {
			n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
			counter = uint32(n)
		}
	}
	r.SetCounter(counter)
	order := c.Order
	if order == "" {
		order = fmt.Sprintf("demo-%d", time.Now().UnixNano())
	}
	req, err := r.Build(cardreader.Payment{OrderID: order, Amount: c.Amount, ProductName: "演示商品", Track2: c.Track2, PIN: c.PIN})
	if err != nil {
		return err
	}
	if err := os.WriteFile(counterFile, []byte(strconv.FormatUint(uint64(r.Counter()), 10)+"\n"), 0o644); err != nil {
		return err
	}
	return postCard(ctx, e, c.Server, "/card/pay", req.Encode())
}

// postCard sends a card request, prints the indented answer, and exits 1
// unless it is approved (the answer says why).
func postCard(ctx context.Context, e *env, server, path string, body []byte) error {
	hreq, _ := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(server, "/")+path, bytes.NewReader(body))
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		return jifu.Errorf(jifu.CodeUnavailable, "terminal: %w", err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var out bytes.Buffer
	if json.Indent(&out, answer, "", "  ") != nil {
		out.Write(answer)
	}
	fmt.Fprintln(e.stdout, strings.TrimSpace(out.String()))
	var res struct {
		Status string `json:"status"`
	}
	_ = json.Unmarshal(answer, &res)
	if resp.StatusCode != http.StatusOK || res.Status != cardpay.StatusApproved {
		return exitError{code: 1} // declined or refused: the answer above says why
	}
	return nil
}
