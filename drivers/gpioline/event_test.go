package gpioline

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// hexEvent is one little-endian gpio_v2_line_event as a kernel on arm64 or
// amd64 writes it: timestamp_ns, id, offset, seqno, line_seqno, padding.
func hexEvent(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil || len(b) != eventSize {
		t.Fatalf("bad test vector %q: %d bytes, %v", s, len(b), err)
	}
	return b
}

func TestDecodeEventsLittleEndian(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("big-endian machine: the kernel writes big-endian records here; TestDecodeEventsRoundTrip covers it")
	}
	pad := strings.Repeat("00", 24)
	for _, c := range []struct {
		name  string
		rec   string
		want  rawEvent
		level gpio.Level
	}{
		{"falling edge on line 17, first event",
			"00ca9a3b00000000 02000000 11000000 01000000 01000000" + pad,
			rawEvent{TimestampNs: 1_000_000_000, ID: eventFallingEdge, Offset: 17, Seqno: 1, LineSeqno: 1}, gpio.Low},
		{"rising edge 50 µs later",
			"508d9b3b00000000 01000000 11000000 02000000 02000000" + pad,
			rawEvent{TimestampNs: 1_000_050_000, ID: eventRisingEdge, Offset: 17, Seqno: 2, LineSeqno: 2}, gpio.High},
		{"large timestamp and sequence numbers",
			"0102030405060708 01000000 00000000 ffffffff feffffff" + pad,
			rawEvent{TimestampNs: 0x0807060504030201, ID: eventRisingEdge, Offset: 0, Seqno: 0xffffffff, LineSeqno: 0xfffffffe}, gpio.High},
	} {
		evs, err := decodeEvents(nil, hexEvent(t, c.rec))
		if err != nil || len(evs) != 1 || evs[0] != c.want {
			t.Errorf("%s: %+v %v; want %+v", c.name, evs, err, c.want)
			continue
		}
		if lv, err := evs[0].level(); err != nil || lv != c.level {
			t.Errorf("%s: level %v %v; want %v", c.name, lv, err, c.level)
		}
	}
}

func TestDecodeEventsRoundTrip(t *testing.T) {
	in := []rawEvent{
		{TimestampNs: 5, ID: eventFallingEdge, Offset: 3, Seqno: 1, LineSeqno: 1},
		{TimestampNs: 9, ID: eventRisingEdge, Offset: 3, Seqno: 2, LineSeqno: 2},
		{TimestampNs: 1 << 62, ID: 7, Offset: 1 << 31, Seqno: 3, LineSeqno: 9},
	}
	var b []byte
	for _, e := range in {
		b = append(b, encodeEvent(e)...)
	}
	out, err := decodeEvents(nil, b)
	if err != nil || len(out) != len(in) {
		t.Fatalf("decode: %v %v", out, err)
	}
	for i := range in {
		if out[i] != in[i] {
			t.Errorf("event %d: %+v, want %+v", i, out[i], in[i])
		}
	}
}

func TestDecodeEventsPartial(t *testing.T) {
	b := append(encodeEvent(rawEvent{ID: eventRisingEdge}), 0, 0, 0)
	evs, err := decodeEvents(nil, b)
	if err == nil || len(evs) != 0 {
		t.Fatalf("51 bytes: %v %v; want an error and no event", evs, err)
	}
	if evs, err := decodeEvents(nil, nil); err != nil || len(evs) != 0 {
		t.Fatalf("no bytes: %v %v", evs, err)
	}
}

func TestEventLevelUnknownID(t *testing.T) {
	for _, id := range []uint32{0, 3, 0xffffffff} {
		if _, err := (rawEvent{ID: id}).level(); err == nil {
			t.Errorf("id %d: no error", id)
		}
	}
}

