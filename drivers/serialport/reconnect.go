package serialport

import (
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Clock is the time source of a [Reconnecting] port; tests inject a fake.
type Clock interface {
	// After returns a channel that receives once d has elapsed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// ReconnectOptions configures [OpenReconnecting]. Zero values pick defaults.
type ReconnectOptions struct {
	// MinBackoff is the first back-off ceiling (default 100 ms); it doubles
	// after every failed attempt up to MaxBackoff (default 5 s). Each wait is
	// uniform in [0, ceiling] ("full jitter").
	MinBackoff, MaxBackoff time.Duration
	// PathCheck is how often, while up, the path is checked for having
	// vanished or now pointing at another device (default 1 s; negative
	// disables the check and only I/O errors reveal a lost device).
	PathCheck time.Duration
	// Logger receives up/down transitions and open failures; nil discards.
	Logger *slog.Logger
	// Opener opens the device; default [Open]. Tests inject fakes.
	Opener func(path string, mode Mode) (Port, error)
	// OnState is called with true when the device comes up and false when it
	// is lost, in order, from the reconnect goroutine. It must not block long
	// and must not call Close on this port.
	OnState func(up bool)
	// Clock drives back-off and path checks; default the real clock.
	Clock Clock
	// Rand returns a uniform int64 in [0, n) for jitter; default math/rand/v2.
	Rand func(n int64) int64
}

// Reconnecting is a [Port] over a path whose device may come and go (a USB
// adapter unplugged and plugged back). An owned goroutine opens the path,
// and when the device is lost (a Read/Write error other than a timeout, or
// the path vanishing or changing device) closes it and reopens it with capped
// exponential back-off.
//
// While the device is down, Write returns Code Disconnected at once and Read
// waits up to its read timeout for the device to come back (then reads from
// it) or returns Code Disconnected; with no read timeout it waits until the
// device is back or Close. The Read or Write that hits the loss returns Code
// Disconnected wrapping the cause. A read timeout set with SetReadTimeout
// applies across reopens.
type Reconnecting struct {
	path  string
	mode  Mode
	opts  ReconnectOptions
	log   *slog.Logger
	clock Clock

	mu      sync.Mutex
	cur     Port          // nil while down; guarded by mu
	gen     uint64        // incremented on every successful open; guarded by mu
	upCh    chan struct{} // closed while up, replaced when going down; guarded by mu
	closed  bool          // guarded by mu
	timeout time.Duration // guarded by mu

	lost       chan struct{} // signals the loop that cur failed (buffer 1)
	done       chan struct{} // closed by Close
	wg         sync.WaitGroup
	closeOnce  sync.Once
	up         atomic.Bool // OnState(true) delivered and not yet OnState(false)
	reconnects atomic.Uint64
	ident      devIdent // identity of the opened device; loop goroutine only
}

// OpenReconnecting starts a Reconnecting port on path. It tries to open the
// device once before returning; if the device is absent or busy it returns
// the port anyway and keeps trying in the background. It returns an *Error
// (Op "open") without starting anything when the path or mode is invalid
// (empty path, not a tty, bad mode) or permission is denied: those do not
// heal by waiting.
func OpenReconnecting(path string, mode Mode, opts ReconnectOptions) (*Reconnecting, error) {
	if path == "" {
		return nil, &Error{Code: Invalid, Op: "open", Err: errors.New("empty path")}
	}
	if _, err := mode.toSerial(); err != nil {
		return nil, &Error{Code: Invalid, Path: path, Op: "open", Err: err}
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = opts.MinBackoff
	}
	if opts.PathCheck == 0 {
		opts.PathCheck = time.Second
	}
	if opts.Opener == nil {
		opts.Opener = Open
	}
	if opts.Rand == nil {
		opts.Rand = rand.Int64N
	}
	r := &Reconnecting{
		path: path, mode: mode, opts: opts,
		log:   opts.Logger,
		clock: opts.Clock,
		upCh:  make(chan struct{}),
		lost:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.log = r.log.With("component", "serialport", "path", path)
	if r.clock == nil {
		r.clock = realClock{}
	}
	p, err := r.opts.Opener(path, mode)
	if err != nil {
		if c, _ := CodeOf(err); c == Invalid || c == Permission {
			return nil, err
		}
		r.log.Warn("serial device absent, will keep trying", "err", err)
	}
	r.wg.Add(1)
	go r.loop(p)
	return r, nil
}

// Up reports whether the device is currently open. It turns false as soon as
// a loss is seen (before OnState(false) is delivered).
func (r *Reconnecting) Up() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur != nil
}

// Reconnects returns how many times the device was reopened after being lost
// (the first successful open is not counted).
func (r *Reconnecting) Reconnects() uint64 { return r.reconnects.Load() }

// Path returns the path this port opens.
func (r *Reconnecting) Path() string { return r.path }

func (r *Reconnecting) err(op string, c Code, cause error) error {
	return &Error{Code: c, Path: r.path, Op: op, Err: cause}
}

// current returns the open port and its generation, or nil and the channel
// closed when it comes up. closed reports Close.
func (r *Reconnecting) current() (p Port, gen uint64, upCh chan struct{}, timeout time.Duration, closed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur, r.gen, r.upCh, r.timeout, r.closed
}

// Read reads from the current device; see [Reconnecting] for the down case.
func (r *Reconnecting) Read(b []byte) (int, error) {
	waited := false
	for {
		p, gen, upCh, timeout, closed := r.current()
		if closed {
			return 0, r.err("read", Closed, nil)
		}
		if p == nil {
			if waited {
				return 0, r.err("read", Disconnected, nil)
			}
			waited = true
			var timer <-chan time.Time
			if timeout > 0 {
				timer = r.clock.After(timeout)
			}
			select {
			case <-upCh:
				continue
			case <-r.done:
				return 0, r.err("read", Closed, nil)
			case <-timer:
				return 0, r.err("read", Disconnected, nil)
			}
		}
		n, err := p.Read(b)
		if err == nil || IsTimeout(err) {
			return n, err
		}
		return n, r.ioFailed("read", gen, err)
	}
}

// Write writes to the current device, or returns Code Disconnected at once
// while it is down.
func (r *Reconnecting) Write(b []byte) (int, error) {
	p, gen, _, _, closed := r.current()
	if closed {
		return 0, r.err("write", Closed, nil)
	}
	if p == nil {
		return 0, r.err("write", Disconnected, nil)
	}
	n, err := p.Write(b)
	if err != nil {
		return n, r.ioFailed("write", gen, err)
	}
	return n, nil
}

// SetReadTimeout sets the read timeout of the current and every later
// device (0: no limit). Negative is Code Invalid; after Close, Code Closed.
func (r *Reconnecting) SetReadTimeout(d time.Duration) error {
	if d < 0 {
		return r.err("set read timeout", Invalid, errors.New("negative timeout"))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return r.err("set read timeout", Closed, nil)
	}
	r.timeout = d
	if r.cur != nil {
		// Our port's SetReadTimeout only stores the value; an error means it
		// is closing, which the next Read reports.
		_ = r.cur.SetReadTimeout(d)
	}
	return nil
}

// ResetInputBuffer discards unread input of the current device; Code
// Disconnected while down.
func (r *Reconnecting) ResetInputBuffer() error {
	p, gen, _, _, closed := r.current()
	if closed {
		return r.err("reset input", Closed, nil)
	}
	if p == nil {
		return r.err("reset input", Disconnected, nil)
	}
	if err := p.ResetInputBuffer(); err != nil {
		return r.ioFailed("reset input", gen, err)
	}
	return nil
}

// Close stops reconnecting, closes the device if open, unblocks pending Reads
// (they return Code Closed) and waits for the reconnect goroutine; if the
// device was up, OnState(false) is called once more. It is idempotent and
// returns nil.
func (r *Reconnecting) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		p := r.cur
		r.cur = nil
		r.mu.Unlock()
		close(r.done)
		if p != nil {
			// The device is being abandoned; a close error changes nothing.
			_ = p.Close()
		}
		r.wg.Wait()
		if r.up.Swap(false) && r.opts.OnState != nil {
			r.opts.OnState(false)
		}
	})
	return nil
}

