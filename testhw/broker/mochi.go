package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// mochiRun is one in-process mochi server with its listener.
type mochiRun struct {
	srv *mqtt.Server
	ln  *loopListener
}

// startMochi starts a mochi server listening on addr that allows every
// client and topic, over TLS with tlsConf when it is not nil. Its log goes
// to log at warn and above.
func startMochi(addr string, tlsConf *tls.Config, log *slog.Logger) (*mochiRun, error) {
	srv := mqtt.New(&mqtt.Options{
		Logger: slog.New(minLevel{h: log.Handler(), min: slog.LevelWarn}),
	})
	if err := srv.AddHook(new(allowAll), nil); err != nil {
		return nil, fmt.Errorf("broker: mochi auth hook: %w", err)
	}
	guard := &retainGuard{topicAliasMax: srv.Options.Capabilities.TopicAliasMaximum}
	if err := srv.AddHook(guard, nil); err != nil {
		return nil, fmt.Errorf("broker: mochi retain guard: %w", err)
	}
	ln := &loopListener{addr: addr, tls: tlsConf, log: log, conns: make(map[net.Conn]struct{})}
	if err := srv.AddListener(ln); err != nil {
		return nil, fmt.Errorf("broker: mochi listen on %s: %w", addr, err)
	}
	if err := srv.Serve(); err != nil {
		// Serve failed before starting the listener: release its slot by hand.
		cerr := srv.Close()
		ln.closeSockets()
		ln.wg.Done()
		return nil, errors.Join(fmt.Errorf("broker: mochi serve: %w", err), cerr)
	}
	return &mochiRun{srv: srv, ln: ln}, nil
}

// stop closes the server, every client connection and the listener, and
// waits for the listener's goroutines.
func (m *mochiRun) stop() error {
	err := m.srv.Close()
	m.ln.shutdown()
	return err
}

// loopListener is a mochi listener on a TCP address that, unlike mochi's
// own, remembers its connections and goroutines so stop can close and
// wait for all of them. With tls set it is a TLS listener; each client's
// handshake runs on its establish goroutine, on mochi's first read.
type loopListener struct {
	addr string
	tls  *tls.Config // nil for plaintext
	log  *slog.Logger
	l    net.Listener

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup // the accept loop and every establish call
}

func (l *loopListener) ID() string       { return "kioskedge-tcp" }
func (l *loopListener) Protocol() string { return "tcp" }
func (l *loopListener) Address() string  { return l.addr }

// Init opens the TCP listener; mochi calls it from AddListener.
func (l *loopListener) Init(*slog.Logger) error {
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		return err
	}
	if l.tls != nil {
		ln = tls.NewListener(ln, l.tls)
	}
	l.l = ln
	l.wg.Add(1) // released when Serve's loop ends, or by shutdown if Serve never ran
	return nil
}

// Serve accepts connections until the listener closes; mochi runs it in
// its own goroutine.
func (l *loopListener) Serve(establish listeners.EstablishFn) {
	defer l.wg.Done()
	for {
		c, err := l.l.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			_ = c.Close() // accepted during shutdown: refuse it
			continue
		}
		l.conns[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go func() {
			defer l.wg.Done()
			if err := establish(l.ID(), c); err != nil && !errors.Is(err, net.ErrClosed) {
				l.log.Debug("mochi client ended", "err", err)
			}
			l.mu.Lock()
			delete(l.conns, c)
			l.mu.Unlock()
			_ = c.Close() // already closed by mochi in most cases
		}()
	}
}

// Close is mochi's hook. It closes the listener and every client socket
// itself and does not call mochi's closeClients: in v2.7.9 that takes the
// clients' read lock twice (GetByListener calls Len), which deadlocks when
// a leaving client queues for the write lock in between (seen: a CI run
// hung in Broker.Close). A closed socket ends that client's read loop and
// mochi removes it as it would any dropped connection. shutdown finishes
// the job.
func (l *loopListener) Close(listeners.CloseFn) {
	l.closeSockets()
}

func (l *loopListener) closeSockets() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	_ = l.l.Close() // the error would only say it was already closed
	for c := range l.conns {
		_ = c.Close() // unblocks mochi's read loop for this client
	}
}

// shutdown closes everything and waits for the accept loop and all
// establish calls to return.
func (l *loopListener) shutdown() {
	l.closeSockets()
	l.wg.Wait()
}

// minLevel drops records below min before passing them to h.
type minLevel struct {
	h   slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= m.min && m.h.Enabled(ctx, lv)
}
func (m minLevel) Handle(ctx context.Context, r slog.Record) error { return m.h.Handle(ctx, r) }
func (m minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h: m.h.WithAttrs(as), min: m.min}
}
func (m minLevel) WithGroup(g string) slog.Handler { return minLevel{h: m.h.WithGroup(g), min: m.min} }

// allowAll lets every client connect and use every topic. mochi's own
// auth.AllowHook lives in a package that pulls in a YAML module this
// repository does not carry.
type allowAll struct{ mqtt.HookBase }

func (*allowAll) ID() string { return "kioskedge-allow-all" }

func (*allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (*allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (*allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }
