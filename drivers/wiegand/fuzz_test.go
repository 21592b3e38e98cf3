package wiegand

import (
	"slices"
	"testing"
	"time"
)

// FuzzDecoder feeds arbitrary pulse trains: each input byte is one pulse
// (bit 0: line; bits 1–6: the interval since the previous pulse in ms, so
// some exceed the gap; bit 7: a 5 µs glitch instead of a 50 µs pulse) to
// three decoders: without CompleteAt, with CompleteAt 26, and with
// CompleteAt 37 and short raw lengths. It checks the decoders never panic,
// every frame is exactly one of good/raw/bad, only good frames carry a
// credential whose bit count matches the frame, the counters add up, and
// the early-completion invariant: with CompleteAt set, a frame with a
// credential is no longer than CompleteAt (exactly CompleteAt when no
// shorter length can be good), its pulses are regularly timed, and an
// early frame has exactly CompleteAt pulses and no glitch.
func FuzzDecoder(f *testing.F) {
	for _, g := range loadVectors(f).Good {
		f.Add(seed(g.Bits))
	}
	for _, b := range loadVectors(f).Bad {
		f.Add(seed(b.Bits))
	}
	f.Add([]byte{0xff, 0x00, 0x01, 0xfe})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, cfg := range []Config{
			{RawBits: []int{4, 8}},
			{CompleteAt: 26},
			{CompleteAt: 37, RawBits: []int{4, 8}},
		} {
			d, err := NewDecoder(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var fed []Pulse // every non-glitch pulse, in time order
			check := func(fr Frame) {
				c, ok := fr.Credential()
				if ok != (fr.Status == Good) {
					t.Fatalf("credential %v for a %v frame", ok, fr.Status)
				}
				if fr.Status == Bad && fr.Reason == "" {
					t.Fatal("bad frame without a reason")
				}
				if ok && c.Bits != fr.Count {
					t.Fatalf("credential of %d bits from a %d-bit frame", c.Bits, fr.Count)
				}
				n := cfg.CompleteAt
				if fr.Early && (fr.Status != Good || fr.Count != n || fr.Glitches != 0) {
					t.Fatalf("early %v with %d bits and %d glitches at complete-at %d", fr, fr.Count, fr.Glitches, n)
				}
				if !ok || n == 0 {
					return
				}
				if fr.Count > n || (n == 26 && fr.Count != 26) {
					t.Fatalf("credential from %d bits at complete-at %d", fr.Count, n)
				}
				var times []time.Time
				for _, p := range fed {
					if !p.Time.Before(fr.Start) && !p.Time.After(fr.End) {
						times = append(times, p.Time)
					}
				}
				if len(times) != fr.Count || !regularTimes(times) {
					t.Fatalf("credential from %d irregular pulses %v", len(times), times)
				}
			}
			at := time.Unix(0, 0)
			for _, b := range data {
				at = at.Add(time.Duration(b>>1&0x3f) * time.Millisecond)
				p := Pulse{Line: Line(b & 1), Time: at, Width: 50 * time.Microsecond}
				if b&0x80 != 0 {
					p.Width = 5 * time.Microsecond
				} else {
					fed = append(fed, p)
				}
				if fr, ok := d.Feed(p); ok {
					check(fr)
				}
			}
			if fr, ok := d.Flush(at.Add(time.Hour)); ok {
				check(fr)
			}
			s := d.Stats()
			if s.Frames != s.Good+s.Raw+s.Bad || s.Bad != s.Parity+s.TooShort+s.TooLong+s.BothLow+s.Irregular+s.Trailing || s.Early > s.Good {
				t.Fatalf("stats don't add up: %+v", s)
			}
		}
	})
}

// regularTimes is wiegand.md §3.2 written again for the test: every
// interval within 0.7–1.5 times the median, which is positive.
func regularTimes(ts []time.Time) bool {
	if len(ts) < 3 {
		return true
	}
	var iv []time.Duration
	for i := 1; i < len(ts); i++ {
		iv = append(iv, ts[i].Sub(ts[i-1]))
	}
	s := slices.Sorted(slices.Values(iv))
	m := s[len(s)/2]
	return m > 0 && 10*s[0] >= 7*m && 2*s[len(s)-1] <= 3*m
}

// seed turns a vector's bit string into fuzz input: 2 ms apart, line = bit.
func seed(bits string) []byte {
	out := make([]byte, len(bits))
	for i, c := range bits {
		out[i] = 2 << 1
		if c == '1' {
			out[i] |= 1
		}
	}
	return out
}
