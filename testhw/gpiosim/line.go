package gpiosim

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
)

// ErrPWM is returned by Line.PWM: simulated lines have no PWM.
var ErrPWM = errors.New("gpiosim: PWM not supported")

// maxQueued bounds the edges waiting for WaitForEdge; past it the oldest
// are dropped and counted (Dropped), as a kernel event buffer would.
const maxQueued = 4096

// maxLog bounds the edge log; past it the older half is discarded.
const maxLog = 1 << 16

// Edge is one level change of a line.
type Edge struct {
	Level gpio.Level // the level after the change: Low for a falling edge
	Time  time.Time  // when it happened
}

// Line is a simulated GPIO line. The zero value is not usable; call NewLine.
// All methods are safe for concurrent use.
type Line struct {
	name string
	num  int
	now  func() time.Time

	mu      sync.Mutex
	level   gpio.Level
	driven  bool // the test side or Out has set the level
	output  bool
	pull    gpio.Pull
	detect  gpio.Edge
	queue   []Edge
	dropped uint64
	log     []Edge
	last    Edge          // the edge WaitForEdge returned last
	gen     uint64        // bumped by In and Halt, to release waiters
	wake    chan struct{} // closed and replaced on every change
}

// NewLine returns an undriven input line with no pull, reading Low. now is
// the clock that timestamps Set; nil means time.Now.
func NewLine(name string, number int, now func() time.Time) *Line {
	if now == nil {
		now = time.Now
	}
	return &Line{name: name, num: number, now: now, wake: make(chan struct{})}
}

// String returns the line's name and number.
func (l *Line) String() string { return fmt.Sprintf("%s(%d)", l.name, l.num) }

// Name returns the line's name.
func (l *Line) Name() string { return l.name }

// Number returns the line's number.
func (l *Line) Number() int { return l.num }

// Function returns "In" or "Out".
func (l *Line) Function() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.output {
		return "Out"
	}
	return "In"
}

// Halt releases any WaitForEdge in progress and drops queued edges.
func (l *Line) Halt() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.queue = nil
	l.release()
	return nil
}

// In makes the line an input with the given pull and edge detection. An
// undriven line then reads High with PullUp and Low otherwise. Queued edges
// are discarded and a WaitForEdge in progress returns false.
func (l *Line) In(pull gpio.Pull, edge gpio.Edge) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.output = false
	if pull != gpio.PullNoChange {
		l.pull = pull
	}
	l.detect = edge
	if !l.driven {
		l.level = l.pull == gpio.PullUp
	}
	l.queue = nil
	l.release()
	return nil
}

// release makes every waiter return false; l.mu must be held.
func (l *Line) release() {
	l.gen++
	l.signal()
}

// signal wakes every waiter; l.mu must be held.
func (l *Line) signal() {
	close(l.wake)
	l.wake = make(chan struct{})
}

// Read returns the line's level.
func (l *Line) Read() gpio.Level {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.level
}

// WaitForEdge returns true with the oldest queued edge consumed (its time
// is then LastEdge), waiting up to timeout (negative: forever) for one. It
// returns false on timeout, or when In or Halt is called while it waits.
func (l *Line) WaitForEdge(timeout time.Duration) bool {
	var timer <-chan time.Time
	if timeout >= 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	l.mu.Lock()
	gen := l.gen
	for {
		if len(l.queue) > 0 {
			l.last = l.queue[0]
			l.queue = l.queue[1:]
			l.mu.Unlock()
			return true
		}
		wake := l.wake
		l.mu.Unlock()
		select {
		case <-wake:
		case <-timer:
			return false
		}
		l.mu.Lock()
		if l.gen != gen {
			l.mu.Unlock()
			return false
		}
	}
}

// LastEdge returns the edge WaitForEdge consumed last: its level and the
// time it happened (zero before the first).
func (l *Line) LastEdge() (gpio.Level, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last.Level, l.last.Time
}

// LastEdgeTime returns the time of the edge WaitForEdge consumed last.
func (l *Line) LastEdgeTime() time.Time {
	_, t := l.LastEdge()
	return t
}

// Pull returns the pull set by In.
func (l *Line) Pull() gpio.Pull {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pull
}

// DefaultPull returns PullNoChange: a simulated line has no reset state.
func (l *Line) DefaultPull() gpio.Pull { return gpio.PullNoChange }

// Out makes the line an output driving level. The change is logged but not
// queued for WaitForEdge.
func (l *Line) Out(level gpio.Level) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.output = true
	l.change(level, l.now())
	return nil
}

// PWM returns ErrPWM.
func (l *Line) PWM(gpio.Duty, physic.Frequency) error { return ErrPWM }

// Set drives the line to level from the test side, timestamped with the
// line's clock. Setting the current level does nothing.
func (l *Line) Set(level gpio.Level) { l.SetAt(level, time.Time{}) }

// SetAt is Set with an explicit timestamp (zero: the line's clock), for
// edges whose time the caller scheduled.
func (l *Line) SetAt(level gpio.Level, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if at.IsZero() {
		at = l.now()
	}
	l.change(level, at)
}

// change applies a level change; l.mu must be held.
func (l *Line) change(level gpio.Level, at time.Time) {
	l.driven = true
	if level == l.level {
		return
	}
	l.level = level
	e := Edge{Level: level, Time: at}
	if len(l.log) >= maxLog {
		l.log = append(l.log[:0], l.log[maxLog/2:]...)
	}
	l.log = append(l.log, e)
	if l.output || !l.selects(level) {
		return
	}
	if len(l.queue) >= maxQueued {
		l.queue = l.queue[1:]
		l.dropped++
	}
	l.queue = append(l.queue, e)
	l.signal()
}

// selects reports whether edge detection takes a change to level.
func (l *Line) selects(level gpio.Level) bool {
	switch l.detect {
	case gpio.BothEdges:
		return true
	case gpio.RisingEdge:
		return level == gpio.High
	case gpio.FallingEdge:
		return level == gpio.Low
	}
	return false
}

// Edges returns a copy of the edge log (the most recent edges, at least
// 32768 of them).
func (l *Line) Edges() []Edge {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Edge(nil), l.log...)
}

// Dropped returns how many queued edges were discarded because nobody
// waited for them.
func (l *Line) Dropped() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped
}
