package door

import (
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/testhw/doorsim"
	"github.com/kioskedge/kioskedge/testhw/fakeclock"
	"periph.io/x/conn/v3/gpio"
)

// TestDoorOverSimulator drives the door against the independent simulator
// of firmware-specs/door.md: a fail-safe maglock on an active-low relay,
// bouncing contact and exit button, with a minimal gate policy in the
// test (exit → release, fire → release).
func TestDoorOverSimulator(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New(t0)
	sim := doorsim.New(doorsim.Options{
		FailSafe: true, RelayActiveLow: true,
		ExitActiveLow: true, FireActiveLow: true,
		Bounces: 2, BounceGap: time.Millisecond,
		Now: clk.Now,
	})
	const fireDebounce = 30 * time.Millisecond
	d, err := New(Config{
		Name: "gate-1", Relay: sim.Relay, RelayActiveLow: true, FailSafe: true,
		Contact: &Input{Pin: sim.Contact, Pull: gpio.PullUp},
		Exit:    &Input{Pin: sim.Exit, ActiveLow: true, Pull: gpio.PullUp},
		Fire:    &Input{Pin: sim.Fire, ActiveLow: true, Pull: gpio.PullUp, Debounce: fireDebounce},
		Tamper:  &Input{Pin: sim.Tamper, Pull: gpio.PullUp},
		Clock:   clk, Poll: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Safe state of a fail-safe door: released.
	if sim.Locked() || !d.Released() {
		t.Fatal("after New a fail-safe door is not released")
	}
	if err := d.Secure(); err != nil || !sim.Locked() || d.Released() {
		t.Fatalf("Secure: %v, simulator locked %v", err, sim.Locked())
	}

	events := make(chan Event, 64)
	stop := startRun(t, d, func(e Event) { events <- e })
	next := func() Event {
		t.Helper()
		select {
		case e := <-events:
			return e
		case <-time.After(hangGuard):
			t.Fatal("no event")
			return Event{}
		}
	}
	for _, k := range reportOrder {
		if e := next(); e.Input != k || e.Active {
			t.Fatalf("initial event %+v, want %s inactive", e, k)
		}
	}

	// step makes a change with do, waits until the door has taken its
	// last edge (its debounce timer is armed), lets the debounce pass and
	// checks the one event it produces. first is when the change began.
	step := func(what string, do func(), in InputKind, active bool, debounce time.Duration, bouncy bool) {
		t.Helper()
		do()
		end := clk.Now()
		first := end
		if bouncy {
			first = end.Add(-sim.BounceSpan())
		}
		if !clk.AwaitTimer(end.Add(debounce), hangGuard) {
			t.Fatalf("%s: no debounce timer; pending %v", what, clk.Pending())
		}
		clk.Advance(debounce)
		if e := next(); e.Input != in || e.Active != active || !e.At.Equal(first) {
			t.Fatalf("%s: event %+v, want %s active=%v at %v", what, e, in, active, first)
		}
	}

	// A push on the locked door: nothing moves.
	if sim.Push() || sim.Contact.Read() != gpio.Low {
		t.Fatal("pushed open a locked door")
	}

	// Request to exit, with contact bounce: one event, at the first edge.
	step("exit pressed", sim.PressExit, Exit, true, DefaultDebounce, true)
	if err := d.Release(); err != nil || sim.Locked() {
		t.Fatalf("Release on exit: %v, locked %v", err, sim.Locked())
	}
	step("exit let go", sim.ReleaseExit, Exit, false, DefaultDebounce, true)
	step("door pushed open", func() {
		if !sim.Push() {
			t.Fatal("the released door did not open")
		}
	}, Contact, true, DefaultDebounce, true)
	step("door closed", sim.Close, Contact, false, DefaultDebounce, true)
	if err := d.Secure(); err != nil || !sim.Locked() {
		t.Fatal("not locked again")
	}

	// Forced open: the contact goes active while secured.
	step("forced open", func() {
		if !sim.Force() {
			t.Fatal("Force: the door was not locked")
		}
	}, Contact, true, DefaultDebounce, true)
	if d.Released() {
		t.Fatal("forcing the door released it")
	}
	step("closed after forcing", sim.Close, Contact, false, DefaultDebounce, true)

	// Fire alarm: the door is released; in simulated time the relay moves
	// one fire debounce after the alarm, well within 100 ms.
	alarm := clk.Now()
	step("fire", func() { sim.SetFire(true) }, Fire, true, fireDebounce, false)
	if err := d.Release(); err != nil || sim.Locked() {
		t.Fatal("fire release: door still locked")
	}
	rel := sim.RelayEdges()
	if lat := rel[len(rel)-1].Sub(alarm); lat != fireDebounce || lat >= 100*time.Millisecond {
		t.Fatalf("fire to relay %v in simulated time, want the fire debounce", lat)
	}
	step("tamper", func() { sim.SetTamper(true) }, Tamper, true, DefaultDebounce, false)

	// Shutdown: Halt leaves a fail-safe door released.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := d.Halt(); err != nil || sim.Locked() {
		t.Fatal("Halt locked a fail-safe door")
	}
	if h := d.Health(); h.Connected || h.Errors[ErrKindBounce] == 0 || h.Errors[ErrKindRelay] != 0 {
		t.Fatalf("health %+v", h)
	}
}
