package gate_test

import (
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/testhw/doorsim"
	"github.com/kioskedge/kioskedge/testhw/fakeclock"
)

// twoDoors: a fail-safe maglock with the fire alarm input, and a
// fail-secure strike on an active-low relay without one.
const twoDoors = `
[[door]]
id = "east"
groups = ["north"]
lock = "fail_safe"
relay = "sim:east-relay"
contact = "sim:east-contact"
fire = "sim:east-fire"

[[door]]
id = "west"
groups = ["north"]
lock = "fail_secure"
relay = "sim:west-relay"
relay_active_low = true
contact = "sim:west-contact"
`

// fireLimit is the bound from the fire input to every door
// released.
const fireLimit = 100 * time.Millisecond

// TestFireReleasesEveryDoorWithin100ms is the third criterion, on
// simulated time: the fire input of one door releases both doors (one
// fail-safe, one fail-secure) no later than 100 ms after the line went
// active, as the relay lines' edge times show; the release holds across
// an agent restart with the input still active (released again within
// 100 ms of the new agent's start, on the same data dir and hardware);
// clearing the input secures both doors again.
func TestFireReleasesEveryDoorWithin100ms(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New(time.Now().Truncate(time.Millisecond))
	a := newAgent(t, deadBrokerURL(t), "gate-fire", `debounce = "20ms"`, twoDoors, clk)
	east, west := a.hw.Door("east"), a.hw.Door("west")
	type relay struct {
		name               string
		d                  *doorsim.Door
		failSafe, activeLo bool
	}
	doors := []relay{{"east", east, true, false}, {"west", west, false, true}}
	locked := func() bool { return east.Locked() && west.Locked() }
	released := func() bool { return !east.Locked() && !west.Locked() }
	// checkReleased: every relay edge since skip[i] is at or after from and
	// no later than fireLimit after it, and the last one left the door
	// released.
	checkReleased := func(what string, skip []int, from time.Time) {
		t.Helper()
		for i, r := range doors {
			edges := r.d.Relay.Edges()[skip[i]:]
			if len(edges) == 0 {
				if r.d.Locked() {
					t.Fatalf("%s: door %s: the relay did not move and the door is locked", what, r.name)
				}
				t.Logf("%s: door %s stayed released (its relay never moved)", what, r.name)
				continue
			}
			for _, e := range edges {
				if e.Time.Before(from) || e.Time.Sub(from) > fireLimit {
					t.Errorf("%s: door %s: relay edge at %v after the input, want within %v", what, r.name, e.Time.Sub(from), fireLimit)
				}
			}
			t.Logf("%s: door %s released %v after, relay edges %d (releases %d)", what, r.name,
				edges[len(edges)-1].Time.Sub(from), len(edges), releaseEdges(r.d, r.failSafe, r.activeLo, skip[i]))
		}
	}
	marks := func() []int { return []int{len(east.Relay.Edges()), len(west.Relay.Edges())} }

	a.start(t)
	a.waitInput(t, "sim:east-fire", 1)
	waitUntil(t, "both doors secured at start", locked)

	// The alarm goes off.
	skip, t0 := marks(), clk.Now()
	east.SetFire(true)
	if !clk.AwaitTimer(t0.Add(20*time.Millisecond), 15*time.Second) {
		t.Fatal("the fire input's debounce timer was not armed")
	}
	clk.Set(t0.Add(20 * time.Millisecond)) // the debounce time
	if !waitFor(5*time.Second, released) {
		clk.Set(t0.Add(fireLimit)) // no further: the doors must be released by then
	}
	waitUntil(t, "both doors released by the fire alarm", released)
	checkReleased("fire", skip, t0)

	// kioskd restarts while the alarm is still on.
	a.stop(t)
	clk.Advance(2 * time.Second) // down for a while
	skip, t1 := marks(), clk.Now()
	a.start(t)
	waitUntil(t, "both doors released again after the restart", released)
	checkReleased("restart", skip, t1)
	if n := len(east.Relay.Edges()) - skip[0]; n != 0 {
		// The halted agent left the maglock released; gate.Open reads the
		// fire input and keeps it so: an escape route never relocks, not
		// even for the moment between Open and the input's first report.
		t.Errorf("the fail-safe door's relay moved %d times at the restart during a fire, want 0", n)
	}
	// The doors were released by gate.Open; the gate takes them over when
	// the fire input's first report arrives.
	waitUntil(t, "the gate holding every door released after the restart", func() bool {
		for _, s := range a.gate.Gate.Status() {
			if !s.Released {
				return false
			}
		}
		return true
	})
	if !released() {
		t.Fatal("a door locked while the gate took over after the restart")
	}

	// The alarm clears: both doors are secured again.
	t2 := clk.Now()
	east.SetFire(false)
	if !clk.AwaitTimer(t2.Add(20*time.Millisecond), 15*time.Second) {
		t.Fatal("the fire input's debounce timer was not armed for the clear")
	}
	clk.Set(t2.Add(fireLimit))
	waitUntil(t, "both doors secured after the alarm cleared", locked)
}

// waitFor polls cond for up to limit of real time and reports whether it
// held.
func waitFor(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}
