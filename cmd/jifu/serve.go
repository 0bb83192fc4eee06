package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host"
	"github.com/jifu-open/jifu/host/audit"
	"github.com/jifu-open/jifu/host/configstore"
	"github.com/jifu-open/jifu/host/escrow"
	"github.com/jifu-open/jifu/host/kvstore"
	"github.com/jifu-open/jifu/host/ledger"
	"github.com/jifu-open/jifu/host/outbox"
	"github.com/jifu-open/jifu/host/payment"
	"github.com/jifu-open/jifu/marketplace"
	"github.com/jifu-open/jifu/web"
)

type serveCmd struct {
	Addr    string `default:"${default_addr}" env:"JIFU_ADDR" help:"Address to listen on."`
	DevApps string `name:"dev-apps" type:"path" env:"JIFU_DEV_APPS" help:"Serve every app built in this folder (DIR/<slug>/app.wasm + jifu.json) directly, bypassing the marketplace's releases."`
	Plugins string `name:"plugins" type:"path" default:"build/apps" env:"JIFU_PLUGINS" help:"First-party apps to publish through the marketplace when seeding (DIR/<slug>/app.wasm + jifu.json)."`
	Dev     bool   `env:"JIFU_DEV" help:"Development mode: trust X-Jifu-User, treat every scope as consented."`
	Seed    bool   `default:"true" negatable:"" help:"Seed demo data on start (idempotent)."`

	Card cardFlags `embed:""`
	// SecureCookies marks session cookies Secure on plain http, for a
	// server behind a TLS-terminating proxy.
	SecureCookies bool `name:"secure-cookies" env:"JIFU_SECURE_COOKIES" help:"Mark session cookies Secure (serving behind an https proxy)."`
	// DebugAddr serves net/http/pprof on a loopback address of its own.
	DebugAddr string `name:"debug-addr" env:"JIFU_DEBUG_ADDR" help:"Serve Go's profiler (/debug/pprof/) on this loopback address, e.g. 127.0.0.1:6060."`
}

// platform is everything serve and app run start, in the order to stop it.
type platform struct {
	db      *platformDB
	pool    interface{ Close() }
	audit   *audit.Writer
	host    *host.Host
	apps    *host.AppSet
	config  *configstore.Store
	ledger  *ledger.Ledger
	pay     *payments
	outbox  *outbox.Outbox // events (payments' outcomes) to apps, developers' servers, statistics
	link    *marketLink    // the marketplace, once started, for the peers built before it
	escrow  *escrow.Service
	fund    *fundingParts // the bank and funding (cmd/jifu/bank.go)
	metrics *prometheus.Registry
	pgpool  *pgxpool.Pool
	// consents answers the host's consent checks (outside dev mode) and
	// the marketplace's grants; market is set by startMarketplace.
	consents *marketplace.Consents
	market   *marketplaceParts
	ready    func(context.Context) error
	// card is the card core (nil unless an acquirer is configured); its
	// card method is offered by the payment capability.
	card *cardCore
}

