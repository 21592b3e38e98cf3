package sdnotify

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// listen opens a unixgram socket in a short temp dir (sun_path is 108
// bytes) and returns its path and a function reading the next datagram.
func listen(t *testing.T) (string, func() string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return path, func() string {
		t.Helper()
		if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 4096)
		n, err := c.Read(b)
		if err != nil {
			t.Fatalf("no datagram: %v", err)
		}
		return string(b[:n])
	}
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDisabledWithoutSocket(t *testing.T) {
	n, err := New(Options{Getenv: env(nil)})
	if err != nil || n.Enabled() || n.PingInterval() != 0 {
		t.Fatalf("New without NOTIFY_SOCKET: enabled %v, ping %v, err %v", n.Enabled(), n.PingInterval(), err)
	}
	for _, f := range []func() error{func() error { return n.Ready("x") }, n.Watchdog, func() error { return n.Stopping("x") }} {
		if err := f(); err != nil {
			t.Errorf("disabled notifier: %v", err)
		}
	}
	var zero *Notifier
	if zero.Enabled() || zero.Close() != nil {
		t.Error("nil Notifier must be disabled")
	}
}

func TestWatchdogEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		period  time.Duration
		wantErr bool
	}{
		{"no watchdog", map[string]string{"NOTIFY_SOCKET": "/x"}, 0, false},
		{"watchdog", map[string]string{"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30000000"}, 30 * time.Second, false},
		{"our pid", map[string]string{"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "42"}, 2 * time.Second, false},
		{"another pid", map[string]string{"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "43"}, 0, false},
		{"bad usec", map[string]string{"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30s"}, 0, true},
		{"bad pid", map[string]string{"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1", "WATCHDOG_PID": "me"}, 0, true},
		{"watchdog without socket", map[string]string{"WATCHDOG_USEC": "2000000"}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := New(Options{Getenv: env(tt.env), PID: 42})
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrEnv)) {
				t.Fatalf("err %v, want error %v (ErrEnv)", err, tt.wantErr)
			}
			if n.WatchdogPeriod() != tt.period || n.PingInterval() != tt.period/2 {
				t.Errorf("period %v ping %v, want %v and half", n.WatchdogPeriod(), n.PingInterval(), tt.period)
			}
		})
	}
}

func TestMessages(t *testing.T) {
	path, next := listen(t)
	n, err := New(Options{Getenv: env(map[string]string{"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"})})
	if err != nil || !n.Enabled() {
		t.Fatalf("New: %v enabled %v", err, n.Enabled())
	}
	defer n.Close()
	steps := []struct {
		send func() error
		want []string
	}{
		{func() error { return n.Ready("serving; 2 devices") }, []string{"READY=1", "STATUS=serving; 2 devices"}},
		{func() error { return n.Status("outbox 3\nrecords") }, []string{"STATUS=outbox 3 records"}},
		{n.Watchdog, []string{"WATCHDOG=1"}},
		{func() error { return n.Stopping("stopping") }, []string{"STOPPING=1", "STATUS=stopping"}},
	}
	for i, s := range steps {
		if err := s.send(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		got := strings.Split(strings.TrimSuffix(next(), "\n"), "\n")
		if !slices.Equal(got, s.want) {
			t.Errorf("step %d: datagram %q, want %q", i, got, s.want)
		}
	}
	if err := n.Reloading("reloading"); err != nil {
		t.Fatal(err)
	}
	got := next()
	if !strings.HasPrefix(got, "RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=") || strings.HasSuffix(got, "MONOTONIC_USEC=0\n") {
		t.Errorf("reloading datagram %q", got)
	}
}

func TestAbstractSocket(t *testing.T) {
	name := "kioskedge-sdnotify-test-" + filepath.Base(t.TempDir())
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: "@" + name, Net: "unixgram"})
	if err != nil {
		t.Skipf("no abstract unix sockets here: %v", err)
	}
	defer c.Close()
	n, _ := New(Options{Getenv: env(map[string]string{"NOTIFY_SOCKET": "@" + name})})
	defer n.Close()
	if err := n.Ready("up"); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 256)
	k, err := c.Read(b)
	if err != nil || !strings.HasPrefix(string(b[:k]), "READY=1\n") {
		t.Fatalf("read %q %v", b[:k], err)
	}
}

func TestSendFailsWithoutListener(t *testing.T) {
	n, _ := New(Options{Getenv: env(map[string]string{"NOTIFY_SOCKET": filepath.Join(t.TempDir(), "none")})})
	if err := n.Ready("x"); !errors.Is(err, ErrSend) {
		t.Fatalf("err %v, want ErrSend", err)
	}
}

// TestRunWatchdogPingsOnlyWhenAlive drives the loop with a fake ticker:
// each tick pings exactly when alive says so.
func TestRunWatchdogPingsOnlyWhenAlive(t *testing.T) {
	path, next := listen(t)
	n, _ := New(Options{Getenv: env(map[string]string{"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})})
	defer n.Close()
	if n.PingInterval() != 200*time.Millisecond {
		t.Fatalf("ping interval %v, want half of WATCHDOG_USEC", n.PingInterval())
	}
	ticks := make(chan time.Time)
	var mu sync.Mutex
	healthy := true
	var missed []error
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.RunWatchdog(ctx, ticks, func(time.Time) error {
			mu.Lock()
			defer mu.Unlock()
			if !healthy {
				return errors.New("outbox committer stalled")
			}
			return nil
		}, func(err error) {
			mu.Lock()
			missed = append(missed, err)
			mu.Unlock()
			// A marker datagram, so the reader can tell a withheld ping
			// from a late one.
			_ = n.Send("X_MISSED=1")
		})
	}()
	for i, alive := range []bool{true, true, false, true} {
		mu.Lock()
		healthy = alive
		mu.Unlock()
		ticks <- time.Unix(int64(i), 0)
		want := "WATCHDOG=1\n"
		if !alive {
			want = "X_MISSED=1\n"
		}
		if got := next(); got != want {
			t.Errorf("tick %d (alive %v): %q, want %q", i, alive, got, want)
		}
	}
	cancel()
	<-done
	if len(missed) != 1 {
		t.Errorf("missed %v, want one", missed)
	}
}

func TestRunWatchdogWithoutWatchdogReturns(t *testing.T) {
	n, _ := New(Options{Getenv: env(map[string]string{"NOTIFY_SOCKET": "/nonexistent"})})
	n.RunWatchdog(context.Background(), nil, func(time.Time) error { return nil }, nil) // must not block
}
