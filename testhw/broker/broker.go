package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"
)

// Kind names a broker implementation.
type Kind string

// The broker kinds Start knows.
const (
	// Mochi is github.com/mochi-mqtt/server/v2 running in this process.
	Mochi Kind = "mochi"
	// Mosquitto is a real mosquitto subprocess.
	Mosquitto Kind = "mosquitto"
)

// Kinds lists every kind, in the order Each runs them.
var Kinds = []Kind{Mochi, Mosquitto}

// Errors returned by this package.
var (
	// ErrUnknownKind is returned by Start for a Kind it does not know.
	ErrUnknownKind = errors.New("broker: unknown kind")
	// ErrMosquittoNotFound is returned when no mosquitto binary is on PATH
	// nor at /usr/sbin/mosquitto.
	ErrMosquittoNotFound = errors.New("broker: mosquitto binary not found")
	// ErrClosed is returned by Restart after Close.
	ErrClosed = errors.New("broker: closed")
	// ErrNotReady is returned when a started broker did not complete an
	// MQTT handshake within the ready timeout.
	ErrNotReady = errors.New("broker: not accepting connections")
	// ErrExited is returned when the mosquitto process exited while
	// starting.
	ErrExited = errors.New("broker: mosquitto exited")
)

// readyTimeout bounds how long Start and Restart wait for the broker to
// answer an MQTT CONNECT.
const readyTimeout = 10 * time.Second

// Options configures Start.
type Options struct {
	// Kind selects the implementation; required.
	Kind Kind
	// Port is the loopback TCP port; 0 picks a free one. Either way the
	// port is kept across Restart.
	Port int
	// Logger receives the harness's own lines and, for Mochi, the
	// broker's warnings and errors. Nil discards.
	Logger *slog.Logger
	// MosquittoConf holds extra mosquitto.conf lines (Kind Mosquitto
	// only), appended after the generated listener lines.
	MosquittoConf string
}

// instance is one run of a broker, from start to stop.
type instance interface {
	stop() error
}

// Broker is a running (or stopped) broker on a fixed loopback port. Its
// methods are safe for concurrent use.
type Broker struct {
	kind Kind
	opts Options
	log  *slog.Logger
	port int

	mu     sync.Mutex
	run    instance // nil while stopped
	closed bool
	mosq   *mosquittoHome // Kind Mosquitto only
}

// Start starts a broker of opts.Kind on 127.0.0.1 and returns once it
// completes an MQTT handshake. It returns ErrUnknownKind for an unknown
// kind, ErrMosquittoNotFound (wrapped) when Kind is Mosquitto and the
// binary is missing, ErrNotReady or ErrExited (wrapped, with the broker's
// log tail) when it does not come up, or the listen error. On error
// nothing is left running.
func Start(opts Options) (*Broker, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Broker{kind: opts.Kind, opts: opts, log: log.With("component", "broker", "kind", string(opts.Kind))}
	switch opts.Kind {
	case Mochi:
	case Mosquitto:
		home, err := newMosquittoHome(opts.MosquittoConf)
		if err != nil {
			return nil, err
		}
		b.mosq = home
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnknownKind, opts.Kind)
	}

	// With Port 0 the port is picked by listening on :0 and closing; another
	// process may take it before the broker binds, so retry a few times.
	attempts := 1
	if opts.Port == 0 {
		attempts = 3
	}
	var err error
	for range attempts {
		b.port = opts.Port
		if b.port == 0 {
			if b.port, err = freePort(); err != nil {
				break
			}
		}
		b.mu.Lock()
		err = b.startLocked()
		b.mu.Unlock()
		if err == nil {
			b.log.Debug("broker started", "addr", b.Addr())
			return b, nil
		}
	}
	if cerr := b.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	return nil, err
}

// Addr returns "127.0.0.1:port".
func (b *Broker) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)) }

// URL returns "tcp://127.0.0.1:port", the form paho and the uplink take.
func (b *Broker) URL() string { return "tcp://" + b.Addr() }

// Port returns the loopback port the broker listens on.
func (b *Broker) Port() int { return b.port }

// Kind returns the broker's kind.
func (b *Broker) Kind() Kind { return b.kind }

// Running reports whether the broker is started (not stopped or closed).
func (b *Broker) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.run != nil
}

