package gpioline

import (
	"encoding/binary"
	"fmt"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// rawEvent is one struct gpio_v2_line_event as the kernel wrote it.
type rawEvent struct {
	TimestampNs uint64 // CLOCK_MONOTONIC unless the request asked otherwise
	ID          uint32 // eventRisingEdge or eventFallingEdge
	Offset      uint32 // the line's offset on its chip
	Seqno       uint32 // per request; equals LineSeqno for one line
	LineSeqno   uint32 // per line, from 1 each time edge detection starts
}

// decodeEvents appends to dst the events in b, which must hold whole
// 48-byte records in the machine's byte order (the kernel writes its
// structs natively); a partial record is an error and nothing of b is
// decoded then.
func decodeEvents(dst []rawEvent, b []byte) ([]rawEvent, error) {
	if len(b)%eventSize != 0 {
		return dst, fmt.Errorf("gpioline: read %d bytes of line events, not a whole number of %d-byte events", len(b), eventSize)
	}
	ne := binary.NativeEndian
	for ; len(b) > 0; b = b[eventSize:] {
		dst = append(dst, rawEvent{
			TimestampNs: ne.Uint64(b[0:]),
			ID:          ne.Uint32(b[8:]),
			Offset:      ne.Uint32(b[12:]),
			Seqno:       ne.Uint32(b[16:]),
			LineSeqno:   ne.Uint32(b[20:]),
		})
	}
	return dst, nil
}

// encodeEvent is decodeEvents' inverse for one event, for tests and fakes.
func encodeEvent(e rawEvent) []byte {
	b := make([]byte, eventSize)
	ne := binary.NativeEndian
	ne.PutUint64(b[0:], e.TimestampNs)
	ne.PutUint32(b[8:], e.ID)
	ne.PutUint32(b[12:], e.Offset)
	ne.PutUint32(b[16:], e.Seqno)
	ne.PutUint32(b[20:], e.LineSeqno)
	return b
}

// level returns the line's level after the edge: High after a rising
// edge, Low after a falling one; any other id is an error.
func (e rawEvent) level() (gpio.Level, error) {
	switch e.ID {
	case eventRisingEdge:
		return gpio.High, nil
	case eventFallingEdge:
		return gpio.Low, nil
	}
	return gpio.Low, fmt.Errorf("gpioline: line event with unknown id %d", e.ID)
}

// seqTracker counts the events the kernel dropped from a line's gaps in
// line_seqno. The kernel numbers a line's events from 1 each time edge
// detection starts, but keeps counting when a reconfiguration leaves the
// edge detection as it was; so after every reconfiguration (reset) the
// next event is taken as the new baseline, whatever its number.
type seqTracker struct {
	last    uint32
	started bool
}

// reset makes the next event the baseline.
func (t *seqTracker) reset() { *t = seqTracker{} }

// next records an event numbered n and returns how many events were lost
// between the previous one and it. A number that goes back (a restart the
// tracker was not told about) is a new baseline, not a loss; the u32
// wraps around after 2^32 events.
func (t *seqTracker) next(n uint32) (dropped uint32) {
	prev, started := t.last, t.started
	t.last, t.started = n, true
	if !started {
		return 0
	}
	gap := n - prev - 1 // modulo 2^32
	if gap >= 1<<31 {   // n <= prev: restarted
		return 0
	}
	return gap
}

// timebase turns the kernel's CLOCK_MONOTONIC event timestamps into
// time.Time values. Wall is a time.Now() reading (which carries Go's
// monotonic clock reading, itself CLOCK_MONOTONIC on Linux) and Mono the
// kernel's CLOCK_MONOTONIC at the same instant; an event at ns is then
// Wall plus (ns - Mono). time.Time.Add keeps the monotonic reading, so
// differences between edges are exact to the nanosecond and comparisons
// with later time.Now() values use the monotonic clock, immune to
// wall-clock steps. See doc.go, "Which clock".
type timebase struct {
	Wall time.Time
	Mono int64 // ns
}

func (tb timebase) at(ns uint64) time.Time {
	return tb.Wall.Add(time.Duration(int64(ns) - tb.Mono))
}

// measureTimebase pairs now() with mono() read on either side of it,
// keeping the tightest of a few tries so the pair is within a scheduling
// blip of each other.
func measureTimebase(now func() time.Time, mono func() (int64, error)) (timebase, error) {
	best := timebase{}
	bestSpread := int64(-1)
	for range 5 {
		m0, err := mono()
		if err != nil {
			return timebase{}, err
		}
		w := now()
		m1, err := mono()
		if err != nil {
			return timebase{}, err
		}
		if spread := m1 - m0; bestSpread < 0 || spread < bestSpread {
			best, bestSpread = timebase{Wall: w, Mono: m0 + spread/2}, spread
		}
	}
	return best, nil
}
