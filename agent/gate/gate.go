package gate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kioskedge/kioskedge/agent/access"
	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// Door is the actuator of one door, as the gate needs it
// (drivers/door.Door implements it). Each method drives the relay and
// returns when the relay has been written; the gate calls them with the
// door's lock held, so they must not call back into the Gate.
type Door interface {
	// Release unlocks the door.
	Release() error
	// Secure locks the door.
	Secure() error
	// Halt puts the relay in its safe state (released for a fail-safe
	// door, locked for a fail-secure one).
	Halt() error
}

// Outbox stores a record durably (sync/outbox.Outbox.Append): a returned
// seq is never lost.
type Outbox interface {
	Append(ctx context.Context, r wire.Record) (uint64, error)
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop prevents the call if it has not started; it reports whether it
	// did. The gate never relies on Stop succeeding.
	Stop() bool
}

// Clock is the gate's time source: door timers and the writer's back-off
// run on it, and tests inject a fake.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine (or, for a fake, from the
	// goroutine that advances time) once d has elapsed.
	AfterFunc(d time.Duration, f func()) Timer
}

type systemClock struct{}

func (systemClock) Now() time.Time                            { return time.Now() }
func (systemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// SystemClock returns the clock of package time.
func SystemClock() Clock { return systemClock{} }

// Input names a door input.
type Input uint8

// The door inputs.
const (
	// InputContact is the door contact; active means open.
	InputContact Input = iota + 1
	// InputExit is the request-to-exit button; active means pressed.
	InputExit
	// InputFire is a fire-alarm input; active means fire.
	InputFire
	// InputTamper is a tamper switch; active means tampered.
	InputTamper
)

func (i Input) String() string {
	switch i {
	case InputContact:
		return "contact"
	case InputExit:
		return "exit"
	case InputFire:
		return "fire"
	case InputTamper:
		return "tamper"
	}
	return fmt.Sprintf("input(%d)", uint8(i))
}

// InputEvent is a change of a door input's level (or a level reported at
// start). At is when the edge happened; zero means now.
type InputEvent struct {
	Door   string
	Input  Input
	Active bool
	At     time.Time
}

// Defaults for zero DoorConfig and Config fields.
const (
	DefaultUnlockPulse  = 5 * time.Second
	DefaultHeldOpen     = 30 * time.Second
	DefaultQueueSize    = 1024
	DefaultRetryMin     = 100 * time.Millisecond
	DefaultRetryMax     = 5 * time.Second
	DefaultDrainTimeout = 2 * time.Second
)

// DoorConfig configures one door of the gate.
type DoorConfig struct {
	// ID is the door's id, as configured in the access engine.
	ID   string
	Door Door
	// UnlockPulse is how long a grant, exit or remote open releases the
	// door (default 5 s).
	UnlockPulse time.Duration
	// HeldOpen is how long the door may stay open after a legitimate
	// opening before the held_open alarm (default 30 s).
	HeldOpen time.Duration
	// NoExitRelease makes the exit button only recorded; by default a
	// press releases the door for one pulse.
	NoExitRelease bool
	// HasContact says the door has a contact input. Without one, contact
	// events are ignored: no relock on close, no forced or held alarms.
	HasContact bool
}

// Config builds a Gate. Engine, Doors and Outbox are required.
type Config struct {
	Engine *access.Engine
	Doors  []DoorConfig
	Outbox Outbox
	Clock  Clock        // nil: SystemClock
	Logger *slog.Logger // nil: discard
	// QueueSize bounds the records waiting for the outbox (default 1024);
	// see the package documentation for what happens when it is full.
	QueueSize int
	// RetryMin and RetryMax bound the writer's back-off after a failed
	// Append (defaults 100 ms and 5 s); it doubles after each failure.
	RetryMin, RetryMax time.Duration
	// DrainTimeout bounds how long Run writes queued records after its
	// context ends (default 2 s, on Clock).
	DrainTimeout time.Duration
}

// Errors returned by this package.
var (
	ErrConfig      = errors.New("gate: bad config")
	ErrUnknownDoor = errors.New("gate: unknown door")
	ErrBadMode     = errors.New("gate: bad mode")
	ErrClosed      = errors.New("gate: closed")
	ErrRunning     = errors.New("gate: already running")
	ErrRelay       = errors.New("gate: relay failed")
	ErrPanic       = errors.New("gate: record writer panicked")
	ErrUndrained   = errors.New("gate: records not written")
)

// Alarm names an alarm a door or the gate can have active.
type Alarm string

// The alarms of DoorStatus and of door.alarm records
// (firmware-specs/gate-records.md).
const (
	AlarmForcedOpen      Alarm = "forced_open"
	AlarmHeldOpen        Alarm = "held_open"
	AlarmTamper          Alarm = "tamper"
	AlarmFire            Alarm = "fire"
	AlarmRelayFault      Alarm = "relay_fault"
	AlarmRepeatedDenials Alarm = Alarm(access.RepeatedDenials)
)

// door is the state of one door; every field after mu is guarded by it.
type door struct {
	cfg           DoorConfig
	onPulse       func() // bound once so arming a timer allocates only the timer
	onHeld        func()
	mu            sync.Mutex
	mode          access.Mode // the operator's mode, restored when a fire clears
	released      bool        // commanded state of the relay
	pulseUntil    time.Time
	pulseTimer    Timer
	open          bool
	openedInPulse bool // opened while released: relock when it closes
	heldUntil     time.Time
	heldTimer     Timer
	heldAlarm     bool
	forcedAlarm   bool
	fault         bool
	fire          bool // released by the fire alarm
	halted        bool // Close or Run's end: no more actuation
}

// Gate is the door state machine of one gate; see the package
// documentation. Its methods are safe for concurrent use.
type Gate struct {
	eng   *access.Engine
	clock Clock
	log   *slog.Logger
	out   Outbox
	cfg   Config
	doors map[string]*door
	order []*door

	inMu   sync.Mutex      // fire and tamper inputs; taken before any door lock
	fire   map[string]bool // active fire inputs, by the door they report for
	tamper map[string]bool // active tamper inputs, by door

	q queue

	runMu    sync.Mutex
	running  bool
	ran      bool
	stop     chan struct{}
	stopOnce sync.Once
	runDone  chan struct{}
	haltOnce sync.Once
}

// New validates cfg and returns a Gate. It does not touch the doors: the
// relays are expected to start secured, and the wiring reports the inputs'
// initial levels with Input (a fire input active at start releases every
// door then). Errors wrap ErrConfig and name the problem.
func New(cfg Config) (*Gate, error) {
	if cfg.Engine == nil || cfg.Outbox == nil {
		return nil, fmt.Errorf("%w: engine and outbox are required", ErrConfig)
	}
	if len(cfg.Doors) == 0 {
		return nil, fmt.Errorf("%w: no doors", ErrConfig)
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.RetryMin == 0 {
		cfg.RetryMin = DefaultRetryMin
	}
	if cfg.RetryMax == 0 {
		cfg.RetryMax = DefaultRetryMax
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	switch {
	case cfg.QueueSize < 2:
		return nil, fmt.Errorf("%w: queue size %d below 2", ErrConfig, cfg.QueueSize)
	case cfg.RetryMin < 0 || cfg.RetryMax < cfg.RetryMin:
		return nil, fmt.Errorf("%w: retry back-off %v..%v", ErrConfig, cfg.RetryMin, cfg.RetryMax)
	case cfg.DrainTimeout < 0:
		return nil, fmt.Errorf("%w: negative drain timeout", ErrConfig)
	}
	g := &Gate{
		eng: cfg.Engine, clock: cfg.Clock, out: cfg.Outbox, cfg: cfg,
		log:     cfg.Logger.With("component", "gate"),
		doors:   make(map[string]*door, len(cfg.Doors)),
		fire:    map[string]bool{},
		tamper:  map[string]bool{},
		stop:    make(chan struct{}),
		runDone: make(chan struct{}),
	}
	g.q.init(cfg.QueueSize)
	for _, dc := range cfg.Doors {
		if dc.ID == "" || dc.Door == nil {
			return nil, fmt.Errorf("%w: a door needs an id and a relay", ErrConfig)
		}
		if _, dup := g.doors[dc.ID]; dup {
			return nil, fmt.Errorf("%w: door %q twice", ErrConfig, dc.ID)
		}
		mode, ok := cfg.Engine.Mode(dc.ID)
		if !ok {
			return nil, fmt.Errorf("%w: door %q is not configured in the access engine", ErrConfig, dc.ID)
		}
		if dc.UnlockPulse == 0 {
			dc.UnlockPulse = DefaultUnlockPulse
		}
		if dc.HeldOpen == 0 {
			dc.HeldOpen = DefaultHeldOpen
		}
		if dc.UnlockPulse < 0 || dc.HeldOpen < 0 {
			return nil, fmt.Errorf("%w: door %q: negative pulse or held-open time", ErrConfig, dc.ID)
		}
		d := &door{cfg: dc, mode: mode}
		d.onPulse = func() { g.pulseEnd(d) }
		d.onHeld = func() { g.heldEnd(d) }
		g.doors[dc.ID] = d
		g.order = append(g.order, d)
	}
	return g, nil
}

// Present decides a credential presented at reader of door (reader, when
// not empty, replaces c.Reader) and returns the engine's decision. On a
// grant it releases the door first, before any record is built, and
// starts (or extends) the unlock pulse; while a fire alarm holds the door
// released it only decides. It then queues the access.decision record
// (and a repeated_denials alarm when the decision raises one); it never
// waits for the outbox. A relay error is recorded as a relay_fault alarm.
// After Close it still decides but no longer actuates.
func (g *Gate) Present(doorID, reader string, c credential.Credential, frameOK bool) access.Decision {
	if reader != "" {
		c.Reader = reader
	}
	now := g.clock.Now()
	dec := g.eng.Decide(doorID, c, frameOK, now)
	d := g.doors[doorID]
	if d == nil || !dec.Granted {
		g.q.push(entry{kind: recDecision, at: now, door: doorID, dec: dec})
		if dec.Alarm != access.NoAlarm {
			g.q.push(entry{kind: recAlarm, at: now, door: doorID, name: string(dec.Alarm), active: true, reader: dec.Reader, count: dec.Denials})
		}
		return dec
	}
	d.mu.Lock()
	if d.halted || d.fire {
		g.q.push(entry{kind: recDecision, at: now, door: doorID, dec: dec})
		d.mu.Unlock()
		return dec
	}
	_ = g.release(d, now, entry{kind: recDecision, at: now, door: doorID, dec: dec}, "grant", "")
	d.mu.Unlock()
	return dec
}

// release releases d and starts or extends its unlock pulse, then queues
// why (the record of what asked), a released event by by (and command)
// when d was secured, and the relay's result, which it returns; d.mu is
// held.
func (g *Gate) release(d *door, now time.Time, why entry, by, command string) error {
	err := act(d.cfg.Door, opRelease)
	was := d.released
	d.released = true // even on error: the pulse's end will secure it
	d.pulseUntil = now.Add(d.cfg.UnlockPulse)
	if d.pulseTimer == nil {
		d.pulseTimer = g.clock.AfterFunc(d.cfg.UnlockPulse, d.onPulse)
	}
	g.q.push(why)
	if !was {
		g.q.push(entry{kind: recEvent, at: now, door: d.cfg.ID, name: "released", by: by, command: command})
	}
	g.relayResult(d, "release", err, now)
	return err
}

// stopPulse stops d's pulse timer; a late call finds the door secured (or
// halted, or held by a fire) and does nothing. d.mu is held.
func (g *Gate) stopPulse(d *door) {
	if d.pulseTimer != nil {
		d.pulseTimer.Stop()
		d.pulseTimer = nil
	}
}

// secure locks d and ends its pulse; d.mu is held.
func (g *Gate) secure(d *door, now time.Time, by string) {
	g.stopPulse(d)
	err := act(d.cfg.Door, opSecure)
	d.released = false
	d.openedInPulse = false
	g.q.push(entry{kind: recEvent, at: now, door: d.cfg.ID, name: "secured", by: by})
	g.relayResult(d, "secure", err, now)
}

// relayResult records a relay fault, or its end; d.mu is held.
func (g *Gate) relayResult(d *door, op string, err error, now time.Time) {
	switch {
	case err != nil:
		d.fault = true
		text := err.Error()
		if len(text) > 200 {
			text = text[:200]
		}
		g.q.push(entry{kind: recAlarm, at: now, door: d.cfg.ID, name: string(AlarmRelayFault), active: true, op: op, errText: text})
		g.log.Warn("relay failed", "door", d.cfg.ID, "op", op, "err", err)
	case d.fault:
		d.fault = false
		g.q.push(entry{kind: recAlarm, at: now, door: d.cfg.ID, name: string(AlarmRelayFault), active: false, op: op})
	}
}

// pulseEnd is the unlock pulse's timer.
func (g *Gate) pulseEnd(d *door) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pulseTimer = nil
	if d.halted || d.fire || !d.released {
		return
	}
	now := g.clock.Now()
	if rem := d.pulseUntil.Sub(now); rem > 0 { // extended by a later grant
		d.pulseTimer = g.clock.AfterFunc(rem, d.onPulse)
		return
	}
	g.secure(d, now, "pulse_end")
}

// heldEnd is the held-open timer.
func (g *Gate) heldEnd(d *door) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.heldTimer = nil
	if d.halted || d.fire || !d.open || d.heldAlarm || d.heldUntil.IsZero() {
		return
	}
	now := g.clock.Now()
	if rem := d.heldUntil.Sub(now); rem > 0 {
		d.heldTimer = g.clock.AfterFunc(rem, d.onHeld)
		return
	}
	d.heldAlarm = true
	g.q.push(entry{kind: recAlarm, at: now, door: d.cfg.ID, name: string(AlarmHeldOpen), active: true})
}

// startHeld arms the held-open timer from now; d.mu is held.
func (g *Gate) startHeld(d *door, now time.Time) {
	if d.mode == access.FreePassageMode || d.heldAlarm {
		return
	}
	d.heldUntil = now.Add(d.cfg.HeldOpen)
	if d.heldTimer == nil {
		d.heldTimer = g.clock.AfterFunc(d.cfg.HeldOpen, d.onHeld)
	}
}

func (g *Gate) stopHeld(d *door) {
	if d.heldTimer != nil {
		d.heldTimer.Stop()
		d.heldTimer = nil
	}
	d.heldUntil = time.Time{}
}

// Input handles a change of an input's level. Repeated reports of the
// same level are ignored (an exit press counts each active report).
// Contact and exit events for a door not configured are logged and
// ignored; fire and tamper inputs may report for any door id, "" for the
// whole gate. A fire input becoming active releases every door before
// Input returns. After Close, Input only records.
func (g *Gate) Input(ev InputEvent) {
	now := g.clock.Now()
	at := ev.At
	if at.IsZero() {
		at = now
	}
	switch ev.Input {
	case InputFire:
		g.fireInput(ev, at, now)
		return
	case InputTamper:
		g.inMu.Lock()
		if g.tamper[ev.Door] != ev.Active {
			if ev.Active {
				g.tamper[ev.Door] = true
			} else {
				delete(g.tamper, ev.Door)
			}
			g.q.push(entry{kind: recAlarm, at: at, door: ev.Door, name: string(AlarmTamper), active: ev.Active})
		}
		g.inMu.Unlock()
		return
	case InputContact, InputExit:
	default:
		g.log.Warn("unknown input", "door", ev.Door, "input", ev.Input.String())
		return
	}
	d := g.doors[ev.Door]
	if d == nil {
		g.log.Warn("input for unknown door", "door", ev.Door, "input", ev.Input.String())
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if ev.Input == InputExit {
		if !ev.Active {
			return
		}
		if d.halted || d.fire || d.cfg.NoExitRelease {
			g.q.push(entry{kind: recEvent, at: at, door: d.cfg.ID, name: "exit"})
			return
		}
		_ = g.release(d, now, entry{kind: recEvent, at: at, door: d.cfg.ID, name: "exit"}, "exit", "")
		return
	}
	if !d.cfg.HasContact || d.open == ev.Active {
		return
	}
	d.open = ev.Active
	if ev.Active {
		g.q.push(entry{kind: recEvent, at: at, door: d.cfg.ID, name: "opened"})
		switch {
		case d.halted:
		case d.fire:
		case d.released:
			d.openedInPulse = true
			g.startHeld(d, now)
		case d.mode == access.FreePassageMode:
		default:
			d.forcedAlarm = true
			g.q.push(entry{kind: recAlarm, at: at, door: d.cfg.ID, name: string(AlarmForcedOpen), active: true})
		}
		return
	}
	g.q.push(entry{kind: recEvent, at: at, door: d.cfg.ID, name: "closed"})
	g.stopHeld(d)
	if d.heldAlarm {
		d.heldAlarm = false
		g.q.push(entry{kind: recAlarm, at: at, door: d.cfg.ID, name: string(AlarmHeldOpen), active: false})
	}
	if d.forcedAlarm {
		d.forcedAlarm = false
		g.q.push(entry{kind: recAlarm, at: at, door: d.cfg.ID, name: string(AlarmForcedOpen), active: false})
	}
	if !d.halted && !d.fire && d.released && d.openedInPulse {
		g.secure(d, now, "closed")
	}
}

// fireInput handles a fire input: the first one active releases every
// door and puts it in free passage; the last one clearing restores each
// door's mode and secures it.
func (g *Gate) fireInput(ev InputEvent, at, now time.Time) {
	g.inMu.Lock()
	defer g.inMu.Unlock()
	before := len(g.fire) > 0
	if g.fire[ev.Door] == ev.Active {
		return
	}
	if ev.Active {
		g.fire[ev.Door] = true
	} else {
		delete(g.fire, ev.Door)
	}
	after := len(g.fire) > 0
	if !before && after {
		for _, d := range g.order {
			g.fireOn(d, now)
		}
	}
	g.q.push(entry{kind: recAlarm, at: at, door: ev.Door, name: string(AlarmFire), active: ev.Active})
	if before && !after {
		for _, d := range g.order {
			g.fireOff(d, now)
		}
	}
}

func (g *Gate) fireOn(d *door, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.halted {
		return
	}
	err := act(d.cfg.Door, opRelease)
	d.fire = true
	g.stopPulse(d)
	g.stopHeld(d)
	d.released = true
	d.openedInPulse = false
	// The door is configured in the engine (checked by New).
	_ = g.eng.SetMode(d.cfg.ID, access.FreePassageMode)
	g.q.push(entry{kind: recEvent, at: now, door: d.cfg.ID, name: "released", by: "fire"})
	g.relayResult(d, "release", err, now)
}

func (g *Gate) fireOff(d *door, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.halted {
		return
	}
	d.fire = false
	// The door is configured in the engine (checked by New).
	_ = g.eng.SetMode(d.cfg.ID, d.mode)
	g.secure(d, now, "fire_clear")
	if d.open {
		g.startHeld(d, now)
	}
}

// RemoteOpen releases door for one unlock pulse for a verified door.open
// command, recording a remote_open event with commandID. While a fire
// alarm holds the door released it only records. It returns
// ErrUnknownDoor, ErrClosed after Close, or an error wrapping ErrRelay
// when the relay failed (the attempt is still recorded).
func (g *Gate) RemoteOpen(doorID, commandID string) error {
	d := g.doors[doorID]
	if d == nil {
		return fmt.Errorf("%w: %q", ErrUnknownDoor, doorID)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.halted {
		return ErrClosed
	}
	now := g.clock.Now()
	if d.fire {
		g.q.push(entry{kind: recEvent, at: now, door: doorID, name: "remote_open", command: commandID})
		return nil
	}
	if err := g.release(d, now, entry{kind: recEvent, at: now, door: doorID, name: "remote_open", command: commandID}, "remote", commandID); err != nil {
		return fmt.Errorf("%w: %w", ErrRelay, err)
	}
	return nil
}

// SetMode sets door's mode (a door.mode command, a lockdown) and records
// it with by (who asked: a command id, "lockdown", …; never personal
// data). While a fire alarm is active the door stays in free passage and m
// takes effect when the fire clears. It returns ErrBadMode,
// ErrUnknownDoor or ErrClosed.
func (g *Gate) SetMode(doorID string, m access.Mode, by string) error {
	if m > access.FreePassageMode {
		return fmt.Errorf("%w: %d", ErrBadMode, m)
	}
	d := g.doors[doorID]
	if d == nil {
		return fmt.Errorf("%w: %q", ErrUnknownDoor, doorID)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.halted {
		return ErrClosed
	}
	if !d.fire {
		if err := g.eng.SetMode(doorID, m); err != nil {
			return fmt.Errorf("gate: door %q: %w", doorID, err)
		}
	}
	d.mode = m
	if m == access.FreePassageMode {
		g.stopHeld(d)
	}
	g.q.push(entry{kind: recEvent, at: g.clock.Now(), door: doorID, name: "mode", by: by, mode: m, hasMode: true})
	return nil
}

// DoorStatus is one door's state, for health.
type DoorStatus struct {
	ID string
	// Mode is the mode in force (free passage during a fire); Configured
	// the operator's mode, restored when the fire clears.
	Mode, Configured access.Mode
	// Released is the commanded relay state; Open the contact (false for
	// a door without one); Halted after Close.
	Released, Open, Halted bool
	// Alarms active at the door, in a fixed order.
	Alarms []Alarm
}

// Status returns every door's state in configuration order. A fire or
// tamper input reported for the gate ("") or for a door shows on every
// door (fire) or on that door (tamper).
func (g *Gate) Status() []DoorStatus {
	g.inMu.Lock()
	defer g.inMu.Unlock()
	out := make([]DoorStatus, 0, len(g.order))
	for _, d := range g.order {
		d.mu.Lock()
		s := DoorStatus{ID: d.cfg.ID, Mode: d.mode, Configured: d.mode, Released: d.released, Open: d.open, Halted: d.halted}
		if d.fire {
			s.Mode = access.FreePassageMode
		}
		if d.forcedAlarm {
			s.Alarms = append(s.Alarms, AlarmForcedOpen)
		}
		if d.heldAlarm {
			s.Alarms = append(s.Alarms, AlarmHeldOpen)
		}
		if g.tamper[d.cfg.ID] || g.tamper[""] {
			s.Alarms = append(s.Alarms, AlarmTamper)
		}
		if len(g.fire) > 0 {
			s.Alarms = append(s.Alarms, AlarmFire)
		}
		if d.fault {
			s.Alarms = append(s.Alarms, AlarmRelayFault)
		}
		d.mu.Unlock()
		out = append(out, s)
	}
	return out
}

// halt puts every door in its safe state, once, and stops actuation.
func (g *Gate) halt() {
	g.haltOnce.Do(func() {
		for _, d := range g.order {
			d.mu.Lock()
			d.halted = true
			g.stopPulse(d)
			g.stopHeld(d)
			err := act(d.cfg.Door, opHalt)
			now := g.clock.Now()
			g.q.push(entry{kind: recEvent, at: now, door: d.cfg.ID, name: "halted"})
			g.relayResult(d, "halt", err, now)
			d.mu.Unlock()
		}
	})
}

// Close halts every door (once) and stops Run, waiting for it to drain
// and return. It is idempotent and always returns nil.
func (g *Gate) Close() error {
	g.halt()
	g.stopOnce.Do(func() { close(g.stop) })
	g.runMu.Lock()
	ran := g.ran
	g.runMu.Unlock()
	if ran {
		<-g.runDone
	}
	return nil
}

const (
	opRelease = iota
	opSecure
	opHalt
)

// act drives the relay. A driver panic becomes an error wrapping ErrRelay
// and the relay is sent to its safe state (Halt, itself guarded), so a
// broken driver cannot take the gate's locks down with it.
func act(dr Door, op int) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: driver panic: %v", ErrRelay, r)
			if op != opHalt {
				_ = act(dr, opHalt) // best effort; the panic is what is reported
			}
		}
	}()
	switch op {
	case opRelease:
		return dr.Release()
	case opSecure:
		return dr.Secure()
	default:
		return dr.Halt()
	}
}
