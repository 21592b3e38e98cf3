package door

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kioskedge/kioskedge/drivers/devstatus"
	"periph.io/x/conn/v3/gpio"
)

// Errors returned by the door.
var (
	ErrConfig  = errors.New("door: invalid config")
	ErrRelay   = errors.New("door: relay write failed")
	ErrRunning = errors.New("door: already running")
)

// Debounce limits (firmware-specs/door.md §4).
const (
	DefaultDebounce = 20 * time.Millisecond
	// MaxFireDebounce bounds the fire input's debounce, so a fire release
	// reaches the relay well within 100 ms of the alarm.
	MaxFireDebounce = 50 * time.Millisecond
	// DefaultPoll bounds each WaitForEdge, so watchers notice the end of
	// Run even on pins whose Halt does not interrupt a wait.
	DefaultPoll = 50 * time.Millisecond
)

// Error kinds counted in Health besides devstatus.ErrIO (an input that
// could not be configured).
const (
	ErrKindRelay  = "relay"  // a relay write failed
	ErrKindBounce = "bounce" // an input edge filtered out by debouncing
)

// Clock is the time source of the debounce timers. AfterFunc runs f in
// its own goroutine once d has passed and returns a function that cancels
// it, reporting whether it was still pending (time.AfterFunc(d, f).Stop).
// testhw/fakeclock.Clock is a fake one for tests.
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
func (systemClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// EdgeStamper is implemented by pins that timestamp their edges where they
// happen (a kernel event buffer, a simulator): LastEdge returns the level
// and time of the edge the last successful WaitForEdge reported. With it
// an Event's At is the real edge time; without it the door reads the
// level after each edge and stamps it with its Clock when the watcher
// wakes. Stamps must be on the Clock's time scale (wall clock).
type EdgeStamper interface {
	LastEdge() (gpio.Level, time.Time)
}

// InputKind names one of a door's inputs.
type InputKind uint8

// The inputs. Active means: the door is open (Contact), the
// request-to-exit button is pressed (Exit), the fire alarm is on (Fire),
// the enclosure is open (Tamper).
const (
	Contact InputKind = iota + 1
	Exit
	Fire
	Tamper
	numInputs = iota
)

// reportOrder is the order of the initial Events: fire first, so a fire
// alarm active at start releases doors before anything else is handled.
var reportOrder = [numInputs]InputKind{Fire, Contact, Exit, Tamper}

// String returns "contact", "exit", "fire" or "tamper".
func (k InputKind) String() string {
	switch k {
	case Contact:
		return "contact"
	case Exit:
		return "exit"
	case Fire:
		return "fire"
	case Tamper:
		return "tamper"
	}
	return fmt.Sprintf("InputKind(%d)", uint8(k))
}

// Input is one fitted input line.
type Input struct {
	Pin gpio.PinIn
	// ActiveLow: the input is active while the line is Low.
	ActiveLow bool
	// Pull is applied by Run (gpio.PullNoChange, the zero value, leaves
	// the line's pull as it is).
	Pull gpio.Pull
	// Debounce is how long the line must hold a new level before it
	// counts (default DefaultDebounce; at most MaxFireDebounce for Fire).
	Debounce time.Duration
}

// Config describes one door's wiring (firmware-specs/door.md).
type Config struct {
	Name  string      // required; names the door in Events and Health
	Relay gpio.PinOut // required
	// RelayActiveLow: the relay is energised while its line is Low.
	RelayActiveLow bool
	// FailSafe: the lock is released while the relay is de-energised (a
	// maglock; escape routes). Otherwise the door is fail-secure (a
	// strike): energising the relay releases it.
	FailSafe bool
	// Inputs; nil means not fitted.
	Contact, Exit, Fire, Tamper *Input
	Clock                       Clock        // nil: the system clock
	Logger                      *slog.Logger // nil: discard
	// Poll bounds each wait for an edge (default DefaultPoll); it only
	// matters for pins whose Halt does not interrupt WaitForEdge.
	Poll time.Duration
}

// Event is a stable change of an input, or its initial level at Run.
type Event struct {
	Door   string
	Input  InputKind
	Active bool
	// At is the time of the edge that started the change (the first edge
	// of a bouncing burst); for the initial level, the time Run read it.
	At time.Time
}

// Door drives one door's relay and watches its inputs. Release, Secure,
// Halt, Released, Active and Health are safe for concurrent use, also
// while Run runs.
type Door struct {
	cfg    Config
	inputs [numInputs]*Input // by kind-1; nil when not fitted
	clock  Clock
	log    *slog.Logger
	health *devstatus.Tracker

	relayMu   sync.Mutex
	energised bool

	mu      sync.Mutex
	running bool
	active  [numInputs]bool // the debounced level
}

// New validates cfg and puts the relay in its safe state (Halt). It
// touches no input until Run. It fails with ErrConfig naming the field
// (missing Name or Relay, an input without a Pin, a negative Debounce or a
// Fire debounce above MaxFireDebounce), or with ErrRelay if the relay
// cannot be driven to its safe state.
func New(cfg Config) (*Door, error) {
	if cfg.Name == "" {
		return nil, fmt.Errorf("%w: Name is empty", ErrConfig)
	}
	if cfg.Relay == nil {
		return nil, fmt.Errorf("%w: Relay is nil", ErrConfig)
	}
	d := &Door{cfg: cfg, clock: cfg.Clock, log: cfg.Logger}
	for i, in := range [numInputs]*Input{cfg.Contact, cfg.Exit, cfg.Fire, cfg.Tamper} {
		k := InputKind(i + 1)
		if in == nil {
			continue
		}
		name := upper(k.String())
		if in.Pin == nil {
			return nil, fmt.Errorf("%w: %s.Pin is nil", ErrConfig, name)
		}
		c := *in
		switch {
		case c.Debounce < 0:
			return nil, fmt.Errorf("%w: %s.Debounce is negative", ErrConfig, name)
		case c.Debounce == 0:
			c.Debounce = DefaultDebounce
		}
		if k == Fire && c.Debounce > MaxFireDebounce {
			return nil, fmt.Errorf("%w: Fire.Debounce %v is above %v", ErrConfig, c.Debounce, MaxFireDebounce)
		}
		d.inputs[k-1] = &c
	}
	if d.clock == nil {
		d.clock = systemClock{}
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.cfg.Poll <= 0 {
		d.cfg.Poll = DefaultPoll
	}
	d.log = d.log.With("component", "door", "door", cfg.Name)
	d.health = devstatus.New(cfg.Name, "door", 3, d.clock.Now)
	if err := d.Halt(); err != nil {
		return nil, err
	}
	return d, nil
}

func upper(s string) string { return string(s[0]-'a'+'A') + s[1:] }

// Release unlocks the door: it energises the relay of a fail-secure door
// and de-energises that of a fail-safe one. A failed write is counted
// (ErrKindRelay) and returned wrapped in ErrRelay; Released then still
// reports the last state written.
func (d *Door) Release() error { return d.drive(!d.cfg.FailSafe) }

// Secure locks the door: the opposite of Release. Errors as Release.
func (d *Door) Secure() error { return d.drive(d.cfg.FailSafe) }

// Halt puts the relay in its safe state, de-energised: a fail-safe door is
// then released and a fail-secure one locked. It is idempotent (it writes
// the line every time) and is used at New, on shutdown and after a panic.
// Errors as Release.
func (d *Door) Halt() error { return d.drive(false) }

func (d *Door) drive(energise bool) error {
	d.relayMu.Lock()
	defer d.relayMu.Unlock()
	if err := d.cfg.Relay.Out(gpio.Level(energise != d.cfg.RelayActiveLow)); err != nil {
		d.health.Failed(ErrKindRelay)
		d.log.Warn("relay write failed", "energise", energise, "err", err)
		return fmt.Errorf("%w: %s: %w", ErrRelay, d.cfg.Name, err)
	}
	d.energised = energise
	d.health.Seen()
	return nil
}

// Released reports whether the last relay state written releases the
// lock.
func (d *Door) Released() bool {
	d.relayMu.Lock()
	defer d.relayMu.Unlock()
	return d.energised != d.cfg.FailSafe
}

// Active returns the debounced level of input in, and whether it is
// fitted. Before Run has read a fitted input it reports inactive.
func (d *Door) Active(in InputKind) (active, fitted bool) {
	if in < 1 || in > numInputs || d.inputs[in-1] == nil {
		return false, false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.active[in-1], true
}

// Health returns the door's health: connected while Run watches the
// inputs; last seen at the last stable input change or successful relay
// write; error counts ErrKindRelay, ErrKindBounce and devstatus.ErrIO;
// down after 3 relay writes in a row have failed, and up again only at the
// next successful one (input changes then leave last seen as it is).
func (d *Door) Health() devstatus.Snapshot { return d.health.Snapshot() }

// edgeMsg is one edge seen by a watcher.
type edgeMsg struct {
	kind   InputKind
	active bool
	at     time.Time
}

// Run configures each fitted input (In with its pull and both edges),
// reads its level and reports it once as an Event (Fire first, then
// Contact, Exit, Tamper), then watches edges, debounces them and calls on
// (which may be nil) for each stable change, from Run's goroutine, in
// order. on should return quickly: it delays the next events.
//
// Run returns ErrRunning if the door is already running, the pin's error
// (with devstatus.ErrIO counted) if an input cannot be configured, and
// nil once ctx has ended and its goroutines have stopped. A change still
// settling when ctx ends is dropped. The relay is left as it is: the
// owner calls Halt on shutdown.
func (d *Door) Run(ctx context.Context, on func(Event)) error {
	d.mu.Lock()
	if d.running {
		d.mu.Unlock()
		return ErrRunning
	}
	d.running = true
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.running = false
		d.mu.Unlock()
	}()
	if on == nil {
		on = func(Event) {}
	}

	var deb [numInputs]*debouncer
	for _, k := range reportOrder {
		in := d.inputs[k-1]
		if in == nil {
			continue
		}
		if err := in.Pin.In(in.Pull, gpio.BothEdges); err != nil {
			d.health.Failed(devstatus.ErrIO)
			return fmt.Errorf("door: %s: %s input: %w", d.cfg.Name, k, err)
		}
		deb[k-1] = &debouncer{d: in.Debounce}
	}
	d.health.Connected(true)
	defer d.health.Connected(false)

	// Initial levels. An edge between In and Read is queued and repeats
	// the level read, which the debouncer ignores.
	for _, k := range reportOrder {
		in := d.inputs[k-1]
		if in == nil {
			continue
		}
		active := (in.Pin.Read() == gpio.Low) == in.ActiveLow
		deb[k-1].reset(active)
		d.setActive(k, active)
		on(Event{Door: d.cfg.Name, Input: k, Active: active, At: d.clock.Now()})
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	edges := make(chan edgeMsg, 64)
	var wg sync.WaitGroup
	for _, k := range reportOrder {
		if in := d.inputs[k-1]; in != nil {
			wg.Go(func() { d.watch(ctx, k, in, edges) })
		}
	}
	defer func() {
		cancel()
		d.releaseWaiters()
		wg.Wait()
	}()

	wake := make(chan struct{}, 1)
	kick := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	var stops [numInputs]func() bool
	defer func() {
		for _, stop := range stops {
			if stop != nil {
				stop()
			}
		}
	}()
	arm := func(k InputKind, due time.Time) {
		if stop := stops[k-1]; stop != nil {
			stop()
		}
		stops[k-1] = d.clock.AfterFunc(due.Sub(d.clock.Now()), kick)
	}
	report := func(k InputKind, s settled) {
		for range s.bounces {
			d.health.Error(ErrKindBounce)
		}
		if !s.changed {
			return
		}
		active := deb[k-1].stable
		d.setActive(k, active)
		if !d.health.Down() { // only a good relay write brings a down door up
			d.health.Seen()
		}
		on(Event{Door: d.cfg.Name, Input: k, Active: active, At: s.at})
	}
	feed := func(e edgeMsg) {
		settleAt := e.at
		if now := d.clock.Now(); settleAt.After(now) {
			settleAt = now // a stamp ahead of the clock must not delay the settle
		}
		prev, hadPrev, due, armed := deb[e.kind-1].edge(e.active, e.at, settleAt)
		if hadPrev {
			report(e.kind, prev)
		}
		switch {
		case armed:
			arm(e.kind, due)
		case hadPrev && stops[e.kind-1] != nil:
			stops[e.kind-1]()
			stops[e.kind-1] = nil
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-edges:
			feed(e)
		case <-wake:
			// Take the edges already delivered before deciding, so a
			// bounce that is queued is not mistaken for a stable level.
			for drained := false; !drained; {
				select {
				case e := <-edges:
					feed(e)
				default:
					drained = true
				}
			}
			now := d.clock.Now()
			for _, k := range reportOrder {
				b := deb[k-1]
				if b == nil || !b.pending {
					continue
				}
				if s, done := b.settle(now); done {
					report(k, s)
				} else {
					arm(k, b.due())
				}
			}
		}
	}
}

func (d *Door) setActive(k InputKind, active bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.active[k-1] = active
}

// releaseWaiters interrupts the watchers' WaitForEdge calls.
func (d *Door) releaseWaiters() {
	for _, in := range d.inputs {
		if in != nil {
			// A pin whose Halt fails or does not interrupt the wait is
			// still left within Poll; nothing else to do about it.
			_ = in.Pin.Halt()
		}
	}
}

// watch sends one input's edges to out until ctx ends.
func (d *Door) watch(ctx context.Context, k InputKind, in *Input, out chan<- edgeMsg) {
	st, stamped := in.Pin.(EdgeStamper)
	for ctx.Err() == nil {
		if !in.Pin.WaitForEdge(d.cfg.Poll) {
			continue
		}
		var level gpio.Level
		var at time.Time
		if stamped {
			level, at = st.LastEdge()
		} else {
			level = in.Pin.Read()
		}
		if at.IsZero() {
			at = d.clock.Now()
		}
		select {
		case out <- edgeMsg{kind: k, active: (level == gpio.Low) == in.ActiveLow, at: at}:
		case <-ctx.Done():
			return
		}
	}
}
