package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/jifu-open/jifu/web/session"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/bank"
	"github.com/jifu-open/jifu/host/bank/banksim"
	"github.com/jifu-open/jifu/host/database"
	"github.com/jifu-open/jifu/host/escrow"
	"github.com/jifu-open/jifu/host/funding"
	"github.com/jifu-open/jifu/host/funding/escrowbank"
	"github.com/jifu-open/jifu/host/ledger"
	"github.com/jifu-open/jifu/web/wallet"
)

// The bank's defaults: the merchant id of the platform at the bank, its
// settlement account, and the float that account starts with locally.
const (
	bankMerchant   = "jifu"
	bankSettlement = "9558800000000000001"
	bankFloat      = 100_000_000_00 // 100 million yuan
)

// demoBankAccounts are the demo users' bank accounts `make run` opens at the
// in-process bank and binds, in fen.
var demoBankAccounts = []struct {
	user, account string
	fen           int64
}{{"u1", "6222020200000000001", 10_000_00}, {"u2", "6222020200000000002", 2_000_00}}

// fundingParts is the bank and funding wiring of serve: a bank client (to
// the in-process banksim on a loopback listener, or to JIFU_BANK_URL), the
// funding service, its reconcile sweep and the /wallet page.
type fundingParts struct {
	svc    *funding.Service
	client *bank.Client
	key    []byte // the master key (the page's token key derives from it)
	page   *wallet.Handler
	bankLn net.Listener // the in-process bank's listener, when there is one
	sim    *banksim.Server
	log    *slog.Logger
}

// bankSecret is the merchant's HMAC secret: JIFU_BANK_SECRET (hex) or one
// derived from the master key.
func bankSecret(e *env, masterKey []byte) ([]byte, error) {
	if h := e.getenv("JIFU_BANK_SECRET"); h != "" {
		k, err := hex.DecodeString(strings.TrimSpace(h))
		if err != nil || len(k) < 16 {
			return nil, jifu.Errorf(jifu.CodeInvalid, "JIFU_BANK_SECRET must be at least 32 hex digits")
		}
		return k, nil
	}
	m := hmac.New(sha256.New, masterKey)
	m.Write([]byte("jifu.bank.merchant.v1"))
	return m.Sum(nil), nil
}

// newFunding builds the bank client and the funding service (startPlatform
// calls it: escrow needs the bank too). Without JIFU_BANK_URL it serves
// banksim in-process on 127.0.0.1 (its tables in the platform database),
// with faults from JIFU_BANK_FAULTS ("fail=0.1,timeout=0.05,delay=20ms").
func newFunding(ctx context.Context, e *env, pool *pgxpool.Pool, l *ledger.Ledger, masterKey []byte) (_ *fundingParts, err error) {
	f := &fundingParts{log: e.log, key: masterKey}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	secret, err := bankSecret(e, masterKey)
	if err != nil {
		return nil, err
	}
	url := e.getenv("JIFU_BANK_URL")
	if url == "" {
		faults, err := parseFaults(e.getenv("JIFU_BANK_FAULTS"))
		if err != nil {
			return nil, err
		}
		if f.sim, err = banksim.New(banksim.Config{Pool: pool, Faults: faults, Logger: e.log.With("peer", "banksim"),
			Merchants: []banksim.Merchant{{ID: bankMerchant, Secret: secret, Account: bankSettlement}}}); err != nil {
			return nil, err
		}
		if err := f.sim.OpenAccount(ctx, bankSettlement, "Jifu settlement", bankFloat); err != nil {
			return nil, err
		}
		if f.bankLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, jifu.Errorf(jifu.CodeUnavailable, "banksim: listen: %w", err)
		}
		srv := &http.Server{Handler: f.sim, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(f.bankLn) }()
		url = "http://" + f.bankLn.Addr().String()
	}
	if f.client, err = bank.NewClient(bank.ClientConfig{URL: url, Merchant: bankMerchant, Secret: secret, Timeout: 10 * time.Second}); err != nil {
		return nil, err
	}
	if f.svc, err = funding.New(funding.Config{Pool: pool, Ledger: l, Bank: f.client, Logger: e.log}); err != nil {
		return nil, err
	}
	return f, nil
}

// escrowBank is the escrow capability's bank: the same gateway, the users'
// accounts as bound through funding.
func (f *fundingParts) escrowBank() escrow.Bank { return escrowbank.New(f.client, f.svc) }

