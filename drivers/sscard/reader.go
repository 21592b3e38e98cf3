package sscard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kioskedge/kioskedge/drivers/devstatus"
	"github.com/kioskedge/kioskedge/drivers/serialport"
)

// Options configure a Reader. Zero values mean the defaults.
type Options struct {
	// Name is the reader's configured name ("kiosk-1-sscard"); it goes into
	// Card.Reader, the credential and the health snapshot.
	Name string
	// Logger receives a few lines (reader down/up, card read, read failed),
	// always with personal data masked; nil discards.
	Logger *slog.Logger
	// ResponseTimeout bounds each reader exchange (default 1 s; §1.4).
	ResponseTimeout time.Duration
	// DownAfter is how many failed exchanges in a row mark the reader down
	// (default 3).
	DownAfter int
	// PollInterval is how often Run asks the reader whether a card is in the
	// slot (default 200 ms).
	PollInterval time.Duration
	// Now is the clock for deadlines, read times and health (default time.Now).
	Now func() time.Time
	// After is the timer Run waits on between polls (default time.After).
	After func(time.Duration) <-chan time.Time
	// OnEvent receives Run's events, in order, from Run's goroutine. It must
	// not call ReadCard or Close. May be nil.
	OnEvent func(Event)
}

// EventKind says what Run saw.
type EventKind int

// The events Run reports.
const (
	CardInserted   EventKind = iota + 1 // a card appeared in the slot
	CardRead                            // it was read: Event.Card is set
	CardReadFailed                      // reading it failed: Event.Err is set
	CardRemoved                         // it left the slot
	ReaderDown                          // the reader was marked down (health)
	ReaderUp                            // a down reader answered again
)

var eventNames = map[EventKind]string{
	CardInserted: "card inserted", CardRead: "card read", CardReadFailed: "card read failed",
	CardRemoved: "card removed", ReaderDown: "reader down", ReaderUp: "reader up",
}

func (k EventKind) String() string {
	if s, ok := eventNames[k]; ok {
		return s
	}
	return fmt.Sprintf("event(%d)", int(k))
}

// Event is one thing Run reports. Card formats masked, so an Event may be
// logged as it is.
type Event struct {
	Kind EventKind
	Time time.Time
	Card Card  // for CardRead
	Err  error // for CardReadFailed and ReaderDown
}

// Reader reads social security cards through a Transport. ReadCard and Run
// may be used from different goroutines; exchanges are serialised.
type Reader struct {
	t      Transport
	port   serialport.Port // owned (closed by Close) when not nil
	opts   Options
	log    *slog.Logger
	health *devstatus.Tracker

	mu        sync.Mutex // serialises exchanges on t
	closeOnce sync.Once
	closed    chan struct{}
	closeErr  error
}

// New returns a Reader speaking the framing of sscard.md §1 over port. The
// Reader takes ownership of port: Close closes it. Pass a
// *serialport.Reconnecting to survive unplugging (see Open). New does no
// I/O; it fails only for a nil port.
func New(port serialport.Port, opts Options) (*Reader, error) {
	if port == nil {
		return nil, errors.New("sscard: nil port")
	}
	r := newReader(opts)
	r.port = port
	r.t = NewFrameTransport(port, FrameTransportOptions{
		ResponseTimeout: r.opts.ResponseTimeout,
		Now:             r.opts.Now,
		OnError:         r.health.Error,
	})
	return r, nil
}

// Open opens path with serialport.OpenReconnecting (reopening with back-off
// after the device disappears and comes back) and returns a Reader owning
// it. Connected/reconnect health follows the port's up/down transitions;
// ro.OnState, if set, is still called. Errors are those of OpenReconnecting
// (an invalid path or mode, permission denied); an absent device is not an
// error.
func Open(path string, mode serialport.Mode, opts Options, ro serialport.ReconnectOptions) (*Reader, error) {
	r := newReader(opts)
	user := ro.OnState
	ro.OnState = func(up bool) {
		r.health.Connected(up)
		if user != nil {
			user(up)
		}
	}
	if ro.Logger == nil {
		ro.Logger = r.opts.Logger // the port adds its own component
	}
	p, err := serialport.OpenReconnecting(path, mode, ro)
	if err != nil {
		return nil, err
	}
	r.port = p
	r.t = NewFrameTransport(p, FrameTransportOptions{
		ResponseTimeout: r.opts.ResponseTimeout,
		Now:             r.opts.Now,
		OnError:         r.health.Error,
	})
	return r, nil
}

