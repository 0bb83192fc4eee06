package database

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jifu-open/jifu"
)

// ClusterOptions configures StartCluster.
type ClusterOptions struct {
	// Dir holds the whole cluster: data/ (the PGDATA directory), server.log
	// and the server's Unix socket. It is created if missing. When the
	// socket's path would pass the kernel's limit of 107 bytes (a deep Dir),
	// the socket goes to a short directory /tmp/jifu-pg-* instead, removed by
	// Stop. Clients here connect through that socket (URL): a Unix socket
	// costs both sides less CPU per round trip than loopback TCP. The
	// server also listens on 127.0.0.1 (Port) for clients that need TCP.
	Dir string
	// Durable keeps PostgreSQL's crash safety. When false the server runs
	// with fsync, synchronous_commit and full_page_writes off, and initdb
	// skips its syncs: much faster, and fine for tests, but a machine crash
	// can corrupt the data.
	Durable bool
	// Ephemeral marks a throwaway cluster (tests): Stop deletes Dir, and a
	// small reaper process stops the server and deletes Dir should this
	// process exit without calling Stop (a test timeout, a crash, SIGKILL).
	// It applies only when StartCluster started the server itself.
	Ephemeral bool
	// Logger receives progress messages; nil discards them.
	Logger *slog.Logger
}

// Cluster is a PostgreSQL server serving the data directory of a
// ClusterOptions.Dir, listening on 127.0.0.1 only, with trust authentication
// for the user postgres (only local processes can reach it).
type Cluster struct {
	dir       string // absolute ClusterOptions.Dir
	dataDir   string // dir/data
	bin       string // directory of initdb, pg_ctl and postgres
	runAs     *osUser
	ephemeral bool
	log       *slog.Logger

	port         int
	socketDir    string // where the server's Unix socket is
	started      bool
	tmpSocketDir string // a socket directory under /tmp that Stop removes

	reaper     *exec.Cmd
	reaperPipe *os.File // write end of the reaper's stdin

	mu      sync.Mutex
	stopped bool
}

// osUser is the account the server runs as when this process is root
// (initdb and postgres refuse to run as root).
type osUser struct{ uid, gid int }

// maxSocketDir is the longest socket directory that keeps
// "<dir>/.s.PGSQL.65535" within sun_path's 107 usable bytes.
const maxSocketDir = 107 - len("/.s.PGSQL.65535")

// StartCluster makes sure a PostgreSQL server runs for opts.Dir and returns
// it. It finds the server binaries (pg_config --bindir, else the newest
// /usr/lib/postgresql/*/bin; when missing and running as root it installs
// Debian's postgresql package), creates the cluster with initdb on first
// use, and starts it on a random free port of 127.0.0.1. A server already
// running for the same directory is reused: Started then reports false and
// Stop leaves it running.
//
// As root, Dir is given to the user postgres and the server binaries run as
// that user through runuser; every parent of Dir must then be searchable by
// others (o+x), which StartCluster checks.
func StartCluster(ctx context.Context, opts ClusterOptions) (*Cluster, error) {
	if opts.Dir == "" {
		return nil, jifu.Errorf(jifu.CodeInvalid, "database: ClusterOptions.Dir is empty")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeInvalid, "database: cluster directory %q: %w", opts.Dir, err)
	}
	c := &Cluster{
		dir:       dir,
		dataDir:   filepath.Join(dir, "data"),
		ephemeral: opts.Ephemeral,
		log:       opts.Logger,
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("cluster", dir)

	if c.bin, err = serverBinaries(ctx, c.log); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		// After serverBinaries: installing the package creates the user.
		if c.runAs, err = lookupPostgresUser(); err != nil {
			return nil, err
		}
	}
	if err := c.prepareDir(); err != nil {
		return nil, err
	}

	unlock, err := lockDir(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer unlock()

	if _, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION")); errors.Is(err, fs.ErrNotExist) {
		if err := c.initdb(ctx, opts.Durable); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, jifu.Errorf(jifu.CodeUnavailable, "database: %w", err)
	}

	reused, err := c.reuseRunning(ctx)
	if err != nil {
		return nil, err
	}
	if reused {
		c.log.InfoContext(ctx, "database: reusing running PostgreSQL", "port", c.port)
		return c, nil
	}
	if err := c.start(ctx, opts.Durable); err != nil {
		return nil, err
	}
	c.started = true
	if c.ephemeral {
		if err := c.startReaper(); err != nil {
			_ = c.Stop(context.WithoutCancel(ctx))
			return nil, err
		}
	}
	c.log.InfoContext(ctx, "database: started PostgreSQL", "port", c.port, "durable", opts.Durable)
	return c, nil
}

