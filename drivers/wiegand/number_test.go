package wiegand

import (
	"errors"
	"testing"
)

func TestCanonicalNumberMatchesDecoder(t *testing.T) {
	for _, c := range []struct {
		enc, in, want string
	}{
		{"H10301", "12-3456", "012-03456"},
		{"H10301", "012-03456", "012-03456"},
		{"H10301", " 255-65535 ", "255-65535"},
		{"34bit", "7-42", "00007-00042"},
		{"H10304", "1-2", "00001-000002"},
		{"raw", "26:abc", "26:abc"},
	} {
		got, err := CanonicalNumber(c.enc, c.in)
		if err != nil || got != c.want {
			t.Errorf("CanonicalNumber(%s, %q) = %q, %v; want %q", c.enc, c.in, got, err, c.want)
		}
	}
	for _, c := range [][2]string{{"H10301", "256-1"}, {"H10301", "1-65536"}, {"H10301", "12"}, {"H10301", "a-b"}, {"H9999", "1-2"}} {
		if _, err := CanonicalNumber(c[0], c[1]); !errors.Is(err, ErrConfig) {
			t.Errorf("CanonicalNumber(%s, %q) err = %v, want ErrConfig", c[0], c[1], err)
		}
	}
	// The decoder's own number for a frame is a fixed point.
	var data []bool
	for i := 7; i >= 0; i-- {
		data = append(data, 12>>i&1 == 1)
	}
	for i := 15; i >= 0; i-- {
		data = append(data, 3456>>i&1 == 1)
	}
	ones := func(b []bool) (n int) {
		for _, x := range b {
			if x {
				n++
			}
		}
		return n
	}
	bits := append([]bool{ones(data[:12])%2 == 1}, data...)
	bits = append(bits, ones(data[12:])%2 == 0)
	c, ok := Decode(bits, Config{}).Credential()
	if !ok {
		t.Fatal("test frame does not decode")
	}
	if got, err := CanonicalNumber(c.Encoding, "12-3456"); err != nil || got != c.Number {
		t.Errorf("12-3456 canonicalises to %q, %v; the decoder says %q", got, err, c.Number)
	}
}
