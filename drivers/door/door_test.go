package door

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/testhw/doorsim"
	"github.com/kioskedge/kioskedge/testhw/fakeclock"
	"github.com/kioskedge/kioskedge/testhw/gpiosim"
	"periph.io/x/conn/v3/gpio"
)

var t0 = time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)

// hangGuard bounds every wait on another goroutine; it is not a speed
// requirement.
const hangGuard = 10 * time.Second

func TestRelayTruthTable(t *testing.T) {
	t.Parallel()
	const H, L = gpio.High, gpio.Low
	// firmware-specs/door.md §2.
	for _, tc := range []struct {
		activeLow, failSafe   bool
		release, secure, halt gpio.Level
		releasedAfterHalt     bool
	}{
		{false, false, H, L, L, false},
		{false, true, L, H, L, true},
		{true, false, L, H, H, false},
		{true, true, H, L, H, true},
	} {
		relay := gpiosim.NewLine("relay", 0, nil)
		d, err := New(Config{Name: "d", Relay: relay, RelayActiveLow: tc.activeLow, FailSafe: tc.failSafe})
		if err != nil {
			t.Fatal(err)
		}
		name := func(op string) string {
			return op + " (activeLow " + map[bool]string{true: "yes", false: "no"}[tc.activeLow] + ", failSafe " + map[bool]string{true: "yes", false: "no"}[tc.failSafe] + ")"
		}
		if relay.Read() != tc.halt || relay.Function() != "Out" || d.Released() != tc.releasedAfterHalt {
			t.Errorf("%s: line %v, released %v", name("New"), relay.Read(), d.Released())
		}
		for _, step := range []struct {
			op       string
			f        func() error
			want     gpio.Level
			released bool
		}{
			{"Release", d.Release, tc.release, true},
			{"Secure", d.Secure, tc.secure, false},
			{"Release", d.Release, tc.release, true},
			{"Halt", d.Halt, tc.halt, tc.releasedAfterHalt},
			{"Halt", d.Halt, tc.halt, tc.releasedAfterHalt},
		} {
			if err := step.f(); err != nil {
				t.Fatalf("%s: %v", name(step.op), err)
			}
			if relay.Read() != step.want || d.Released() != step.released {
				t.Errorf("%s: line %v released %v, want %v %v", name(step.op), relay.Read(), d.Released(), step.want, step.released)
			}
		}
	}
}

// failingRelay is a relay pin whose writes fail while fail is set.
type failingRelay struct {
	*gpiosim.Line
	mu   sync.Mutex
	fail bool
}

func (r *failingRelay) setFail(f bool) { r.mu.Lock(); r.fail = f; r.mu.Unlock() }

func (r *failingRelay) Out(l gpio.Level) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return errors.New("line busy")
	}
	return r.Line.Out(l)
}

func TestRelayWriteErrors(t *testing.T) {
	t.Parallel()
	r := &failingRelay{Line: gpiosim.NewLine("relay", 0, nil), fail: true}
	if _, err := New(Config{Name: "d", Relay: r}); !errors.Is(err, ErrRelay) {
		t.Fatalf("New with a failing relay: %v, want ErrRelay", err)
	}
	r.setFail(false)
	d, err := New(Config{Name: "d", Relay: r})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Release(); err != nil || !d.Released() {
		t.Fatalf("Release: %v", err)
	}
	r.setFail(true)
	for range 3 {
		if err := d.Secure(); !errors.Is(err, ErrRelay) || !strings.Contains(err.Error(), "line busy") {
			t.Fatalf("Secure on a failing relay: %v", err)
		}
	}
	if !d.Released() {
		t.Fatal("Released changed on a failed write")
	}
	if h := d.Health(); h.Errors[ErrKindRelay] != 3 || !h.Down {
		t.Fatalf("health after 3 failed writes: %+v", h)
	}
	r.setFail(false)
	if err := d.Halt(); err != nil || d.Released() || d.Health().Down {
		t.Fatalf("Halt after recovery: %v, released %v, health %+v", err, d.Released(), d.Health())
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	pin := func() gpio.PinIO { return gpiosim.NewLine("x", 0, nil) }
	for _, tc := range []struct {
		field string
		cfg   Config
	}{
		{"Name", Config{Relay: pin()}},
		{"Relay", Config{Name: "d"}},
		{"Contact.Pin", Config{Name: "d", Relay: pin(), Contact: &Input{}}},
		{"Tamper.Pin", Config{Name: "d", Relay: pin(), Tamper: &Input{}}},
		{"Exit.Debounce", Config{Name: "d", Relay: pin(), Exit: &Input{Pin: pin(), Debounce: -1}}},
		{"Fire.Debounce", Config{Name: "d", Relay: pin(), Fire: &Input{Pin: pin(), Debounce: 51 * time.Millisecond}}},
	} {
		_, err := New(tc.cfg)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v, want ErrConfig naming it", tc.field, err)
		}
	}
	if _, err := New(Config{Name: "d", Relay: pin(), Fire: &Input{Pin: pin(), Debounce: MaxFireDebounce}}); err != nil {
		t.Errorf("fire debounce at the limit: %v", err)
	}
}

