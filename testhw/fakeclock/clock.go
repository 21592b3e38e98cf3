// Package fakeclock is a manual clock for tests of time-driven code: a
// door's debounce and held-open timers, a gate's unlock pulse, an outbox's
// idempotency TTL, a reader's inter-character timeout. Time moves only when
// the test calls Advance or Set. It satisfies drivers/door.Clock (Now and
// AfterFunc returning a stop function) without importing it, and any
// option that takes a func() time.Time (pass Clock.Now).
package fakeclock

import (
	"slices"
	"sync"
	"time"
)

// Clock is a fake clock. The zero value is not usable; call New. Safe for
// concurrent use.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	seq     uint64
	changed chan struct{} // closed and replaced when a timer is added or removed
}

type fakeTimer struct {
	at  time.Time
	seq uint64 // ties broken in the order the timers were made
	f   func()
}

// New returns a clock reading start.
func New(start time.Time) *Clock {
	return &Clock{now: start, changed: make(chan struct{})}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc arranges for f to run once the clock has been advanced by d,
// and returns a function that cancels it (true if it was still pending).
// With d ≤ 0, f runs at once in its own goroutine, as time.AfterFunc does.
// Timers due during Advance run in Advance's goroutine, in due order.
func (c *Clock) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	if d <= 0 {
		go f()
		return func() bool { return false }
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &fakeTimer{at: c.now.Add(d), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	c.notify()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		i := slices.Index(c.timers, t)
		if i < 0 {
			return false
		}
		c.timers = slices.Delete(c.timers, i, i+1)
		c.notify()
		return true
	}
}

// notify wakes AwaitTimer callers; c.mu must be held.
func (c *Clock) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Advance moves the clock forward by d, running every timer that falls due
// on the way with the clock set to its due time, then leaves the clock at
// the old time plus d. Callbacks run without the clock's lock held, so they
// may use the clock.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	c.Set(end)
}

// Set moves the clock to t (never backwards), running due timers as
// Advance does.
func (c *Clock) Set(t time.Time) {
	for {
		c.mu.Lock()
		next := -1
		for i, tm := range c.timers {
			if tm.at.After(t) {
				continue
			}
			if next < 0 || tm.at.Before(c.timers[next].at) || (tm.at.Equal(c.timers[next].at) && tm.seq < c.timers[next].seq) {
				next = i
			}
		}
		if next < 0 {
			if t.After(c.now) {
				c.now = t
			}
			c.mu.Unlock()
			return
		}
		tm := c.timers[next]
		c.timers = slices.Delete(c.timers, next, next+1)
		if tm.at.After(c.now) {
			c.now = tm.at
		}
		c.notify()
		c.mu.Unlock()
		tm.f()
	}
}

// Pending returns the due times of the timers not yet run or stopped, in
// due order.
func (c *Clock) Pending() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	at := make([]time.Time, len(c.timers))
	for i, t := range c.timers {
		at[i] = t.at
	}
	slices.SortFunc(at, time.Time.Compare)
	return at
}

// AwaitTimer waits until a timer due at exactly at is pending, for up to
// limit of real time, and reports whether one is. Tests use it to know
// that the code under test has seen an event and armed its timer before
// they advance the clock; limit is a hang guard, not a speed requirement.
func (c *Clock) AwaitTimer(at time.Time, limit time.Duration) bool {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		found := slices.ContainsFunc(c.timers, func(t *fakeTimer) bool { return t.at.Equal(at) })
		changed := c.changed
		c.mu.Unlock()
		if found {
			return true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return false
		}
	}
}
