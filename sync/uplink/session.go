package uplink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Errors returned by Session. Option validation errors wrap ErrOptions.
var (
	// ErrNotConnected is returned by Publish (and sent by PublishAsync) when
	// the session has no connection to the broker.
	ErrNotConnected = errors.New("uplink: not connected")
	// ErrConnectionLost is returned when the connection dropped before the
	// broker acknowledged a publish; the message may or may not have arrived.
	ErrConnectionLost = errors.New("uplink: connection lost before the publish was acknowledged")
	// ErrClosed is returned by Run after Close, and by publishes racing Close.
	ErrClosed = errors.New("uplink: session closed")
	// ErrPublishQueueFull is returned (through PublishAsync's channel)
	// when more than 1024 publishes are waiting for one connection.
	ErrPublishQueueFull = errors.New("uplink: publish queue full")
	// ErrPlaintext is returned by NewSession for a plaintext broker URL
	// (tcp://, mqtt://) unless SessionOptions.AllowPlaintext is set.
	ErrPlaintext = errors.New("uplink: plaintext MQTT refused (SessionOptions.AllowPlaintext is false; set it only in a lab)")
	// ErrOptions wraps every other SessionOptions or Options validation error.
	ErrOptions = errors.New("uplink: invalid options")
	// ErrTLS wraps errors loading the CA, certificate or key files.
	ErrTLS = errors.New("uplink: TLS configuration")
)

// Defaults applied by NewSession to zero fields.
const (
	DefaultMaxMessage  = 4 << 20
	DefaultKeepAlive   = 30 * time.Second
	DefaultBackoffMin  = time.Second
	DefaultBackoffMax  = 2 * time.Minute
	DefaultStableAfter = time.Minute

	connectTimeout   = 10 * time.Second
	subscribeTimeout = 10 * time.Second
	closeTimeout     = 5 * time.Second
	writeTimeout     = 15 * time.Second
	quiesceMillis    = 250
)

// Message is one MQTT application message.
type Message struct {
	Topic    string
	QoS      byte
	Retained bool
	Payload  []byte
}

// TLSFiles names the PEM files for TLS with a client certificate.
// CertFile and KeyFile are required unless NoClientCert; an empty CAFile
// means the system roots.
type TLSFiles struct {
	CAFile, CertFile, KeyFile string
	// NoClientCert connects with no client certificate (CertFile and
	// KeyFile must be empty): only for a box enrolling, before it has one
	// (firmware-specs/enrolment.md).
	NoClientCert bool
}

// Backoff is a capped exponential back-off with full jitter: the n-th
// consecutive retry (n from 0) sleeps rand*min(Max, Min*2^n). The count of
// consecutive retries resets only after a connection stayed up StableAfter,
// so a flapping broker does not make a fleet reconnect in lock step.
//
// Spread, when set, widens the retries after an established connection was
// lost: from then on each retry sleeps rand*min(Max, max(Spread, Min*2^n))
// (DelayAfterLoss), so the first reconnect after a broker restart is spread
// evenly over [0, Spread) and a fleet that lost the broker in the same
// instant does not come back in the same second; once Min*2^n exceeds
// Spread it is the plain exponential again. The first connect at boot and
// the retries of a session that never got a connection are not spread
// (Delay). Spread is capped at Max, so a short Max (a test's) keeps every
// wait short; 0 spreads nothing.
type Backoff struct {
	Min, Max, StableAfter time.Duration
	Spread                time.Duration
}

// ceiling is min(Max, Min*2^attempt) without overflow; 0 when Min <= 0.
func (b Backoff) ceiling(attempt int) time.Duration {
	if b.Min <= 0 {
		return 0
	}
	limit := max(b.Max, b.Min)
	ceil := b.Min
	for i := 0; i < attempt && ceil < limit; i++ {
		if ceil > limit/2 {
			ceil = limit
			break
		}
		ceil *= 2
	}
	return min(ceil, limit)
}

// jitter returns r*ceil for r clamped to [0, 1].
func jitter(ceil time.Duration, r float64) time.Duration {
	switch {
	case r < 0 || r != r: // negative or NaN
		r = 0
	case r >= 1:
		r = 1
	}
	f := r * float64(ceil)
	if f >= float64(ceil) { // r == 1, or rounding near the top of the range
		return ceil
	}
	return time.Duration(f)
}

