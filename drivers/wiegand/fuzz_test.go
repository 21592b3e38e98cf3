package wiegand

import (
	"testing"
	"time"
)

// FuzzDecoder feeds arbitrary pulse trains: each input byte is one pulse
// (bit 0: line; bits 1–7: the interval since the previous pulse, scaled so
// some exceed the gap; widths vary). It checks the decoder never panics,
// every frame is exactly one of good/raw/bad, and only good frames carry a
// credential whose bit count matches the frame.
func FuzzDecoder(f *testing.F) {
	for _, g := range loadVectors(f).Good {
		f.Add(seed(g.Bits))
	}
	for _, b := range loadVectors(f).Bad {
		f.Add(seed(b.Bits))
	}
	f.Add([]byte{0xff, 0x00, 0x01, 0xfe})
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := NewDecoder(Config{RawBits: []int{4, 8}})
		if err != nil {
			t.Fatal(err)
		}
		at := time.Unix(0, 0)
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
		}
		for i, b := range data {
			at = at.Add(time.Duration(b>>1) * 500 * time.Microsecond)
			w := time.Duration(i%7) * 10 * time.Microsecond
			if fr, ok := d.Feed(Pulse{Line: Line(b & 1), Time: at, Width: w}); ok {
				check(fr)
			}
		}
		if fr, ok := d.Flush(at.Add(time.Hour)); ok {
			check(fr)
		}
		s := d.Stats()
		if s.Frames != s.Good+s.Raw+s.Bad {
			t.Fatalf("stats don't add up: %+v", s)
		}
	})
}

// seed turns a vector's bit string into fuzz input: 2 ms apart, line = bit.
func seed(bits string) []byte {
	out := make([]byte, len(bits))
	for i, c := range bits {
		out[i] = 4 << 1
		if c == '1' {
			out[i] |= 1
		}
	}
	return out
}