// mountWallet builds the /wallet page, its users known as web knows them,
// and with seed opens and binds the demo users' bank accounts.
func (f *fundingParts) mountWallet(ctx context.Context, identity func(*http.Request) string, seed bool) error {
	mac := hmac.New(sha256.New, f.key)
	mac.Write([]byte("jifu.wallet.page.v1"))
	var err error
	if f.page, err = wallet.New(wallet.Config{Funding: f.svc, Identity: identity, Key: mac.Sum(nil), Logger: f.log}); err != nil {
		return err
	}
	if seed {
		for _, d := range demoBankAccounts {
			if f.sim != nil {
				if err := f.sim.OpenAccount(ctx, d.account, d.user, d.fen); err != nil {
					return err
				}
			}
			if _, err := f.svc.BoundAccount(ctx, d.user); jifu.ErrorCode(err) == jifu.CodeNotFound {
				if err := f.svc.BindAccount(ctx, d.user, d.account); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// start runs the reconcile sweep every 5 s until the returned stop is called.
func (f *fundingParts) start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { f.svc.Run(ctx, 5*time.Second); close(done) }()
	return func() { cancel(); <-done }
}

func (f *fundingParts) close() {
	if f != nil && f.bankLn != nil {
		_ = f.bankLn.Close()
	}
}

// walletIdentity is the wallet page's user: the store session's (web's
// session layer, in front of every mounted page), X-Jifu-User in dev mode.
func walletIdentity(r *http.Request) string {
	u, _ := session.Identity(r)
	return u
}

// parseFaults reads "fail=0.1,timeout=0.05,lost-executes=0.5,delay=20ms,jitter=10ms".
func parseFaults(s string) (banksim.Faults, error) {
	f := banksim.Faults{ExecuteLost: 0.5}
	if strings.TrimSpace(s) == "" {
		return f, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		var err error
		switch k {
		case "fail":
			f.FailRate, err = parseRate(v)
		case "timeout":
			f.TimeoutRate, err = parseRate(v)
		case "lost-executes":
			f.ExecuteLost, err = parseRate(v)
		case "delay":
			f.Delay, err = time.ParseDuration(v)
		case "jitter":
			f.Jitter, err = time.ParseDuration(v)
		default:
			err = errors.New("unknown setting")
		}
		if err != nil || f.Delay < 0 || f.Jitter < 0 {
			return f, jifu.Errorf(jifu.CodeInvalid, "bank faults: %q: want fail=, timeout=, lost-executes= (0..1), delay=, jitter= (durations)", kv)
		}
	}
	return f, nil
}

func parseRate(v string) (float64, error) {
	x, err := strconv.ParseFloat(v, 64)
	if err != nil || x < 0 || x > 1 {
		return 0, errors.New("not a rate")
	}
	return x, nil
}

// banksimCmd runs the simulated bank as its own process, over its own
// database.
type banksimCmd struct {
	Addr       string   `default:"127.0.0.1:9400" help:"Address to listen on (keep it on loopback)."`
	Database   string   `name:"database" env:"JIFU_BANKSIM_DATABASE_URL" required:"" help:"PostgreSQL URL of the bank's own database (migrated with the banksim set)."`
	Merchant   string   `default:"jifu" help:"The merchant id the platform uses."`
	Settlement string   `default:"9558800000000000001" help:"The merchant's settlement account number."`
	Float      int64    `default:"10000000000" help:"The settlement account's opening balance, in fen."`
	Faults     string   `env:"JIFU_BANK_FAULTS" help:"Injected faults: fail=0.1,timeout=0.05,lost-executes=0.5,delay=20ms,jitter=10ms."`
	Open       []string `help:"Open customer accounts: NUMBER:HOLDER:FEN (repeatable)."`
}

func (c banksimCmd) Run(ctx context.Context, e *env) error {
	secret := e.getenv("JIFU_BANK_SECRET")
	k, err := hex.DecodeString(strings.TrimSpace(secret))
	if err != nil || len(k) < 16 {
		return jifu.Errorf(jifu.CodeInvalid, "banksim: JIFU_BANK_SECRET must hold at least 32 hex digits (the merchant's secret)")
	}
	faults, err := parseFaults(c.Faults)
	if err != nil {
		return err
	}
	if err := database.Migrate(ctx, c.Database, []database.MigrationSet{banksim.Migrations}); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, c.Database)
	if err != nil {
		return jifu.Errorf(jifu.CodeInvalid, "banksim: database URL: %w", err)
	}
	defer pool.Close()
	sim, err := banksim.New(banksim.Config{Pool: pool, Faults: faults, Logger: e.log,
		Merchants: []banksim.Merchant{{ID: c.Merchant, Secret: k, Account: c.Settlement}}})
	if err != nil {
		return err
	}
	if err := sim.OpenAccount(ctx, c.Settlement, c.Merchant+" settlement", c.Float); err != nil {
		return err
	}
	for _, o := range c.Open {
		parts := strings.Split(o, ":")
		fen, perr := int64(0), error(nil)
		if len(parts) == 3 {
			fen, perr = strconv.ParseInt(parts[2], 10, 64)
		}
		if len(parts) != 3 || perr != nil {
			return jifu.Errorf(jifu.CodeInvalid, "banksim: --open wants NUMBER:HOLDER:FEN")
		}
		if err := sim.OpenAccount(ctx, parts[0], parts[1], fen); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return jifu.Errorf(jifu.CodeUnavailable, "banksim: listen on %s: %w", c.Addr, err)
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(e.stdout, "banksim serving on http://%s (merchant %s, settlement %s)\n", ln.Addr(), c.Merchant, bank.Mask(c.Settlement))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