// Delay returns the sleep before retry number attempt (0-based) for the
// jitter value r in [0, 1): r*min(Max, Min*2^attempt). It is a pure
// function; r outside [0, 1) is clamped, a non-positive Min gives 0, and a
// Max below Min is treated as Min. It never overflows.
func (b Backoff) Delay(attempt int, r float64) time.Duration {
	return jitter(b.ceiling(attempt), r)
}

// DelayAfterLoss is Delay for the retries after an established connection
// was lost: r*min(Max, max(Spread, Min*2^attempt)). With Spread 0 it is
// Delay. A pure function, clamped like Delay.
func (b Backoff) DelayAfterLoss(attempt int, r float64) time.Duration {
	ceil := b.ceiling(attempt)
	if b.Spread > ceil {
		ceil = min(b.Spread, max(b.Max, b.Min))
	}
	return jitter(ceil, r)
}

// retries is a session's reconnect schedule. Run feeds it the events and
// sleeps what it returns; it reads no clock, so its tests need none.
type retries struct {
	b       Backoff
	attempt int  // consecutive retries since the back-off last reset
	wasUp   bool // a connection was established once: retries are spread
}

// connectFailed returns the sleep after a failed connection attempt.
func (s *retries) connectFailed(r float64) time.Duration {
	var d time.Duration
	if s.wasUp {
		d = s.b.DelayAfterLoss(s.attempt, r)
	} else {
		d = s.b.Delay(s.attempt, r)
	}
	s.attempt++
	return d
}

// connectionLost returns the sleep after an established connection that
// stayed up for upFor dropped; it resets the back-off if upFor reached
// StableAfter.
func (s *retries) connectionLost(upFor time.Duration, r float64) time.Duration {
	s.wasUp = true
	if upFor >= s.b.StableAfter {
		s.attempt = 0
	}
	return s.connectFailed(r)
}

// SessionOptions configures a Session. Zero fields take the defaults
// documented on each field.
type SessionOptions struct {
	// Broker is the broker URL: "ssl://host:8883", "mqtts://host:8883",
	// "tls://…", or (only with AllowPlaintext) "tcp://127.0.0.1:1883".
	Broker   string
	ClientID string // required
	// TLS names the CA and the client certificate; required for TLS URLs.
	TLS *TLSFiles
	// AllowPlaintext permits a tcp:// or mqtt:// broker. Lab use only.
	AllowPlaintext     bool
	Username, Password string
	KeepAlive          time.Duration // default 30s, at least 1s
	// Will is set as the MQTT Will of every connection.
	Will *Message
	// OnConnect is called after each (re)connect, once the remembered
	// subscriptions are renewed, on its own goroutine owned by the session;
	// its ctx ends when that connection is lost or the session ends.
	OnConnect func(ctx context.Context, s *Session)
	// OnConnectionLost is called (on Run's goroutine) when a connection drops.
	OnConnectionLost func(err error)
	// Backoff defaults: Min 1s, Max 2m, StableAfter 1m, Spread 0 (none).
	Backoff Backoff
	// MaxMessage bounds incoming payloads; larger ones are dropped and
	// counted in SessionStats.Dropped. Default 4 MiB.
	MaxMessage int
	Logger     *slog.Logger   // nil discards
	Rand       func() float64 // jitter source in [0,1); nil = math/rand/v2
}

// SessionStats are the session's counters.
type SessionStats struct {
	Connected       bool
	Connects        uint64 // successful connections, the first included
	Reconnects      uint64 // successful connections after the first
	ConnectFailures uint64 // failed connection attempts
	ConnectionsLost uint64 // established connections that dropped
	Dropped         uint64 // incoming messages over MaxMessage, dropped
	Published       uint64 // publishes acknowledged by the broker
	PublishErrors   uint64 // publishes that failed or were not acknowledged
}

type subscription struct {
	filter string
	qos    byte
	// h gets retained set for a message the broker sent because of the
	// subscription (a retained one), not forwarded live.
	h func(topic string, payload []byte, retained bool)
	// optional: a broker refusing it (an ACL) is logged and the
	// connection kept; a required one refused drops the connection.
	optional bool
}

