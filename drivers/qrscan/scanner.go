package qrscan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/drivers/devstatus"
	"github.com/kioskedge/kioskedge/drivers/serialport"
)

// More sentinel errors.
var (
	// ErrClosed: Run was called after Close, or the port was closed under it.
	ErrClosed = errors.New("qrscan: closed")
	// ErrRunning: Run was called while another Run is active.
	ErrRunning = errors.New("qrscan: already running")
)

// DefaultReadTimeout is how long one port Read waits when
// Options.ReadTimeout is zero. It bounds how quickly Run notices ctx ending,
// a due probe or an expired partial line; it decides nothing by itself.
const DefaultReadTimeout = 50 * time.Millisecond

// Probe is an optional liveness check (firmware-specs/qrscan.md §5):
// scanners are silent when nobody scans, so without a probe a scanner is
// only known dead when its port goes away.
type Probe struct {
	// Request is written to the scanner every Every.
	Request []byte
	// Reply is the line (after framing and stripping) that answers it. The
	// reply is consumed, never delivered as a scan.
	Reply []byte
	// Every is the probe period (by Options.Now); a probe still unanswered
	// when the next is due counts as a failed exchange.
	Every time.Duration
}

// Options configures a [Scanner].
type Options struct {
	// Name is the reader name put in Credential.Reader and in health.
	Name string
	// Framer configures line framing (§2–§4).
	Framer FramerConfig
	// OnScan receives every valid line as a credential of kind QR, from
	// Run's goroutine. It should not block long. Required.
	OnScan func(credential.Credential)
	// Probe, when not nil, enables liveness probing.
	Probe *Probe
	// DownAfter is the number of consecutive failed probes after which the
	// scanner is reported down (devstatus); 0 means 3.
	DownAfter int
	// ReadTimeout is the port read timeout; 0 means DefaultReadTimeout.
	ReadTimeout time.Duration
	// Now is the clock for credential times, the inter-character timeout
	// and probes; nil means time.Now.
	Now func() time.Time
	// Logger receives state changes and dropped-line notices (never line
	// contents); nil discards.
	Logger *slog.Logger
}

// Stats counts what the framer saw since New.
type Stats struct {
	Bytes     uint64 // bytes read from the port
	Lines     uint64 // valid lines delivered to OnScan
	Replies   uint64 // probe replies consumed
	Empty     uint64 // empty lines skipped
	Garbage   uint64 // lines dropped for control bytes or bad UTF-8
	Overlong  uint64 // lines dropped for exceeding MaxLen
	Truncated uint64 // partial lines dropped by the inter-character timeout
	Probes    uint64 // probe requests written
}

// Scanner reads a QR / barcode scanner on a serial port.
type Scanner struct {
	port   serialport.Port
	opts   Options
	framer *Framer
	health *devstatus.Tracker
	log    *slog.Logger

	running   atomic.Bool
	closeOnce sync.Once
	closeErr  error
	closed    atomic.Bool

	mu    sync.Mutex
	stats Stats
}

