package idcard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kioskedge/kioskedge/drivers/devstatus"
	"github.com/kioskedge/kioskedge/drivers/serialport"
)

// Mode is the line setting of the module (spec §1).
var Mode = serialport.Mode{BaudRate: 115200}

// Options configures a Reader. Zero values pick the defaults in brackets.
type Options struct {
	Name   string       // the reader's name, for credentials and health ["idcard"]
	Logger *slog.Logger // nil discards
	// ReadTimeout is the port read timeout: a pause this long ends a
	// partial frame as truncated (spec §7) [100 ms].
	ReadTimeout time.Duration
	// ReplyTimeout bounds one request's wait for its reply [1 s].
	ReplyTimeout time.Duration
	// Retries is how often a timed-out or damaged exchange is repeated
	// [2]; negative means none.
	Retries int
	// PollInterval is Run's find-card cadence [250 ms]; DownPollInterval
	// its cadence while the reader is marked down [1 s].
	PollInterval, DownPollInterval time.Duration
	// DownAfter consecutive failed exchanges mark the reader down [3].
	DownAfter int
	// OnEvent receives Run's card events, on Run's goroutine; it must not
	// block long. Nil drops them.
	OnEvent func(Event)
	// Now is the clock for reply deadlines and read times [time.Now].
	Now func() time.Time
	// After waits between polls [time.After].
	After func(time.Duration) <-chan time.Time
}

// EventKind says what happened at the reader.
type EventKind int

// Event kinds.
const (
	CardInserted EventKind = iota + 1 // a card was presented and read; Event.Card holds it
	CardRemoved                       // the card left the field (or, on halting modules, is done: spec §8)
)

// String returns "inserted" or "removed".
func (k EventKind) String() string {
	switch k {
	case CardInserted:
		return "inserted"
	case CardRemoved:
		return "removed"
	}
	return fmt.Sprintf("event(%d)", int(k))
}

// Event is a change at the reader reported by Run. It formats masked like
// its Card.
type Event struct {
	Kind EventKind
	Card Card // the card read, for CardInserted
	Time time.Time
}

// LogValue logs the event with its card masked.
func (e Event) LogValue() slog.Value {
	return slog.GroupValue(slog.String("kind", e.Kind.String()), slog.Any("card", e.Card))
}

// Reader drives one SAM module over a serial port. ReadCard, Reset, Status
// and Run may be called from several goroutines; exchanges are serialised.
type Reader struct {
	opts   Options
	log    *slog.Logger
	health *devstatus.Tracker

	mu     sync.Mutex // one exchange at a time; guards buf and chunk
	port   serialport.Port
	buf    []byte
	chunk  []byte
	closed atomic.Bool

	closeOnce sync.Once
}

func newReader(opts Options) *Reader {
	if opts.Name == "" {
		opts.Name = "idcard"
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = 100 * time.Millisecond
	}
	if opts.ReplyTimeout <= 0 {
		opts.ReplyTimeout = time.Second
	}
	if opts.Retries == 0 {
		opts.Retries = 2
	} else if opts.Retries < 0 {
		opts.Retries = 0
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 250 * time.Millisecond
	}
	if opts.DownPollInterval <= 0 {
		opts.DownPollInterval = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.After == nil {
		opts.After = time.After
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reader{
		opts:   opts,
		log:    log.With("component", "idcard", "reader", opts.Name),
		health: devstatus.New(opts.Name, "idcard", opts.DownAfter, opts.Now),
		chunk:  make([]byte, 2048),
	}
}

// New returns a Reader over port, which it takes over: Close closes it. It
// sets the port's read timeout to opts.ReadTimeout. Pass a port from
// serialport.OpenReconnecting (or use Open) for a reader that survives being
// unplugged. New fails only when port is nil or its read timeout cannot be
// set (the port is then left open).
func New(port serialport.Port, opts Options) (*Reader, error) {
	if port == nil {
		return nil, errors.New("idcard: nil port")
	}
	r := newReader(opts)
	if err := port.SetReadTimeout(r.opts.ReadTimeout); err != nil {
		return nil, fmt.Errorf("idcard: set read timeout: %w", err)
	}
	r.port = port
	return r, nil
}

// Open opens the reader at path through serialport.OpenReconnecting with
// Mode, so it keeps reopening the path when the device goes away and comes
// back; health follows the port's up/down transitions. A zero
// ropts.MaxBackoff becomes 1 s (a replugged reader is back within about a
// second), a nil ropts.Logger becomes opts.Logger. Errors are those of
// OpenReconnecting (an invalid path or mode, permission denied); an absent
// device is not an error. The device is opened in the background: until
// Health().Connected, exchanges fail with ErrOffline.
func Open(path string, opts Options, ropts serialport.ReconnectOptions) (*Reader, error) {
	r := newReader(opts)
	if ropts.MaxBackoff <= 0 {
		ropts.MaxBackoff = time.Second
	}
	if ropts.Logger == nil {
		ropts.Logger = opts.Logger
	}
	onState := ropts.OnState
	ropts.OnState = func(up bool) {
		r.health.Connected(up)
		if onState != nil {
			onState(up)
		}
	}
	p, err := serialport.OpenReconnecting(path, Mode, ropts)
	if err != nil {
		return nil, fmt.Errorf("idcard: %w", err)
	}
	if err := p.SetReadTimeout(r.opts.ReadTimeout); err != nil {
		// Only fails once closed, which it is not yet; close to be safe.
		_ = p.Close() // the set error is the one worth returning
		return nil, fmt.Errorf("idcard: set read timeout: %w", err)
	}
	r.port = p
	return r, nil
}

// Health returns the reader's health: connected, down, last seen, errors by
// kind (framing, checksum, timeout, nak, io, field) and reconnects.
func (r *Reader) Health() devstatus.Snapshot { return r.health.Snapshot() }

// Close closes the port, which ends a pending exchange (it returns
// ErrClosed) and makes Run return ErrClosed. It is idempotent: later calls
// return nil.
func (r *Reader) Close() error {
	var err error
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		if r.port != nil {
			err = r.port.Close()
		}
	})
	return err
}

