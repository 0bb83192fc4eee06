package main

import (
	"context"
	"net/url"
	"path/filepath"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay/acquirersim"
	"github.com/jifu-open/jifu/host/cardpay/dukpt"
	"github.com/jifu-open/jifu/host/database"
)

// The local acquirer of `jifu serve --card-sim` (the default when no
// --acquirer-addr is given): the same simulator as `jifu acquirer-sim`, run
// as goroutines of serve rather than a child process. It still speaks ISO
// 8583 over TCP on a loopback port of its own and journals through its own
// pool (database jifu_acqsim of the private cluster, or $ACQSIM_DATABASE_URL;
// under an outside DATABASE_URL its acqsim_* tables in that database, since
// serve creates no databases on someone else's server), so the card core
// talks to it exactly as to another acquirer. In-process because serve's
// context then stops it on Ctrl-C with nothing left behind (no orphan process
// holding the port), the free port it bound is known without parsing a
// child's output, and no path to a jifu binary has to be found.

// embeddedSim is a running in-process simulator.
type embeddedSim struct {
	addr   string
	cancel context.CancelFunc
	done   chan struct{}
	pool   interface{ Close() }
}

// startEmbeddedSim starts the simulator on 127.0.0.1:0 with the terminal
// master key tmk; dbURL is the platform database's URL.
func startEmbeddedSim(ctx context.Context, e *env, tmk dukpt.Key, dbURL string) (*embeddedSim, error) {
	simURL, err := simDatabase(ctx, e, dbURL)
	if err != nil {
		return nil, err
	}
	if err := database.Migrate(ctx, simURL, []database.MigrationSet{acquirersim.Migrations}); err != nil {
		return nil, err
	}
	pool, err := database.Open(ctx, simURL)
	if err != nil {
		return nil, err
	}
	sim := acquirersim.New(pool, acquirersim.Config{TMK: tmk, Rules: acquirersim.DefaultRules(), Logger: e.log.With("component", "acquirer-sim")})
	if err := sim.Listen("127.0.0.1:0"); err != nil {
		pool.Close()
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &embeddedSim{addr: sim.Addr(), cancel: cancel, done: make(chan struct{}), pool: pool}
	go dailySettlement(sctx, e, sim, filepath.Join(e.cli.DataDir, "acqsim"))
	go func() {
		defer close(s.done)
		if err := sim.Serve(sctx); err != nil {
			e.log.Error("acquirer-sim: stopped", "err", err)
		}
	}()
	e.log.Info("card core: local acquirer simulator", "addr", s.addr)
	return s, nil
}

// simDatabase picks the simulator's journal database (see above).
func simDatabase(ctx context.Context, e *env, dbURL string) (string, error) {
	if u := e.getenv("ACQSIM_DATABASE_URL"); u != "" {
		return u, nil
	}
	if e.getenv("DATABASE_URL") != "" {
		return dbURL, nil
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", jifu.Errorf(jifu.CodeInternal, "card simulator: the platform database URL does not parse")
	}
	admin := *u
	admin.Path = "/postgres"
	if err := database.EnsureDatabase(ctx, admin.String(), "jifu_acqsim"); err != nil {
		return "", err
	}
	u.Path = "/jifu_acqsim"
	return u.String(), nil
}

// stop ends the simulator and waits for it.
func (s *embeddedSim) stop() {
	if s == nil {
		return
	}
	s.cancel()
	<-s.done
	s.pool.Close()
}
