package wiegand

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kioskedge/kioskedge/drivers/devstatus"
	"periph.io/x/conn/v3/gpio"
)

// Clock is the time source of a Reader's gap timer.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// EdgeStamper is implemented by pins that timestamp their edges where they
// happen (a kernel event buffer, a simulator): LastEdge returns the level
// and time of the edge the last successful WaitForEdge reported. With it
// the Reader watches both edges and measures pulse widths, so glitches and
// overlapping pulses are rejected; without it the Reader watches falling
// edges only and stamps them with its clock when its watcher wakes, so
// bits are in order only if each watcher wakes within one bit interval
// (see ReaderConfig.AllowUnstamped). A real line driver should implement
// it from the kernel's event timestamps.
type EdgeStamper interface {
	LastEdge() (gpio.Level, time.Time)
}

// ReaderConfig configures a Reader. Zero fields take defaults.
type ReaderConfig struct {
	Config
	Clock Clock // the gap timer's clock; nil means the system clock
	// OnFrame is called for every frame, in frame order and never
	// concurrently, from the Run goroutine that completed it: an early
	// frame (Config.CompleteAt) from the watcher that saw its last edge,
	// a frame ended by Gap from the gap timer's loop. It is called with the
	// decoder locked, so it must return quickly; it may call Stats and
	// Health.
	OnFrame func(Frame)
	Logger  *slog.Logger // nil: discard
	// AllowUnstamped accepts pins that are not EdgeStampers. Their edges
	// are stamped when a watcher goroutine wakes, so a watcher delayed by
	// more than a bit interval reorders bits, and a reordered frame can
	// pass parity as the wrong card: use only for bench checks.
	AllowUnstamped bool
	// Poll bounds each WaitForEdge so the watchers notice cancellation
	// (default 50 ms).
	Poll time.Duration
}

// Reader reads a Wiegand reader wired to two input pins.
type Reader struct {
	d0, d1 gpio.PinIn
	cfg    ReaderConfig
	log    *slog.Logger
	health *devstatus.Tracker

	mu  sync.Mutex // guards dec and serialises emit
	dec *Decoder

	statsMu sync.Mutex // guards stats, a copy of dec's taken under mu
	stats   Stats
}

// NewReader returns a reader of d0 and d1; it touches neither pin until
// Run. It fails with ErrConfig on a nil pin, a pin that is not an
// EdgeStamper (unless cfg.AllowUnstamped), or an invalid Config.
func NewReader(d0, d1 gpio.PinIn, cfg ReaderConfig) (*Reader, error) {
	if d0 == nil || d1 == nil {
		return nil, fmt.Errorf("%w: nil pin", ErrConfig)
	}
	for _, p := range []gpio.PinIn{d0, d1} {
		if _, ok := p.(EdgeStamper); !ok && !cfg.AllowUnstamped {
			return nil, fmt.Errorf("%w: %s does not timestamp its edges (EdgeStamper)", ErrConfig, p)
		}
	}
	dec, err := NewDecoder(cfg.Config)
	if err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 50 * time.Millisecond
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reader{
		d0: d0, d1: d1, cfg: cfg, dec: dec,
		log:    log.With("component", "wiegand", "reader", cfg.Reader),
		health: devstatus.New(cfg.Reader, "wiegand", 1, cfg.Clock.Now),
	}, nil
}