// startPlatform brings up the database (private cluster unless DATABASE_URL),
// migrates it, and builds the host with its stores, and the card core when
// card names an acquirer.
func startPlatform(ctx context.Context, e *env, dev bool, card cardFlags) (_ *platform, err error) {
	p := &platform{apps: host.NewAppSet(), metrics: prometheus.NewRegistry(), link: &marketLink{}}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	p.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if p.db, err = openPlatformDB(ctx, e); err != nil {
		return nil, err
	}
	pool, err := p.db.migrateAndOpen(ctx)
	if err != nil {
		return nil, err
	}
	p.pool = pool
	p.pgpool = pool
	p.ready = pool.Ping
	key, err := masterKey(e)
	if err != nil {
		return nil, err
	}
	if p.config, err = configstore.New(pool, key); err != nil {
		return nil, err
	}
	p.audit = audit.New(pool, e.log)
	p.ledger = ledger.New(pool, ledger.WithLogger(e.log), ledger.WithMetrics(p.metrics))
	if p.outbox, err = newEventsOutbox(e, p); err != nil {
		return nil, err
	}
	var methods []payment.Method
	if p.card, err = newCardCore(ctx, e, card, p.db.URL); err != nil {
		return nil, err
	}
	if p.card != nil {
		methods = []payment.Method{payment.Balance{}, payment.Credit{}, p.card.method()}
	}
	if p.pay, err = newPayments(pool, p.ledger, key, paymentEvents{ob: p.outbox}, e.log, methods...); err != nil {
		return nil, err
	}
	if p.fund, err = newFunding(ctx, e, pool, p.ledger, key); err != nil {
		return nil, err
	}
	peers := marketEscrowPeers(p.link)
	peers.Bank = p.fund.escrowBank()
	p.escrow = newEscrow(pool, p.ledger, e.log, peers)
	p.consents = marketplace.NewConsents(pool)
	var consent host.ConsentChecker = p.consents
	if dev {
		consent = host.AllowAll{}
	}
	p.host, err = host.New(ctx, host.Config{
		CacheDir:  filepath.Join(e.cli.DataDir, "wazero-cache"),
		Logger:    e.log,
		KV:        kvstore.New(pool),
		Payments:  p.pay.svc,
		Escrow:    p.escrow,
		Audit:     p.audit,
		Consent:   consent,
		Metrics:   p.metrics,
		Interrupt: host.Interrupt(e.cli.Interrupt),
		Pool:      host.PoolOptions{Max: e.cli.AppInstances},
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// appConfig returns an app's operator configuration (secrets decrypted).
func (p *platform) appConfig(ctx context.Context, slug string) (map[string]string, error) {
	return p.config.All(ctx, slug)
}

// Close stops everything in reverse order, the private database last.
func (p *platform) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if p.market != nil {
		p.market.close(ctx)
	}
	if p.apps != nil {
		_ = p.apps.Close(ctx)
	}
	if p.host != nil {
		_ = p.host.Close(ctx)
	}
	if p.audit != nil {
		_ = p.audit.Close(ctx)
	}
	p.card.close()
	p.fund.close()
	if p.pool != nil {
		p.pool.Close()
	}
	if p.db != nil {
		_ = p.db.Close()
	}
}

// masterKey returns the 32-byte key that encrypts secrets at rest:
// JIFU_MASTER_KEY (64 hex digits) when set, else a key generated once and
// kept in DATA_DIR/master.key (mode 0600) for local use.
func masterKey(e *env) ([]byte, error) {
	if h := e.getenv("JIFU_MASTER_KEY"); h != "" {
		k, err := hex.DecodeString(strings.TrimSpace(h))
		if err != nil || len(k) != 32 {
			return nil, jifu.Errorf(jifu.CodeInvalid, "JIFU_MASTER_KEY must be 64 hex digits")
		}
		return k, nil
	}
	path := filepath.Join(e.cli.DataDir, "master.key")
	if b, err := os.ReadFile(path); err == nil {
		k, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(k) != 32 {
			return nil, jifu.Errorf(jifu.CodeInvalid, "%s must hold 64 hex digits", path)
		}
		return k, nil
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(e.cli.DataDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(k)+"\n"), 0o600); err != nil {
		return nil, err
	}
	return k, nil
}

// seed writes the demo data `make run` shows. It is idempotent.
func seed(ctx context.Context, p *platform) error {
	if _, _, err := p.config.Get(ctx, "hello", "greeting"); jifu.ErrorCode(err) == jifu.CodeNotFound {
		if err := p.config.Set(ctx, "hello", "greeting", "你好", false); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if err := seedLedger(ctx, p.ledger); err != nil {
		return err
	}
	return seedPayments(ctx, p.pay)
}

func (c serveCmd) Run(ctx context.Context, e *env) error {
	stopDebug, err := startDebug(ctx, c.DebugAddr, e.log)
	if err != nil {
		return err
	}
	defer stopDebug()
	p, err := startPlatform(ctx, e, c.Dev, c.Card)
	if err != nil {
		return err
	}
	defer p.Close()
	if c.Seed {
		if err := seed(ctx, p); err != nil {
			return fmt.Errorf("seeding demo data: %w", err)
		}
	}
	defer startHoldExpiry(ctx, p.ledger, e.log)()
	if err := p.startMarketplace(ctx, e); err != nil {
		return err
	}
	var logins []string
	if c.Seed {
		if logins, err = p.seedMarketplace(ctx, e, c.Plugins); err != nil {
			return fmt.Errorf("seeding the marketplace: %w", err)
		}
	}
	// The portal, reviewer pages and store (web/) run on the marketplace;
	// the SMS outbox is the local channel's, shown in the developer console.
	deps := web.Deps{Apps: p.apps, Ready: p.ready, Metrics: p.metrics, Logger: e.log, DevMode: c.Dev,
		Market: p.market.svc, Outbox: p.market.outbox, SecureCookies: c.SecureCookies,
		Risk: p.riskDesk(), RiskCases: p.caseDesk(e.log),
		Mount: map[string]http.Handler{"/pay": p.pay.page}}
	defer p.pay.start(ctx)()
	defer startEscrowSweep(ctx, p.escrow, e.log)()
	if c.DevApps != "" {
		if err := p.host.LoadDir(ctx, c.DevApps, p.apps, p.appConfig); err != nil {
			return err
		}
	} else {
		deps.Resolver = p.market.serving
		if err := p.market.serving.Preload(ctx); err != nil {
			e.log.Warn("preloading released apps failed; they load on first request", "err", err)
		}
	}
	ob, stopCallbacks, err := startCallbacks(ctx, e, p)
	if err != nil {
		return err
	}
	defer stopCallbacks()
	openAPI, stopOpenAPI, err := p.startOpenAPI(ctx, e, ob)
	if err != nil {
		return err
	}
	defer stopOpenAPI()
	go p.market.evaluateReleases(ctx, e, releaseEvaluationInterval)
	if err := p.fund.mountWallet(ctx, walletIdentity, c.Seed); err != nil {
		return err
	}
	defer p.fund.start(ctx)()
	deps.Mount["/wallet"] = p.fund.page
	handler, closeCard, err := withCard(ctx, p.card, c.Card.CardJobsEvery, c.Seed, openAPI(web.New(deps)))
	if err != nil {
		return err
	}
	defer closeCard()
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return jifu.Errorf(jifu.CodeUnavailable, "listen on %s: %w", c.Addr, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	base := "http://" + displayAddr(ln.Addr())
	fmt.Fprintf(e.stdout, "Jifu Open Platform serving on %s\n", base)
	for _, slug := range p.apps.Slugs() {
		fmt.Fprintf(e.stdout, "  app %-12s %s/apps/%s/\n", slug, base, slug)
	}
	if c.DevApps == "" {
		for _, slug := range p.market.released(ctx) {
			fmt.Fprintf(e.stdout, "  app %-12s %s/apps/%s/\n", slug, base, slug)
		}
	}
	fmt.Fprintf(e.stdout, "  app store        %s/store/\n  developer portal %s/portal/   reviewers %s/review/   SMS outbox %s/portal/outbox\n",
		base, base, base, base)
	fmt.Fprintf(e.stdout, "  risk desk        %s/risk/ (risk staff and admins: the card risk rules)\n", base)
	for _, l := range logins {
		fmt.Fprintf(e.stdout, "  %s\n", l)
	}
	fmt.Fprintf(e.stdout, "  open API         %s/openapi/v1/  %s/openapi.json\n", base, base)
	fmt.Fprintf(e.stdout, "  wallet           %s/wallet\n", base)
	printCardDemo(e.stdout, base, p.card, c.Seed)
	fmt.Fprintf(e.stdout, "  health           %s/healthz  %s/readyz\n  metrics          %s/metrics\nPress Ctrl-C to stop.\n", base, base, base)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	e.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if host == "::" || host == "0.0.0.0" || host == "" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