// LogTail returns the last lines mosquitto wrote (up to 64 KiB), for
// diagnostics; empty for Mochi, whose warnings go to Options.Logger.
func (b *Broker) LogTail() string {
	if b.mosq == nil {
		return ""
	}
	return b.mosq.log.String()
}

// Stop stops the broker: every client connection is closed, the port no
// longer accepts, and for Mosquitto the process has exited (SIGTERM, then
// SIGKILL after a timeout). Stopping a stopped or closed broker does
// nothing and returns nil. The error, if any, is the stop failure; the
// broker counts as stopped either way.
func (b *Broker) Stop() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stopLocked()
}

func (b *Broker) stopLocked() error {
	if b.run == nil {
		return nil
	}
	err := b.run.stop()
	b.run = nil
	b.log.Debug("broker stopped", "addr", b.Addr())
	return err
}

// Restart stops the broker if it runs and starts a new one of the same
// kind on the same port, returning once it completes an MQTT handshake.
// Sessions, subscriptions and queued messages do not survive. It returns
// ErrClosed after Close, or the start errors Start documents; on error
// the broker is left stopped and Restart may be called again.
func (b *Broker) Restart() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	stopErr := b.stopLocked()
	// The port can be briefly busy after a stop (a lingering socket of the
	// old process); retry the start for a short while.
	deadline := time.Now().Add(readyTimeout)
	for {
		err := b.startLocked()
		if err == nil {
			b.log.Debug("broker restarted", "addr", b.Addr())
			return stopErr
		}
		if time.Now().After(deadline) || errors.Is(err, ErrMosquittoNotFound) {
			return errors.Join(stopErr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Close stops the broker and removes its temporary files. It is
// idempotent; later calls return nil. After Close, Restart returns
// ErrClosed and Stop does nothing.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	err := b.stopLocked()
	if b.mosq != nil {
		err = errors.Join(err, b.mosq.remove())
	}
	return err
}

// startLocked starts one instance on b.port and waits until it is ready.
func (b *Broker) startLocked() error {
	var (
		run instance
		err error
	)
	switch b.kind {
	case Mochi:
		run, err = startMochi(b.Addr(), b.log)
	case Mosquitto:
		run, err = b.mosq.start(b.port, b.log)
	}
	if err != nil {
		return err
	}
	var exited <-chan struct{}
	if p, ok := run.(*mosquittoProc); ok {
		exited = p.exited
	}
	if err := waitReady(b.Addr(), exited); err != nil {
		if b.mosq != nil {
			err = fmt.Errorf("%w\nmosquitto log:\n%s", err, b.mosq.log.String())
		}
		return errors.Join(err, run.stop())
	}
	b.run = run
	return nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("broker: pick a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("broker: pick a free port: %w", err)
	}
	return port, nil
}

// waitReady polls addr with an MQTT 3.1.1 CONNECT until a CONNACK accepts
// it, exited closes, or readyTimeout passes. A bare TCP connect is not
// enough: with a picked port another process could own it.
func waitReady(addr string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	var last error
	for {
		if last = probe(ctx, addr); last == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%w while starting on %s", ErrExited, addr)
		case <-ctx.Done():
			return fmt.Errorf("%w on %s after %v: %v", ErrNotReady, addr, readyTimeout, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// connectProbe is an MQTT 3.1.1 CONNECT: clean session, keep-alive 10 s,
// client id "kioskedge-probe".
var connectProbe = func() []byte {
	id := "kioskedge-probe"
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 10, 0, byte(len(id))}
	body = append(body, id...)
	return append([]byte{0x10, byte(len(body))}, body...)
}()

// probe performs one CONNECT/CONNACK/DISCONNECT exchange with addr.
func probe(ctx context.Context, addr string) error {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close() // a probe connection: its close error tells nothing
	if err := c.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	if _, err := c.Write(connectProbe); err != nil {
		return err
	}
	ack := make([]byte, 4)
	for n := 0; n < len(ack); {
		m, err := c.Read(ack[n:])
		if err != nil {
			return fmt.Errorf("read CONNACK: %w", err)
		}
		n += m
	}
	if ack[0] != 0x20 || ack[1] != 2 || ack[3] != 0 {
		return fmt.Errorf("unexpected CONNACK % x", ack)
	}
	// DISCONNECT, so the broker logs a clean close; its error is irrelevant.
	_, _ = c.Write([]byte{0xe0, 0})
	return nil
}