// conn is one established connection.
type conn struct {
	client   mqtt.Client
	lost     chan struct{} // closed when the connection is gone
	lostOnce sync.Once
	lostErr  error
	ctx      context.Context // for OnConnect; ends with the connection
	cancel   context.CancelFunc

	// Publishes wait here for the connection's sender goroutine, which
	// alone calls paho's Publish: that call blocks (up to writeTimeout)
	// when the link stalls, and PublishAsync must not.
	pubMu     sync.Mutex
	pubq      chan pubReq
	pubClosed bool // set (under pubMu) once the sender stopped taking requests
}

// pubReq is one queued publish and how to report its outcome.
type pubReq struct {
	m    Message
	send func(error)
}

// publishQueue bounds the publishes waiting for one connection's sender; a
// full queue fails the publish at once with ErrPublishQueueFull.
const publishQueue = 1024

func (c *conn) markLost(err error) {
	c.lostOnce.Do(func() {
		c.lostErr = err
		close(c.lost)
		if c.cancel != nil {
			c.cancel()
		}
	})
}

// Session is an MQTT 3.1.1 session with its own reconnect loop. Create it
// with NewSession, run it with Run, end it with Close or by ending Run's
// context. All methods are safe for concurrent use.
type Session struct {
	opts    SessionOptions
	broker  string
	tlsConf *tls.Config
	log     *slog.Logger
	rand    func() float64

	// willFor, when set (by Uplink), gives the Will for the next connection
	// attempt instead of opts.Will.
	willFor func() *Message
	// beforeClosed, if set (tests only), runs in Close before the session
	// is marked closed.
	beforeClosed func()

	mu      sync.Mutex
	subs    []subscription
	subMu   sync.Mutex // orders renewals and direct subscribes (see connect)
	cur     *conn      // nil when not connected
	closed  bool
	running bool
	closeCh chan struct{}
	wg      sync.WaitGroup // OnConnect calls and PublishAsync waiters

	closeOnce sync.Once
	closeErr  error

	connected                                          atomic.Bool
	connects, reconnects, failures, lost, dropped, pub atomic.Uint64
	pubErr                                             atomic.Uint64
}

// NewSession validates opts and builds a session; it does not connect.
// Errors: ErrPlaintext for a plaintext URL without AllowPlaintext; ErrTLS
// (naming the file) when the CA, certificate or key cannot be loaded;
// ErrOptions (naming the field) for anything else.
func NewSession(opts SessionOptions) (*Session, error) {
	if opts.ClientID == "" {
		return nil, fmt.Errorf("%w: SessionOptions.ClientID is empty", ErrOptions)
	}
	u, err := url.Parse(opts.Broker)
	if err != nil || opts.Broker == "" {
		return nil, fmt.Errorf("%w: SessionOptions.Broker %q is not a URL", ErrOptions, opts.Broker)
	}
	if u.Hostname() == "" || u.Port() == "" {
		return nil, fmt.Errorf("%w: SessionOptions.Broker %q needs host and port", ErrOptions, opts.Broker)
	}
	s := &Session{opts: opts, log: opts.Logger, rand: opts.Rand, closeCh: make(chan struct{})}
	switch u.Scheme {
	case "tcp", "mqtt":
		if !opts.AllowPlaintext {
			return nil, fmt.Errorf("%w: %s", ErrPlaintext, opts.Broker)
		}
		if opts.TLS != nil {
			return nil, fmt.Errorf("%w: SessionOptions.TLS is set but Broker %q is plaintext", ErrOptions, opts.Broker)
		}
	case "ssl", "tls", "mqtts", "tcps":
		if opts.TLS == nil {
			return nil, fmt.Errorf("%w: SessionOptions.TLS is required for %s://", ErrOptions, u.Scheme)
		}
		s.tlsConf, err = loadTLS(*opts.TLS, u.Hostname())
		if err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: SessionOptions.Broker scheme %q (want ssl, mqtts, tls, or tcp with AllowPlaintext)", ErrOptions, u.Scheme)
	}
	s.broker = u.Scheme + "://" + u.Host
	if opts.Will != nil {
		if err := checkMessage(*opts.Will); err != nil {
			return nil, fmt.Errorf("%w: SessionOptions.Will: %v", ErrOptions, err)
		}
	}
	b := &s.opts.Backoff
	switch {
	case b.Min < 0 || b.Max < 0 || b.StableAfter < 0 || b.Spread < 0:
		return nil, fmt.Errorf("%w: SessionOptions.Backoff has a negative duration", ErrOptions)
	case b.Min > 0 && b.Max > 0 && b.Max < b.Min:
		return nil, fmt.Errorf("%w: SessionOptions.Backoff.Max %v < Min %v", ErrOptions, b.Max, b.Min)
	}
	if b.Min == 0 {
		b.Min = DefaultBackoffMin
	}
	if b.Max == 0 {
		b.Max = max(DefaultBackoffMax, b.Min)
	}
	if b.StableAfter == 0 {
		b.StableAfter = DefaultStableAfter
	}
	if s.opts.KeepAlive < 0 || s.opts.MaxMessage < 0 {
		return nil, fmt.Errorf("%w: SessionOptions.KeepAlive and MaxMessage must not be negative", ErrOptions)
	}
	if s.opts.KeepAlive == 0 {
		s.opts.KeepAlive = DefaultKeepAlive
	}
	s.opts.KeepAlive = max(s.opts.KeepAlive, time.Second)
	if s.opts.MaxMessage == 0 {
		s.opts.MaxMessage = DefaultMaxMessage
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	} else {
		bridgePaho(s.log)
	}
	if s.rand == nil {
		s.rand = rand.Float64
	}
	return s, nil
}