// rig is a door under test over gpiosim lines and a fake clock.
type rig struct {
	clk                         *fakeclock.Clock
	relay                       *gpiosim.Line
	contact, exit, fire, tamper *gpiosim.Line
	d                           *Door
	events                      chan Event
	stop                        func() error
}

// newRig builds a door with the inputs fitted per fit (nil fits all),
// contact active-high with pull-down, exit active-low with pull-up, fire
// active-low, tamper active-high; setup may set initial levels before Run.
func newRig(t *testing.T, fit []InputKind, setup func(*rig)) *rig {
	t.Helper()
	clk := fakeclock.New(t0)
	r := &rig{
		clk:     clk,
		relay:   gpiosim.NewLine("relay", 0, clk.Now),
		contact: gpiosim.NewLine("contact", 1, clk.Now),
		exit:    gpiosim.NewLine("exit", 2, clk.Now),
		fire:    gpiosim.NewLine("fire", 3, clk.Now),
		tamper:  gpiosim.NewLine("tamper", 4, clk.Now),
		events:  make(chan Event, 64),
	}
	r.exit.Set(gpio.High)
	r.fire.Set(gpio.High)
	if fit == nil {
		fit = []InputKind{Contact, Exit, Fire, Tamper}
	}
	cfg := Config{Name: "gate-1", Relay: r.relay, Clock: clk, Poll: 5 * time.Millisecond}
	for _, k := range fit {
		switch k {
		case Contact:
			cfg.Contact = &Input{Pin: r.contact, Pull: gpio.PullDown}
		case Exit:
			cfg.Exit = &Input{Pin: r.exit, ActiveLow: true, Pull: gpio.PullUp}
		case Fire:
			cfg.Fire = &Input{Pin: r.fire, ActiveLow: true, Pull: gpio.PullUp, Debounce: 30 * time.Millisecond}
		case Tamper:
			cfg.Tamper = &Input{Pin: r.tamper, Pull: gpio.PullDown}
		}
	}
	if setup != nil {
		setup(r)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.d = d
	r.stop = startRun(t, d, func(e Event) { r.events <- e })
	return r
}

// startRun runs d until the returned stop is called (or the test ends)
// and waits until Run is watching.
func startRun(t *testing.T, d *Door, on func(Event)) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, on) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(hangGuard):
				t.Error("Run did not return after cancel")
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() }) // the test checks stop's error where it matters
	waitFor(t, "Run to connect", func() bool { return d.Health().Connected })
	return stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func (r *rig) next(t *testing.T) Event {
	t.Helper()
	select {
	case e := <-r.events:
		return e
	case <-time.After(hangGuard):
		t.Fatal("no event")
		return Event{}
	}
}

// edge sets line to level at the clock's time and waits until the door
// has armed its debounce timer for it (due is the expected settle time).
func (r *rig) edge(t *testing.T, line *gpiosim.Line, level gpio.Level, due time.Time) {
	t.Helper()
	line.Set(level)
	if !r.clk.AwaitTimer(due, hangGuard) {
		t.Fatalf("no debounce timer due at %v after %s went %v; pending %v", due, line, level, r.clk.Pending())
	}
}

