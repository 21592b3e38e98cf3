package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Errors.
var (
	// ErrEnv wraps a malformed $WATCHDOG_USEC or $WATCHDOG_PID.
	ErrEnv = errors.New("sdnotify: bad environment")
	// ErrSend wraps a failed send to the notify socket.
	ErrSend = errors.New("sdnotify: send")
)

// Notifier sends notifications to systemd. The zero value and a Notifier
// from New outside systemd are disabled: every method is then a no-op
// returning nil. Its methods are safe for concurrent use.
type Notifier struct {
	addr     *net.UnixAddr // nil when disabled
	watchdog time.Duration // WATCHDOG_USEC, 0 when not asked for

	mu   sync.Mutex
	conn *net.UnixConn
}

// Options configure New. Zero values pick the defaults in brackets.
type Options struct {
	// Getenv reads the environment [os.Getenv]; tests pass their own.
	Getenv func(string) string
	// PID is this process's id, compared with $WATCHDOG_PID [os.Getpid()].
	PID int
}

// New reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID through
// o.Getenv. Without $NOTIFY_SOCKET it returns a disabled Notifier. The
// watchdog is on when $WATCHDOG_USEC is a positive number and
// $WATCHDOG_PID is unset or equals o.PID. A $WATCHDOG_USEC or
// $WATCHDOG_PID that is not a number is an error wrapping ErrEnv (the
// returned Notifier still notifies, without a watchdog). New does not
// connect: the socket is dialled at the first send.
func New(o Options) (*Notifier, error) {
	n := &Notifier{}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.PID == 0 {
		o.PID = os.Getpid()
	}
	sock := o.Getenv("NOTIFY_SOCKET")
	if sock == "" {
		return n, nil
	}
	if strings.HasPrefix(sock, "@") {
		sock = "\x00" + sock[1:] // abstract namespace
	}
	n.addr = &net.UnixAddr{Name: sock, Net: "unixgram"}
	us := o.Getenv("WATCHDOG_USEC")
	if us == "" {
		return n, nil
	}
	v, err := strconv.ParseUint(us, 10, 63)
	if err != nil {
		return n, fmt.Errorf("%w: WATCHDOG_USEC=%q is not a number of microseconds", ErrEnv, us)
	}
	if p := o.Getenv("WATCHDOG_PID"); p != "" {
		pid, err := strconv.Atoi(p)
		if err != nil {
			return n, fmt.Errorf("%w: WATCHDOG_PID=%q is not a process id", ErrEnv, p)
		}
		if pid != o.PID {
			return n, nil // the watchdog is meant for another process
		}
	}
	n.watchdog = time.Duration(v) * time.Microsecond
	return n, nil
}

// Enabled reports whether notifications go anywhere.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// WatchdogPeriod is $WATCHDOG_USEC (systemd's WatchdogSec), or 0 when no
// watchdog is asked for.
func (n *Notifier) WatchdogPeriod() time.Duration {
	if !n.Enabled() {
		return 0
	}
	return n.watchdog
}

// PingInterval is how often to send WATCHDOG=1: half the watchdog period,
// as sd_watchdog_enabled(3) recommends; 0 when there is no watchdog.
func (n *Notifier) PingInterval() time.Duration { return n.WatchdogPeriod() / 2 }

// Send sends the assignments as one datagram ("READY=1", "STATUS=…").
// A newline inside an assignment's value would start another assignment,
// so newlines in values are replaced by spaces. It returns nil when
// disabled, or an error wrapping ErrSend.
func (n *Notifier) Send(assignments ...string) error {
	if !n.Enabled() || len(assignments) == 0 {
		return nil
	}
	var b strings.Builder
	for _, a := range assignments {
		b.WriteString(strings.ReplaceAll(a, "\n", " "))
		b.WriteByte('\n')
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		c, err := net.DialUnix("unixgram", nil, n.addr)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrSend, err)
		}
		n.conn = c
	}
	if _, err := n.conn.Write([]byte(b.String())); err != nil {
		// Redial next time: systemd may have been restarted (daemon-reexec).
		_ = n.conn.Close() // the write error is the one worth returning
		n.conn = nil
		return fmt.Errorf("%w: %v", ErrSend, err)
	}
	return nil
}

// Ready tells systemd the service is up, with a status line.
func (n *Notifier) Ready(status string) error { return n.Send("READY=1", "STATUS="+status) }

// Status sets the line `systemctl status` shows.
func (n *Notifier) Status(status string) error { return n.Send("STATUS=" + status) }

// Watchdog sends one watchdog ping. Call it only when the service has
// shown it is alive; a ping from a free-running timer defeats the
// watchdog.
func (n *Notifier) Watchdog() error {
	if n.WatchdogPeriod() == 0 {
		return nil
	}
	return n.Send("WATCHDOG=1")
}

// Reloading tells systemd a configuration reload has begun; send Ready
// when it is over. MONOTONIC_USEC (CLOCK_MONOTONIC) is included, which
// Type=notify-reload requires and Type=notify ignores.
func (n *Notifier) Reloading(status string) error {
	return n.Send("RELOADING=1", "STATUS="+status, "MONOTONIC_USEC="+strconv.FormatInt(monotonicUsec(), 10))
}

// Stopping tells systemd the service is shutting down.
func (n *Notifier) Stopping(status string) error { return n.Send("STOPPING=1", "STATUS="+status) }

// Close closes the socket; later sends dial again. It is idempotent.
func (n *Notifier) Close() error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return nil
	}
	err := n.conn.Close()
	n.conn = nil
	return err
}

// RunWatchdog sends WATCHDOG=1 at each tick for which alive returns nil,
// until ctx ends. When alive returns an error the ping is withheld and
// missed (if set) is called with it: the service says it is hung, and
// systemd restarts it once WatchdogSec passes without a ping. Feed it
// time.NewTicker(n.PingInterval()).C; without a watchdog (PingInterval
// 0) it returns at once.
func (n *Notifier) RunWatchdog(ctx context.Context, ticks <-chan time.Time, alive func(now time.Time) error, missed func(error)) {
	if n.PingInterval() == 0 {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ticks:
			if err := alive(now); err != nil {
				if missed != nil {
					missed(err)
				}
				continue
			}
			if err := n.Watchdog(); err != nil && missed != nil {
				missed(err)
			}
		}
	}
}
