package doorsim

import (
	"sync"
	"time"

	"github.com/kioskedge/kioskedge/testhw/gpiosim"
	"periph.io/x/conn/v3/gpio"
)

// Options describes the simulated door's wiring (firmware-specs/door.md §2
// and §3). The zero value is a fail-secure strike on an active-high relay,
// with every input active-high.
type Options struct {
	// FailSafe: the lock holds only while the relay is energised (a
	// maglock); otherwise energising the relay releases it (a strike).
	FailSafe bool
	// RelayActiveLow: the relay is energised while its line is Low.
	RelayActiveLow bool
	// Active levels of the inputs: true means the input is active (door
	// open, button pressed, alarm, enclosure open) while its line is Low.
	ContactActiveLow, ExitActiveLow, FireActiveLow, TamperActiveLow bool
	// Bounces is how many extra break-make pairs the door contact and the
	// exit button produce on every change, BounceGap apart (default 1 ms),
	// as mechanical contacts do. A bouncing change ends at the time of
	// the call that makes it, and starts BounceSpan earlier, so every edge
	// is already in the past of the clock.
	Bounces   int
	BounceGap time.Duration
	// Now timestamps the lines' edges; nil means time.Now. Pass a fake
	// clock's Now to drive a door driver on that clock.
	Now func() time.Time
}

// Door is a simulated door: a lock driven by a relay line, and the door
// contact, exit button, fire alarm and tamper switch on input lines.
// Hand the lines to the driver under test; drive the door with the
// methods. Safe for concurrent use.
type Door struct {
	// Relay is driven by the controller (Out); the others are the inputs
	// it reads, each idling at its inactive level.
	Relay, Contact, Exit, Fire, Tamper *gpiosim.Line

	o  Options
	mu sync.Mutex // serialises changes to the input lines
}

// New returns a closed door with the exit button up, no fire alarm and the
// enclosure shut. The relay line starts undriven and reads Low until the
// controller drives it.
func New(o Options) *Door {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.BounceGap <= 0 {
		o.BounceGap = time.Millisecond
	}
	d := &Door{
		Relay:   gpiosim.NewLine("relay", 0, o.Now),
		Contact: gpiosim.NewLine("contact", 1, o.Now),
		Exit:    gpiosim.NewLine("exit", 2, o.Now),
		Fire:    gpiosim.NewLine("fire", 3, o.Now),
		Tamper:  gpiosim.NewLine("tamper", 4, o.Now),
		o:       o,
	}
	d.Contact.Set(level(false, o.ContactActiveLow))
	d.Exit.Set(level(false, o.ExitActiveLow))
	d.Fire.Set(level(false, o.FireActiveLow))
	d.Tamper.Set(level(false, o.TamperActiveLow))
	return d
}

// level is the line level of an input in state active.
func level(active, activeLow bool) gpio.Level {
	return gpio.Level(active != activeLow)
}

// Energised reports whether the relay coil is energised: its line is at
// the relay's active level.
func (d *Door) Energised() bool {
	return d.Relay.Read() == level(true, d.o.RelayActiveLow)
}

// Locked reports whether the lock holds: a fail-safe lock holds while the
// relay is energised, a fail-secure one while it is not.
func (d *Door) Locked() bool {
	return d.Energised() == d.o.FailSafe
}

// Open reports whether the door is open (the contact is active).
func (d *Door) Open() bool {
	return d.Contact.Read() == level(true, d.o.ContactActiveLow)
}

// Push tries to open the door: it opens (the contact goes active) only if
// the lock is released, and Push reports whether the door is open after.
func (d *Door) Push() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.Locked() {
		return d.open()
	}
	d.setInput(d.Contact, true, d.o.ContactActiveLow, true)
	return true
}

// Force opens the door whatever the lock (forced open), and reports
// whether the lock was holding, i.e. whether this was a forced opening.
func (d *Door) Force() (wasLocked bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	wasLocked = d.Locked()
	d.setInput(d.Contact, true, d.o.ContactActiveLow, true)
	return wasLocked
}

// Close closes the door (the contact goes inactive). A door held open is
// one nobody closes.
func (d *Door) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.setInput(d.Contact, false, d.o.ContactActiveLow, true)
}

// PressExit presses the request-to-exit button; ReleaseExit lets it go.
func (d *Door) PressExit() { d.setExit(true) }

// ReleaseExit lets the request-to-exit button go.
func (d *Door) ReleaseExit() { d.setExit(false) }

func (d *Door) setExit(on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.setInput(d.Exit, on, d.o.ExitActiveLow, true)
}

// SetFire raises or clears the fire alarm input.
func (d *Door) SetFire(on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.setInput(d.Fire, on, d.o.FireActiveLow, false)
}

// SetTamper opens (true) or shuts the enclosure's tamper switch.
func (d *Door) SetTamper(on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.setInput(d.Tamper, on, d.o.TamperActiveLow, false)
}

// open reports whether the contact is active; d.mu must be held.
func (d *Door) open() bool {
	return d.Contact.Read() == level(true, d.o.ContactActiveLow)
}

// setInput moves an input line to state active, with contact bounce if
// bouncy and configured; changing nothing when it is already there.
// d.mu must be held.
func (d *Door) setInput(l *gpiosim.Line, active, activeLow, bouncy bool) {
	want := level(active, activeLow)
	if l.Read() == want {
		return
	}
	at := d.o.Now()
	if bouncy {
		at = at.Add(-d.BounceSpan())
		for range d.o.Bounces {
			l.SetAt(want, at)
			at = at.Add(d.o.BounceGap)
			l.SetAt(!want, at)
			at = at.Add(d.o.BounceGap)
		}
	}
	l.SetAt(want, at)
}

// BounceSpan is how long before the end of a bouncing change its first
// edge comes: 2 × Bounces × BounceGap.
func (d *Door) BounceSpan() time.Duration {
	return 2 * time.Duration(d.o.Bounces) * d.o.BounceGap
}

// RelayEdges returns the times the relay line changed level, oldest first,
// for measuring the latency from a stimulus to the lock moving.
func (d *Door) RelayEdges() []time.Time {
	edges := d.Relay.Edges()
	at := make([]time.Time, len(edges))
	for i, e := range edges {
		at[i] = e.Time
	}
	return at
}