// New returns a Scanner reading port, which it takes ownership of (Close
// closes it). It returns an error wrapping ErrConfig when port or OnScan is
// nil, or when the framer configuration or the probe is invalid; the port
// is not closed then.
func New(port serialport.Port, opts Options) (*Scanner, error) {
	if port == nil || opts.OnScan == nil {
		return nil, fmt.Errorf("%w: nil port or OnScan", ErrConfig)
	}
	f, err := NewFramer(opts.Framer)
	if err != nil {
		return nil, err
	}
	if p := opts.Probe; p != nil && (len(p.Request) == 0 || len(p.Reply) == 0 || p.Every <= 0) {
		return nil, fmt.Errorf("%w: probe needs a request, a reply and a period", ErrConfig)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = DefaultReadTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Scanner{
		port:   port,
		opts:   opts,
		framer: f,
		health: devstatus.New(opts.Name, "qrscan", opts.DownAfter, opts.Now),
		log:    log.With("component", "qrscan", "reader", opts.Name),
	}, nil
}

// Open opens the scanner at path with serialport.OpenReconnecting (the port
// reopens by itself when a USB adapter is unplugged and plugged back) and
// returns New's Scanner over it. ropts.Logger defaults to opts.Logger.
// Errors are those of OpenReconnecting (an invalid path or mode, permission)
// and of New; a device that is merely absent is not an error.
func Open(path string, mode serialport.Mode, ropts serialport.ReconnectOptions, opts Options) (*Scanner, error) {
	if ropts.Logger == nil {
		ropts.Logger = opts.Logger
	}
	p, err := serialport.OpenReconnecting(path, mode, ropts)
	if err != nil {
		return nil, err
	}
	s, err := New(p, opts)
	if err != nil {
		// The port is ours and unusable; its close error adds nothing.
		_ = p.Close()
		return nil, err
	}
	return s, nil
}

// Health returns the scanner's health: connected (a Read that did not fail
// with Disconnected), last seen (last valid line or probe reply), framing
// errors (garbage, overlong, truncated lines), timeouts (unanswered probes),
// io errors, reconnects, and down (DownAfter probes in a row failed).
func (s *Scanner) Health() devstatus.Snapshot { return s.health.Snapshot() }

// Stats returns the framing counters.
func (s *Scanner) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Run reads the port until ctx ends, framing lines and calling OnScan for
// each valid one. It returns nil when ctx ends, ErrClosed when the Scanner
// or its port was closed, ErrRunning when another Run is active. Port
// errors other than Closed never end Run: a disconnected port is reported
// in Health and read again (a Reconnecting port comes back by itself).
func (s *Scanner) Run(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer s.running.Store(false)
	if err := s.port.SetReadTimeout(s.opts.ReadTimeout); err != nil {
		if serialport.IsClosed(err) {
			return ErrClosed
		}
		return fmt.Errorf("qrscan: set read timeout: %w", err)
	}
	var (
		buf         = make([]byte, 256)
		evs         []Event
		connected   bool
		outstanding bool
		nextProbe   time.Time
	)
	if s.opts.Probe != nil {
		nextProbe = s.opts.Now()
	}
	for ctx.Err() == nil {
		n, err := s.port.Read(buf)
		now := s.opts.Now()
		switch {
		case err == nil || serialport.IsTimeout(err):
			if !connected {
				connected = true
				s.health.Connected(true)
				s.log.Info("scanner connected")
			}
		case serialport.IsClosed(err):
			if ctx.Err() != nil {
				return nil
			}
			return ErrClosed
		default:
			if connected {
				connected = false
				s.health.Connected(false)
				s.health.Error(devstatus.ErrIO)
				s.log.Warn("scanner lost", "err", err)
			}
			// A plain Port fails at once while away; do not spin.
			select {
			case <-ctx.Done():
			case <-time.After(s.opts.ReadTimeout):
			}
		}
		if n > 0 {
			evs = s.framer.Feed(evs[:0], now, buf[:n])
			s.count(func(st *Stats) { st.Bytes += uint64(n) })
		} else {
			evs = evs[:0]
			if ev, ok := s.framer.Expire(now); ok {
				evs = append(evs, ev)
			}
		}
		for _, ev := range evs {
			if s.handle(ev, now) {
				outstanding = false
			}
		}
		if p := s.opts.Probe; p != nil && !now.Before(nextProbe) {
			if outstanding && s.health.Failed(devstatus.ErrTimeout) {
				s.log.Warn("scanner down: probes unanswered")
			}
			nextProbe = now.Add(p.Every)
			outstanding = true
			s.count(func(st *Stats) { st.Probes++ })
			if _, err := s.port.Write(p.Request); err != nil && !serialport.IsClosed(err) {
				s.log.Debug("probe not sent", "err", err)
			}
		}
	}
	return nil
}

// handle acts on one framing event and reports whether it proved the
// scanner alive.
func (s *Scanner) handle(ev Event, now time.Time) (alive bool) {
	switch ev.Kind {
	case Line:
		if p := s.opts.Probe; p != nil && string(ev.Payload) == string(p.Reply) {
			s.count(func(st *Stats) { st.Replies++ })
			s.seen()
			return true
		}
		s.count(func(st *Stats) { st.Lines++ })
		s.seen()
		c := credential.Credential{
			Kind:   credential.QR,
			Reader: s.opts.Name,
			Time:   now,
			Raw:    ev.Payload,
			Number: string(ev.Payload),
		}
		s.log.Debug("scan", "cred", c, "symbology", ev.Symbology)
		s.opts.OnScan(c)
		return true
	case Empty:
		s.count(func(st *Stats) { st.Empty++ })
	case Garbage:
		s.count(func(st *Stats) { st.Garbage++ })
		s.health.Error(devstatus.ErrFraming)
		s.log.Debug("line dropped: garbage", "len", ev.Len)
	case Overlong:
		s.count(func(st *Stats) { st.Overlong++ })
		s.health.Error(devstatus.ErrFraming)
		s.log.Debug("line dropped: overlong", "len", ev.Len)
	case Truncated:
		s.count(func(st *Stats) { st.Truncated++ })
		s.health.Error(devstatus.ErrFraming)
		s.log.Debug("line dropped: truncated", "len", ev.Len)
	}
	return false
}

func (s *Scanner) seen() {
	was := s.health.Down()
	s.health.Seen()
	if was {
		s.log.Info("scanner up again")
	}
}

func (s *Scanner) count(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// Close closes the port, which ends a running Run with ErrClosed (or nil if
// its ctx has ended). It is idempotent; later calls return the first
// call's result.
func (s *Scanner) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.closeErr = s.port.Close()
	})
	return s.closeErr
}