// NewWithTransport returns a Reader over another reader framing (sscard.md
// §1.5). The Reader does not own t. It fails only for a nil t.
func NewWithTransport(t Transport, opts Options) (*Reader, error) {
	if t == nil {
		return nil, errors.New("sscard: nil transport")
	}
	r := newReader(opts)
	r.t = t
	return r, nil
}

func newReader(opts Options) *Reader {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ResponseTimeout <= 0 {
		opts.ResponseTimeout = time.Second
	}
	if opts.DownAfter < 1 {
		opts.DownAfter = 3
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 200 * time.Millisecond
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.After == nil {
		opts.After = time.After
	}
	if opts.OnEvent == nil {
		opts.OnEvent = func(Event) {}
	}
	return &Reader{
		opts:   opts,
		log:    opts.Logger.With("component", "sscard", "reader", opts.Name),
		health: devstatus.New(opts.Name, "sscard", opts.DownAfter, opts.Now),
		closed: make(chan struct{}),
	}
}

// Health returns the reader's health: connected, last seen, error counters
// (framing, checksum, timeout, io), reconnects, down.
func (r *Reader) Health() devstatus.Snapshot { return r.health.Snapshot() }

// Close closes the port the Reader owns (unblocking an exchange in
// progress) and makes later calls return ErrClosed; Run returns. It is
// idempotent; the first call's error (from the port) is returned every time.
func (r *Reader) Close() error {
	r.closeOnce.Do(func() {
		close(r.closed)
		if r.port != nil {
			r.closeErr = r.port.Close()
		}
	})
	return r.closeErr
}

func (r *Reader) isClosed() bool {
	select {
	case <-r.closed:
		return true
	default:
		return false
	}
}

// track records the outcome of one transport exchange in the health and
// reports whether it took the reader down or up.
func (r *Reader) track(err error) (event EventKind) {
	var re *ReaderError
	switch {
	case err == nil, errors.Is(err, ErrNoCard), errors.Is(err, ErrCardRemoved), errors.As(err, &re):
		wasDown := r.health.Down()
		r.health.Connected(true)
		r.health.Seen()
		if wasDown {
			r.log.Info("reader answers again")
			return ReaderUp
		}
		return 0
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.Is(err, ErrClosed):
		return 0
	}
	kind := devstatus.ErrIO
	switch {
	case errors.Is(err, ErrTimeout):
		kind = devstatus.ErrTimeout
	case errors.Is(err, ErrChecksum):
		kind = devstatus.ErrChecksum
	case errors.Is(err, ErrFraming):
		kind = devstatus.ErrFraming
	case errors.Is(err, ErrOffline):
		r.health.Connected(false)
	}
	if r.health.Failed(kind) {
		r.log.Warn("reader marked down", "err", err)
		return ReaderDown
	}
	return 0
}

// Present asks the reader whether a card is in the slot. Errors: ErrClosed,
// ErrTimeout, ErrOffline, ErrChecksum, *ReaderError, ctx.Err().
func (r *Reader) Present(ctx context.Context) (bool, error) {
	ok, _, err := r.present(ctx)
	return ok, err
}

func (r *Reader) present(ctx context.Context) (bool, EventKind, error) {
	if r.isClosed() {
		return false, 0, ErrClosed
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ok, err := r.t.Present(ctx)
	err = r.closedErr(err)
	return ok, r.track(err), err
}

func (r *Reader) closedErr(err error) error {
	if err != nil && r.isClosed() {
		return fmt.Errorf("%w (%w)", ErrClosed, err)
	}
	return err
}
