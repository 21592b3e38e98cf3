package gpioline

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/pin"
)

// lineIO is the requested line as the operating system holds it: on
// Linux a GPIO v2 line request file descriptor (sys_linux.go); in tests a
// fake. The Line around it holds all the logic.
type lineIO interface {
	setConfig(c *lineConfig) error // GPIO_V2_LINE_SET_CONFIG_IOCTL
	value() (gpio.Level, error)    // GPIO_V2_LINE_GET_VALUES_IOCTL
	setValue(l gpio.Level) error   // GPIO_V2_LINE_SET_VALUES_IOCTL
	// setDeadline bounds read; zero means none; a past time releases a
	// read in progress with os.ErrDeadlineExceeded.
	setDeadline(t time.Time) error
	// read blocks until at least one event record is ready and reads
	// whole records into b.
	read(b []byte) (int, error)
	// drain reads the records already queued, without waiting; 0 when
	// there are none.
	drain(b []byte) (int, error)
	close() error
}

// Stats are a Line's counters since Open.
type Stats struct {
	Edges     uint64 // edge events read from the kernel and reported or queued
	Dropped   uint64 // events the kernel lost because its buffer was full (line_seqno gaps)
	Overflows uint64 // times a gap in line_seqno showed such a loss
	Discarded uint64 // events flushed by In or Out reconfiguring the line
	Errors    uint64 // failed reads and ioctls, and malformed events
}

type direction uint8

const (
	asIs direction = iota
	input
	output
)

// readBatch is how many events one read takes from the kernel at most.
const readBatch = 16

// Line is one requested GPIO line. It implements periph's gpio.PinIO and
// the Wiegand reader's EdgeStamper (LastEdge). Methods are safe for
// concurrent use, but WaitForEdge calls take turns: one waiter at a time.
type Line struct {
	target target
	opts   Options
	io     lineIO
	base   timebase

	wait sync.Mutex // held by the one WaitForEdge in progress
	buf  []byte     // WaitForEdge's read buffer, under wait

	mu      sync.Mutex
	closed  bool
	dir     direction
	pull    gpio.Pull
	edge    gpio.Edge
	gen     uint64        // bumped by Halt, In, Out and Close: releases waiters
	wake    chan struct{} // closed and replaced with every gen bump
	cfgGen  uint64        // bumped by In, Out and Close: events read across it are stale
	queue   []edgeAt
	last    edgeAt
	seq     seqTracker
	stats   Stats
	lastErr error
	scratch []rawEvent
}

// edgeAt is one edge, decoded and timed.
type edgeAt struct {
	level gpio.Level
	at    time.Time
}

func newLine(t target, opts Options, io lineIO, base timebase) *Line {
	return &Line{target: t, opts: opts, io: io, base: base, buf: make([]byte, readBatch*eventSize), wake: make(chan struct{})}
}

// bump releases waiters; l.mu must be held.
func (l *Line) bump() {
	l.gen++
	close(l.wake)
	l.wake = make(chan struct{})
}

// String returns the line's address and kernel name: "gpiochip0:17(DOOR_RELAY)".
func (l *Line) String() string { return l.target.String() }

// Name returns the line's kernel name, or its chip:offset address when
// the kernel gives it none.
func (l *Line) Name() string {
	if l.target.Name == "" {
		return l.target.addr()
	}
	return l.target.Name
}

// Number returns the line's offset on its chip (not a board pin number).
func (l *Line) Number() int { return l.target.Offset }

// Spec returns the line's canonical address: chip name and offset.
func (l *Line) Spec() Spec { return Spec{Chip: l.target.Chip.Name, Line: l.target.Offset} }

// Function returns "In/High", "In/Low", "Out/High" or "Out/Low" after In
// or Out, reading the level; "IN" or "OUT" (periph's names) if that read
// fails; "" before the line was configured or after Close.
//
// Deprecated: periph's pin.Pin requires it; use Level and Stats.
func (l *Line) Function() string {
	l.mu.Lock()
	dir, closed := l.dir, l.closed
	l.mu.Unlock()
	if closed || dir == asIs {
		return string(pin.FuncNone)
	}
	lv, err := l.Level()
	switch {
	case dir == input && err != nil:
		return string(gpio.IN)
	case dir == input && bool(lv):
		return string(gpio.IN_HIGH)
	case dir == input:
		return string(gpio.IN_LOW)
	case err != nil:
		return string(gpio.OUT)
	case bool(lv):
		return string(gpio.OUT_HIGH)
	}
	return string(gpio.OUT_LOW)
}