func TestSeqTracker(t *testing.T) {
	for _, c := range []struct {
		name    string
		seqs    []uint32
		dropped []uint32
	}{
		{"in order", []uint32{1, 2, 3, 4}, []uint32{0, 0, 0, 0}},
		{"first event is the baseline", []uint32{7, 8}, []uint32{0, 0}},
		{"one gap", []uint32{1, 2, 6, 7}, []uint32{0, 0, 3, 0}},
		{"restart goes back", []uint32{5, 6, 1, 2, 4}, []uint32{0, 0, 0, 0, 1}},
		{"repeat is no loss", []uint32{3, 3}, []uint32{0, 0}},
		{"wraps around", []uint32{0xfffffffe, 0xffffffff, 0, 2}, []uint32{0, 0, 0, 1}},
	} {
		var tr seqTracker
		for i, n := range c.seqs {
			if d := tr.next(n); d != c.dropped[i] {
				t.Errorf("%s: event %d (seq %d): dropped %d, want %d", c.name, i, n, d, c.dropped[i])
			}
		}
	}
	var tr seqTracker
	tr.next(10)
	tr.reset()
	if d := tr.next(40); d != 0 {
		t.Errorf("after reset: dropped %d, want 0 (a new baseline)", d)
	}
}

func TestTimebase(t *testing.T) {
	wall := time.Now() // has a monotonic reading
	tb := timebase{Wall: wall, Mono: 5_000_000_000}
	a := tb.at(5_000_000_000)
	b := tb.at(5_000_050_123)
	early := tb.at(4_999_000_000)
	if !a.Equal(wall) {
		t.Errorf("at(Mono) = %v, want %v", a, wall)
	}
	if d := b.Sub(a); d != 50_123*time.Nanosecond {
		t.Errorf("pulse width %v, want 50.123µs", d)
	}
	if d := wall.Sub(early); d != time.Millisecond {
		t.Errorf("an event before the base: %v before it, want 1ms", d)
	}
	// The monotonic reading survives, so comparisons with time.Now() use it.
	if !strings.Contains(b.String(), "m=+") {
		t.Errorf("edge time %v lost its monotonic reading", b)
	}
}

func TestMeasureTimebase(t *testing.T) {
	wall := time.Unix(1000, 0)
	// The clocks are read around now(); the third pair is the tightest.
	monos := []int64{100, 180, 300, 340, 500, 510, 700, 760, 900, 990}
	i := 0
	mono := func() (int64, error) { i++; return monos[i-1], nil }
	tb, err := measureTimebase(func() time.Time { return wall }, mono)
	if err != nil || tb.Mono != 505 || !tb.Wall.Equal(wall) {
		t.Fatalf("timebase %+v %v; want Mono 505 (the midpoint of the tightest pair)", tb, err)
	}
	boom := errors.New("boom")
	if _, err := measureTimebase(time.Now, func() (int64, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Fatalf("clock error: %v", err)
	}
}

func FuzzDecodeEvents(f *testing.F) {
	f.Add(encodeEvent(rawEvent{TimestampNs: 1_000_000_000, ID: eventFallingEdge, Offset: 17, Seqno: 1, LineSeqno: 1}))
	f.Add(append(encodeEvent(rawEvent{ID: eventRisingEdge, LineSeqno: 2}), encodeEvent(rawEvent{ID: 9, LineSeqno: 9})...))
	f.Add([]byte{1, 2, 3})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := decodeEvents(nil, b)
		if len(b)%eventSize != 0 {
			if err == nil || len(evs) != 0 {
				t.Fatalf("%d bytes: %d events, %v", len(b), len(evs), err)
			}
			return
		}
		if err != nil || len(evs) != len(b)/eventSize {
			t.Fatalf("%d bytes: %d events, %v", len(b), len(evs), err)
		}
		var tr seqTracker
		for i, e := range evs {
			if _, err := e.level(); (err == nil) != (e.ID == eventRisingEdge || e.ID == eventFallingEdge) {
				t.Fatalf("event %d id %d: level error %v", i, e.ID, err)
			}
			if d := tr.next(e.LineSeqno); d >= 1<<31 {
				t.Fatalf("event %d: %d dropped", i, d)
			}
			// Only the padding is lost in a round trip.
			rec := b[i*eventSize : (i+1)*eventSize]
			if !bytes.Equal(encodeEvent(e)[:24], rec[:24]) {
				t.Fatalf("event %d does not round-trip", i)
			}
		}
	})
}