func checkMessage(m Message) error {
	switch {
	case m.Topic == "":
		return errors.New("empty topic")
	case m.QoS > 2:
		return fmt.Errorf("QoS %d", m.QoS)
	}
	return nil
}

// loadTLS builds the client TLS configuration from PEM files.
func loadTLS(f TLSFiles, serverName string) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	switch {
	case f.NoClientCert && (f.CertFile != "" || f.KeyFile != ""):
		return nil, fmt.Errorf("%w: SessionOptions.TLS.NoClientCert with CertFile or KeyFile set", ErrTLS)
	case f.NoClientCert:
	case f.CertFile == "" || f.KeyFile == "":
		return nil, fmt.Errorf("%w: SessionOptions.TLS.CertFile and KeyFile are required (client certificate auth)", ErrTLS)
	default:
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: client certificate %s / key %s: %v", ErrTLS, f.CertFile, f.KeyFile, err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: CA file: %v", ErrTLS, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrTLS, f.CAFile)
		}
		conf.RootCAs = pool
	}
	return conf, nil
}

// Run connects and keeps the session connected until ctx ends or Close is
// called, reconnecting with back-off (see Backoff). When ctx ends it
// disconnects cleanly (as Close(nil) does) and returns nil; to publish a
// final message first, call Close(final) before ctx ends. Run waits for
// every goroutine the session started (OnConnect calls, PublishAsync
// waiters) before returning. It returns ErrClosed if the session was
// already closed, and an error if Run is already running.
func (s *Session) Run(ctx context.Context) error {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return ErrClosed
	case s.running:
		s.mu.Unlock()
		return errors.New("uplink: Session.Run called twice")
	}
	s.running = true
	s.mu.Unlock()
	defer s.wg.Wait()
	defer func() {
		// Ignoring the error: Close(nil) publishes nothing, and a failed
		// DISCONNECT only means the broker sees the connection drop.
		_ = s.Close(nil)
	}()

	sched := retries{b: s.opts.Backoff}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.closeCh:
			return nil
		default:
		}
		c, err := s.connect(ctx)
		if err != nil {
			if errors.Is(err, ErrClosed) || ctx.Err() != nil {
				return nil
			}
			s.failures.Add(1)
			d := sched.connectFailed(s.rand())
			s.log.Warn("mqtt connect failed", "broker", s.broker, "err", err, "retry_in", d)
			if !s.sleep(ctx, d) {
				return nil
			}
			continue
		}
		up := time.Now()
		select {
		case <-ctx.Done():
			return nil
		case <-s.closeCh:
			return nil
		case <-c.lost:
		}
		s.dropConn(c)
		if ctx.Err() != nil || s.isClosing() {
			// The loss is our own disconnect racing the close signal.
			return nil
		}
		s.lost.Add(1)
		upFor := time.Since(up)
		d := sched.connectionLost(upFor, s.rand())
		s.log.Warn("mqtt connection lost", "broker", s.broker, "err", c.lostErr, "up_for", upFor, "retry_in", d)
		if s.opts.OnConnectionLost != nil {
			s.opts.OnConnectionLost(c.lostErr)
		}
		if !s.sleep(ctx, d) {
			return nil
		}
	}
}

