package doorsim

import (
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/kioskedge/kioskedge/testhw/fakeclock"
)

var t0 = time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)

func TestLockFollowsRelayAndFailMode(t *testing.T) {
	t.Parallel()
	const H, L = gpio.High, gpio.Low
	// firmware-specs/door.md §2: the level that energises the relay, and
	// whether the lock holds while energised.
	for _, tc := range []struct {
		failSafe, activeLow bool
		lockedAt            gpio.Level // the relay level at which the lock holds
	}{
		{false, false, L}, // strike, active-high: locked de-energised (Low)
		{true, false, H},  // maglock, active-high: locked energised (High)
		{false, true, H},  // strike, active-low: de-energised is High
		{true, true, L},   // maglock, active-low: energised is Low
	} {
		d := New(Options{FailSafe: tc.failSafe, RelayActiveLow: tc.activeLow})
		for _, lv := range []gpio.Level{H, L, H} {
			if err := d.Relay.Out(lv); err != nil {
				t.Fatal(err)
			}
			if got := d.Locked(); got != (lv == tc.lockedAt) {
				t.Errorf("failSafe %v activeLow %v relay %v: Locked %v", tc.failSafe, tc.activeLow, lv, got)
			}
			if d.Energised() != (lv == gpio.Level(!tc.activeLow)) {
				t.Errorf("failSafe %v activeLow %v relay %v: Energised %v", tc.failSafe, tc.activeLow, lv, d.Energised())
			}
		}
	}
}

func TestPushForceClose(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New(t0)
	d := New(Options{ContactActiveLow: true, Now: clk.Now}) // strike: locked while the relay is Low
	if err := d.Relay.Out(gpio.Low); err != nil {
		t.Fatal(err)
	}
	if d.Contact.Read() != gpio.High || d.Open() {
		t.Fatal("a new door is not closed (active-low contact idles High)")
	}
	if d.Push() || d.Open() || len(d.Contact.Edges()) != 1 {
		t.Fatal("push on a locked door opened it or moved the contact")
	}
	clk.Advance(time.Second)
	if !d.Force() || !d.Open() || d.Contact.Read() != gpio.Low {
		t.Fatal("force did not open the locked door, or did not say it was locked")
	}
	if e := d.Contact.Edges(); !e[len(e)-1].Time.Equal(t0.Add(time.Second)) {
		t.Fatalf("contact edge at %v", e[len(e)-1].Time)
	}
	d.Close()
	if d.Open() {
		t.Fatal("close left it open")
	}
	if err := d.Relay.Out(gpio.High); err != nil { // release the strike
		t.Fatal(err)
	}
	if d.Locked() || !d.Push() || !d.Open() {
		t.Fatal("push on a released door did not open it")
	}
	if d.Force() {
		t.Fatal("force on a released door reported it locked")
	}
	// Locking an open door does not close it.
	if err := d.Relay.Out(gpio.Low); err != nil {
		t.Fatal(err)
	}
	if !d.Open() || !d.Locked() {
		t.Fatal("securing an open door closed it")
	}
	if rel := d.RelayEdges(); len(rel) != 2 || !rel[0].Equal(t0.Add(time.Second)) {
		t.Fatalf("relay edges %v (Low at start is no edge)", rel)
	}
}

func TestInputsAndBounce(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New(t0)
	d := New(Options{ExitActiveLow: true, FireActiveLow: true, Bounces: 2, BounceGap: 2 * time.Millisecond, Now: clk.Now})
	if d.Exit.Read() != gpio.High || d.Fire.Read() != gpio.High || d.Tamper.Read() != gpio.Low {
		t.Fatal("inputs not at their inactive levels")
	}
	clk.Advance(time.Second)
	d.PressExit()
	e := d.Exit.Edges()
	// Idle High set at New, then Low, High, Low, High, Low 2 ms apart,
	// the last one now.
	now := clk.Now()
	if d.BounceSpan() != 8*time.Millisecond || len(e) != 1+5 || e[len(e)-1].Level != gpio.Low ||
		!e[1].Time.Equal(now.Add(-8*time.Millisecond)) || !e[5].Time.Equal(now) {
		t.Fatalf("exit edges %v", e)
	}
	d.PressExit() // already pressed: nothing
	if len(d.Exit.Edges()) != 6 {
		t.Fatal("pressing a pressed button moved the line")
	}
	d.ReleaseExit()
	if d.Exit.Read() != gpio.High {
		t.Fatal("exit not released")
	}
	d.SetFire(true)
	d.SetTamper(true)
	if d.Fire.Read() != gpio.Low || d.Tamper.Read() != gpio.High {
		t.Fatal("fire or tamper not active")
	}
	if n := len(d.Fire.Edges()); n != 2 { // no bounce on the alarm inputs
		t.Fatalf("fire edges %d", n)
	}
	d.SetFire(false)
	if d.Fire.Read() != gpio.High {
		t.Fatal("fire not cleared")
	}
}