func expect(t *testing.T, got Event, in InputKind, active bool, at time.Time) {
	t.Helper()
	if got.Door != "gate-1" || got.Input != in || got.Active != active || !got.At.Equal(at) {
		t.Fatalf("event %+v, want %s active=%v at %v", got, in, active, at.Format("15:04:05.000"))
	}
}

func TestInitialStateReportedFireFirst(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil, func(r *rig) {
		r.fire.Set(gpio.Low)     // alarm already on
		r.contact.Set(gpio.High) // door already open
	})
	expect(t, r.next(t), Fire, true, t0)
	expect(t, r.next(t), Contact, true, t0)
	expect(t, r.next(t), Exit, false, t0)
	expect(t, r.next(t), Tamper, false, t0)
	for _, k := range []InputKind{Fire, Contact} {
		if a, f := r.d.Active(k); !a || !f {
			t.Errorf("Active(%s) = %v, %v", k, a, f)
		}
	}
	if r.contact.Pull() != gpio.PullDown || r.exit.Pull() != gpio.PullUp {
		t.Error("Run did not apply the pulls")
	}
}

func TestDebounceOverLines(t *testing.T) {
	t.Parallel()
	r := newRig(t, []InputKind{Contact}, nil)
	expect(t, r.next(t), Contact, false, t0)
	const D = DefaultDebounce

	// A 5 ms glitch: filtered.
	r.edge(t, r.contact, gpio.High, t0.Add(D))
	r.clk.Advance(5 * time.Millisecond)
	r.edge(t, r.contact, gpio.Low, t0.Add(5*time.Millisecond+D))
	r.clk.Advance(30 * time.Millisecond)

	// The door opens with two bounces: one event, at the first edge.
	t1 := r.clk.Now()
	r.edge(t, r.contact, gpio.High, t1.Add(D))
	r.clk.Advance(2 * time.Millisecond)
	r.edge(t, r.contact, gpio.Low, t1.Add(2*time.Millisecond+D))
	r.clk.Advance(time.Millisecond)
	r.edge(t, r.contact, gpio.High, t1.Add(3*time.Millisecond+D))
	r.clk.Advance(D - time.Millisecond)
	if a, _ := r.d.Active(Contact); a {
		t.Fatal("active before the level was stable")
	}
	r.clk.Advance(time.Millisecond)
	// The first event after the initial one is the opening: the glitch
	// produced none.
	expect(t, r.next(t), Contact, true, t1)
	if a, f := r.d.Active(Contact); !a || !f {
		t.Fatalf("Active = %v %v after the change", a, f)
	}
	if h := r.d.Health(); h.Errors[ErrKindBounce] != 4 || !h.LastSeen.Equal(t1.Add(3*time.Millisecond+D)) {
		t.Fatalf("health %+v: want 4 bounces (2 glitch edges, 2 extra) and last seen at the settle", h)
	}

	// Closing, clean.
	t2 := r.clk.Now()
	r.edge(t, r.contact, gpio.Low, t2.Add(D))
	r.clk.Advance(D)
	expect(t, r.next(t), Contact, false, t2)
}

func TestEdgeTimeIsTheLinesStamp(t *testing.T) {
	t.Parallel()
	r := newRig(t, []InputKind{Exit}, nil)
	expect(t, r.next(t), Exit, false, t0)
	// The line stamps the press 3 ms in the past (a kernel event read
	// late): the event carries the stamp and settles D after it.
	pressed := t0.Add(7 * time.Millisecond)
	r.clk.Advance(10 * time.Millisecond)
	r.exit.SetAt(gpio.Low, pressed)
	if !r.clk.AwaitTimer(pressed.Add(DefaultDebounce), hangGuard) {
		t.Fatalf("pending %v", r.clk.Pending())
	}
	r.clk.Advance(DefaultDebounce)
	expect(t, r.next(t), Exit, true, pressed)
}

// plainPin hides gpiosim's LastEdge, as periph's sysfs pins have none.
type plainPin struct{ gpio.PinIO }

