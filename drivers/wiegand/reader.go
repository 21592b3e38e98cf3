package wiegand

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
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
	Clock   Clock        // the gap timer's clock; nil means the system clock
	OnFrame func(Frame)  // called from Run's goroutine for every frame
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

	mu  sync.Mutex // guards dec
	dec *Decoder
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
// Frames are decoded once Gap has passed after their last pulse.
// Run owns two watcher goroutines and waits for them before returning.
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
	pulses := make(chan Pulse, 256)
	var wg sync.WaitGroup
	for i, p := range pins {
		wg.Go(func() { r.watch(ctx, Line(i), p, pulses) })
	}
	defer wg.Wait()

	// Pulses arrive from two goroutines, so not necessarily in time order:
	// they are held until the gap after the latest one has passed, then
	// sorted by their time and fed to the decoder.
	var held []Pulse
	var latest time.Time
	var gap <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case p := <-pulses:
			held = append(held, p)
			if p.Time.After(latest) {
				latest = p.Time
			}
			gap = r.cfg.Clock.After(max(0, latest.Add(r.dec.cfg.Gap).Sub(r.cfg.Clock.Now())))
		case <-gap:
			gap = nil
			now := r.cfg.Clock.Now()
			if now.Sub(latest) < r.dec.cfg.Gap { // pulse times ahead of the clock
				gap = r.cfg.Clock.After(max(time.Millisecond, latest.Add(r.dec.cfg.Gap).Sub(now)))
				continue
			}
			slices.SortStableFunc(held, func(a, b Pulse) int { return a.Time.Compare(b.Time) })
			var frames []Frame
			r.mu.Lock()
			for _, p := range held {
				if f, ok := r.dec.Feed(p); ok {
					frames = append(frames, f)
				}
			}
			if f, ok := r.dec.Flush(now); ok {
				frames = append(frames, f)
			}
			r.mu.Unlock()
			held = held[:0]
			for _, f := range frames {
				r.emit(f)
			}
		}
	}
}

// watch turns one pin's edges into pulses.
func (r *Reader) watch(ctx context.Context, line Line, p gpio.PinIn, out chan<- Pulse) {
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
		select {
		case out <- pulse:
		case <-ctx.Done():
			return
		}
	}
}

func (r *Reader) emit(f Frame) {
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
	if f.Status != Good {
		r.log.Info("frame rejected", "status", f.Status.String(), "reason", string(f.Reason), "bits", f.Count)
	}
	if r.cfg.OnFrame != nil {
		r.cfg.OnFrame(f)
	}
}

// Health returns the reader's health: connected while Run has the pins,
// last seen at the last good frame, error counts "checksum" (parity),
// "framing" (other bad or raw frames) and "noise" (frames with glitches).
func (r *Reader) Health() devstatus.Snapshot { return r.health.Snapshot() }

// Stats returns the decoder's counters.
func (r *Reader) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dec.Stats()
}
