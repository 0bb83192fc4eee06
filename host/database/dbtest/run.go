package dbtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/jifu-open/jifu"
	"github.com/jifu-open/jifu/host/database"
)

// RunCommand runs args (typically go test ./...) in directory dir with a
// test cluster for the whole run, the wrapper behind
// `jifu dev test -- go test ./...`:
//
//  1. it starts a non-durable, ephemeral cluster in dir/.data/test-<pid>
//     (in a temporary directory instead when, running as root, the postgres
//     user cannot reach dir);
//  2. creates and migrates TemplateName;
//  3. runs args[0] with args[1:] in dir, with this process's environment
//     plus EnvURL, writing to stdout and stderr;
//  4. stops the cluster and deletes its directory, whatever happened.
//
// SIGINT and SIGTERM received meanwhile are forwarded to the command (or,
// before it started, abort the setup), and the cleanup still runs;
// canceling ctx sends the command SIGINT. exitCode is the command's exit
// status (128+n when signal n killed it). err reports a failure of the
// wrapper itself (the cluster, the template, starting the command or the
// cleanup); exitCode is then 1 unless the command ran.
func RunCommand(ctx context.Context, dir string, args []string, stdout, stderr io.Writer) (exitCode int, err error) {
	if len(args) == 0 {
		return 1, jifu.Errorf(jifu.CodeInvalid, "dbtest: no command to run")
	}
	if dir == "" {
		dir = "."
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return 1, jifu.Errorf(jifu.CodeInvalid, "dbtest: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	// Signals: before the command runs they cancel the setup; after, they
	// go to the command. Either way we get to clean up.
	setupCtx, cancelSetup := context.WithCancel(ctx)
	defer cancelSetup()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	var (
		mu       sync.Mutex
		child    *os.Process
		received os.Signal
	)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case s := <-sigs:
				mu.Lock()
				if child != nil {
					_ = child.Signal(s)
				} else {
					received = s
					cancelSetup()
				}
				mu.Unlock()
			case <-done:
				return
			}
		}
	}()

	c, err := startTestCluster(setupCtx, dir, log)
	if err != nil {
		return 1, err
	}
	defer func() {
		stopErr := c.Stop(context.WithoutCancel(ctx))
		_ = os.Remove(filepath.Join(dir, ".data")) // only if now empty
		if stopErr != nil && err == nil {
			err = stopErr
		}
	}()
	adminURL := c.URL("postgres")
	if err := prepareTemplate(setupCtx, adminURL); err != nil {
		return 1, err
	}

	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), EnvURL+"="+adminURL)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second

	mu.Lock()
	if received != nil {
		mu.Unlock()
		return 128 + signalNumber(received), nil
	}
	err = cmd.Start()
	if err == nil {
		child = cmd.Process
	}
	mu.Unlock()
	if err != nil {
		return 1, jifu.Errorf(jifu.CodeInvalid, "dbtest: start %s: %w", args[0], err)
	}

	waitErr := cmd.Wait()
	mu.Lock()
	child = nil
	mu.Unlock()
	var exitErr *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &exitErr) {
		// Not a plain non-zero exit: I/O copying failed or WaitDelay passed.
		log.Warn("dbtest: waiting for the command", "err", waitErr)
	}
	return exitStatus(cmd.ProcessState), nil
}

// startTestCluster starts the run's cluster under dir/.data, or in a
// temporary directory when the postgres user cannot reach dir.
func startTestCluster(ctx context.Context, dir string, log *slog.Logger) (*database.Cluster, error) {
	clusterDir := filepath.Join(dir, ".data", fmt.Sprintf("test-%d", os.Getpid()))
	// Left over by an earlier process that had our pid and was killed
	// before its reaper could run: nothing in it is worth keeping.
	_ = os.RemoveAll(clusterDir)
	opts := database.ClusterOptions{Dir: clusterDir, Ephemeral: true, Logger: log}
	c, err := database.StartCluster(ctx, opts)
	if jifu.ErrorCode(err) != jifu.CodeInvalid {
		return c, err
	}
	log.Warn("dbtest: using a temporary directory for the test cluster", "reason", jifu.ErrorMessage(err))
	_ = os.RemoveAll(clusterDir)
	_ = os.Remove(filepath.Dir(clusterDir))
	if opts.Dir, err = os.MkdirTemp("", "jifu-test-"); err != nil {
		return nil, jifu.Errorf(jifu.CodeUnavailable, "dbtest: %w", err)
	}
	c, err = database.StartCluster(ctx, opts)
	if err != nil {
		_ = os.RemoveAll(opts.Dir)
	}
	return c, err
}

// exitStatus is the shell's view of how a process ended: its exit code, or
// 128+n when signal n killed it.
func exitStatus(ps *os.ProcessState) int {
	if ps == nil {
		return 1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

func signalNumber(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return int(n)
	}
	return int(syscall.SIGINT)
}