func TestUnstampedPin(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New(t0)
	line := gpiosim.NewLine("exit", 2, clk.Now)
	line.Set(gpio.High)
	d, err := New(Config{Name: "gate-1", Relay: gpiosim.NewLine("relay", 0, nil), Clock: clk, Poll: 5 * time.Millisecond,
		Exit: &Input{Pin: plainPin{line}, ActiveLow: true, Pull: gpio.PullUp}})
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan Event, 8)
	startRun(t, d, func(e Event) { events <- e })
	<-events
	line.Set(gpio.Low)
	// Stamped by the door's clock when the watcher woke: t0.
	if !clk.AwaitTimer(t0.Add(DefaultDebounce), hangGuard) {
		t.Fatalf("pending %v", clk.Pending())
	}
	clk.Advance(DefaultDebounce)
	select {
	case e := <-events:
		if e.Input != Exit || !e.Active || !e.At.Equal(t0) {
			t.Fatalf("event %+v", e)
		}
	case <-time.After(hangGuard):
		t.Fatal("no event")
	}
}

func TestInputsNotFitted(t *testing.T) {
	t.Parallel()
	r := newRig(t, []InputKind{Fire}, nil)
	expect(t, r.next(t), Fire, false, t0)
	for _, k := range []InputKind{Contact, Exit, Tamper, 0, 9} {
		if a, f := r.d.Active(k); a || f {
			t.Errorf("Active(%s) = %v, fitted %v", k, a, f)
		}
	}
	if r.contact.Function() != "In" || r.contact.Pull() != gpio.PullNoChange {
		t.Error("Run touched an unfitted line")
	}
	// An unfitted line changing reports nothing: the next event is the
	// fire alarm.
	r.contact.Set(gpio.High)
	r.edge(t, r.fire, gpio.Low, t0.Add(30*time.Millisecond))
	r.clk.Advance(30 * time.Millisecond)
	expect(t, r.next(t), Fire, true, t0)
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// failingIn is an input pin whose In fails.
type failingIn struct{ gpio.PinIO }

func (failingIn) In(gpio.Pull, gpio.Edge) error { return errors.New("no such line") }

func TestRunInputError(t *testing.T) {
	t.Parallel()
	d, err := New(Config{Name: "gate-1", Relay: gpiosim.NewLine("relay", 0, nil),
		Tamper: &Input{Pin: failingIn{gpiosim.NewLine("tamper", 4, nil)}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Run(t.Context(), nil); err == nil || !strings.Contains(err.Error(), "no such line") {
		t.Fatalf("Run: %v", err)
	}
	if h := d.Health(); h.Connected || h.Errors["io"] != 1 {
		t.Fatalf("health %+v", h)
	}
}

// Not parallel: it counts goroutines.
func TestRunStopsCleanly(t *testing.T) {
	base := runtime.NumGoroutine()
	clk := fakeclock.New(t0)
	sim := doorsim.New(doorsim.Options{Now: clk.Now})
	d, err := New(Config{Name: "gate-1", Relay: sim.Relay, Clock: clk,
		Contact: &Input{Pin: sim.Contact}, Exit: &Input{Pin: sim.Exit}, Fire: &Input{Pin: sim.Fire}, Tamper: &Input{Pin: sim.Tamper}})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 { // Run again after it returned
		stop := startRun(t, d, nil)
		if err := d.Run(t.Context(), nil); !errors.Is(err, ErrRunning) {
			t.Fatalf("second concurrent Run: %v", err)
		}
		sim.PressExit() // a change left settling when Run ends
		if !clk.AwaitTimer(clk.Now().Add(DefaultDebounce), hangGuard) {
			t.Fatal("no debounce timer")
		}
		if err := stop(); err != nil {
			t.Fatalf("round %d: Run: %v", round, err)
		}
		if d.Health().Connected {
			t.Fatal("connected after Run returned")
		}
		if p := clk.Pending(); len(p) != 0 {
			t.Fatalf("timers left pending after Run: %v", p)
		}
		sim.ReleaseExit()
	}
	waitFor(t, "goroutines to settle", func() bool { return runtime.NumGoroutine() <= base })
}
