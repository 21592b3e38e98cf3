package wiegand

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/testhw/gpiosim"
	"periph.io/x/conn/v3/gpio"
)

func TestCompleteAtConfig(t *testing.T) {
	for _, c := range []Config{
		{CompleteAt: 27},                     // not a format with parity
		{CompleteAt: 8, RawBits: []int{8}},   // a raw length: no parity
		{CompleteAt: -26},                    // negative
		{CompleteAt: 26, MinBits: 30},        // shorter than MinBits
		{CompleteAt: 37, MaxBits: 36},        // longer than MaxBits
		{CompleteAt: 26, RawBits: []int{30}}, // a longer raw frame would be cut at 26
		{CompleteAt: 34, RawBits: []int{34}},
	} {
		if _, err := NewDecoder(c); !errors.Is(err, ErrConfig) {
			t.Errorf("NewDecoder(%+v) = %v, want ErrConfig", c, err)
		}
	}
	for _, c := range []Config{{CompleteAt: 26}, {CompleteAt: 34}, {CompleteAt: 37, RawBits: []int{32, 35}}} {
		if _, err := NewDecoder(c); err != nil {
			t.Errorf("NewDecoder(%+v): %v", c, err)
		}
	}
}

// pulsesOf turns a transmitter schedule into the pulses a stamped reader
// feeds, in the order their rising edges come (as the Reader feeds them).
func pulsesOf(ev []gpiosim.TxEdge) []Pulse {
	var fall [2]time.Time
	var out []Pulse
	for _, e := range ev {
		if e.Level == gpio.Low {
			fall[e.Line] = e.At
			continue
		}
		out = append(out, Pulse{Line: Line(e.Line), Time: fall[e.Line], Width: e.At.Sub(fall[e.Line])})
	}
	return out
}

// run feeds ps and returns the frames and, for each, the index of the
// pulse whose Feed returned it; the frame Flush closes Gap after the last
// pulse has index len(ps).
func run(d *Decoder, ps []Pulse) (frames []Frame, at []int) {
	for i, p := range ps {
		if f, ok := d.Feed(p); ok {
			frames, at = append(frames, f), append(at, i)
		}
	}
	if last, ok := d.Pending(); ok {
		if f, ok := d.Flush(last.Add(d.cfg.Gap)); ok {
			frames, at = append(frames, f), append(at, len(ps))
		}
	}
	return frames, at
}

