package sscard

import (
	"bytes"
	"errors"
	"testing"

	"github.com/kioskedge/kioskedge/firmware-specs/sscardvectors"
)

// FuzzParseFrame: never panics, never consumes more than it was given or
// nothing on an error other than "short", and a valid payload re-encodes to
// exactly the bytes consumed.
func FuzzParseFrame(f *testing.F) {
	for _, v := range vec.Frames {
		f.Add(sscardvectors.Bytes(v.Hex))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, n, err := ParseFrame(b)
		if n < 0 || n > len(b) {
			t.Fatalf("n = %d of %d", n, len(b))
		}
		switch {
		case err == nil:
			enc, eerr := AppendFrame(nil, p)
			if eerr != nil || !bytes.Equal(enc, b[:n]) {
				t.Fatalf("payload %x re-encodes to %x, consumed %x", p, enc, b[:n])
			}
		case errors.Is(err, ErrShortFrame):
			if n != 0 {
				t.Fatalf("short with n = %d", n)
			}
		case n == 0:
			t.Fatalf("%v without progress", err)
		}
	})
}

// FuzzResponse: ParseResponse and CheckSW never panic; data+SW rebuild the
// input; only 9000 is success.
func FuzzResponse(f *testing.F) {
	for _, v := range vec.Responses {
		f.Add(sscardvectors.Bytes(v.Hex))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		data, sw, err := ParseResponse(b)
		if err != nil {
			if len(b) >= 2 || !errors.Is(err, ErrMalformed) {
				t.Fatalf("%x: %v", b, err)
			}
			return
		}
		if !bytes.Equal(append(append([]byte(nil), data...), byte(sw>>8), byte(sw)), b) {
			t.Fatalf("%x does not rebuild", b)
		}
		if e := CheckSW("fuzz", sw); (e == nil) != (sw == 0x9000) {
			t.Fatalf("SW %04X: %v", sw, e)
		}
	})
}

// FuzzParseTLV: never panics; items cover the input in order (values are
// subslices within bounds) and every item's tag is not padding.
func FuzzParseTLV(f *testing.F) {
	for _, v := range vec.TLV {
		f.Add(sscardvectors.Bytes(v.Hex))
	}
	for _, r := range append(vec.Card.EF05, vec.Card.EF06...) {
		f.Add(sscardvectors.Bytes(r.Hex))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		items, err := ParseTLV(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("%x: %v", b, err)
			}
			return
		}
		total := 0
		for _, it := range items {
			if it.Tag == 0x00 || it.Tag == 0xFF {
				t.Fatalf("padding tag returned as an item")
			}
			total += 2 + len(it.Value)
		}
		if total > len(b) {
			t.Fatalf("items cover %d of %d bytes", total, len(b))
		}
		// The field decoders must not panic on any value either.
		for _, it := range items {
			_, _ = decodeAN(it.Value)  // errors are fine here; panics are not
			_, _ = decodeCN(it.Value)  // same
			_, _ = decodeGBK(it.Value) // same
			_, _ = decodeDate(it.Value)
		}
	})
}
