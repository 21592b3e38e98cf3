package escpos

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

// Code classifies a printer [*Error] so callers can branch on it.
type Code int

// Error codes.
const (
	PaperOut     Code = iota + 1 // no paper: nothing (more) can be printed
	CoverOpen                    // the cover is open
	Offline                      // offline for another reason
	PrinterError                 // the printer reports an error (cutter, unrecoverable)
	NoReply                      // a status query got no answer in time
	BadReply                     // a status reply was not a status byte
	Disconnected                 // the port is gone (unplugged)
)

var codeNames = [...]string{PaperOut: "paper out", CoverOpen: "cover open", Offline: "offline",
	PrinterError: "printer error", NoReply: "no reply", BadReply: "bad reply", Disconnected: "disconnected"}

// String returns the code's name.
func (c Code) String() string {
	if c > 0 && int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("code(%d)", int(c))
}

// Error is what Print and Status return when the printer cannot print or
// answer. Status holds the last decoded status (zero when none).
type Error struct {
	Code   Code
	Op     string // "status", "print"
	Status Status
	Err    error // the port error, when there is one
}

// Error formats as "escpos: <op>: <code>[: <cause>]".
func (e *Error) Error() string {
	s := "escpos: " + e.Op + ": " + e.Code.String()
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the port error.
func (e *Error) Unwrap() error { return e.Err }

// CodeOf returns the Code of the first *Error in err's chain.
func CodeOf(err error) (Code, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Code, true
	}
	return 0, false
}

// ErrClosed: the Printer was closed.
var ErrClosed = errors.New("escpos: closed")

// DefaultReplyTimeout is how long a status reply is waited for when
// Options.ReplyTimeout is zero.
const DefaultReplyTimeout = 500 * time.Millisecond

// Options configures a [Printer].
type Options struct {
	Name         string        // the printer's name in health
	ReplyTimeout time.Duration // wait for one status byte; 0 means DefaultReplyTimeout
	DownAfter    int           // failed status queries in a row before down; 0 means 3
	// PollEvery is Run's status-poll period; 0 means 30 s.
	PollEvery time.Duration
	// After is Run's timer; nil means time.After. Tests inject one.
	After func(time.Duration) <-chan time.Time
	// Now is health's clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger // nil discards
}

// Printer drives an ESC/POS receipt printer on a serial port. Its methods
// are safe for concurrent use; exchanges with the printer are serialised.
type Printer struct {
	port   serialport.Port
	opts   Options
	health *devstatus.Tracker
	log    *slog.Logger

	mu        sync.Mutex // one exchange at a time
	closed    bool
	closeOnce sync.Once
	closeErr  error
}