// URL returns the connection URL of database dbname on this cluster,
// through its Unix socket (TCPURL when unknown).
func (c *Cluster) URL(dbname string) string {
	if c.socketDir == "" {
		return c.TCPURL(dbname)
	}
	return fmt.Sprintf("postgres://postgres@/%s?host=%s&port=%d&sslmode=disable",
		url.PathEscape(dbname), url.QueryEscape(c.socketDir), c.port)
}

// TCPURL returns the connection URL of database dbname on this cluster
// over TCP on 127.0.0.1.
func (c *Cluster) TCPURL(dbname string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, url.PathEscape(dbname))
}

// Port returns the TCP port the server listens on (on 127.0.0.1).
func (c *Cluster) Port() int { return c.port }

// Started reports whether StartCluster started the server, as opposed to
// reusing one that was already running.
func (c *Cluster) Started() bool { return c.started }

// Stop shuts the server down (pg_ctl stop -m fast) if StartCluster started
// it; a reused server keeps running. For an Ephemeral cluster it then
// deletes the directory. Stop is idempotent and safe for concurrent use.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped || !c.started {
		c.stopped = true
		return nil
	}
	err := c.run(ctx, "pg_ctl", "-D", c.dataDir, "-m", "fast", "-w", "-t", "60", "stop")
	if err != nil {
		if _, statErr := os.Stat(filepath.Join(c.dataDir, "postmaster.pid")); errors.Is(statErr, fs.ErrNotExist) {
			err = nil // already down
		} else {
			return jifu.Errorf(jifu.CodeUnavailable, "database: stop PostgreSQL in %s: %w", c.dir, err)
		}
	}
	c.stopped = true
	var errs []error
	if c.tmpSocketDir != "" {
		errs = append(errs, os.RemoveAll(c.tmpSocketDir))
	}
	if c.ephemeral {
		errs = append(errs, os.RemoveAll(c.dir))
	}
	c.stopReaper()
	c.log.InfoContext(ctx, "database: stopped PostgreSQL", "port", c.port)
	if err := errors.Join(errs...); err != nil {
		return jifu.Errorf(jifu.CodeInternal, "database: clean up after stopping PostgreSQL: %w", err)
	}
	return nil
}

// prepareDir creates Dir and, as root, hands it to the postgres user after
// checking that user can reach it.
func (c *Cluster) prepareDir() error {
	if err := os.MkdirAll(filepath.Dir(c.dir), 0o755); err != nil {
		return jifu.Errorf(jifu.CodeUnavailable, "database: create %s: %w", filepath.Dir(c.dir), err)
	}
	if c.runAs != nil {
		if err := c.runAs.checkTraverse(filepath.Dir(c.dir)); err != nil {
			return err
		}
	}
	if err := os.Mkdir(c.dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return jifu.Errorf(jifu.CodeUnavailable, "database: create %s: %w", c.dir, err)
	}
	if c.runAs != nil {
		if err := c.runAs.chownAll(c.dir); err != nil {
			return jifu.Errorf(jifu.CodeUnavailable, "database: give %s to the postgres user: %w", c.dir, err)
		}
	}
	return nil
}