func TestCompleteAt(t *testing.T) {
	t0 := time.Unix(1000, 0)
	rnd := func() *rand.Rand { return rand.New(rand.NewPCG(5, 6)) }
	h26 := gpiosim.H10301(123, 4567)
	h37 := gpiosim.H10304(1234, 345678)
	flipped := slices.Clone(h26)
	flipped[7] = !flipped[7]
	type want struct {
		early  bool   // the frame is returned by the Feed of its last pulse
		status Status // of the (first) frame
		reason Reason
		number string // for a Good frame
	}
	for _, tc := range []struct {
		name       string
		completeAt int
		bits       []bool
		o          gpiosim.TxOptions
		unknownW   bool // feed widths as unknown (an unstamped pin)
		want       want
	}{
		{"H10301 at 26", 26, h26, gpiosim.TxOptions{}, false, want{true, Good, "", "123-04567"}},
		{"H10301 with jitter 5% of the interval", 26, h26, gpiosim.TxOptions{Jitter: 100 * time.Microsecond, Rand: rnd()}, false, want{true, Good, "", "123-04567"}},
		{"H10304 at 37", 37, h37, gpiosim.TxOptions{}, false, want{true, Good, "", "01234-345678"}},
		{"H10301 at 37: by the gap", 37, h26, gpiosim.TxOptions{}, false, want{false, Good, "", "123-04567"}},
		{"glitch: by the gap, still good", 26, h26, gpiosim.TxOptions{Glitches: 1, Rand: rnd()}, false, want{false, Good, "", "123-04567"}},
		{"unknown widths: by the gap", 26, h26, gpiosim.TxOptions{}, true, want{false, Good, "", "123-04567"}},
		{"parity error: by the gap", 26, flipped, gpiosim.TxOptions{}, false, want{false, Bad, ReasonParity, ""}},
		{"spurious pulse: 27 bits, too long", 26, h26, gpiosim.TxOptions{Spurious: 1, Rand: rnd()}, false, want{false, Bad, ReasonTooLong, ""}},
		{"drop and spurious: irregular", 26, h26, gpiosim.TxOptions{Spurious: 1, Drop: 1, Rand: rnd()}, false, want{false, Bad, ReasonIrregular, ""}},
		{"dropped pulse: too short", 26, h26, gpiosim.TxOptions{Drop: 1, Rand: rnd()}, false, want{false, Bad, ReasonTooShort, ""}},
		{"spurious pulse, no CompleteAt: irregular", 0, h26, gpiosim.TxOptions{Spurious: 1, Rand: rnd()}, false, want{false, Bad, ReasonIrregular, ""}},
		{"jitter 45% of the interval: irregular", 26, h26, gpiosim.TxOptions{Jitter: 900 * time.Microsecond, Rand: rnd()}, false, want{false, Bad, ReasonIrregular, ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := NewDecoder(Config{CompleteAt: tc.completeAt})
			if err != nil {
				t.Fatal(err)
			}
			tc.o.Start = t0
			ps := pulsesOf(gpiosim.Schedule(tc.bits, 0, 0, tc.o))
			if tc.unknownW {
				for i := range ps {
					ps[i].Width = 0
				}
			}
			frames, at := run(d, ps)
			if len(frames) != 1 {
				t.Fatalf("%d frames: %v", len(frames), frames)
			}
			f := frames[0]
			if early := at[0] == len(ps)-1; early != tc.want.early || f.Early != tc.want.early {
				t.Fatalf("returned at pulse %d of %d, Early %v; want early %v", at[0], len(ps), f.Early, tc.want.early)
			}
			c, ok := f.Credential()
			if f.Status != tc.want.status || f.Reason != tc.want.reason || ok != (tc.want.number != "") || c.Number != tc.want.number {
				t.Fatalf("%v (credential %v), want %v %q", f, ok, tc.want.status, tc.want.reason)
			}
			if f.Early && !f.End.Equal(ps[len(ps)-1].Time) {
				t.Fatalf("End %v, want the last pulse's falling edge %v", f.End, ps[len(ps)-1].Time)
			}
			if _, open := d.Pending(); open {
				t.Fatal("a frame is still open")
			}
			if s := d.Stats(); s.Early != uint64(btoi(f.Early)) || (f.Reason == ReasonIrregular) != (s.Irregular == 1) {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// pulsesAt returns one 50 µs pulse per bit, interval apart from t0.
func pulsesAt(bits []bool, t0 time.Time, interval time.Duration) []Pulse {
	ps := make([]Pulse, len(bits))
	for i, b := range bits {
		ps[i] = Pulse{Line: Line(btoi(b)), Time: t0.Add(time.Duration(i) * interval), Width: 50 * time.Microsecond}
	}
	return ps
}

// TestIrregularNeverGood builds a frame that lost one pulse and gained a
// spurious one, so it is 26 bits long and passes parity as another card,
// and checks that the timing check rejects it with and without CompleteAt.
func TestIrregularNeverGood(t *testing.T) {
	const T = 2 * time.Millisecond
	t0 := time.Unix(2000, 0)
	sent := gpiosim.H10301(77, 31337)
	var ps []Pulse
search:
	for k := 1; k < 25; k++ { // the lost bit
		for g := 0; g < 25; g++ { // the spurious pulse lands mid-way after bit g
			for _, v := range []bool{false, true} {
				ps = ps[:0]
				for i, b := range sent {
					if i != k {
						ps = append(ps, Pulse{Line: Line(btoi(b)), Time: t0.Add(time.Duration(i) * T), Width: 50 * time.Microsecond})
					}
				}
				ps = append(ps, Pulse{Line: Line(btoi(v)), Time: t0.Add(time.Duration(g)*T + T/2), Width: 50 * time.Microsecond})
				slices.SortFunc(ps, func(a, b Pulse) int { return a.Time.Compare(b.Time) })
				bits := make([]bool, len(ps))
				for i, p := range ps {
					bits[i] = p.Line == D1
				}
				if f := Decode(bits, Config{}); f.Status == Good && (f.Facility != 77 || f.Card != 31337) {
					break search
				}
			}
		}
	}
	if len(ps) != 26 {
		t.Fatal("no lost+spurious combination passes parity as another card")
	}
	for _, completeAt := range []int{0, 26} {
		d, _ := NewDecoder(Config{CompleteAt: completeAt})
		frames, _ := run(d, ps)
		if len(frames) != 1 || frames[0].Status != Bad || frames[0].Reason != ReasonIrregular || d.Stats().Irregular != 1 {
			t.Fatalf("CompleteAt %d: %v, stats %+v; want one irregular frame", completeAt, frames, d.Stats())
		}
	}
}

func TestTrailingBits(t *testing.T) {
	const T = 2 * time.Millisecond
	t0 := time.Unix(3000, 0)
	// A 34-bit card at a site configured for 26 bits: if the first 26 bits
	// pass H10301 parity (1 in 4), the door opens for them (documented);
	// the 8 bits after are a trailing frame.
	var cut, whole []bool
	for i := range uint32(1000) {
		b := gpiosim.Bits34(1+i, 4242+7*i)
		if Decode(b[:26], Config{}).Status == Good {
			cut = b
		} else {
			whole = b
		}
	}
	if cut == nil || whole == nil {
		t.Fatal("no 34-bit frame whose 26-bit prefix passes (or fails) parity")
	}
	d, _ := NewDecoder(Config{CompleteAt: 26})
	frames, at := run(d, pulsesAt(cut, t0, T))
	if len(frames) != 2 || !frames[0].Early || at[0] != 25 || frames[1].Reason != ReasonTrailing || frames[1].Count != 8 {
		t.Fatalf("34-bit frame whose 26-bit prefix passes parity: %v at %v", frames, at)
	}
	if s := d.Stats(); s.Trailing != 1 || s.Early != 1 || s.Bad != 1 {
		t.Fatalf("stats %+v", s)
	}
	// When the prefix fails parity the frame is framed by the gap, and too
	// long for the site.
	frames, _ = run(d, pulsesAt(whole, t0.Add(time.Second), T))
	if len(frames) != 1 || frames[0].Early || frames[0].Reason != ReasonTooLong {
		t.Fatalf("34-bit frame whose prefix fails parity: %v", frames)
	}
	// Two 26-bit frames back to back (one 52-bit frame): the second half
	// is trailing, never early or good, whatever its parity.
	two := append(gpiosim.H10301(1, 2), gpiosim.H10301(3, 4)...)
	frames, at = run(d, pulsesAt(two, t0.Add(2*time.Second), T))
	if len(frames) != 2 || !frames[0].Early || frames[1].Early || frames[1].Reason != ReasonTrailing || at[1] != 52 {
		t.Fatalf("52-bit frame: %v at %v", frames, at)
	}
	if _, ok := frames[1].Credential(); ok {
		t.Fatal("a trailing frame has a credential")
	}
	// A frame Gap or more after an early one is not trailing.
	frames, _ = run(d, pulsesAt(gpiosim.H10301(5, 6), frames[1].End.Add(DefaultGap), T))
	if len(frames) != 1 || !frames[0].Early || frames[0].Card != 6 {
		t.Fatalf("a frame after the gap: %v", frames)
	}
}

// TestOutOfOrderAndLate feeds pulses the way two watcher goroutines can:
// one pulse handed over late. It must take its place in the frame; a pulse
// from a frame already delivered is dropped as late.
func TestOutOfOrderAndLate(t *testing.T) {
	const T = 2 * time.Millisecond
	t0 := time.Unix(4000, 0)
	ps := pulsesAt(gpiosim.H10301(200, 1), t0, T)
	// The 11th pulse is handed over after the 15th.
	ps = append(ps[:10], append(slices.Clone(ps[11:15]), append([]Pulse{ps[10]}, ps[15:]...)...)...)
	d, _ := NewDecoder(Config{CompleteAt: 26})
	frames, at := run(d, ps)
	if len(frames) != 1 || !frames[0].Early || at[0] != 25 || frames[0].Facility != 200 || frames[0].Card != 1 {
		t.Fatalf("reordered pulses: %v at %v", frames, at)
	}
	// A pulse before that frame's End, handed over after it was delivered.
	if _, ok := d.Feed(Pulse{Line: D1, Time: frames[0].End.Add(-T / 2), Width: 50 * time.Microsecond}); ok {
		t.Fatal("a late pulse closed a frame")
	}
	if _, open := d.Pending(); open || d.Stats().Late != 1 {
		t.Fatalf("late pulse: open %v, stats %+v", open, d.Stats())
	}
	// One watcher drains its whole line before the other hands over any
	// pulse (a stall with a burst of stamped events).
	ps = pulsesAt(gpiosim.H10301(123, 4567), t0.Add(500*time.Millisecond), T)
	slices.SortStableFunc(ps, func(a, b Pulse) int { return int(b.Line) - int(a.Line) })
	frames, at = run(d, ps)
	if len(frames) != 1 || !frames[0].Early || at[0] != 25 || frames[0].Facility != 123 || frames[0].Card != 4567 {
		t.Fatalf("D1 pulses first, then D0: %v at %v", frames, at)
	}
	// The last pulse held back: the frame completes when it arrives.
	ps = pulsesAt(gpiosim.H10301(9, 9), t0.Add(time.Second), T)
	ps[24], ps[25] = ps[25], ps[24]
	frames, at = run(d, ps)
	if len(frames) != 1 || !frames[0].Early || at[0] != 25 || frames[0].Card != 9 {
		t.Fatalf("last two pulses swapped: %v at %v", frames, at)
	}
}

// TestNoWrongCredentialUnderNoise is the property early completion must
// keep: thousands of random 26-bit frames with random noise (spurious and
// lost pulses, glitches, jitter up to the transmitter's maximum) through a
// decoder with CompleteAt 26 never yield a credential other than the one
// sent, while clean frames (jitter up to 5% of the interval, glitches
// allowed) are all decoded, and at their last bit unless glitched.
func TestNoWrongCredentialUnderNoise(t *testing.T) {
	const n = 10000
	r := rand.New(rand.NewPCG(26, 1))
	d, _ := NewDecoder(Config{CompleteAt: 26})
	at := time.Unix(6000, 0)
	var wrong, cleanMissed, cleanLate, wouldBeWrong, credentials int
	for range n {
		fc, card := uint32(r.IntN(256)), uint32(r.IntN(65536))
		interval := []time.Duration{time.Millisecond, 2 * time.Millisecond}[r.IntN(2)]
		o := gpiosim.TxOptions{Start: at, Rand: r}
		clean := true
		if r.IntN(2) == 0 {
			o.Jitter = time.Duration(r.Int64N(int64(interval / 2))) // clamped to interval/2 - pulse
			clean = o.Jitter <= interval/20
		}
		if r.IntN(3) == 0 {
			o.Spurious, clean = 1+r.IntN(2), false
		}
		if r.IntN(3) == 0 {
			o.Drop, clean = 1+r.IntN(2), false
		}
		if r.IntN(4) == 0 {
			o.Glitches = 1 + r.IntN(3)
		}
		ev := gpiosim.Schedule(gpiosim.H10301(fc, card), 0, interval, o)
		ps := pulsesOf(ev)
		if wire := wireBits(ps); len(wire) == 26 {
			if f := Decode(wire, Config{}); f.Status == Good && (f.Facility != fc || f.Card != card) {
				wouldBeWrong++ // parity alone would grant another card
			}
		}
		frames, _ := run(d, ps)
		got := false
		for _, f := range frames {
			if c, ok := f.Credential(); ok {
				credentials++
				got = true
				if f.Facility != fc || f.Card != card || c.Bits != 26 {
					wrong++
				}
			}
		}
		switch {
		case clean && !got:
			cleanMissed++
		case clean && o.Glitches == 0 && !frames[0].Early:
			cleanLate++ // glitches alone rightly hold a frame to the gap
		}
		at = ev[len(ev)-1].At.Add(2 * DefaultGap)
	}
	s := d.Stats()
	t.Logf("%d frames: %d credentials, %d would pass parity as another card; stats %+v", n, credentials, wouldBeWrong, s)
	if wrong != 0 || cleanMissed != 0 || cleanLate != 0 {
		t.Fatalf("%d wrong credentials, %d clean frames not decoded, %d not decoded early", wrong, cleanMissed, cleanLate)
	}
	if wouldBeWrong == 0 || s.Irregular == 0 || s.Early == 0 {
		t.Fatal("the noise never produced a frame that parity alone would accept: the test proves nothing")
	}
}

// wireBits returns the bits of the non-glitch pulses in time order.
func wireBits(ps []Pulse) []bool {
	ps = slices.Clone(ps)
	slices.SortStableFunc(ps, func(a, b Pulse) int { return a.Time.Compare(b.Time) })
	var bits []bool
	for _, p := range ps {
		if p.Width >= DefaultMinPulse {
			bits = append(bits, p.Line == D1)
		}
	}
	return bits
}

// BenchmarkFeedFrameEarly measures feeding a whole 26-bit frame that
// completes early, the decoder's share of the last-edge-to-decision delay
// being the last Feed of each.
func BenchmarkFeedFrameEarly(b *testing.B) {
	d, _ := NewDecoder(Config{CompleteAt: 26})
	bits := gpiosim.H10301(123, 4567)
	at := time.Unix(0, 0)
	for b.Loop() {
		var ok bool
		for _, p := range pulsesAt(bits, at, 2*time.Millisecond) {
			_, ok = d.Feed(p)
		}
		if !ok {
			b.Fatal("no early frame")
		}
		at = at.Add(time.Second)
	}
}
