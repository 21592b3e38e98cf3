package idcardvectors

import (
	"bytes"
	"testing"
)

// The vectors are self-consistent: every frame starts with the preamble and
// every valid frame's length field matches its size.
func TestVectorsLoad(t *testing.T) {
	s := MustLoad()
	if len(s.Requests) != 5 || len(s.Cards) != 2 || len(s.MalformedFrames) == 0 || len(s.MalformedCards) == 0 {
		t.Fatalf("unexpected vector counts: %d requests, %d cards", len(s.Requests), len(s.Cards))
	}
	pre := []byte{0xAA, 0xAA, 0xAA, 0x96, 0x69}
	var all []string
	for _, r := range s.Requests {
		all = append(all, r.Hex)
	}
	for _, r := range s.Responses {
		all = append(all, r.Hex)
	}
	for _, c := range s.Cards {
		all = append(all, c.Hex)
	}
	for _, h := range all {
		b := Bytes(h)
		if !bytes.HasPrefix(b, pre) {
			t.Errorf("frame without preamble: %x", b[:min(8, len(b))])
			continue
		}
		if n := int(b[5])<<8 | int(b[6]); n != len(b)-7 {
			t.Errorf("length field %d, frame has %d bytes after it", n, len(b)-7)
		}
	}
}
