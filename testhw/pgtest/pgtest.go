package pgtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ErrNotFound is returned (wrapped) by Find and New when initdb and
// pg_ctl are neither on PATH nor in /usr/lib/postgresql/*/bin.
var ErrNotFound = errors.New("pgtest: PostgreSQL server binaries (initdb, pg_ctl) not found")

// ErrRootDir is returned (wrapped) by New when the caller is root and the
// postgres user cannot reach the cluster directory.
var ErrRootDir = errors.New("pgtest: cluster directory unreachable for the postgres user")

// Options configures a cluster.
type Options struct {
	// Logger receives one line per start and stop; nil discards them.
	Logger *slog.Logger
}

// Cluster is a running (or stopped) private PostgreSQL cluster. Its
// methods are safe for concurrent use.
type Cluster struct {
	bin     string // directory holding initdb, pg_ctl, createdb
	dir     string // cluster home: data/, server.log, the unix socket
	port    int
	log     *slog.Logger
	cred    *syscall.Credential // non-nil when commands run as postgres
	removes bool                // Stop removes dir (Start made it)

	mu      sync.Mutex
	stopped bool
}

// Find returns the directory holding initdb and pg_ctl: the one initdb
// on PATH resolves to (symlinks followed, so Debian's /usr/local/bin
// links lead to the versioned directory), else the newest
// /usr/lib/postgresql/<version>/bin. It returns ErrNotFound when neither
// has both binaries.
func Find() (binDir string, err error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		if d := filepath.Dir(p); hasServerBins(d) {
			return d, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin") // the pattern is valid
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if hasServerBins(d) {
			return d, nil
		}
	}
	return "", ErrNotFound
}

// versionOf reads the major version out of /usr/lib/postgresql/<v>/bin,
// or -1.
func versionOf(binDir string) float64 {
	v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	if err != nil {
		return -1
	}
	return v
}

func hasServerBins(d string) bool {
	for _, b := range []string{"initdb", "pg_ctl"} {
		if fi, err := os.Stat(filepath.Join(d, b)); err != nil || fi.IsDir() {
			return false
		}
	}
	return true
}