func (c *Cluster) initdb(ctx context.Context, durable bool) error {
	args := []string{"-D", c.dataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale"}
	if !durable {
		args = append(args, "--no-sync")
	}
	c.log.InfoContext(ctx, "database: creating cluster (initdb)")
	if err := c.run(ctx, "initdb", args...); err != nil {
		return jifu.Errorf(jifu.CodeUnavailable, "database: initdb in %s: %w", c.dataDir, err)
	}
	return nil
}

// reuseRunning looks at postmaster.pid: a live server that answers is
// reused; a lock file of a dead or foreign process is removed.
func (c *Cluster) reuseRunning(ctx context.Context) (bool, error) {
	pidPath := filepath.Join(c.dataDir, "postmaster.pid")
	pf, err := readPIDFile(pidPath)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil || !processAlive(pf.pid) {
		c.log.InfoContext(ctx, "database: removing stale postmaster.pid", "pid", pf.pid)
		if err := os.Remove(pidPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, jifu.Errorf(jifu.CodeUnavailable, "database: remove stale %s: %w", pidPath, err)
		}
		return false, nil
	}
	// Alive: give a server that is still starting up time to answer.
	wait := 3 * time.Second
	if pf.status == "starting" || pf.status == "" {
		wait = 60 * time.Second
	}
	deadline := time.Now().Add(wait)
	for {
		if pf.port > 0 && answers(ctx, pf.port) {
			c.port = pf.port
			if pf.socketDir != "" && socketAnswers(ctx, pf.socketDir, pf.port) {
				c.socketDir = pf.socketDir
			}
			return true, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
		if next, err := readPIDFile(pidPath); err == nil {
			pf = next
		} else {
			return false, nil // it went away: start anew
		}
	}
	if !isPostgresProcess(pf.pid) {
		// The pid was recycled by an unrelated process after a crash.
		if err := os.Remove(pidPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, jifu.Errorf(jifu.CodeUnavailable, "database: remove stale %s: %w", pidPath, err)
		}
		return false, nil
	}
	return false, jifu.Errorf(jifu.CodeUnavailable,
		"database: a PostgreSQL server (pid %d) holds %s but does not answer on 127.0.0.1:%d; stop it with `pg_ctl -D %s stop` (see %s)",
		pf.pid, c.dataDir, pf.port, c.dataDir, filepath.Join(c.dir, "server.log"))
}

func (c *Cluster) start(ctx context.Context, durable bool) error {
	socketDir := c.dir
	if len(socketDir) > maxSocketDir {
		d, err := os.MkdirTemp("/tmp", "jifu-pg-")
		if err != nil {
			return jifu.Errorf(jifu.CodeUnavailable, "database: socket directory: %w", err)
		}
		if c.runAs != nil {
			if err := os.Chown(d, c.runAs.uid, c.runAs.gid); err != nil {
				_ = os.Remove(d)
				return jifu.Errorf(jifu.CodeUnavailable, "database: socket directory: %w", err)
			}
		}
		socketDir, c.tmpSocketDir = d, d
	}
	logPath := filepath.Join(c.dir, "server.log")
	var lastErr error
	// A free port can be taken by someone else between our probe and the
	// server's bind: try a few.
	for range 5 {
		port, err := freePort()
		if err != nil {
			return jifu.Errorf(jifu.CodeUnavailable, "database: find a free port: %w", err)
		}
		opts := fmt.Sprintf("-k %s -h 127.0.0.1 -p %d", shellQuote(socketDir), port)
		if !durable {
			opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
		}
		logSize := fileSize(logPath)
		lastErr = c.run(ctx, "pg_ctl", "-D", c.dataDir, "-l", logPath, "-w", "-t", "60", "-o", opts, "start")
		if lastErr == nil {
			c.port, c.socketDir = port, socketDir
			return nil
		}
		if !strings.Contains(readFrom(logPath, logSize), "could not bind") {
			break
		}
	}
	if c.tmpSocketDir != "" {
		_ = os.RemoveAll(c.tmpSocketDir)
		c.tmpSocketDir = ""
	}
	return jifu.Errorf(jifu.CodeUnavailable, "database: start PostgreSQL in %s (see %s): %w", c.dir, logPath, lastErr)
}

// command returns the command running the server binary name, as the
// postgres user when this process is root.
func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	argv := c.argv(name, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = c.dir // a directory the postgres user can enter
	return cmd
}

func (c *Cluster) argv(name string, args ...string) []string {
	argv := append([]string{filepath.Join(c.bin, name)}, args...)
	if c.runAs != nil {
		argv = append([]string{"runuser", "-u", "postgres", "--"}, argv...)
	}
	return argv
}

// run runs a server binary and returns an error holding the end of its
// output when it fails.
func (c *Cluster) run(ctx context.Context, name string, args ...string) error {
	out, err := c.command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, tail(out, 2000))
	}
	return nil
}

// startReaper starts a shell in its own session that waits for this
// process's end (EOF on its stdin, a pipe only we hold) and then stops the
// server and deletes the directory. Stop kills it once it cleaned up itself.
func (c *Cluster) startReaper() error {
	r, w, err := os.Pipe()
	if err != nil {
		return jifu.Errorf(jifu.CodeInternal, "database: reaper pipe: %w", err)
	}
	defer r.Close()
	quoted := func(argv []string) string {
		q := make([]string, len(argv))
		for i, a := range argv {
			q[i] = shellQuote(a)
		}
		return strings.Join(q, " ")
	}
	script := "read -r _; " +
		quoted(c.argv("pg_ctl", "-D", c.dataDir, "-m", "immediate", "-w", "-t", "60", "stop")) + " >/dev/null 2>&1; " +
		quoted([]string{"rm", "-rf", "--", c.dir})
	if c.tmpSocketDir != "" {
		script += " " + shellQuote(c.tmpSocketDir)
	}
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Stdin = r
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // survive the terminal's SIGINT
	if err := cmd.Start(); err != nil {
		w.Close()
		return jifu.Errorf(jifu.CodeInternal, "database: start reaper: %w", err)
	}
	c.reaper, c.reaperPipe = cmd, w
	return nil
}

