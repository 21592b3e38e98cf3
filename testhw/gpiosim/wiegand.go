package gpiosim

import (
	"math/rand/v2"
	"sort"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// Wiegand timing defaults (firmware-specs/wiegand.md §2).
const (
	DefaultPulse    = 50 * time.Microsecond
	DefaultInterval = 2 * time.Millisecond
	// DefaultGlitch is the width of an injected glitch: far below the
	// shortest pulse a reader should accept.
	DefaultGlitch = 2 * time.Microsecond
)

// TxOptions tunes a Wiegand transmission. The zero value sends a clean
// frame.
type TxOptions struct {
	// Jitter is the largest random shift (either way) applied to each
	// bit's start; it is kept below half the interval.
	Jitter time.Duration
	// Glitches is how many short pulses (GlitchWidth, default
	// DefaultGlitch) to inject between bits, on random lines.
	Glitches    int
	GlitchWidth time.Duration
	// Spurious is how many extra full-width pulses to inject between bits:
	// they add bits to the frame, as induced noise on a long cable does.
	Spurious int
	// Drop is how many of the frame's bits to leave out, at random
	// positions, as a pulse lost on the cable: the frame arrives short, with
	// a doubled interval where each one was.
	Drop int
	// Rand drives jitter and noise; nil means a fixed seed (reproducible).
	Rand *rand.Rand
	// Start is the time of the first edge; zero means now (Transmit) or the
	// Unix epoch (Schedule).
	Start time.Time
	// NoPace makes Transmit set the lines as fast as it can, with the
	// scheduled timestamps, instead of sleeping until each edge is due.
	NoPace bool
}

// TxEdge is one scheduled level change of D0 (Line 0) or D1 (Line 1).
type TxEdge struct {
	Line  int
	Level gpio.Level
	At    time.Time
}

// Schedule returns the edges of one frame, in time order: bit i's pulse
// falls at Start + i*interval (plus jitter) on D0 for a 0 and D1 for a 1,
// and rises pulse later; injected noise falls between bits and dropped
// bits have no pulse. pulse and
// interval default to DefaultPulse and DefaultInterval when zero.
func Schedule(bits []bool, pulse, interval time.Duration, o TxOptions) []TxEdge {
	if pulse <= 0 {
		pulse = DefaultPulse
	}
	if interval <= 0 {
		interval = DefaultInterval
	}
	r := o.Rand
	if r == nil {
		r = rand.New(rand.NewPCG(1, 2))
	}
	start := o.Start
	if start.IsZero() {
		start = time.Unix(0, 0)
	}
	jitter := min(o.Jitter, interval/2-pulse)
	var dropped map[int]bool
	if o.Drop > 0 {
		dropped = map[int]bool{}
		for _, i := range r.Perm(len(bits))[:min(o.Drop, len(bits))] {
			dropped[i] = true
		}
	}
	var ev []TxEdge
	pulseAt := func(line int, at time.Time, w time.Duration) {
		ev = append(ev, TxEdge{line, gpio.Low, at}, TxEdge{line, gpio.High, at.Add(w)})
	}
	for i, b := range bits {
		at := start.Add(time.Duration(i) * interval)
		if jitter > 0 {
			at = at.Add(time.Duration(r.Int64N(int64(2*jitter+1))) - jitter)
		}
		if dropped[i] {
			continue
		}
		line := 0
		if b {
			line = 1
		}
		pulseAt(line, at, pulse)
	}
	// Noise goes in the middle of a gap between bits (or after the last
	// one), clear of the jittered pulses on either side.
	noise := func(w time.Duration) {
		gap := r.IntN(max(len(bits), 1))
		at := start.Add(time.Duration(gap)*interval + interval/2 - w/2)
		pulseAt(r.IntN(2), at, w)
	}
	gw := o.GlitchWidth
	if gw <= 0 {
		gw = DefaultGlitch
	}
	for range o.Glitches {
		noise(gw)
	}
	for range o.Spurious {
		noise(pulse)
	}
	sort.SliceStable(ev, func(i, j int) bool { return ev[i].At.Before(ev[j].At) })
	return ev
}

// Transmit clocks bits onto d0 and d1 (see Schedule), which idle High, and
// returns the time of the last edge. Unless o.NoPace, it sleeps until each
// edge is due; the edges carry their scheduled times whatever the sleep
// overshoot, so a reader sees exact pulse widths.
func Transmit(d0, d1 *Line, bits []bool, pulse, interval time.Duration, o TxOptions) time.Time {
	if o.Start.IsZero() {
		o.Start = time.Now()
	}
	lines := [2]*Line{d0, d1}
	var last time.Time
	for _, e := range Schedule(bits, pulse, interval, o) {
		if !o.NoPace {
			if d := time.Until(e.At); d > 0 {
				time.Sleep(d)
			}
		}
		lines[e.Line].SetAt(e.Level, e.At)
		last = e.At
	}
	return last
}

// H10301 returns the 26-bit frame for facility (8 bits) and card (16
// bits): even parity over bits 1–12, then the data, then odd parity over
// bits 13–24 (wiegand.md §4.1).
func H10301(facility, card uint32) []bool {
	return withParity(appendBits(appendBits(nil, uint64(facility), 8), uint64(card), 16), 12, 12)
}

// Bits34 returns the 34-bit frame for a 16-bit facility and 16-bit card:
// even parity over the first 16 data bits, odd over the last 16.
func Bits34(facility, card uint32) []bool {
	return withParity(appendBits(appendBits(nil, uint64(facility), 16), uint64(card), 16), 16, 16)
}

// H10304 returns the 37-bit frame for a 16-bit facility and 19-bit card:
// even parity over data bits 1–18 (frame bits 1–18), odd over data bits
// 18–35 (frame bits 18–35): the two ranges share frame bit 18.
func H10304(facility, card uint32) []bool {
	data := appendBits(appendBits(nil, uint64(facility), 16), uint64(card), 19)
	even := ones(data[:18])%2 == 1
	odd := ones(data[17:])%2 == 0
	return append(append([]bool{even}, data...), odd)
}

func withParity(data []bool, evenN, oddN int) []bool {
	even := ones(data[:evenN])%2 == 1
	odd := ones(data[len(data)-oddN:])%2 == 0
	return append(append([]bool{even}, data...), odd)
}

func appendBits(b []bool, v uint64, n int) []bool {
	for i := n - 1; i >= 0; i-- {
		b = append(b, v>>uint(i)&1 == 1)
	}
	return b
}

func ones(b []bool) int {
	n := 0
	for _, x := range b {
		if x {
			n++
		}
	}
	return n
}

// ParseBits turns "0101…" into bits; other characters (spaces) are skipped.
func ParseBits(s string) []bool {
	var b []bool
	for _, c := range s {
		switch c {
		case '0':
			b = append(b, false)
		case '1':
			b = append(b, true)
		}
	}
	return b
}