// In makes the line an input with the given bias and edge detection (and
// Options.Debounce). It discards edges not yet reported and makes a
// WaitForEdge in progress return false. On error, which wraps ErrClosed,
// ErrOptions or the kernel's error, the line keeps its previous setup.
func (l *Line) In(pull gpio.Pull, edge gpio.Edge) error {
	c, err := inputConfig(pull, edge, l.opts.Debounce)
	if err != nil {
		return fmt.Errorf("%s: %w", l, err)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return fmt.Errorf("%s: %w", l, ErrClosed)
	}
	if err := l.io.setConfig(&c); err != nil {
		l.failed(err)
		l.mu.Unlock()
		return fmt.Errorf("gpioline: %s: set input (pull %s, edge %s): %w", l, pull, edge, err)
	}
	l.dir, l.pull, l.edge = input, pull, edge
	l.reconfigured()
	l.mu.Unlock()
	l.release()
	return nil
}

// Out makes the line an output driving level l; the direction and the
// level are set in one step, so an input becoming an output never drives
// the other level first. It discards edges not yet reported and makes a
// WaitForEdge in progress return false. Errors wrap ErrClosed or the
// kernel's error.
func (l *Line) Out(level gpio.Level) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return fmt.Errorf("%s: %w", l, ErrClosed)
	}
	if l.dir == output {
		err := l.io.setValue(level)
		if err != nil {
			l.failed(err)
		}
		l.mu.Unlock()
		if err != nil {
			return fmt.Errorf("gpioline: %s: set %s: %w", l, level, err)
		}
		return nil
	}
	c := outputConfig(level)
	if err := l.io.setConfig(&c); err != nil {
		l.failed(err)
		l.mu.Unlock()
		return fmt.Errorf("gpioline: %s: set output %s: %w", l, level, err)
	}
	l.dir, l.pull, l.edge = output, gpio.PullNoChange, gpio.NoEdge
	l.reconfigured()
	l.mu.Unlock()
	l.release()
	return nil
}

// reconfigured forgets the edges of the previous setup, in the queue and
// in the kernel's buffer; l.mu must be held.
func (l *Line) reconfigured() {
	l.bump()
	l.cfgGen++
	l.stats.Discarded += uint64(len(l.queue))
	l.queue = l.queue[:0]
	var buf [readBatch * eventSize]byte
	for {
		n, err := l.io.drain(buf[:])
		if err != nil {
			l.failed(err)
		}
		if n <= 0 || err != nil {
			break
		}
		l.stats.Discarded += uint64(n / eventSize)
	}
	l.seq.reset()
}

// release makes a WaitForEdge in progress return.
func (l *Line) release() {
	if err := l.io.setDeadline(time.Unix(1, 0)); err != nil && !errors.Is(err, os.ErrClosed) {
		l.mu.Lock()
		l.failed(err)
		l.mu.Unlock()
	}
}

// failed counts err; l.mu must be held.
func (l *Line) failed(err error) {
	l.stats.Errors++
	l.lastErr = err
}

// Read returns the line's level: the level it drives as an output, the
// level it sees otherwise. periph's interface has no error: on failure
// (or after Close) Read returns Low, counts the error in Stats and keeps
// it for Err; Level returns it instead.
func (l *Line) Read() gpio.Level {
	lv, _ := l.Level() // the error is counted and kept for Err
	return lv
}

// Level is Read with its error, which wraps ErrClosed or the kernel's.
func (l *Line) Level() (gpio.Level, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return gpio.Low, fmt.Errorf("%s: %w", l, ErrClosed)
	}
	lv, err := l.io.value()
	if err != nil {
		l.failed(err)
		return gpio.Low, fmt.Errorf("gpioline: %s: read: %w", l, err)
	}
	return lv, nil
}

// WaitForEdge waits up to timeout (negative: forever) for an edge of the
// kind In asked for, and reports it: true with the edge's level and time
// then given by LastEdge. Edges queue in the kernel (Options.EventBuffer)
// and are reported one per call, oldest first, so none is missed between
// calls unless the buffer overflows (Stats.Dropped). It returns false on
// timeout; when Halt, In, Out or Close is called while it waits; at once
// when the line is not an input with edge detection or is closed; and on
// a read error (counted in Stats, kept for Err), after a pause of up to
// 100 ms (cut short by the timeout or a Halt) so that a caller's loop
// does not spin on a descriptor that keeps failing.
func (l *Line) WaitForEdge(timeout time.Duration) bool {
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	l.wait.Lock()
	defer l.wait.Unlock()
	l.mu.Lock()
	if l.closed || l.dir != input || l.edge == gpio.NoEdge {
		l.mu.Unlock()
		return false
	}
	if l.pop() {
		l.mu.Unlock()
		return true
	}
	gen, cfgGen := l.gen, l.cfgGen
	l.mu.Unlock()
	for {
		// The deadline is set before gen is checked, and Halt bumps gen
		// before setting a past deadline: whichever comes first, a Halt
		// after this call began is seen.
		derr := l.io.setDeadline(deadline)
		l.mu.Lock()
		if l.gen != gen {
			l.mu.Unlock()
			return false
		}
		if derr != nil {
			l.failed(derr)
			l.mu.Unlock()
			return false
		}
		l.mu.Unlock()

		n, err := l.io.read(l.buf)

		l.mu.Lock()
		if l.cfgGen != cfgGen {
			l.stats.Discarded += uint64(n / eventSize)
			l.mu.Unlock()
			return false
		}
		if err == nil {
			l.accept(l.buf[:n])
		} else if !errors.Is(err, os.ErrDeadlineExceeded) && l.gen == gen {
			// A descriptor that keeps failing (its chip unbound) would
			// make a caller's WaitForEdge loop spin: pause as a silent
			// line would, until the timeout or a Halt.
			l.failed(err)
			wake := l.wake
			l.mu.Unlock()
			pause(deadline, wake)
			return false
		}
		if l.gen != gen || err != nil {
			l.mu.Unlock()
			return false // Halted or timed out: what was read stays queued
		}
		ok := l.pop()
		l.mu.Unlock()
		if ok {
			return true
		}
		// Only malformed events: wait on.
	}
}

