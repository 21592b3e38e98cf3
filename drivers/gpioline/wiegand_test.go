package gpioline

import (
	"context"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/drivers/wiegand"
	"github.com/kioskedge/kioskedge/testhw/gpiosim"
)

var _ wiegand.EdgeStamper = (*Line)(nil)

// A Wiegand reader on two Lines decodes a frame from kernel event records:
// the edges' times come from the records' timestamps, not from when the
// watchers happen to read them, and they compare correctly with the
// reader's time.Now() gap timer.
func TestWiegandReaderOnKernelEvents(t *testing.T) {
	base := timebase{Wall: time.Now(), Mono: 123_000_000_000}
	ios := [2]*fakeIO{newFakeIO(), newFakeIO()}
	var lines [2]*Line
	for i := range lines {
		tg := testTarget
		tg.Offset, tg.Name = 20+i, []string{"D0", "D1"}[i]
		lines[i] = newLine(tg, Options{}, ios[i], base)
		t.Cleanup(func() { _ = lines[i].Close() }) // fake: cannot fail
	}
	frames := make(chan wiegand.Frame, 4)
	// A 250 ms gap, not the default 25 ms: the edges are pushed by this
	// goroutine in real time, and on a loaded machine a stall of it or of
	// a watcher past the gap would let the gap timer split the frame.
	r, err := wiegand.NewReader(lines[0], lines[1], wiegand.ReaderConfig{
		Config:  wiegand.Config{Gap: 250 * time.Millisecond},
		OnFrame: func(f wiegand.Frame) { frames <- f },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	// Both watchers wait (Run's In would flush events pushed earlier).
	<-ios[0].blocked
	<-ios[1].blocked
	// Each edge reaches the kernel's buffer when it happens, as on a real
	// line; the watchers read them whenever they get to run.
	seq := [2]uint32{}
	for _, e := range gpiosim.Schedule(gpiosim.H10301(12, 3456), 0, 0, gpiosim.TxOptions{Start: time.Now().Add(time.Millisecond)}) {
		time.Sleep(time.Until(e.At)) // pacing the signal, not waiting for a result
		seq[e.Line]++
		id := eventFallingEdge
		if e.Level {
			id = eventRisingEdge
		}
		ns := uint64(base.Mono + int64(e.At.Sub(base.Wall)))
		ios[e.Line].push(rawEvent{TimestampNs: ns, ID: id, Offset: uint32(20 + e.Line), Seqno: seq[e.Line], LineSeqno: seq[e.Line]})
	}
	select {
	case f := <-frames:
		if f.Status != wiegand.Good || f.Count != 26 || f.Facility != 12 || f.Card != 3456 {
			t.Fatalf("frame %v (facility/card match: %v)", f, f.Facility == 12 && f.Card == 3456)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no frame")
	}
	for i, l := range lines {
		if s := l.Stats(); s.Edges != uint64(seq[i]) || s.Dropped != 0 || s.Errors != 0 {
			t.Errorf("line %d stats %+v, want %d edges", i, s, seq[i])
		}
	}
}
