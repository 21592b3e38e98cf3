package broker

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
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
	// ErrTLS is returned by Start when Options.TLS is incomplete, names
	// files that cannot be loaded, or asks for what the kind cannot do.
	ErrTLS = errors.New("broker: TLS listener")
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
	// MaxQueuedMessages and MaxInflightMessages raise mosquitto's
	// per-client limits for QoS 1 and 2 messages: max_queued_messages
	// (stock 1,000 queued, beyond which mosquitto drops them) and
	// max_inflight_messages (stock 20 awaiting the client's ack). 0 keeps
	// mosquitto's default; negative is an error. A hub subscribed for a
	// whole fleet needs a queue above the fleet's burst: with the stock
	// 1,000, a thousand agents coming online at once overflow the hub's
	// queue and births are dropped. Kind Mosquitto only; Mochi ignores
	// them (its own per-client limits are 8,192).
	MaxQueuedMessages, MaxInflightMessages int
	// TLS, when set, makes the listener a TLS listener (both kinds) and
	// URL return ssl://. Nil keeps plaintext MQTT.
	TLS *TLSListener
}

// TLSListener configures a TLS listener. All files are PEM; package
// testhw/certs generates a matching set.
type TLSListener struct {
	// CertFile and KeyFile are the broker's certificate and key; required.
	// The certificate must be valid for 127.0.0.1.
	CertFile, KeyFile string
	// CAFile holds the CAs that client certificates are verified against;
	// required when RequireClientCert is set. Mosquitto also verifies an
	// offered client certificate against it when RequireClientCert is not
	// set; Mochi does the same.
	CAFile string
	// RequireClientCert refuses every client without a certificate signed
	// by a CA in CAFile (mosquitto's require_certificate): the TLS
	// handshake fails and no MQTT packet is read.
	RequireClientCert bool
	// UseIdentityAsUsername makes the certificate's common name the MQTT
	// username (mosquitto's use_identity_as_username), for ACLs in
	// MosquittoConf. It needs RequireClientCert, and Kind Mosquitto: Start
	// returns ErrTLS for Mochi rather than ignore it.
	UseIdentityAsUsername bool
}

// probeConfig checks l against kind and returns the client configuration
// the readiness probe uses: it presents no certificate and accepts only a
// server presenting exactly l.CertFile, so a probe cannot mistake another
// process's TLS server on the port for the broker. It returns ErrTLS
// (wrapped, naming the field or file) on a problem.
func (l *TLSListener) probeConfig(kind Kind) (*tls.Config, error) {
	switch {
	case l.CertFile == "" || l.KeyFile == "":
		return nil, fmt.Errorf("%w: CertFile and KeyFile are required", ErrTLS)
	case l.RequireClientCert && l.CAFile == "":
		return nil, fmt.Errorf("%w: RequireClientCert needs CAFile", ErrTLS)
	case l.UseIdentityAsUsername && !l.RequireClientCert:
		return nil, fmt.Errorf("%w: UseIdentityAsUsername needs RequireClientCert", ErrTLS)
	case l.UseIdentityAsUsername && kind != Mosquitto:
		return nil, fmt.Errorf("%w: UseIdentityAsUsername is supported by Kind Mosquitto only, not %q", ErrTLS, kind)
	}
	pair, err := tls.LoadX509KeyPair(l.CertFile, l.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate %s / key %s: %v", ErrTLS, l.CertFile, l.KeyFile, err)
	}
	if l.CAFile != "" {
		if _, err := loadPool(l.CAFile); err != nil {
			return nil, err
		}
	}
	want := pair.Certificate[0]
	return &tls.Config{
		// The probe checks the certificate's identity itself, below.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, want) {
				return errors.New("the server's certificate is not Options.TLS.CertFile")
			}
			return nil
		},
		// With TLS 1.3 the client's handshake completes before the server
		// checks the (missing) client certificate, so a probe without one
		// still sees the broker answer with its certificate.
		MinVersion: tls.VersionTLS13,
	}, nil
}