func (s *Session) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.closeCh:
		return false
	}
}

// dropConn forgets c as the current connection.
func (s *Session) dropConn(c *conn) {
	s.mu.Lock()
	if s.cur == c {
		s.cur = nil
		s.connected.Store(false)
	}
	s.mu.Unlock()
	c.markLost(ErrConnectionLost)
}

func (s *Session) connect(ctx context.Context) (*conn, error) {
	will := s.opts.Will
	if s.willFor != nil {
		will = s.willFor()
	}
	o := mqtt.NewClientOptions()
	o.AddBroker(s.broker)
	o.SetClientID(s.opts.ClientID)
	o.SetUsername(s.opts.Username)
	o.SetPassword(s.opts.Password)
	o.SetCleanSession(true)
	o.SetOrderMatters(true) // handlers run in order on one goroutine
	o.SetAutoReconnect(false)
	o.SetConnectRetry(false)
	o.SetKeepAlive(s.opts.KeepAlive)
	o.SetPingTimeout(min(s.opts.KeepAlive, 10*time.Second))
	o.SetConnectTimeout(connectTimeout)
	o.SetWriteTimeout(writeTimeout)
	if s.tlsConf != nil {
		o.SetTLSConfig(s.tlsConf)
	}
	if will != nil {
		o.SetBinaryWill(will.Topic, will.Payload, will.QoS, will.Retained)
	}
	c := &conn{lost: make(chan struct{}), pubq: make(chan pubReq, publishQueue)}
	// Set before Connect: markLost (paho's goroutine) reads cancel.
	c.ctx, c.cancel = context.WithCancel(ctx)
	o.SetConnectionLostHandler(func(_ mqtt.Client, err error) { c.markLost(err) })
	c.client = mqtt.NewClient(o)

	tok := c.client.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		c.cancel()
		s.disconnectLater(c, tok)
		return nil, ctx.Err()
	case <-s.closeCh:
		c.cancel()
		s.disconnectLater(c, tok)
		return nil, ErrClosed
	}
	if err := tok.Error(); err != nil {
		c.cancel()
		return nil, err
	}

	// subMu is held from the moment the connection becomes current until
	// every remembered subscription is renewed, so a Subscribe made
	// meanwhile (which sees the connection and subscribes at once) waits:
	// subscriptions reach the broker in the order they were made.
	s.subMu.Lock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.subMu.Unlock()
		c.client.Disconnect(0)
		c.markLost(ErrClosed)
		return nil, ErrClosed
	}
	s.cur = c
	subs := slices.Clone(s.subs)
	s.mu.Unlock()
	if !s.goOwned(func() { s.sender(c) }) {
		c.closePublishes(ErrClosed)
	}
	for _, sub := range subs {
		if err := s.subscribe(c, sub); err != nil {
			s.subMu.Unlock()
			s.dropConn(c)
			c.client.Disconnect(0)
			return nil, err
		}
	}
	s.subMu.Unlock()
	select {
	case <-c.lost:
		s.dropConn(c)
		return nil, fmt.Errorf("uplink: connection lost while subscribing: %v", c.lostErr)
	default:
	}
	s.connected.Store(true)
	if s.connects.Add(1) > 1 {
		s.reconnects.Add(1)
	}
	s.log.Info("mqtt connected", "broker", s.broker, "client_id", s.opts.ClientID)
	if f := s.opts.OnConnect; f != nil {
		s.goOwned(func() { f(c.ctx, s) })
	}
	return c, nil
}

// disconnectLater waits (on an owned goroutine) for an abandoned connection
// attempt to finish, then disconnects it.
func (s *Session) disconnectLater(c *conn, tok mqtt.Token) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		<-tok.Done()
		if tok.Error() == nil {
			c.client.Disconnect(0)
		}
	}()
}

