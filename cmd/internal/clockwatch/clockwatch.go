package clockwatch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// Defaults for the zero values of Options.
const (
	DefaultInterval = time.Hour
	DefaultRetry    = time.Minute
	DefaultTimeout  = 5 * time.Second
	DefaultMaxSkew  = 5 * time.Second
	// exchanges is how many request/reply pairs one check makes; the one
	// with the smallest round trip wins.
	exchanges = 3
)

// Errors returned by the watch.
var (
	// ErrOptions is returned by New for a missing session or agent.
	ErrOptions = errors.New("clockwatch: bad options")
	// ErrNoReply is returned by Check when no exchange got a reply in time
	// (the hub is down, or a hubd too old to answer time/req).
	ErrNoReply = errors.New("clockwatch: the hub did not answer the clock request")
)

// Session is the part of *uplink.Session the watch uses.
type Session interface {
	Subscribe(filter string, qos byte, h func(topic string, payload []byte)) error
	Publish(ctx context.Context, m uplink.Message) error
	Connected() bool
}

// Measurement is one clock check's result.
type Measurement struct {
	// Offset is how far the hub's clock is ahead of the agent's; its
	// error is at most Delay/2.
	Offset time.Duration
	Delay  time.Duration
	At     time.Time // agent clock when the winning reply arrived
	Skewed bool      // |Offset| > Options.MaxSkew
}

// Options configures a Watch.
type Options struct {
	Session Session     // required
	Topics  wire.Topics // the agent's own topics; Root and Agent required
	// Interval is the time between successful checks (default 1 h);
	// Retry the wait after a failed one (default 1 min); Timeout bounds
	// each exchange (default 5 s).
	Interval, Retry, Timeout time.Duration
	// MaxSkew is the bound beyond which the clock counts as skewed
	// (default 5 s).
	MaxSkew time.Duration
	// OnSkew is called, from Run, when a check crosses the bound either
	// way (skewed or back within it), and for the first check if it is
	// skewed. nil ignores.
	OnSkew func(Measurement)
	Now    func() time.Time                     // default time.Now
	After  func(time.Duration) <-chan time.Time // default time.After
	Logger *slog.Logger
}

// Watch measures the agent's clock offset against the hub.
type Watch struct {
	o       Options
	log     *slog.Logger
	replies chan []byte

	mu   sync.Mutex
	last Measurement // its Skewed is the state OnSkew reports crossings of
	has  bool        // last is set
}