// errorPause bounds the pause after a failed read.
const errorPause = 100 * time.Millisecond

// pause waits errorPause, or until deadline (if set) or wake, whichever
// comes first.
func pause(deadline time.Time, wake <-chan struct{}) {
	d := errorPause
	if !deadline.IsZero() {
		d = min(d, time.Until(deadline))
	}
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-wake:
	}
}

// pop reports the oldest queued edge; l.mu must be held.
func (l *Line) pop() bool {
	if len(l.queue) == 0 {
		return false
	}
	l.last = l.queue[0]
	l.queue = append(l.queue[:0], l.queue[1:]...)
	return true
}

// accept decodes and queues events read from the kernel; l.mu must be held.
func (l *Line) accept(b []byte) {
	evs, err := decodeEvents(l.scratch[:0], b)
	l.scratch = evs
	if err != nil {
		l.failed(err)
		return
	}
	for _, ev := range evs {
		lv, err := ev.level()
		if err == nil && int(ev.Offset) != l.target.Offset {
			err = fmt.Errorf("gpioline: event for line offset %d on a request for %d", ev.Offset, l.target.Offset)
		}
		if err != nil {
			l.failed(err)
			continue
		}
		if d := l.seq.next(ev.LineSeqno); d > 0 {
			l.stats.Dropped += uint64(d)
			l.stats.Overflows++
		}
		l.stats.Edges++
		l.queue = append(l.queue, edgeAt{level: lv, at: l.base.at(ev.TimestampNs)})
	}
}

// LastEdge returns the level after, and the time of, the edge the last
// successful WaitForEdge reported (Low and the zero time before the
// first). The time is the kernel's timestamp of the interrupt, on Go's
// monotonic clock: subtract two of them for a pulse width, or compare one
// with time.Now(). See doc.go, "Edge timestamps".
func (l *Line) LastEdge() (gpio.Level, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last.level, l.last.at
}

// Pull returns the bias the last In asked for; PullNoChange before In and
// for an output.
func (l *Line) Pull() gpio.Pull {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pull
}

// DefaultPull returns PullNoChange: the character device cannot tell
// the bias a line has at reset.
func (l *Line) DefaultPull() gpio.Pull { return gpio.PullNoChange }

// PWM returns ErrPWM: the GPIO character device has no PWM.
func (l *Line) PWM(gpio.Duty, physic.Frequency) error {
	return fmt.Errorf("%s: %w", l, ErrPWM)
}

// Halt makes a WaitForEdge in progress return false. It changes nothing
// on the line: an output keeps driving its level (the safe state of a
// relay is its driver's business), queued edges stay queued. It returns
// nil, or the error releasing the wait.
func (l *Line) Halt() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.bump()
	l.mu.Unlock()
	if err := l.io.setDeadline(time.Unix(1, 0)); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("gpioline: %s: halt: %w", l, err)
	}
	return nil
}

// Close releases the line to the kernel and makes a WaitForEdge in
// progress return false. What an output line does once released depends
// on the chip driver (most keep the last level): put it in its safe state
// with Out before closing. Close is idempotent; it returns the error of
// the first close only.
func (l *Line) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.bump()
	l.cfgGen++
	l.dir = asIs
	l.mu.Unlock()
	if err := l.io.close(); err != nil {
		return fmt.Errorf("gpioline: %s: close: %w", l, err)
	}
	return nil
}

// Stats returns the line's counters.
func (l *Line) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// Err returns the last error counted in Stats.Errors, nil if none.
func (l *Line) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastErr
}

var (
	_ gpio.PinIO = (*Line)(nil)
	_ interface {
		LastEdge() (gpio.Level, time.Time)
	} = (*Line)(nil)
)