// goOwned runs f on a goroutine Run waits for; it reports false (and does
// not run f) once the session is closed.
func (s *Session) goOwned(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// subscribe asks the broker for sub on c. An optional subscription the
// broker refuses is logged and is no error.
func (s *Session) subscribe(c *conn, sub subscription) error {
	h, maxLen := sub.h, s.opts.MaxMessage
	tok := c.client.Subscribe(sub.filter, sub.qos, func(_ mqtt.Client, m mqtt.Message) {
		p := m.Payload()
		if len(p) > maxLen {
			s.dropped.Add(1)
			s.log.Warn("mqtt message over MaxMessage dropped", "topic", m.Topic(), "bytes", len(p), "max", maxLen)
			return
		}
		h(m.Topic(), p, m.Retained())
	})
	if !tok.WaitTimeout(subscribeTimeout) {
		return fmt.Errorf("uplink: subscribe %q: no SUBACK within %v", sub.filter, subscribeTimeout)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("uplink: subscribe %q: %w", sub.filter, err)
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		for _, code := range st.Result() {
			if code == 0x80 && sub.optional {
				s.log.Warn("mqtt optional subscription refused by the broker, carrying on without it", "filter", sub.filter)
				return nil
			}
			if code == 0x80 {
				return fmt.Errorf("uplink: subscribe %q: refused by the broker", sub.filter)
			}
		}
	}
	return nil
}

// Subscribe remembers the subscription and, if connected, subscribes now;
// it is renewed on every connect before OnConnect runs. h is called in
// message order on paho's delivery goroutine: it must return quickly and
// must not call Publish (use PublishAsync or another goroutine). payload
// belongs to h. Messages over MaxMessage never reach h. Subscribe returns
// ErrOptions for an empty filter or a QoS above 2, and the broker's error if
// the immediate subscription fails (the filter stays remembered and is
// retried on the next connect).
func (s *Session) Subscribe(filter string, qos byte, h func(topic string, payload []byte)) error {
	if h == nil {
		return fmt.Errorf("%w: Subscribe needs a filter, QoS 0..2 and a handler", ErrOptions)
	}
	return s.remember(subscription{filter: filter, qos: qos, h: func(t string, p []byte, _ bool) { h(t, p) }})
}

// subscribeOptional is Subscribe for a subscription the session can live
// without: when the broker refuses it (an ACL), the refusal is logged and
// the connection kept, and it is asked for again on the next connect.
// h also gets the message's retained flag.
func (s *Session) subscribeOptional(filter string, qos byte, h func(topic string, payload []byte, retained bool)) error {
	return s.remember(subscription{filter: filter, qos: qos, h: h, optional: true})
}

func (s *Session) remember(sub subscription) error {
	if sub.filter == "" || sub.qos > 2 || sub.h == nil {
		return fmt.Errorf("%w: Subscribe needs a filter, QoS 0..2 and a handler", ErrOptions)
	}
	s.mu.Lock()
	s.subs = append(s.subs, sub)
	c := s.cur
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	// After a renewal in progress (see connect), never before it.
	s.subMu.Lock()
	defer s.subMu.Unlock()
	return s.subscribe(c, sub)
}

func (s *Session) current() *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.connected.Load() {
		return nil
	}
	return s.cur
}

func (s *Session) publishErr(tok mqtt.Token) error {
	err := tok.Error()
	switch {
	case err == nil:
		s.pub.Add(1)
		return nil
	case errors.Is(err, mqtt.ErrNotConnected):
		err = ErrNotConnected
	default:
		err = fmt.Errorf("%w: %v", ErrConnectionLost, err)
	}
	s.pubErr.Add(1)
	return err
}

// Publish sends m and, at QoS 1 or 2, waits for the broker's
// acknowledgement. It returns ErrNotConnected when the session is down,
// ErrConnectionLost (wrapped) if the connection dropped first, ctx's error
// if ctx ends first (the message may still be delivered), or ErrOptions for
// an empty topic or a QoS above 2. A PUBACK is not delivery to subscribers.
func (s *Session) Publish(ctx context.Context, m Message) error {
	if err := checkMessage(m); err != nil {
		return fmt.Errorf("%w: Publish: %v", ErrOptions, err)
	}
	c := s.current()
	if c == nil {
		return ErrNotConnected
	}
	tok := c.client.Publish(m.Topic, m.QoS, m.Retained, m.Payload)
	select {
	case <-tok.Done():
		return s.publishErr(tok)
	case <-c.lost:
		s.pubErr.Add(1)
		return ErrConnectionLost
	case <-ctx.Done():
		return ctx.Err()
	}
}

