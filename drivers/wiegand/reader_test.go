package wiegand

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/testhw/gpiosim"
	"periph.io/x/conn/v3/gpio"
)

// Fast but real timing: 50 µs pulses 1 ms apart, the default 25 ms gap
// (the transmitter is a goroutine: a shorter gap would split frames when
// the test machine stalls it). A test whose frames end by the gap timer
// uses stallGap: on a loaded 2-core machine under -race the transmitter or
// a watcher can stall past 25 ms, and the timer then splits the frame.
const (
	testPulse    = 50 * time.Microsecond
	testInterval = time.Millisecond
	testGap      = DefaultGap
	stallGap     = 250 * time.Millisecond
)

// plainPin hides gpiosim's LastEdge, so the Reader sees a pin without
// edge timestamps, as periph's real pins are.
type plainPin struct{ gpio.PinIn }

type harness struct {
	d0, d1 *gpiosim.Line
	r      *Reader
	frames chan received
	stop   func()
}

type received struct {
	f  Frame
	at time.Time // when OnFrame was called
}

// startReader runs a Reader on two simulated lines; cfg's Reader and Poll
// are set, and its Gap when zero (to testGap).
func startReader(t *testing.T, cfg ReaderConfig) *harness {
	t.Helper()
	h := &harness{d0: gpiosim.NewLine("D0", 0, nil), d1: gpiosim.NewLine("D1", 1, nil), frames: make(chan received, 16)}
	cfg.Reader, cfg.Poll = "gate-1-in", 10*time.Millisecond
	if cfg.Gap == 0 {
		cfg.Gap = testGap
	}
	cfg.OnFrame = func(f Frame) { h.frames <- received{f, time.Now()} }
	r, err := NewReader(h.d0, h.d1, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.r = r
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := r.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	h.stop = func() { cancel(); wg.Wait() }
	t.Cleanup(h.stop)
	// Run sets the pins up; wait until it has (In makes them read High).
	for h.d0.Read() != gpio.High || h.d1.Read() != gpio.High || !r.Health().Connected {
		time.Sleep(time.Millisecond)
	}
	return h
}

func (h *harness) send(t *testing.T, bits []bool, o gpiosim.TxOptions) Frame {
	t.Helper()
	gpiosim.Transmit(h.d0, h.d1, bits, testPulse, testInterval, o)
	return h.next(t).f
}

func (h *harness) next(t *testing.T) received {
	t.Helper()
	select {
	case r := <-h.frames:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no frame within 5 s of the transmission")
		return received{}
	}
}

func TestReaderOverSimulatedLines(t *testing.T) {
	t.Parallel()
	h := startReader(t, ReaderConfig{Config: Config{Gap: stallGap}})
	r := rand.New(rand.NewPCG(1, 9))

	f := h.send(t, gpiosim.H10301(123, 4567), gpiosim.TxOptions{})
	if c, ok := f.Credential(); !ok || c.Number != "123-04567" || c.Reader != "gate-1-in" {
		t.Fatalf("clean H10301: %v %v", f, ok)
	}
	f = h.send(t, gpiosim.H10304(1234, 345678), gpiosim.TxOptions{Glitches: 4, Jitter: 100 * time.Microsecond, Rand: r})
	if c, ok := f.Credential(); !ok || c.Number != "01234-345678" || f.Glitches != 4 {
		t.Fatalf("glitched H10304: %v, %d glitches", f, f.Glitches)
	}
	bits := gpiosim.H10301(9, 99)
	bits[5] = !bits[5]
	if f = h.send(t, bits, gpiosim.TxOptions{}); f.Status != Bad || f.Reason != ReasonParity {
		t.Fatalf("parity error: %v", f)
	}
	if f = h.send(t, gpiosim.Bits34(7, 77)[:20], gpiosim.TxOptions{}); f.Status != Bad || f.Reason != ReasonTooShort {
		t.Fatalf("truncated: %v", f)
	}
	if f = h.send(t, gpiosim.H10301(9, 99), gpiosim.TxOptions{Spurious: 1, Rand: r}); f.Status == Good {
		t.Fatalf("spurious pulse: %v decoded as good", f)
	}
	h.stop()
	hs := h.r.Health()
	if hs.Connected || hs.LastSeen.IsZero() || hs.Errors["checksum"] != 1 || hs.Errors["framing"] < 1 || hs.Errors["noise"] != 1 {
		t.Fatalf("health %+v", hs)
	}
	if s := h.r.Stats(); s.Frames != 5 || s.Good != 2 || s.Glitches != 4 {
		t.Fatalf("stats %+v", s)
	}
}

// stuckClock is the system clock with timers that never fire: a Reader on
// it delivers no frame by its gap timer.
type stuckClock struct{}

func (stuckClock) Now() time.Time                       { return time.Now() }
func (stuckClock) After(time.Duration) <-chan time.Time { return nil }

// TestReaderEarlyFrameWithoutTimer checks that with CompleteAt an early
// frame is delivered by the watcher that saw its last edge: the gap timer
// never fires here. A glitched frame is held to the gap, so it comes out
// only when the next frame's first pulse (Gap later) closes it. The delay
// from the last edge to OnFrame is logged, not asserted (kbench measures
// it).
func TestReaderEarlyFrameWithoutTimer(t *testing.T) {
	t.Parallel()
	h := startReader(t, ReaderConfig{Config: Config{CompleteAt: 26}, Clock: stuckClock{}})
	// The last edge is set at some time between its scheduled time and
	// Transmit's return: the delay lies between the two bounds.
	var upper, lower []time.Duration
	for i := range 20 {
		last := gpiosim.Transmit(h.d0, h.d1, gpiosim.H10301(uint32(i), 1000), testPulse, testInterval, gpiosim.TxOptions{})
		returned := time.Now()
		got := h.next(t)
		if c, ok := got.f.Credential(); !ok || !got.f.Early || got.f.Card != 1000 || c.Reader != "gate-1-in" {
			t.Fatalf("frame %d: %v, early %v", i, got.f, got.f.Early)
		}
		upper, lower = append(upper, got.at.Sub(last)), append(lower, got.at.Sub(returned))
		time.Sleep(testGap) // the next frame is a new one, not trailing
	}
	slices.Sort(upper)
	slices.Sort(lower)
	t.Logf("last edge to OnFrame (wall clock, under test load): median %v..%v, max %v..%v",
		lower[len(lower)/2], upper[len(upper)/2], lower[len(lower)-1], upper[len(upper)-1])

	gpiosim.Transmit(h.d0, h.d1, gpiosim.H10301(1, 2), testPulse, testInterval, gpiosim.TxOptions{Glitches: 1})
	time.Sleep(testGap)
	gpiosim.Transmit(h.d0, h.d1, gpiosim.H10301(3, 4), testPulse, testInterval, gpiosim.TxOptions{})
	if got := h.next(t).f; got.Early || got.Card != 2 || got.Glitches != 1 || got.Status != Good {
		t.Fatalf("glitched frame: %v, early %v", got, got.Early)
	}
	if got := h.next(t).f; !got.Early || got.Card != 4 {
		t.Fatalf("frame after the glitched one: %v", got)
	}
	if s := h.r.Stats(); s.Early != 21 || s.Good != 22 {
		t.Fatalf("stats %+v", s)
	}
}

func TestNewReaderRequiresEdgeStamps(t *testing.T) {
	d0, d1 := gpiosim.NewLine("D0", 0, nil), gpiosim.NewLine("D1", 1, nil)
	if _, err := NewReader(plainPin{d0}, plainPin{d1}, ReaderConfig{}); !errors.Is(err, ErrConfig) {
		t.Fatalf("pins without edge timestamps: %v, want ErrConfig", err)
	}
	if _, err := NewReader(plainPin{d0}, plainPin{d1}, ReaderConfig{AllowUnstamped: true}); err != nil {
		t.Fatalf("AllowUnstamped: %v", err)
	}
}

func TestNewReaderRejectsNilPin(t *testing.T) {
	if _, err := NewReader(nil, gpiosim.NewLine("D1", 1, nil), ReaderConfig{}); err == nil {
		t.Fatal("nil pin accepted")
	}
}