// New returns a Printer on port, which it takes ownership of (Close closes
// it). It returns an error when port is nil, or the port's error when its
// read timeout cannot be set; the port is not closed then.
func New(port serialport.Port, opts Options) (*Printer, error) {
	if port == nil {
		return nil, errors.New("escpos: nil port")
	}
	if opts.ReplyTimeout <= 0 {
		opts.ReplyTimeout = DefaultReplyTimeout
	}
	if opts.PollEvery <= 0 {
		opts.PollEvery = 30 * time.Second
	}
	if opts.After == nil {
		opts.After = time.After
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := port.SetReadTimeout(opts.ReplyTimeout); err != nil {
		return nil, fmt.Errorf("escpos: set read timeout: %w", err)
	}
	return &Printer{port: port, opts: opts, log: log.With("component", "escpos", "printer", opts.Name),
		health: devstatus.New(opts.Name, "escpos", opts.DownAfter, opts.Now)}, nil
}

// Open opens the printer at path with serialport.OpenReconnecting (it comes
// back by itself after an unplug) and returns New's Printer over it.
func Open(path string, mode serialport.Mode, ropts serialport.ReconnectOptions, opts Options) (*Printer, error) {
	if ropts.Logger == nil {
		ropts.Logger = opts.Logger
	}
	p, err := serialport.OpenReconnecting(path, mode, ropts)
	if err != nil {
		return nil, err
	}
	pr, err := New(p, opts)
	if err != nil {
		// Unusable and ours; its close error adds nothing.
		_ = p.Close()
		return nil, err
	}
	return pr, nil
}

// Health returns the printer's health; Detail is the last status ("ok",
// "paper near end", …).
func (p *Printer) Health() devstatus.Snapshot { return p.health.Snapshot() }

// Status queries DLE EOT 1–4 and returns the decoded status. Errors are
// *Error: Disconnected (the port is gone), NoReply (no byte within
// ReplyTimeout), BadReply (a byte without the status fixed bits); each is a
// failed exchange in health. ErrClosed after Close; ctx.Err() if ctx ended
// first. A printer in trouble (paper out, cover open) still answers: that
// is a nil error with the condition set in Status.
func (p *Printer) Status(ctx context.Context) (Status, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.statusLocked(ctx)
}

func (p *Printer) statusLocked(ctx context.Context) (Status, error) {
	var st Status
	if p.closed {
		return st, ErrClosed
	}
	// Stale bytes (a late reply, noise) would be taken for this reply.
	// A failing reset (device away) shows again in the Write below.
	if err := p.port.ResetInputBuffer(); serialport.IsClosed(err) {
		return st, ErrClosed
	}
	var b [1]byte
	for n := byte(1); n <= 4; n++ {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		if _, err := p.port.Write(StatusQuery(n)); err != nil {
			return st, p.ioErr("status", err)
		}
		k, err := p.port.Read(b[:])
		if err != nil || k != 1 {
			if serialport.IsTimeout(err) {
				p.connected(true)
				if p.health.Failed(devstatus.ErrTimeout) {
					p.log.Warn("printer down: no status reply")
				}
				return st, &Error{Code: NoReply, Op: "status", Err: err}
			}
			return st, p.ioErr("status", err)
		}
		p.connected(true)
		if err := DecodeStatus(&st, n, b[0]); err != nil {
			if p.health.Failed(devstatus.ErrFraming) {
				p.log.Warn("printer down: bad status replies")
			}
			return st, &Error{Code: BadReply, Op: "status", Err: err}
		}
	}
	if p.health.Down() {
		p.log.Info("printer up again")
	}
	p.health.Seen()
	p.health.SetDetail(st.String())
	return st, nil
}

func (p *Printer) connected(up bool) {
	if p.health.Snapshot().Connected != up {
		p.health.Connected(up)
	}
}

// ioErr maps a port error: Closed → ErrClosed, else Disconnected.
func (p *Printer) ioErr(op string, err error) error {
	if serialport.IsClosed(err) {
		return ErrClosed
	}
	p.connected(false)
	p.health.Failed(devstatus.ErrIO)
	return &Error{Code: Disconnected, Op: op, Err: err}
}

// check turns a status that forbids printing into an *Error.
func check(op string, st Status) error {
	switch {
	case st.PaperOut:
		return &Error{Code: PaperOut, Op: op, Status: st}
	case st.CoverOpen:
		return &Error{Code: CoverOpen, Op: op, Status: st}
	case st.CutterError || st.Unrecoverable || st.Error:
		return &Error{Code: PrinterError, Op: op, Status: st}
	case st.Offline:
		return &Error{Code: Offline, Op: op, Status: st}
	}
	return nil
}

// Print checks the status, sends r, and checks the status again; it returns
// the status after printing. Before: paper out, cover open, an error or
// offline return *Error with that Code and nothing is sent. After: the same
// conditions return *Error (the receipt may be incomplete: paper ran out
// mid-receipt). Status query failures return Status's errors; an encoding
// failure returns an error wrapping ErrEncode and sends nothing. Paper near
// end is not an error: it is in the returned Status and in health.
func (p *Printer) Print(ctx context.Context, r Receipt) (Status, error) {
	data, err := EncodeReceipt(r)
	if err != nil {
		return Status{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	st, err := p.statusLocked(ctx)
	if err != nil {
		return st, err
	}
	if err := check("print", st); err != nil {
		return st, err
	}
	if _, err := p.port.Write(data); err != nil {
		return st, p.ioErr("print", err)
	}
	st, err = p.statusLocked(ctx)
	if err != nil {
		return st, err
	}
	return st, check("print", st)
}

// Run polls the status every PollEvery until ctx ends, so health stays
// current (and a down printer is probed again) between receipts. It returns
// nil when ctx ends and ErrClosed after Close.
func (p *Printer) Run(ctx context.Context) error {
	for {
		if _, err := p.Status(ctx); errors.Is(err, ErrClosed) {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-p.opts.After(p.opts.PollEvery):
		}
	}
}

// Close closes the port. It is idempotent; later calls return the first
// call's result. A pending exchange finishes first.
func (p *Printer) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		p.closeErr = p.port.Close()
	})
	return p.closeErr
}