// New creates a cluster in dir (which must exist; New writes data/, the
// server log and the unix socket into it) and starts it on a free
// 127.0.0.1 port, returning once it accepts TCP connections. As root it
// chowns dir to the postgres user and runs the server as that user;
// ErrRootDir (wrapped) when a parent of dir is not traversable by it.
// It returns ErrNotFound (wrapped) when the binaries are missing, or the
// initdb/pg_ctl error with the tail of their output and the server log.
// On error nothing is left running; dir is left for inspection. Stop
// stops the cluster but leaves dir in place.
func New(dir string, opts Options) (*Cluster, error) {
	bin, err := Find()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	c := &Cluster{bin: bin, dir: dir, log: opts.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if os.Geteuid() == 0 {
		if c.cred, err = postgresCredential(); err != nil {
			return nil, err
		}
		if err := reachable(dir); err != nil {
			return nil, err
		}
		if err := os.Chown(dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return nil, fmt.Errorf("pgtest: chown %s: %w", dir, err)
		}
	}
	if err := c.initdb(); err != nil {
		return nil, err
	}
	// A port picked free can be taken before the server binds it; try a
	// few.
	for attempt := 0; ; attempt++ {
		if c.port, err = freePort(); err != nil {
			return nil, err
		}
		if err = c.start(); err == nil {
			c.log.Info("pgtest: cluster started", "dir", dir, "port", c.port)
			return c, nil
		}
		if attempt == 2 {
			return nil, err
		}
	}
}

// postgresCredential looks up the postgres user.
func postgresCredential() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root needs the postgres user (initdb refuses root): %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("pgtest: postgres user has non-numeric ids %s:%s", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// reachable checks that every parent of dir lets others search it, so the
// postgres user can reach dir once it owns it.
func reachable(dir string) error {
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%w: %s is mode %v (needs o+x); use a directory under /tmp", ErrRootDir, p, fi.Mode().Perm())
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: pick a port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// command builds a command of the cluster's binaries, run as postgres
// when the caller is root, in dir with a minimal environment.
func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	cmd.Env = []string{"HOME=" + c.dir, "PATH=" + c.bin + ":/usr/bin:/bin", "LC_ALL=C", "TZ=UTC"}
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	return cmd
}

func (c *Cluster) data() string    { return filepath.Join(c.dir, "data") }
func (c *Cluster) logFile() string { return filepath.Join(c.dir, "server.log") }

// run runs cmd and returns its error with its output's tail.
func run(cmd *exec.Cmd) error {
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pgtest: %s: %w\n%s", filepath.Base(cmd.Path), err, tail(out.String()))
	}
	return nil
}

func tail(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

func (c *Cluster) initdb() error {
	if err := run(c.command("initdb", "-D", c.data(), "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--no-locale", "--no-sync")); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(c.data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	// listen_addresses and port go on pg_ctl's command line (the port
	// changes between attempts); the rest is fixed.
	_, err = fmt.Fprintf(f, "\n# testhw/pgtest\nunix_socket_directories = '%s'\nfsync = on\n"+
		"max_connections = 150\nshared_buffers = 32MB\nlog_min_messages = warning\n", c.dir)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pgtest: write postgresql.conf: %w", err)
	}
	return nil
}

func (c *Cluster) start() error {
	err := run(c.command("pg_ctl", "-D", c.data(), "-l", c.logFile(), "-w", "-t", "60",
		"-o", fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d", c.port), "start"))
	if err != nil {
		b, _ := os.ReadFile(c.logFile()) // best effort: the log adds detail to err
		// A server that half-started must not stay behind.
		_ = run(c.command("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "stop")) // usually "no server running"
		return fmt.Errorf("%w\nserver log:\n%s", err, tail(string(b)))
	}
	// pg_ctl -w waits for the socket; check the TCP listener too.
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", c.addr(), time.Second)
		if err == nil {
			return conn.Close()
		}
		if time.Now().After(deadline) {
			_ = run(c.command("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "stop")) // best effort; the dial error is the news
			return fmt.Errorf("pgtest: server not accepting on %s: %w", c.addr(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)) }

// Dir is the cluster's directory (data/, server.log, the unix socket).
func (c *Cluster) Dir() string { return c.dir }

// DSN returns a connection URL for database db as the superuser postgres
// over TCP: postgres://postgres@127.0.0.1:<port>/<db>?sslmode=disable.
func (c *Cluster) DSN(db string) string {
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Host: c.addr(), Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// CreateDatabase creates database name with createdb (over TCP, as
// postgres). It returns createdb's error and output, e.g. when name
// exists.
func (c *Cluster) CreateDatabase(name string) error {
	tool := filepath.Join(c.bin, "createdb")
	if _, err := os.Stat(tool); err != nil {
		// Some layouts keep the client tools only on PATH.
		if tool, err = exec.LookPath("createdb"); err != nil {
			return fmt.Errorf("pgtest: createdb not found: %w", err)
		}
	}
	cmd := exec.Command(tool, "-h", "127.0.0.1", "-p", strconv.Itoa(c.port), "-U", "postgres", "--", name)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "PGCONNECT_TIMEOUT=30"}
	return run(cmd)
}

// Stop stops the server (pg_ctl stop -m fast, then -m immediate when
// that fails) and, for a cluster made by Start, removes its directory.
// It is idempotent; a second call returns nil.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	c.stopped = true
	err := run(c.command("pg_ctl", "-D", c.data(), "-m", "fast", "-w", "-t", "30", "stop"))
	if err != nil {
		if err2 := run(c.command("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "-t", "30", "stop")); err2 != nil {
			return errors.Join(err, err2)
		}
	}
	c.log.Info("pgtest: cluster stopped", "dir", c.dir, "port", c.port)
	if c.removes {
		if err := os.RemoveAll(c.dir); err != nil {
			return fmt.Errorf("pgtest: remove %s: %w", c.dir, err)
		}
	}
	return nil
}

// skipMessage is what a test says when PostgreSQL is missing outside CI.
const skipMessage = "PostgreSQL server not installed: apt-get install -y postgresql " +
	"(CI installs it; this test is skipped only outside CI)"

// Start runs a cluster for t in a fresh directory under the system temp
// dir (not t.TempDir: its parents are private to the caller, out of the
// postgres user's reach when the caller is root) and stops it and
// removes the directory in t.Cleanup. Missing binaries fail t under CI
// (CI set in the environment) and skip it loudly elsewhere; any other
// error fails t.
func Start(t testing.TB) *Cluster {
	t.Helper()
	if _, err := Find(); errors.Is(err, ErrNotFound) {
		if os.Getenv("CI") != "" {
			t.Fatalf("pgtest: %v; CI must install it: apt-get install -y postgresql", err)
		}
		t.Skip("\n\n*** SKIPPED: " + skipMessage + " ***\n")
	}
	base := os.TempDir()
	if os.Geteuid() == 0 && reachable(filepath.Join(base, "x")) != nil {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "pgtest-")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	c, err := New(dir, Options{Logger: slog.New(slog.NewTextHandler(logWriter{t}, nil))})
	if err != nil {
		_ = os.RemoveAll(dir) // best effort; the start error is the news
		t.Fatalf("pgtest: start cluster: %v", err)
	}
	c.removes = true
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("pgtest: stop cluster: %v", err)
		}
	})
	return c
}

// logWriter sends the cluster's log lines to t.Logf.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var _ io.Writer = logWriter{}