// ReadCard reads the card in the field: find, select, read base info (spec
// §3), each retried per Options.Retries on timeouts and damaged frames. On
// success the Card has Reader and ReadAt set.
//
// Errors: ErrNoCard (no card in the field); ErrCardRemoved (found, then
// select or read failed); ErrTimeout (the module did not answer);
// ErrChecksum (only damaged replies); ErrOffline (the port is disconnected);
// ErrClosed; a *StatusError (ErrProtocol) for any other status; ErrMalformed
// or a *FieldError (ErrBadField) when the card's data does not decode; the
// context's error when ctx ends. Every failure is counted in Health.
func (r *Reader) ReadCard(ctx context.Context) (Card, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.findLocked(ctx); err != nil {
		return Card{}, err
	}
	return r.selectReadLocked(ctx)
}

// Reset sends reset SAM. Errors as for ReadCard's exchanges.
func (r *Reader) Reset(ctx context.Context) error { return r.simple(ctx, CmdReset) }

// Status sends SAM status; nil means the module is working. Errors as for
// ReadCard's exchanges; a *StatusError (e.g. SW3 60, self-test failed).
func (r *Reader) Status(ctx context.Context) error { return r.simple(ctx, CmdSAMStatus) }

func (r *Reader) simple(ctx context.Context, c Command) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	resp, err := r.exchangeLocked(ctx, c)
	if err != nil {
		return err
	}
	if resp.SW3 != StatusOK {
		r.health.Error(devstatus.ErrNAK)
		return statusErr(c, resp)
	}
	return nil
}

func statusErr(c Command, resp Response) *StatusError {
	return &StatusError{Cmd: c, SW1: resp.SW1, SW2: resp.SW2, SW3: resp.SW3}
}

// findLocked returns nil when a card was found.
func (r *Reader) findLocked(ctx context.Context) error {
	resp, err := r.exchangeLocked(ctx, CmdFind)
	if err != nil {
		return err
	}
	switch resp.SW3 {
	case StatusFound:
		return nil
	case StatusNoCard:
		return statusErr(CmdFind, resp) // errors.Is ErrNoCard
	}
	r.health.Error(devstatus.ErrNAK)
	return statusErr(CmdFind, resp)
}

func (r *Reader) selectReadLocked(ctx context.Context) (Card, error) {
	for _, c := range []Command{CmdSelect, CmdReadBase} {
		resp, err := r.exchangeLocked(ctx, c)
		if err != nil {
			return Card{}, err
		}
		switch resp.SW3 {
		case StatusOK:
		case StatusNoCard, StatusSelectFailed, StatusReadFailed:
			r.log.Info("card removed during read", "step", c.String())
			return Card{}, fmt.Errorf("%w: %w", ErrCardRemoved, statusErr(c, resp))
		default:
			r.health.Error(devstatus.ErrNAK)
			return Card{}, statusErr(c, resp)
		}
		if c != CmdReadBase {
			continue
		}
		card, err := ParseBaseInfo(resp.Data)
		if err != nil {
			r.health.Error("field")
			r.log.Warn("card data rejected", "err", err) // errors never carry field values
			return Card{}, err
		}
		card.Reader, card.ReadAt = r.opts.Name, r.opts.Now()
		r.log.Info("card read", "card", card)
		return card, nil
	}
	panic("unreachable")
}