// ioFailed handles an I/O error from generation gen: unless we are closing,
// the device is declared lost (once per generation) and the error is
// returned as Code Disconnected.
func (r *Reconnecting) ioFailed(op string, gen uint64, cause error) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return r.err(op, Closed, cause)
	}
	r.markLost(gen)
	return r.err(op, Disconnected, cause)
}

// markLost is called with mu held and releases it. If generation gen is
// still current it is taken down, closed (which unblocks Reads pending on it)
// and the loop is told.
func (r *Reconnecting) markLost(gen uint64) {
	if r.cur == nil || r.gen != gen {
		r.mu.Unlock()
		return
	}
	p := r.cur
	r.cur = nil
	r.upCh = make(chan struct{})
	r.mu.Unlock()
	_ = p.Close() // the device is gone; its close error says nothing new
	select {
	case r.lost <- struct{}{}:
	default:
	}
}

// loop owns (re)opening. p is the port opened by OpenReconnecting, or nil
// when that attempt failed.
func (r *Reconnecting) loop(p Port) {
	defer r.wg.Done()
	everUp := false
	attempt := 0 // failed opens since the device was last up
	if p == nil {
		attempt = 1
	}
	for {
		for p == nil {
			if attempt > 0 {
				select {
				case <-r.done:
					return
				case <-r.clock.After(backoff(attempt-1, r.opts.MinBackoff, r.opts.MaxBackoff, r.opts.Rand)):
				}
			}
			var err error
			if p, err = r.opts.Opener(r.path, r.mode); err != nil {
				p = nil
				r.log.Debug("serial device not available", "err", err, "attempt", attempt)
				attempt++
			}
		}
		gen, ok := r.install(p, everUp)
		p = nil
		if !ok {
			return
		}
		attempt = 0
		if everUp {
			r.log.Info("serial device reconnected")
		}
		everUp = true
		r.up.Store(true)
		if r.opts.OnState != nil {
			r.opts.OnState(true)
		}
		if !r.watch(gen) {
			return
		}
		r.up.Store(false)
		r.log.Warn("serial device lost")
		if r.opts.OnState != nil {
			r.opts.OnState(false)
		}
	}
}