// serverConfig is the Mochi listener's TLS configuration for l, which
// probeConfig has checked.
func (l *TLSListener) serverConfig() (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(l.CertFile, l.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate %s / key %s: %v", ErrTLS, l.CertFile, l.KeyFile, err)
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	if l.CAFile != "" {
		if conf.ClientCAs, err = loadPool(l.CAFile); err != nil {
			return nil, err
		}
		conf.ClientAuth = tls.VerifyClientCertIfGiven
	}
	if l.RequireClientCert {
		conf.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return conf, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: CA file: %v", ErrTLS, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrTLS, file)
	}
	return pool, nil
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

	probeTLS  *tls.Config // client side of the readiness probe; nil for plaintext
	serverTLS *tls.Config // Mochi's listener configuration; nil for plaintext

	mu     sync.Mutex
	run    instance // nil while stopped
	closed bool
	mosq   *mosquittoHome // Kind Mosquitto only
}

// Start starts a broker of opts.Kind on 127.0.0.1 and returns once it
// completes an MQTT handshake. It returns ErrUnknownKind for an unknown
// kind, ErrMosquittoNotFound (wrapped) when Kind is Mosquitto and the
// binary is missing, ErrTLS (wrapped) when Options.TLS is unusable,
// ErrNotReady or ErrExited (wrapped, with the broker's log tail) when it
// does not come up, or the listen error. On error nothing is left running.
//
// With Options.TLS the broker is ready once a TLS handshake shows it
// serving Options.TLS.CertFile and, unless client certificates are
// required (the probe has none), once it answers an MQTT CONNECT over TLS.
func Start(opts Options) (*Broker, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Broker{kind: opts.Kind, opts: opts, log: log.With("component", "broker", "kind", string(opts.Kind))}
	if opts.TLS != nil && (opts.Kind == Mochi || opts.Kind == Mosquitto) {
		var err error
		if b.probeTLS, err = opts.TLS.probeConfig(opts.Kind); err != nil {
			return nil, err
		}
		if opts.Kind == Mochi {
			if b.serverTLS, err = opts.TLS.serverConfig(); err != nil {
				return nil, err
			}
		}
	}
	if opts.MaxQueuedMessages < 0 || opts.MaxInflightMessages < 0 {
		return nil, fmt.Errorf("broker: MaxQueuedMessages %d and MaxInflightMessages %d must not be negative",
			opts.MaxQueuedMessages, opts.MaxInflightMessages)
	}
	switch opts.Kind {
	case Mochi:
	case Mosquitto:
		home, err := newMosquittoHome(mosquittoLimits(opts)+opts.MosquittoConf, opts.TLS)
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

// URL returns "tcp://127.0.0.1:port", or "ssl://127.0.0.1:port" with
// Options.TLS: the form paho and the uplink take.
func (b *Broker) URL() string {
	if b.opts.TLS != nil {
		return "ssl://" + b.Addr()
	}
	return "tcp://" + b.Addr()
}

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
		run, err = startMochi(b.Addr(), b.serverTLS, b.log)
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
	if err := waitReady(b.Addr(), b.probeTLS, b.opts.TLS != nil && b.opts.TLS.RequireClientCert, exited); err != nil {
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
// enough: with a picked port another process could own it. With tlsConf
// the probe speaks TLS; with handshakeOnly (client certificates required)
// a handshake with the broker's own certificate is enough.
func waitReady(addr string, tlsConf *tls.Config, handshakeOnly bool, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	var last error
	for {
		if last = probe(ctx, addr, tlsConf, handshakeOnly); last == nil {
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

// probe performs one CONNECT/CONNACK/DISCONNECT exchange with addr, over
// TLS when tlsConf is set; with handshakeOnly it stops after the TLS
// handshake.
func probe(ctx context.Context, addr string, tlsConf *tls.Config, handshakeOnly bool) error {
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
	if tlsConf != nil {
		tc := tls.Client(c, tlsConf)
		if err := tc.HandshakeContext(dctx); err != nil {
			return fmt.Errorf("TLS handshake: %w", err)
		}
		if handshakeOnly {
			return nil
		}
		c = tc
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
