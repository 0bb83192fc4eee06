package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay"
	"github.com/jifu-open/jifu/host/cardpay/dukpt"
	"github.com/jifu-open/jifu/sdk/cardreader"
)

// seedCardAES registers the AES demo BDK and reader (idempotent).
func seedCardAES(ctx context.Context, svc *cardpay.Service) error {
	bdk, _ := dukpt.ParseKey(demoAESBDK)
	if err := svc.SeedBDK(ctx, "demo-bdk-aes", cardpay.SchemeAES, bdk); err != nil {
		return err
	}
	err := svc.RegisterTerminal(ctx, cardpay.Terminal{KSN: demoAESKSN, OrgID: demoOrg, MerchantID: demoMerchant,
		Type: cardpay.TerminalBluetooth, BDKID: "demo-bdk-aes", AcquirerTID: "T0000002"})
	if err != nil && jifu.ErrorCode(err) != jifu.CodeConflict {
		return err
	}
	return nil
}

// demoReader is the demo reader of a scheme and the name of the file in
// DATA_DIR that keeps its KSN counter.
func demoReader(scheme string) (*cardreader.Reader, string, error) {
	cfg := cardreader.Config{OrgID: demoOrg, MerchantID: demoMerchant, PaySecret: demoPaySecret}
	if scheme == cardpay.SchemeAES {
		bdk, _ := dukpt.ParseKey(demoAESBDK)
		ksn, _ := dukpt.ParseAESKSN(demoAESKSN)
		cfg.IPEK, cfg.AES, cfg.AESKSN = dukpt.AESInitialKey(bdk, ksn), true, ksn
		r, err := cardreader.New(cfg)
		return r, "demo-reader-aes.counter", err
	}
	bdk, _ := dukpt.ParseKey(demoBDK)
	ksn, _ := dukpt.ParseKSN(demoKSN)
	cfg.IPEK, cfg.KSN = dukpt.IPEK(bdk, ksn), ksn
	r, err := cardreader.New(cfg)
	return r, "demo-reader.counter", err
}

// terminalRefundCmd refunds as the demo merchant (its pay_secret signs).
type terminalRefundCmd struct {
	Server   string `default:"http://localhost:8080" help:"Platform base URL."`
	Order    string `required:"" help:"The payment's order ID."`
	Amount   int64  `required:"" help:"Amount to give back, in fen."`
	RefundID string `name:"refund-id" help:"The merchant's id of this refund (default: a new one); sending it again returns the first result."`
}

func (c terminalRefundCmd) Run(ctx context.Context, e *env) error {
	return sendRefund(ctx, e, c.Server, "/card/refund", c.Order, c.RefundID, c.Amount)
}

// terminalVoidCmd voids a payment of today in full as the demo merchant.
type terminalVoidCmd struct {
	Server string `default:"http://localhost:8080" help:"Platform base URL."`
	Order  string `required:"" help:"The payment's order ID."`
	Amount int64  `required:"" help:"The payment's whole amount, in fen."`
	VoidID string `name:"void-id" help:"The merchant's id of this void (default: a new one)."`
}

func (c terminalVoidCmd) Run(ctx context.Context, e *env) error {
	return sendRefund(ctx, e, c.Server, "/card/void", c.Order, c.VoidID, c.Amount)
}

func sendRefund(ctx context.Context, e *env, server, path, order, id string, amount int64) error {
	if id == "" {
		id = fmt.Sprintf("demo-r-%d", time.Now().UnixNano())
	}
	req, err := cardreader.BuildRefund(demoOrg, demoMerchant, demoPaySecret, order, id, amount, time.Now())
	if err != nil {
		return err
	}
	return postCard(ctx, e, server, path, req.Encode())
}

// printCardDemo writes the card core's lines of serve's banner: the
// endpoints, the acquirer, and (when seeded) the demo merchant's
// credentials with working demo command lines.
func printCardDemo(w io.Writer, base string, c *cardCore, seeded bool) {
	if c == nil {
		return
	}
	acq := "the acquirer at --acquirer-addr"
	if c.sim != nil {
		acq = "the local acquirer simulator on " + c.sim.addr
	}
	fmt.Fprintf(w, "  card core        %s/card/pay  /card/refund  /card/void  /card/slip  (%s)\n", base, acq)
	if !seeded {
		return
	}
	fmt.Fprintf(w, "  demo merchant    org_id %s  merchant_id %s  pay_secret %s\n", demoOrg, demoMerchant, demoPaySecret)
	fmt.Fprintf(w, "  demo readers     TDES KSN %s (X9.24-1 test BDK)  AES KSN %s (X9.24-3 test BDK)\n", demoKSN, demoAESKSN)
	fmt.Fprintf(w, "  try              bin/jifu terminal pay --server %s --amount 2345 [--scheme aes]\n", base)
	fmt.Fprintf(w, "                   bin/jifu terminal refund --server %s --order <order_id> --amount 1000\n", base)
}