// install makes p the current port, counting a reconnect if it is one (before
// any reader can see the port); false (p closed) when Close came first.
func (r *Reconnecting) install(p Port, reconnect bool) (uint64, bool) {
	r.ident = identify(r.path)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		_ = p.Close() // never handed out
		return 0, false
	}
	if r.timeout > 0 {
		_ = p.SetReadTimeout(r.timeout) // validated when set
	}
	if reconnect {
		r.reconnects.Add(1)
	}
	r.gen++
	r.cur = p
	close(r.upCh)
	select { // drop a stale loss signal
	case <-r.lost:
	default:
	}
	return r.gen, true
}

// watch waits while generation gen is up; it returns false on Close and true
// when the device is lost.
func (r *Reconnecting) watch(gen uint64) bool {
	var tick <-chan time.Time
	for {
		if r.opts.PathCheck > 0 && r.ident.ok {
			tick = r.clock.After(r.opts.PathCheck)
		}
		select {
		case <-r.done:
			return false
		case <-r.lost:
			return true
		case <-tick:
			if id := identify(r.path); id != r.ident {
				r.log.Debug("serial device path vanished or changed")
				r.mu.Lock()
				r.markLost(gen)
			}
		}
	}
}

// devIdent identifies the device node a path resolves to.
type devIdent struct {
	ok       bool
	dev, ino uint64
	rdev     uint64
}

func identify(path string) devIdent {
	fi, err := os.Stat(path)
	if err != nil {
		return devIdent{}
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return devIdent{}
	}
	return devIdent{ok: true, dev: uint64(st.Dev), ino: uint64(st.Ino), rdev: uint64(st.Rdev)}
}

// backoff returns the wait before retry number attempt (0-based): uniform in
// [0, min(max, min·2^attempt)].
func backoff(attempt int, lo, hi time.Duration, rnd func(int64) int64) time.Duration {
	ceil := lo
	for i := 0; i < attempt && ceil < hi; i++ {
		ceil *= 2
	}
	if ceil > hi {
		ceil = hi
	}
	return time.Duration(rnd(int64(ceil) + 1))
}

var _ Port = (*Reconnecting)(nil)
var _ io.ReadWriteCloser = Port(nil)