// New validates o. Nothing runs until Run.
func New(o Options) (*Watch, error) {
	if o.Session == nil || o.Topics.Root == "" || o.Topics.Agent == "" {
		return nil, fmt.Errorf("%w: Session, Topics.Root and Topics.Agent are required", ErrOptions)
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Retry <= 0 {
		o.Retry = DefaultRetry
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxSkew <= 0 {
		o.MaxSkew = DefaultMaxSkew
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.After == nil {
		o.After = time.After
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Watch{o: o, log: log, replies: make(chan []byte, 8)}, nil
}

// Last returns the latest successful measurement; ok is false before the
// first.
func (w *Watch) Last() (m Measurement, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last, w.has
}

// Health is Last as the health snapshot's clock section; nil before the
// first measurement.
func (w *Watch) Health() *wire.ClockHealth {
	m, ok := w.Last()
	if !ok {
		return nil
	}
	return &wire.ClockHealth{
		OffsetMS: float64(m.Offset.Microseconds()) / 1000,
		DelayMS:  float64(m.Delay.Microseconds()) / 1000,
		Measured: m.At,
		Skewed:   m.Skewed,
	}
}

// Run subscribes to the reply topic and checks the clock until ctx ends:
// as soon as the session is connected (looked at every second), then every
// Interval, or every Retry while checks fail. It returns ctx's error, or the subscription's
// error only if the filter is refused outright.
func (w *Watch) Run(ctx context.Context) error {
	if err := w.subscribe(); err != nil {
		return err
	}
	for {
		// Not connected: look again soon, so the first check follows the
		// first connect closely.
		wait := min(w.o.Retry, time.Second)
		if w.o.Session.Connected() {
			wait = w.o.Retry
			if _, err := w.Check(ctx); err == nil {
				wait = w.o.Interval
			} else if ctx.Err() == nil {
				w.log.Warn("clock check failed", "err", err, "retry_in", w.o.Retry)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.o.After(wait):
		}
	}
}

// subscribe routes replies to the watch. Not connected yet, the session
// only remembers the filter (renewed on every connect); a refusal now is
// retried on the next connect, so only a bad filter is an error.
func (w *Watch) subscribe() error {
	err := w.o.Session.Subscribe(w.o.Topics.ClockReply(), 1, func(_ string, p []byte) {
		select {
		case w.replies <- p: // p belongs to the handler
		default: // a flood of replies: the ones kept are enough
		}
	})
	if err != nil && errors.Is(err, uplink.ErrOptions) {
		return fmt.Errorf("clockwatch: %w", err)
	}
	return nil
}

// Check makes one check now (up to three exchanges; the reply with the
// smallest round trip wins), records it as Last and reports a crossing of
// the bound to OnSkew. It returns ErrNoReply when no exchange was answered,
// or ctx's error.
func (w *Watch) Check(ctx context.Context) (Measurement, error) {
	best, ok := Measurement{}, false
	for range exchanges {
		m, err := w.exchange(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return Measurement{}, ctx.Err()
			}
			w.log.Debug("clock exchange", "err", err)
			continue
		}
		if !ok || m.Delay < best.Delay {
			best, ok = m, true
		}
	}
	if !ok {
		return Measurement{}, ErrNoReply
	}
	best.Skewed = best.Offset > w.o.MaxSkew || best.Offset < -w.o.MaxSkew
	w.mu.Lock()
	// Before the first check last is zero (not skewed), so a skewed
	// first check counts as a crossing.
	crossed := best.Skewed != w.last.Skewed
	w.last, w.has = best, true
	w.mu.Unlock()
	if crossed {
		if best.Skewed {
			w.log.Warn("clock skewed from the hub's", "offset", best.Offset, "delay", best.Delay, "bound", w.o.MaxSkew)
		} else {
			w.log.Info("clock back within bound of the hub's", "offset", best.Offset, "bound", w.o.MaxSkew)
		}
		if w.o.OnSkew != nil {
			w.o.OnSkew(best)
		}
	}
	return best, nil
}

// exchange sends one request and waits for its reply, dropping stale
// replies to earlier requests.
func (w *Watch) exchange(ctx context.Context) (Measurement, error) {
	var idb [8]byte
	_, _ = rand.Read(idb[:]) // crypto/rand never fails on Linux
	id := hex.EncodeToString(idb[:])
	req, err := json.Marshal(wire.ClockRequest{ID: id, Sent: w.o.Now()})
	if err != nil {
		return Measurement{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, w.o.Timeout)
	defer cancel()
	if err := w.o.Session.Publish(cctx, uplink.Message{Topic: w.o.Topics.ClockRequest(), QoS: 1, Payload: req}); err != nil {
		return Measurement{}, err
	}
	timeout := w.o.After(w.o.Timeout)
	for {
		select {
		case p := <-w.replies:
			arrived := w.o.Now()
			rep, err := wire.DecodeClockReply(p)
			if err != nil {
				w.log.Warn("bad clock reply", "err", err)
				continue
			}
			if rep.ID != id {
				continue // a late reply to an earlier exchange
			}
			off, delay := wire.ClockOffset(rep, arrived)
			return Measurement{Offset: off, Delay: delay, At: arrived}, nil
		case <-timeout:
			return Measurement{}, fmt.Errorf("no reply within %v", w.o.Timeout)
		case <-ctx.Done():
			return Measurement{}, ctx.Err()
		}
	}
}
