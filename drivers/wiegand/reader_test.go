package wiegand

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/testhw/gpiosim"
	"periph.io/x/conn/v3/gpio"
)

// Fast but real timing: 50 µs pulses 1 ms apart, the default 25 ms gap
// (the transmitter is a goroutine: a shorter gap would split frames when
// the test machine stalls it).
const (
	testPulse    = 50 * time.Microsecond
	testInterval = time.Millisecond
	testGap      = DefaultGap
)

// plainPin hides gpiosim's LastEdge, so the Reader sees a pin without
// edge timestamps, as periph's real pins are.
type plainPin struct{ gpio.PinIn }

type harness struct {
	d0, d1 *gpiosim.Line
	r      *Reader
	frames chan Frame
	stop   func()
}

func startReader(t *testing.T) *harness {
	t.Helper()
	h := &harness{d0: gpiosim.NewLine("D0", 0, nil), d1: gpiosim.NewLine("D1", 1, nil), frames: make(chan Frame, 16)}
	r, err := NewReader(h.d0, h.d1, ReaderConfig{
		Config:  Config{Reader: "gate-1-in", Gap: testGap},
		OnFrame: func(f Frame) { h.frames <- f },
		Poll:    10 * time.Millisecond,
	})
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
	select {
	case f := <-h.frames:
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("no frame within 5 s of the transmission")
		return Frame{}
	}
}

func TestReaderOverSimulatedLines(t *testing.T) {
	t.Parallel()
	h := startReader(t)
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
