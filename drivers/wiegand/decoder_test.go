package wiegand

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/firmware-specs/wiegandvectors"
	"github.com/kioskedge/kioskedge/testhw/gpiosim"
)

func loadVectors(t testing.TB) wiegandvectors.Vectors {
	t.Helper()
	v, err := wiegandvectors.Load()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestDecodeVectors(t *testing.T) {
	v := loadVectors(t)
	cfg := Config{Reader: "gate-1-in"}
	for _, g := range v.Good {
		f := Decode(wiegandvectors.Bits(g.Bits), cfg)
		c, ok := f.Credential()
		if f.Status != Good || !ok {
			t.Errorf("%s: %v, want good", g.Name, f)
			continue
		}
		if f.Encoding != g.Encoding || f.Facility != g.Facility || f.Card != g.Card {
			t.Errorf("%s: %s %d/%d, want %s %d/%d", g.Name, f.Encoding, f.Facility, f.Card, g.Encoding, g.Facility, g.Card)
		}
		if c.Kind != credential.Wiegand || c.Encoding != g.Encoding || c.Number != g.Number || c.Bits != len(g.Bits) || c.Reader != "gate-1-in" {
			t.Errorf("%s: credential %s/%s/%d bits/%s, want number %s", g.Name, c.Kind, c.Encoding, c.Bits, c.Reader, g.Number)
		}
		// The transmitter's builders, used by the timing tests, agree.
		build := map[string]func(uint32, uint32) []bool{"H10301": gpiosim.H10301, "34bit": gpiosim.Bits34, "H10304": gpiosim.H10304}[g.Encoding]
		if !slices.Equal(build(g.Facility, g.Card), wiegandvectors.Bits(g.Bits)) {
			t.Errorf("%s: gpiosim builds other bits", g.Name)
		}
	}
	for _, b := range v.Bad {
		f := Decode(wiegandvectors.Bits(b.Bits), cfg)
		if _, ok := f.Credential(); ok || f.Status != Bad || string(f.Reason) != b.Reason {
			t.Errorf("%s: %v, want bad (%s) and no credential", b.Name, f, b.Reason)
		}
	}
	for _, r := range v.Raw {
		bits := wiegandvectors.Bits(r.Bits)
		f := Decode(bits, cfg)
		if _, ok := f.Credential(); ok || f.Status != Raw {
			t.Errorf("%s without RawBits: %v, want raw with no credential", r.Name, f)
		}
		f = Decode(bits, Config{RawBits: []int{len(bits)}})
		c, ok := f.Credential()
		if !ok || c.Encoding != "raw" || c.Number != r.Number {
			t.Errorf("%s with RawBits: %v %q, want raw credential %s", r.Name, f, c.Number, r.Number)
		}
	}
}

func TestConfigRejected(t *testing.T) {
	for _, c := range []Config{{Gap: -1}, {MinBits: 40, MaxBits: 30}, {RawBits: []int{0}}, {RawBits: []int{500}}} {
		if _, err := NewDecoder(c); err == nil {
			t.Errorf("NewDecoder(%+v) succeeded", c)
		}
	}
}

// feed plays a transmitter schedule into d as pulses with widths, returning
// the frames it closes (Flush at the end).
func feed(d *Decoder, ev []gpiosim.TxEdge, out []Frame) []Frame {
	for _, p := range pulsesOf(ev) {
		if f, ok := d.Feed(p); ok {
			out = append(out, f)
		}
	}
	return out
}

func TestFramingByGapAndFlush(t *testing.T) {
	d, err := NewDecoder(Config{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	a := gpiosim.Schedule(gpiosim.H10301(1, 2), 0, 0, gpiosim.TxOptions{Start: t0})
	b := gpiosim.Schedule(gpiosim.H10304(3, 4), 0, 0, gpiosim.TxOptions{Start: t0.Add(52*time.Millisecond + DefaultGap)})
	frames := feed(d, append(a, b...), nil)
	if len(frames) != 1 || frames[0].Encoding != "H10301" || frames[0].Card != 2 {
		t.Fatalf("after the second frame's pulses: %v", frames)
	}
	last, ok := d.Pending()
	if !ok {
		t.Fatal("no pending frame")
	}
	if _, ok := d.Flush(last.Add(DefaultGap - 1)); ok {
		t.Fatal("Flush closed a frame before the gap")
	}
	f, ok := d.Flush(last.Add(DefaultGap))
	if !ok || f.Encoding != "H10304" || f.Facility != 3 || f.Card != 4 || !f.Start.Equal(b[0].At) {
		t.Fatalf("Flush: %v %v", f, ok)
	}
	if s := d.Stats(); s.Frames != 2 || s.Good != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestGlitchesDroppedBothLowRejected(t *testing.T) {
	d, _ := NewDecoder(Config{})
	t0 := time.Unix(1000, 0)
	ev := gpiosim.Schedule(gpiosim.H10301(12, 3456), 0, 0, gpiosim.TxOptions{Start: t0, Glitches: 5, Rand: rand.New(rand.NewPCG(3, 4))})
	frames := feed(d, ev, nil)
	f, ok := d.Flush(t0.Add(time.Second))
	if len(frames) != 0 || !ok || f.Status != Good || f.Card != 3456 || f.Glitches != 5 || d.Stats().Glitches != 5 {
		t.Fatalf("glitched frame: %v (glitches %d), stats %+v", f, f.Glitches, d.Stats())
	}
	// A D1 pulse falling while D0 is still low.
	bits := gpiosim.H10301(12, 3456)
	t1 := t0.Add(time.Minute)
	for i, b := range bits {
		line := D0
		if b {
			line = D1
		}
		d.Feed(Pulse{Line: line, Time: t1.Add(time.Duration(i) * 2 * time.Millisecond), Width: 50 * time.Microsecond})
		if i == 10 {
			d.Feed(Pulse{Line: 1 - line, Time: t1.Add(time.Duration(i)*2*time.Millisecond + 20*time.Microsecond), Width: 50 * time.Microsecond})
		}
	}
	f, _ = d.Flush(t1.Add(time.Second))
	if _, ok := f.Credential(); ok || f.Reason != ReasonBothLow || d.Stats().BothLow != 1 {
		t.Fatalf("overlapping pulses: %v", f)
	}
}

// TestMixedRunNoWrongCredential sends thousands of frames (good, parity
// errors, truncated, glitches, spurious pulses, jitter) through the
// transmitter's schedule into one decoder and checks that every credential
// is one that was sent whole, every clean frame is decoded, and every bad
// one is counted.
func TestMixedRunNoWrongCredential(t *testing.T) {
	const n = 3000
	r := rand.New(rand.NewPCG(7, 11))
	d, _ := NewDecoder(Config{Reader: "r"})
	at := time.Unix(5000, 0)
	type sent struct {
		number string
		clean  bool // must decode to number
		bad    bool // must not yield a credential
	}
	var want []sent
	var frames []Frame
	var wrong, missed, leaked int
	for i := range n {
		fc, card := uint32(r.IntN(256)), uint32(r.IntN(65536))
		bits := gpiosim.H10301(fc, card)
		number := fmtNumber(fc, card)
		if r.IntN(3) == 0 {
			fc, card = uint32(r.IntN(65536)), uint32(r.IntN(524288))
			bits, number = gpiosim.H10304(fc, card), fmtNumber37(fc, card)
		}
		s := sent{number: number, clean: true}
		o := gpiosim.TxOptions{Start: at, Rand: r, Jitter: 200 * time.Microsecond}
		switch i % 5 {
		case 1: // parity error: flip one bit
			bits = append([]bool(nil), bits...)
			k := r.IntN(len(bits))
			bits[k] = !bits[k]
			s = sent{bad: true}
		case 2: // truncated, never to another format's length
			k := 1 + r.IntN(len(bits)-1)
			if k == 26 || k == 34 {
				k--
			}
			bits = bits[:k]
			s = sent{bad: true}
		case 3: // glitches only: must still decode
			o.Glitches = 1 + r.IntN(4)
		case 4: // spurious full pulses: the frame must not decode as good
			o.Spurious = 1 + r.IntN(2)
			s = sent{bad: true}
		}
		want = append(want, s)
		ev := gpiosim.Schedule(bits, 0, 0, o)
		frames = feed(d, ev, frames)
		at = ev[len(ev)-1].At.Add(DefaultGap + time.Millisecond)
	}
	if f, ok := d.Flush(at); ok {
		frames = append(frames, f)
	}
	if len(frames) != n {
		t.Fatalf("%d frames from %d sent", len(frames), n)
	}
	for i, f := range frames {
		c, ok := f.Credential()
		switch {
		case ok && want[i].bad:
			leaked++
		case ok && c.Number != want[i].number:
			wrong++
		case !ok && want[i].clean:
			missed++
		}
	}
	if wrong != 0 || leaked != 0 || missed != 0 {
		t.Fatalf("%d wrong credentials, %d credentials from bad frames, %d clean frames missed", wrong, leaked, missed)
	}
	s := d.Stats()
	if s.Frames != n || s.Bad+s.Raw != uint64(3*n/5) || s.Glitches == 0 {
		t.Fatalf("stats %+v", s)
	}
	t.Logf("stats %+v", s)
}

// The expected numbers, written from wiegand.md §4 rather than the decoder.
func fmtNumber(fc, card uint32) string   { return fmt.Sprintf("%03d-%05d", fc, card) }
func fmtNumber37(fc, card uint32) string { return fmt.Sprintf("%05d-%06d", fc, card) }
