// Command jifu is the platform's one binary: the server, migrations, the test
// harness and the developer commands.
//
//	jifu serve --dev-apps build/apps     # the platform on :8080
//	jifu migrate up|status
//	jifu app init|build|check|run        # the developer CLI
//	jifu dev test -- go test ./...       # run a command against a private test cluster
//	jifu acquirer-sim                    # the local card acquirer (ISO 8583 over TCP)
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// cli is the command tree.
type cli struct {
	DataDir  string `name:"data-dir" default:".data" env:"JIFU_DATA_DIR" help:"Folder for the private database, caches and artifacts."`
	LogLevel string `name:"log-level" default:"info" enum:"debug,info,warn,error" env:"JIFU_LOG_LEVEL" help:"Log level (debug, info, warn, error)."`
	// Interrupt is how wall-clock limits stop a looping guest (host.Interrupt).
	Interrupt string `name:"interrupt" default:"yield" enum:"yield,wazero,none" env:"JIFU_INTERRUPT" help:"How wall-clock limits stop a running guest: yield (instrumented modules, default), wazero (WithCloseOnContextDone), none (trusted modules only)."`

	Serve   serveCmd   `cmd:"" help:"Run the platform server."`
	Migrate migrateCmd `cmd:"" help:"Apply or inspect database migrations."`
	App     appCmd     `cmd:"" help:"Developer commands: init, build, check and run an app."`
	Dev     devCmd     `cmd:"" help:"Commands for working on the platform itself."`
	Ledger  ledgerCmd  `cmd:"" help:"The host ledger: check invariants, daily report."`
	Banksim banksimCmd `cmd:"" help:"Run the simulated bank (top-up and withdrawal peer) as its own process."`
	Escrow  escrowCmd  `cmd:"" help:"Escrow custody records: check them against the books."`

	AcquirerSim acquirerSimCmd `cmd:"" name:"acquirer-sim" help:"Run the local card acquirer (ISO 8583 over TCP) with its journal and settlement files."`
	Terminal    terminalCmd    `cmd:"" help:"Demo card reader commands."`
	Card        cardCmd        `cmd:"" help:"Card core operator commands: erroneous transactions, user levels."`
}

// env is what every command receives: the process's environment and output.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
	cli    *cli
}

// exitError carries a process exit code through kong's Run.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	var c cli
	exited := -1
	parser, err := kong.New(&c,
		kong.Name("jifu"),
		kong.Description("Jifu Open Platform: a marketplace host for sandboxed WebAssembly apps."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { exited = code }),
		kong.UsageOnError(),
		kong.Vars{"default_addr": ":8080", "dev_tmk": devTMK},
	)
	if err != nil {
		fmt.Fprintln(stderr, "jifu:", err)
		return 2
	}
	kctx, err := parser.Parse(args)
	if exited >= 0 {
		return exited // --help
	}
	if err != nil {
		fmt.Fprintln(stderr, "jifu:", err)
		return 2
	}
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(c.LogLevel))
	e := &env{getenv: getenv, stdout: stdout, stderr: stderr, cli: &c,
		log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))}
	// Create the data folder world-traversable before anything else does:
	// wazero would create it 0700, and the private cluster's server runs as
	// the postgres user when we are root.
	if err := os.MkdirAll(c.DataDir, 0o755); err != nil {
		fmt.Fprintln(stderr, "jifu:", err)
		return 1
	}
	kctx.BindTo(ctx, (*context.Context)(nil))
	if err := kctx.Run(e); err != nil {
		if ee, ok := err.(exitError); ok {
			return ee.code
		}
		fmt.Fprintf(stderr, "jifu: %s\n", err)
		return exitCode(err)
	}
	return 0
}

// exitCode maps error codes to process exit codes: the one place this happens.
func exitCode(err error) int {
	switch jifu.ErrorCode(err) {
	case jifu.CodeInvalid, jifu.CodeTooLarge:
		return 2
	case jifu.CodeNotFound:
		return 3
	case jifu.CodeConflict:
		return 4
	case jifu.CodeUnavailable, jifu.CodeTimeout:
		return 5
	}
	return 1
}

func asValidation(err error, target **host.ValidationError) bool { return errors.As(err, target) }