func (c *Cluster) stopReaper() {
	if c.reaper == nil {
		return
	}
	_ = c.reaper.Process.Kill()
	_ = c.reaper.Wait()
	_ = c.reaperPipe.Close()
	c.reaper, c.reaperPipe = nil, nil
}

// pidFile is what postmaster.pid says: the postmaster's pid, its port and
// its status (starting, ready, stopping; empty on old servers).
type pidFile struct {
	pid, port int
	socketDir string
	status    string
}

func readPIDFile(path string) (pidFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return pidFile{}, err
	}
	lines := strings.Split(string(b), "\n")
	var pf pidFile
	if pf.pid, err = strconv.Atoi(strings.TrimSpace(lines[0])); err != nil || pf.pid <= 0 {
		return pidFile{}, fmt.Errorf("%s: bad pid line %q", path, lines[0])
	}
	if len(lines) >= 4 {
		pf.port, _ = strconv.Atoi(strings.TrimSpace(lines[3]))
	}
	if len(lines) >= 5 {
		pf.socketDir = strings.TrimSpace(lines[4])
	}
	if len(lines) >= 8 {
		pf.status = strings.TrimSpace(lines[7])
	}
	return pf, nil
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func isPostgresProcess(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return true // cannot tell: assume it is, and refuse to touch it
	}
	comm := strings.TrimSpace(string(b))
	return comm == "postgres" || comm == "postmaster"
}

// answers reports whether a server on 127.0.0.1:port accepts a connection.
func answers(ctx context.Context, port int) bool {
	return connects(ctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", port))
}

// socketAnswers reports whether a server answers on the Unix socket of
// port in dir.
func socketAnswers(ctx context.Context, dir string, port int) bool {
	return connects(ctx, fmt.Sprintf("postgres://postgres@/postgres?host=%s&port=%d&sslmode=disable&connect_timeout=2", url.QueryEscape(dir), port))
}

func connects(ctx context.Context, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return false
	}
	_ = conn.Close(ctx)
	return true
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lockDir takes an exclusive flock on Dir/.cluster.lock so that two
// processes starting the same cluster do not race (one starts it, the other
// reuses it). The returned func releases it.
func lockDir(ctx context.Context, dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".cluster.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeUnavailable, "database: lock %s: %w", dir, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, jifu.Errorf(jifu.CodeUnavailable, "database: lock %s: %w", dir, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, jifu.Errorf(jifu.CodeUnavailable, "database: waiting for another process starting %s: %w", dir, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func lookupPostgresUser() (*osUser, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, jifu.Errorf(jifu.CodeUnavailable, "database: running as root needs the user postgres to run the server (apt-get install postgresql creates it): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &osUser{uid: uid, gid: gid}, nil
}

// checkTraverse fails unless the user can search every directory from dir
// up to the root.
func (u *osUser) checkTraverse(dir string) error {
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return jifu.Errorf(jifu.CodeUnavailable, "database: %w", err)
		}
		mode := fi.Mode().Perm()
		st, _ := fi.Sys().(*syscall.Stat_t)
		ok := mode&0o001 != 0 ||
			(st != nil && int(st.Uid) == u.uid && mode&0o100 != 0) ||
			(st != nil && int(st.Gid) == u.gid && mode&0o010 != 0)
		if !ok {
			return jifu.Errorf(jifu.CodeInvalid,
				"database: the postgres user cannot reach the cluster directory: %s has mode %v; run `chmod o+x %s` or put the cluster elsewhere",
				p, mode, p)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// chownAll gives dir and everything below it to the user.
func (u *osUser) chownAll(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile (a server's temporary file)
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) == u.uid && int(st.Gid) == u.gid {
			return nil
		}
		if err := os.Lchown(p, u.uid, u.gid); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	})
}

// shellQuote quotes s for /bin/sh (pg_ctl passes -o through a shell).
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func tail(b []byte, n int) string {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// readFrom returns the part of the file past offset (what a command just
// appended to a log).
func readFrom(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < offset {
		return ""
	}
	return string(b[offset:])
}
