package gpioline

import (
	"errors"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
)

const testOffset = 17

var testTarget = target{
	Chip:   chipInfo{Name: "gpiochip0", Path: "/dev/gpiochip0", Label: "pinctrl-bcm2711", Lines: make([]string, 32)},
	Offset: testOffset,
	Name:   "WIEGAND_D0",
}

func newTestLine(t *testing.T) (*Line, *fakeIO, timebase) {
	t.Helper()
	io := newFakeIO()
	base := timebase{Wall: time.Now(), Mono: 7_000_000_000}
	opts, err := Options{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	l := newLine(testTarget, opts, io, base)
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l, io, base
}

func ev(ns uint64, rising bool, seq uint32) rawEvent {
	id := eventFallingEdge
	if rising {
		id = eventRisingEdge
	}
	return rawEvent{TimestampNs: ns, ID: id, Offset: testOffset, Seqno: seq, LineSeqno: seq}
}

// waitAsync runs WaitForEdge(timeout) and returns its result channel.
func waitAsync(l *Line, timeout time.Duration) <-chan bool {
	done := make(chan bool, 1)
	go func() { done <- l.WaitForEdge(timeout) }()
	return done
}

func result(t *testing.T, done <-chan bool) bool {
	t.Helper()
	select {
	case ok := <-done:
		return ok
	case <-time.After(10 * time.Second):
		t.Fatal("WaitForEdge did not return")
		return false
	}
}

func TestWaitForEdgeReportsKernelTimes(t *testing.T) {
	l, io, base := newTestLine(t)
	if err := l.In(gpio.PullUp, gpio.BothEdges); err != nil {
		t.Fatal(err)
	}
	// A 50 µs Wiegand pulse, then the next 2 ms later: all read at once
	// long after they happened, as a late watcher would.
	fall1, rise1, fall2 := uint64(7_000_100_000), uint64(7_000_150_000), uint64(7_002_100_000)
	io.push(ev(fall1, false, 1), ev(rise1, true, 2), ev(fall2, false, 3))

	want := []struct {
		level gpio.Level
		ns    uint64
	}{{gpio.Low, fall1}, {gpio.High, rise1}, {gpio.Low, fall2}}
	var times []time.Time
	for i, w := range want {
		if !l.WaitForEdge(0) {
			t.Fatalf("edge %d not reported", i)
		}
		lv, at := l.LastEdge()
		if lv != w.level || !at.Equal(base.at(w.ns)) {
			t.Errorf("edge %d: %s at %v; want %s at %v", i, lv, at, w.level, base.at(w.ns))
		}
		times = append(times, at)
	}
	if w := times[1].Sub(times[0]); w != 50*time.Microsecond {
		t.Errorf("pulse width %v, want 50µs exactly", w)
	}
	if g := times[2].Sub(times[0]); g != 2*time.Millisecond {
		t.Errorf("bit interval %v, want 2ms exactly", g)
	}
	if l.WaitForEdge(0) {
		t.Error("a fourth edge reported from three")
	}
	if s := l.Stats(); s.Edges != 3 || s.Dropped != 0 || s.Errors != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestWaitForEdgeBlocksUntilAnEdge(t *testing.T) {
	l, io, base := newTestLine(t)
	if err := l.In(gpio.PullUp, gpio.FallingEdge); err != nil {
		t.Fatal(err)
	}
	done := waitAsync(l, -1)
	<-io.blocked
	io.push(ev(7_000_000_500, false, 1))
	if !result(t, done) {
		t.Fatal("WaitForEdge returned false on an edge")
	}
	if lv, at := l.LastEdge(); lv != gpio.Low || !at.Equal(base.at(7_000_000_500)) {
		t.Errorf("LastEdge %s %v", lv, at)
	}
}

func TestWaitForEdgeCountsDropped(t *testing.T) {
	l, io, _ := newTestLine(t)
	if err := l.In(gpio.PullUp, gpio.BothEdges); err != nil {
		t.Fatal(err)
	}
	// The kernel's buffer overflowed twice: events 3-5 and 8 never came.
	io.push(ev(1, false, 1), ev(2, true, 2), ev(6, false, 6), ev(7, true, 7), ev(9, false, 9))
	for l.WaitForEdge(0) {
	}
	if s := l.Stats(); s.Edges != 5 || s.Dropped != 4 || s.Overflows != 2 {
		t.Errorf("stats %+v; want 5 edges, 4 dropped in 2 overflows", s)
	}
}

func TestWaitForEdgeSkipsMalformedEvents(t *testing.T) {
	l, io, _ := newTestLine(t)
	if err := l.In(gpio.PullUp, gpio.BothEdges); err != nil {
		t.Fatal(err)
	}
	other := ev(3, true, 2)
	other.Offset = 4
	io.push(rawEvent{TimestampNs: 1, ID: 9, Offset: testOffset, LineSeqno: 1}, other, ev(5, true, 3))
	if !l.WaitForEdge(0) {
		t.Fatal("the good event was not reported")
	}
	if lv, _ := l.LastEdge(); lv != gpio.High {
		t.Errorf("level %s", lv)
	}
	if s := l.Stats(); s.Errors != 2 || s.Edges != 1 || l.Err() == nil {
		t.Errorf("stats %+v, err %v; want 2 errors (unknown id, wrong offset), 1 edge", s, l.Err())
	}
}

func TestWaitForEdgeTimeout(t *testing.T) {
	l, _, _ := newTestLine(t)
	if err := l.In(gpio.PullUp, gpio.BothEdges); err != nil {
		t.Fatal(err)
	}
	if l.WaitForEdge(time.Millisecond) {
		t.Fatal("an edge from nowhere")
	}
	if s := l.Stats(); s.Errors != 0 {
		t.Errorf("a timeout counted as an error: %+v", s)
	}
}

func TestWaitForEdgeNeedsEdgeDetection(t *testing.T) {
	l, io, _ := newTestLine(t)
	io.push(ev(1, true, 1))
	if l.WaitForEdge(-1) {
		t.Error("reported an edge before In")
	}
	if err := l.In(gpio.PullUp, gpio.NoEdge); err != nil {
		t.Fatal(err)
	}
	if l.WaitForEdge(-1) {
		t.Error("reported an edge with NoEdge")
	}
}

func TestHaltReleasesWait(t *testing.T) {
	l, io, _ := newTestLine(t)
	if err := l.In(gpio.PullUp, gpio.BothEdges); err != nil {
		t.Fatal(err)
	}
	done := waitAsync(l, -1)
	<-io.blocked
	if err := l.Halt(); err != nil {
		t.Fatal(err)
	}
	if result(t, done) {
		t.Fatal("WaitForEdge returned true after Halt")
	}
	// Halt changes nothing else: the line still reports edges.
	io.push(ev(1, false, 1))
	if !l.WaitForEdge(-1) {
		t.Fatal("no edge after Halt")
	}
}

func TestInReleasesWaitAndDiscards(t *testing.T) {
	l, io, _ := newTestLine(t)
	if err := l.In(gpio.PullUp, gpio.BothEdges); err != nil {
		t.Fatal(err)
	}
	done := waitAsync(l, -1)
	<-io.blocked
	if err := l.In(gpio.PullDown, gpio.RisingEdge); err != nil {
		t.Fatal(err)
	}
	if result(t, done) {
		t.Fatal("WaitForEdge returned true after In")
	}
	// Events the kernel buffered under the old setup are flushed by In.
	io.push(ev(1, false, 1), ev(2, true, 2))
	if err := l.In(gpio.PullUp, gpio.BothEdges); err != nil {
		t.Fatal(err)
	}
	if l.WaitForEdge(0) {
		t.Error("an edge from before In was reported")
	}
	// Numbering restarts with edge detection: no false drops.
	io.push(ev(3, false, 1))
	if !l.WaitForEdge(0) {
		t.Error("the edge after In was not reported")
	}
	if s := l.Stats(); s.Discarded != 2 || s.Dropped != 0 || s.Edges != 1 {
		t.Errorf("stats %+v; want 2 discarded, none dropped, 1 edge", s)
	}
	if l.Pull() != gpio.PullUp {
		t.Errorf("Pull %s", l.Pull())
	}
}

func TestCloseReleasesWait(t *testing.T) {
	io := newFakeIO()
	l := newLine(testTarget, Options{}, io, timebase{})
	if err := l.In(gpio.PullUp, gpio.BothEdges); err != nil {
		t.Fatal(err)
	}
	done := waitAsync(l, -1)
	<-io.blocked
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if result(t, done) {
		t.Fatal("WaitForEdge returned true after Close")
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := l.In(gpio.PullUp, gpio.BothEdges); !errors.Is(err, ErrClosed) {
		t.Errorf("In after Close: %v", err)
	}
	if err := l.Out(gpio.High); !errors.Is(err, ErrClosed) {
		t.Errorf("Out after Close: %v", err)
	}
	if _, err := l.Level(); !errors.Is(err, ErrClosed) {
		t.Errorf("Level after Close: %v", err)
	}
	if l.WaitForEdge(-1) || l.Function() != "" || l.Halt() != nil {
		t.Error("a closed line still works")
	}
}

func TestReadErrorCounted(t *testing.T) {
	l, io, _ := newTestLine(t)
	if err := l.In(gpio.PullUp, gpio.BothEdges); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("EIO")
	io.mu.Lock()
	io.readErr = boom
	io.mu.Unlock()
	if l.WaitForEdge(-1) {
		t.Fatal("true on a read error")
	}
	if s := l.Stats(); s.Errors != 1 || !errors.Is(l.Err(), boom) {
		t.Errorf("stats %+v err %v", s, l.Err())
	}
}

func TestOut(t *testing.T) {
	l, io, _ := newTestLine(t)
	if err := l.In(gpio.PullUp, gpio.BothEdges); err != nil {
		t.Fatal(err)
	}
	if err := l.Out(gpio.High); err != nil {
		t.Fatal(err)
	}
	if err := l.Out(gpio.Low); err != nil {
		t.Fatal(err)
	}
	// One reconfiguration carries direction and level together; later
	// levels are plain value writes.
	if n := len(io.configs); n != 2 {
		t.Fatalf("%d configurations, want 2 (In, Out)", n)
	}
	if c := io.configs[1]; c.flags != flagOutput || c.attrs[0].attr.value != 1 {
		t.Errorf("Out(High) config %+v", c)
	}
	if len(io.values) != 1 || io.values[0] != gpio.Low {
		t.Errorf("values %v, want [Low]", io.values)
	}
	if l.Read() != gpio.Low || l.Function() != "Out/Low" || l.Pull() != gpio.PullNoChange {
		t.Errorf("Read %s Function %q Pull %s", l.Read(), l.Function(), l.Pull())
	}
	if l.WaitForEdge(0) {
		t.Error("an output reported an edge")
	}
	boom := errors.New("EIO")
	io.mu.Lock()
	io.ioErr = boom
	io.mu.Unlock()
	if err := l.Out(gpio.High); !errors.Is(err, boom) {
		t.Errorf("Out error: %v", err)
	}
	if lv, err := l.Level(); !errors.Is(err, boom) || lv != gpio.Low {
		t.Errorf("Level error: %s %v", lv, err)
	}
	if l.Read() != gpio.Low || l.Function() != "OUT" {
		t.Errorf("on errors: Read %s Function %q", l.Read(), l.Function())
	}
	if s := l.Stats(); s.Errors != 4 {
		t.Errorf("stats %+v; want 4 errors (Out, Level, Read, Function)", s)
	}
}

func TestInErrorKeepsSetup(t *testing.T) {
	l, io, _ := newTestLine(t)
	if err := l.In(gpio.PullUp, gpio.BothEdges); err != nil {
		t.Fatal(err)
	}
	io.ioErr = errors.New("EINVAL")
	if err := l.In(gpio.PullDown, gpio.NoEdge); err == nil {
		t.Fatal("no error")
	}
	if err := l.In(gpio.Pull(9), gpio.NoEdge); !errors.Is(err, ErrOptions) {
		t.Fatalf("bad pull: %v", err)
	}
	if l.Pull() != gpio.PullUp {
		t.Errorf("Pull %s after a failed In, want PullUp", l.Pull())
	}
	io.ioErr = nil
	io.level = gpio.High
	if f := l.Function(); f != "In/High" {
		t.Errorf("Function %q", f)
	}
}

func TestPinIdentity(t *testing.T) {
	l, _, _ := newTestLine(t)
	if l.Name() != "WIEGAND_D0" || l.Number() != testOffset || l.String() != "gpiochip0:17(WIEGAND_D0)" {
		t.Errorf("Name %q Number %d String %q", l.Name(), l.Number(), l.String())
	}
	if l.Spec() != (Spec{Chip: "gpiochip0", Line: 17}) || l.DefaultPull() != gpio.PullNoChange || l.Function() != "" {
		t.Errorf("Spec %v DefaultPull %s Function %q", l.Spec(), l.DefaultPull(), l.Function())
	}
	if err := l.PWM(gpio.DutyHalf, 0); !errors.Is(err, ErrPWM) {
		t.Errorf("PWM: %v", err)
	}
	unnamed := newLine(target{Chip: testTarget.Chip, Offset: 3}, Options{}, newFakeIO(), timebase{})
	if unnamed.Name() != "gpiochip0:3" || unnamed.String() != "gpiochip0:3" {
		t.Errorf("unnamed line: Name %q String %q", unnamed.Name(), unnamed.String())
	}
}

func TestHaltCutsErrorPause(t *testing.T) {
	l, io, _ := newTestLine(t)
	if err := l.In(gpio.PullUp, gpio.BothEdges); err != nil {
		t.Fatal(err)
	}
	// The read fails once the waiter is blocked; Halt then releases the
	// pause, or the pause ends by itself: either way WaitForEdge returns.
	done := waitAsync(l, -1)
	<-io.blocked
	io.mu.Lock()
	io.readErr = errors.New("ENODEV")
	io.signal()
	io.mu.Unlock()
	if err := l.Halt(); err != nil {
		t.Fatal(err)
	}
	if result(t, done) {
		t.Fatal("true on a read error")
	}
	if s := l.Stats(); s.Errors > 1 {
		t.Errorf("stats %+v", s)
	}
}
