package idcard

import (
	"testing"

	v "github.com/kioskedge/kioskedge/firmware-specs/idcardvectors"
)

// FuzzFrame runs the frame decoder and the stream splitter on arbitrary
// bytes: they must not panic, a decoded frame's data must span the frame, and Split must always make progress or ask for more.
func FuzzFrame(f *testing.F) {
	for _, r := range vectors.Responses {
		f.Add(v.Bytes(r.Hex))
	}
	for _, c := range vectors.Cards {
		f.Add(v.Bytes(c.Hex))
	}
	for _, m := range vectors.MalformedFrames {
		f.Add(v.Bytes(m.Hex))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := DecodeResponse(b); err == nil {
			if len(r.Data) != len(b)-11 {
				t.Fatalf("data length %d for a %d-byte frame", len(r.Data), len(b))
			}
			// Errors are the expected outcome for most inputs; only a
			// panic would be a failure here.
			_, _ = ParseBaseInfo(r.Data)
		}
		buf := b
		for len(buf) > 0 {
			drop, fr, err := Split(buf)
			if fr != nil {
				if _, derr := DecodeResponse(fr); derr != nil {
					t.Fatalf("Split returned a frame DecodeResponse rejects: %v", derr)
				}
			} else if drop == 0 {
				if len(buf) > headerLen+MaxLen {
					t.Fatalf("Split asks for more with %d bytes buffered", len(buf))
				}
				break
			} else if err == nil {
				t.Fatal("drop without a reason")
			}
			if drop > len(buf) {
				t.Fatalf("drop %d > %d", drop, len(buf))
			}
			buf = buf[drop:]
		}
	})
}

// FuzzBaseInfo runs the base-info decoder on arbitrary data: it must not
// panic, and an accepted card must satisfy the validation it claims.
func FuzzBaseInfo(f *testing.F) {
	for _, c := range vectors.Cards {
		r, err := DecodeResponse(v.Bytes(c.Hex))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(r.Data)
	}
	for _, m := range vectors.MalformedCards {
		f.Add(v.Bytes(m.Hex))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseBaseInfo(b)
		if err != nil {
			return
		}
		if !ValidNumber(c.Number) || c.Name == "" || SexName(c.Sex) == "" || c.BirthDate.IsZero() {
			t.Fatal("accepted an invalid card")
		}
		if len(c.Photo) != len(b)-4-TextLen {
			t.Fatal("photo length")
		}
	})
}