// Run sets both pins as pulled-up inputs with edge detection, then decodes
// frames until ctx ends, calling OnFrame for each; it returns nil then, or
// the pin's error if In fails. A frame still open when ctx ends is dropped.
//
// Run owns two watcher goroutines, one per pin, and waits for them before
// returning. A watcher feeds each pulse to the decoder as it ends (at its
// rising edge with an EdgeStamper, the frame's last edge on the wire), so a
// frame completed early (Config.CompleteAt) is delivered by that watcher
// with no timer in between. Run's own loop keeps the gap timer, which
// closes frames that end by Gap.
func (r *Reader) Run(ctx context.Context) error {
	pins := [2]gpio.PinIn{r.d0, r.d1}
	for _, p := range pins {
		edge := gpio.FallingEdge
		if _, ok := p.(EdgeStamper); ok {
			edge = gpio.BothEdges
		}
		if err := p.In(gpio.PullUp, edge); err != nil {
			r.health.Failed(devstatus.ErrIO)
			return fmt.Errorf("wiegand: %s: %w", p, err)
		}
	}
	r.health.Connected(true)
	defer r.health.Connected(false)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fed := make(chan struct{}, 1) // a watcher fed a pulse: (re)arm the gap timer
	var wg sync.WaitGroup
	for i, p := range pins {
		wg.Go(func() { r.watch(ctx, Line(i), p, fed) })
	}
	defer wg.Wait()

	var gap <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-fed:
			if gap == nil {
				gap = r.armGap()
			}
		case <-gap:
			// The timer may fire before the gap after the latest pulse
			// (pulses came after it was armed, or their times run ahead of
			// the clock): Flush then closes nothing and the timer is
			// re-armed for the rest.
			r.mu.Lock()
			if f, ok := r.dec.Flush(r.cfg.Clock.Now()); ok {
				r.emit(f)
			}
			r.mu.Unlock()
			gap = r.armGap()
		}
	}
}

// armGap returns a timer that fires Gap after the open frame's latest
// pulse, or nil when no frame is open.
func (r *Reader) armGap() <-chan time.Time {
	r.mu.Lock()
	last, ok := r.dec.Pending()
	r.mu.Unlock()
	if !ok {
		return nil
	}
	return r.cfg.Clock.After(max(0, last.Add(r.dec.cfg.Gap).Sub(r.cfg.Clock.Now())))
}

// watch turns one pin's edges into pulses and feeds them to the decoder,
// emitting a frame the pulse completes; then it signals fed.
func (r *Reader) watch(ctx context.Context, line Line, p gpio.PinIn, fed chan<- struct{}) {
	st, stamped := p.(EdgeStamper)
	var fall time.Time
	for ctx.Err() == nil {
		if !p.WaitForEdge(r.cfg.Poll) {
			continue
		}
		var pulse Pulse
		if !stamped {
			pulse = Pulse{Line: line, Time: r.cfg.Clock.Now()}
		} else {
			level, at := st.LastEdge()
			if level == gpio.Low {
				fall = at
				continue
			}
			if fall.IsZero() {
				continue // a rising edge whose fall we missed
			}
			pulse = Pulse{Line: line, Time: fall, Width: at.Sub(fall)}
			fall = time.Time{}
		}
		r.mu.Lock()
		if f, ok := r.dec.Feed(pulse); ok {
			r.emit(f)
		} else {
			r.snapshot()
		}
		r.mu.Unlock()
		select {
		case fed <- struct{}{}:
		default: // a signal is already pending
		}
	}
}

// snapshot copies the decoder's counters for Stats; r.mu is held.
func (r *Reader) snapshot() {
	s := r.dec.Stats()
	r.statsMu.Lock()
	r.stats = s
	r.statsMu.Unlock()
}

// emit reports a frame; r.mu is held, so frames go out one at a time, in
// the order the decoder closed them.
func (r *Reader) emit(f Frame) {
	r.snapshot()
	switch {
	case f.Status == Good:
		r.health.Seen()
	case f.Reason == ReasonParity:
		r.health.Error(devstatus.ErrChecksum)
	default:
		r.health.Error(devstatus.ErrFraming)
	}
	if f.Glitches > 0 {
		r.health.Error("noise")
	}
	if f.Reason == ReasonTrailing {
		r.health.Error("trailing")
	}
	if f.Status != Good {
		r.log.Info("frame rejected", "status", f.Status.String(), "reason", string(f.Reason), "bits", f.Count)
	}
	if r.cfg.OnFrame != nil {
		r.cfg.OnFrame(f)
	}
}

// Health returns the reader's health: connected while Run has the pins,
// last seen at the last good frame, error counts "checksum" (parity),
// "framing" (other bad or raw frames), "noise" (frames with glitches) and
// "trailing" (bits right after an early frame: a card longer than
// CompleteAt, or noise; wiegand.md §3.3).
func (r *Reader) Health() devstatus.Snapshot { return r.health.Snapshot() }

// Stats returns the decoder's counters.
func (r *Reader) Stats() Stats {
	r.statsMu.Lock()
	defer r.statsMu.Unlock()
	return r.stats
}