// exchangeLocked sends c and returns its reply, retrying timeouts, damaged
// replies and replies saying our request arrived damaged (spec §7).
func (r *Reader) exchangeLocked(ctx context.Context, c Command) (Response, error) {
	if r.closed.Load() {
		return Response{}, ErrClosed
	}
	var last error
	for attempt := 0; attempt <= r.opts.Retries; attempt++ {
		resp, err := r.onceLocked(ctx, c)
		if err == nil {
			r.markSeen()
			if resp.SW3 != StatusChecksum && resp.SW3 != StatusLength {
				return resp, nil
			}
			r.health.Error(devstatus.ErrChecksum)
			last = statusErr(c, resp)
			continue
		}
		switch {
		case ctx.Err() != nil:
			return Response{}, ctx.Err()
		case r.closed.Load():
			return Response{}, ErrClosed
		case errors.Is(err, ErrOffline):
			r.fail(devstatus.ErrIO, c, err)
			r.health.Connected(false)
			return Response{}, err
		}
		last = err
		r.log.Debug("exchange failed", "cmd", c.String(), "attempt", attempt+1, "err", err)
	}
	kind := devstatus.ErrTimeout
	if errors.Is(last, ErrChecksum) {
		kind = devstatus.ErrChecksum
	}
	r.fail(kind, c, last)
	return Response{}, last
}

func (r *Reader) markSeen() {
	wasDown := r.health.Down()
	r.health.Seen()
	if !r.health.Snapshot().Connected {
		r.health.Connected(true)
	}
	if wasDown {
		r.log.Info("reader answering again")
	}
}

func (r *Reader) fail(kind string, c Command, err error) {
	if r.health.Failed(kind) {
		r.log.Warn("reader marked down", "cmd", c.String(), "err", err)
	}
}

// onceLocked is one request and the wait for its reply.
func (r *Reader) onceLocked(ctx context.Context, c Command) (Response, error) {
	if err := r.port.ResetInputBuffer(); err != nil {
		return Response{}, portErr(err)
	}
	r.buf = r.buf[:0]
	if _, err := r.port.Write(AppendRequest(nil, c, nil)); err != nil {
		return Response{}, portErr(err)
	}
	deadline := r.opts.Now().Add(r.opts.ReplyTimeout)
	sawChecksum := false
	for {
		for {
			drop, f, err := Split(r.buf)
			if f != nil {
				resp, derr := DecodeResponse(f)
				if derr != nil { // cannot happen: Split checked the frame
					return Response{}, derr
				}
				resp.Data = bytes.Clone(resp.Data)
				r.buf = r.buf[drop:]
				return resp, nil
			}
			if drop == 0 {
				break
			}
			if errors.Is(err, ErrChecksum) {
				sawChecksum = true
				r.health.Error(devstatus.ErrChecksum)
			} else {
				r.health.Error(devstatus.ErrFraming)
			}
			r.buf = r.buf[drop:]
		}
		if err := ctx.Err(); err != nil {
			return Response{}, err
		}
		n, err := r.port.Read(r.chunk)
		r.buf = append(r.buf, r.chunk[:n]...)
		if err != nil && !serialport.IsTimeout(err) {
			return Response{}, portErr(err)
		}
		if err != nil && len(r.buf) > 0 {
			// A pause inside a frame: it was truncated (spec §7). Skip to
			// the next preamble after its first byte and rescan.
			r.health.Error(devstatus.ErrFraming)
			if i := bytes.Index(r.buf[1:], Preamble[:]); i >= 0 {
				r.buf = r.buf[1+i:]
			} else {
				r.buf = r.buf[:0]
			}
		}
		if !r.opts.Now().Before(deadline) {
			if sawChecksum {
				return Response{}, fmt.Errorf("%w: %s", ErrChecksum, c)
			}
			return Response{}, fmt.Errorf("%w: %s", ErrTimeout, c)
		}
	}
}

func portErr(err error) error {
	return fmt.Errorf("%w: %w", ErrOffline, err)
}

// Run watches the reader until ctx ends: it polls find card every
// PollInterval (DownPollInterval while the reader is marked down), reads a
// newly presented card and reports CardInserted with it, and CardRemoved
// when the card is gone (spec §8 for modules that halt a read card). Link
// failures are counted in Health and retried at the next poll; with a
// reconnecting port an unplugged reader is picked up again when it comes
// back. Run returns nil when ctx ends and ErrClosed when the Reader is
// closed. It starts no goroutines.
func (r *Reader) Run(ctx context.Context) error {
	present := false
	for {
		err := r.poll(ctx, &present)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrClosed) || r.closed.Load() {
			return ErrClosed
		}
		wait := r.opts.PollInterval
		if r.health.Down() {
			wait = r.opts.DownPollInterval
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.opts.After(wait):
		}
	}
}

func (r *Reader) poll(ctx context.Context, present *bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.findLocked(ctx)
	switch {
	case err == nil && *present:
		return nil
	case err == nil:
		card, err := r.selectReadLocked(ctx)
		if err != nil {
			return err
		}
		*present = true
		r.emit(Event{Kind: CardInserted, Card: card, Time: card.ReadAt})
		return nil
	case errors.Is(err, ErrNoCard) && *present:
		*present = false
		r.log.Info("card removed")
		r.emit(Event{Kind: CardRemoved, Time: r.opts.Now()})
	}
	return err
}

func (r *Reader) emit(e Event) {
	if r.opts.OnEvent != nil {
		r.opts.OnEvent(e)
	}
}
