package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/cardpay/acquirersim"
	"github.com/jifu-open/jifu/host/cardpay/dukpt"
	"github.com/jifu-open/jifu/host/database"
)

// devTMK is the terminal master key of local runs (the public UnionPay
// worked example's key): never a production key.
const devTMK = "70F2A84CCBC2AE8625CBB0F2C22AB923"

// acquirerSimCmd runs the local acquirer (host/cardpay/acquirersim) as its
// own process: ISO 8583 over TCP, its own journal, a daily settlement file.
type acquirerSimCmd struct {
	Addr        string `default:"127.0.0.1:9583" env:"JIFU_ACQSIM_ADDR" help:"Address to listen on."`
	DatabaseURL string `name:"database-url" help:"The journal's database (default: $ACQSIM_DATABASE_URL, else database jifu_acqsim in the private cluster under DATA_DIR/pg)."`
	TMK         string `name:"tmk" env:"JIFU_ACQ_TMK" default:"${dev_tmk}" help:"Terminal master key, 32 hex digits (the working keys travel under it)."`
	SettleDir   string `name:"settle-dir" type:"path" help:"Folder for the daily settlement files (default DATA_DIR/acqsim)."`
	SettleDay   string `name:"settle-day" help:"Write the settlement file of this day (YYYY-MM-DD, Beijing time) and exit."`
}

func (c acquirerSimCmd) Run(ctx context.Context, e *env) error {
	tmk, err := dukpt.ParseKey(c.TMK)
	if err != nil {
		return jifu.Errorf(jifu.CodeInvalid, "--tmk: %s", jifu.ErrorMessage(err))
	}
	url := c.DatabaseURL
	if url == "" {
		url = e.getenv("ACQSIM_DATABASE_URL")
	}
	if url == "" {
		cl, err := database.StartCluster(ctx, database.ClusterOptions{Dir: filepath.Join(e.cli.DataDir, "pg"), Durable: true, Logger: e.log})
		if err != nil {
			return err
		}
		if cl.Started() {
			defer func() { _ = cl.Stop(context.Background()) }()
		}
		if err := database.EnsureDatabase(ctx, cl.URL("postgres"), "jifu_acqsim"); err != nil {
			return err
		}
		url = cl.URL("jifu_acqsim")
	}
	if err := database.Migrate(ctx, url, []database.MigrationSet{acquirersim.Migrations}); err != nil {
		return err
	}
	pool, err := database.Open(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	sim := acquirersim.New(pool, acquirersim.Config{TMK: tmk, Rules: acquirersim.DefaultRules(), Logger: e.log})
	dir := c.SettleDir
	if dir == "" {
		dir = filepath.Join(e.cli.DataDir, "acqsim")
	}
	if c.SettleDay != "" {
		day, err := time.ParseInLocation("2006-01-02", c.SettleDay, acquirersim.Beijing)
		if err != nil {
			return jifu.Errorf(jifu.CodeInvalid, "--settle-day must be YYYY-MM-DD")
		}
		path, err := writeSettlement(ctx, sim, dir, day)
		if err == nil {
			fmt.Fprintln(e.stdout, path)
		}
		return err
	}
	if err := sim.Listen(c.Addr); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "acquirer simulator on %s (journal %s, settlement files in %s)\n", sim.Addr(), redactURL(url), dir)
	go dailySettlement(ctx, e, sim, dir)
	return sim.Serve(ctx)
}

// dailySettlement writes the previous day's file when the Beijing date changes.
func dailySettlement(ctx context.Context, e *env, sim *acquirersim.Sim, dir string) {
	last := time.Now().In(acquirersim.Beijing).Format("2006-01-02")
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			today := now.In(acquirersim.Beijing).Format("2006-01-02")
			if today == last {
				continue
			}
			day, _ := time.ParseInLocation("2006-01-02", last, acquirersim.Beijing)
			if path, err := writeSettlement(ctx, sim, dir, day); err != nil {
				e.log.Error("acquirer-sim: settlement file", "day", last, "err", err)
			} else {
				e.log.Info("acquirer-sim: settlement file written", "path", path)
			}
			last = today
		}
	}
}

func writeSettlement(ctx context.Context, sim *acquirersim.Sim, dir string, day time.Time) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "settlement-"+day.Format("20060102")+".csv")
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return "", err
	}
	if err := sim.WriteSettlement(ctx, day, f); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}

// redactURL drops a password from a database URL for printing.
func redactURL(u string) string {
	if i := strings.Index(u, "@"); i > 0 {
		if j := strings.Index(u, "://"); j > 0 && j < i {
			return u[:j+3] + "…" + u[i:]
		}
	}
	return u
}