// PublishAsync sends m without waiting, and never blocks: m is queued for
// the connection's sender, so a stalled link delays done, not the caller.
// done (buffered, one value) receives nil once the broker acknowledged it
// (at QoS 0: once written), ErrNotConnected at once when the session is
// down, ErrPublishQueueFull at once when 1024 publishes are already queued,
// or ErrConnectionLost (possibly wrapped) if the connection dropped first.
// Publishes on one connection reach the broker in call order. It does not retain
// m.Payload after done fires; the caller must not modify it before then.
func (s *Session) PublishAsync(m Message) (done <-chan error) {
	return s.publishAsync(m, nil)
}

// publishAsync is PublishAsync; failed, if set, is called (on any
// goroutine, after done holds the error) when the publish fails, so a
// caller can wake up instead of polling done.
func (s *Session) publishAsync(m Message, failed func()) <-chan error {
	ch := make(chan error, 1)
	send := func(err error) {
		ch <- err
		if err != nil && failed != nil {
			failed()
		}
	}
	if err := checkMessage(m); err != nil {
		send(fmt.Errorf("%w: PublishAsync: %v", ErrOptions, err))
		return ch
	}
	c := s.current()
	if c == nil {
		send(ErrNotConnected)
		return ch
	}
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	if c.pubClosed {
		s.pubErr.Add(1)
		send(ErrConnectionLost)
		return ch
	}
	select {
	case c.pubq <- pubReq{m: m, send: send}:
	default:
		s.pubErr.Add(1)
		send(ErrPublishQueueFull)
	}
	return ch
}

// sender is c's publishing goroutine: it hands queued messages to paho in
// order, and has an owned goroutine wait for each acknowledgement so many
// can be in flight. When c is lost it fails what is still queued.
func (s *Session) sender(c *conn) {
	for {
		select {
		case r := <-c.pubq:
			tok := c.client.Publish(r.m.Topic, r.m.QoS, r.m.Retained, r.m.Payload)
			select {
			case <-tok.Done():
				r.send(s.publishErr(tok))
				continue
			default:
			}
			ok := s.goOwned(func() {
				select {
				case <-tok.Done():
					r.send(s.publishErr(tok))
				case <-c.lost:
					s.pubErr.Add(1)
					r.send(ErrConnectionLost)
				}
			})
			if !ok {
				r.send(ErrClosed)
			}
		case <-c.lost:
			c.closePublishes(ErrConnectionLost)
			return
		}
	}
}

// closePublishes stops c taking publishes and fails those still queued.
func (c *conn) closePublishes(err error) {
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	c.pubClosed = true
	for {
		select {
		case r := <-c.pubq:
			r.send(err)
		default:
			return
		}
	}
}

// Connected reports whether the session is connected and subscribed.
func (s *Session) Connected() bool { return s.connected.Load() }

// Stats returns a snapshot of the session's counters.
func (s *Session) Stats() SessionStats {
	return SessionStats{
		Connected:       s.connected.Load(),
		Connects:        s.connects.Load(),
		Reconnects:      s.reconnects.Load(),
		ConnectFailures: s.failures.Load(),
		ConnectionsLost: s.lost.Load(),
		Dropped:         s.dropped.Load(),
		Published:       s.pub.Load(),
		PublishErrors:   s.pubErr.Load(),
	}
}

// Close publishes final (if non-nil and the session is connected, waiting
// up to 5s for its acknowledgement), then disconnects cleanly, which tells
// the broker to discard the Will. It makes Run return and is idempotent:
// later calls return the first call's result. It returns the error of
// publishing final, if any; it does not wait for Run to return.
func (s *Session) Close(final *Message) error {
	s.closeOnce.Do(func() {
		if final != nil && s.current() != nil {
			ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
			s.closeErr = s.Publish(ctx, *final)
			cancel()
		}
		if s.beforeClosed != nil {
			s.beforeClosed()
		}
		// The connection to end is the one current when closed is set: Run
		// may have connected while final was published (or before, when
		// there was none), and connect checks closed under the same lock.
		s.mu.Lock()
		s.closed = true
		c := s.cur
		s.cur = nil
		s.connected.Store(false)
		s.mu.Unlock()
		if c != nil {
			c.client.Disconnect(quiesceMillis)
			c.markLost(ErrClosed)
		}
		close(s.closeCh)
	})
	return s.closeErr
}

// isClosing reports whether Close has been called.
func (s *Session) isClosing() bool {
	select {
	case <-s.closeCh:
		return true
	default:
		return false
	}
}
