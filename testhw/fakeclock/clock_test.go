package fakeclock

import (
	"slices"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)

func TestClockTimers(t *testing.T) {
	t.Parallel()
	c := New(t0)
	var mu sync.Mutex
	var fired []string
	var at []time.Time
	add := func(name string, d time.Duration) func() bool {
		return c.AfterFunc(d, func() {
			mu.Lock()
			defer mu.Unlock()
			fired = append(fired, name)
			at = append(at, c.Now())
		})
	}
	add("b", 20*time.Millisecond)
	add("a", 10*time.Millisecond)
	stopC := add("c", 15*time.Millisecond)
	add("d", 20*time.Millisecond)
	if p := c.Pending(); len(p) != 4 || !p[0].Equal(t0.Add(10*time.Millisecond)) {
		t.Fatalf("pending %v", p)
	}
	if !stopC() || stopC() {
		t.Fatal("stop: want true once, then false")
	}
	c.Advance(9 * time.Millisecond)
	if len(fired) != 0 {
		t.Fatal("fired early")
	}
	c.Advance(time.Second)
	if !slices.Equal(fired, []string{"a", "b", "d"}) {
		t.Fatalf("fired %v, want a b d", fired)
	}
	if !at[0].Equal(t0.Add(10*time.Millisecond)) || !at[1].Equal(t0.Add(20*time.Millisecond)) {
		t.Fatalf("callbacks saw %v", at)
	}
	if !c.Now().Equal(t0.Add(time.Second + 9*time.Millisecond)) {
		t.Fatalf("now %v", c.Now())
	}
	// A callback that arms a timer already due runs in the same Advance.
	c.AfterFunc(time.Millisecond, func() { add("e", time.Millisecond) })
	c.Advance(5 * time.Millisecond)
	if fired[len(fired)-1] != "e" || len(c.Pending()) != 0 {
		t.Fatalf("fired %v pending %v", fired, c.Pending())
	}
	done := make(chan struct{})
	c.AfterFunc(0, func() { close(done) })
	<-done // d ≤ 0 runs at once, without Advance
}

func TestAwaitTimer(t *testing.T) {
	t.Parallel()
	c := New(t0)
	due := t0.Add(20 * time.Millisecond)
	if c.AwaitTimer(due, time.Millisecond) {
		t.Fatal("found a timer that was never armed")
	}
	go c.AfterFunc(20*time.Millisecond, func() {})
	if !c.AwaitTimer(due, 10*time.Second) {
		t.Fatal("did not see the timer armed by another goroutine")
	}
}
