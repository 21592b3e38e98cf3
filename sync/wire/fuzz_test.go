package wire_test

import (
	"bytes"
	"testing"

	"github.com/kioskedge/kioskedge/firmware-specs/hubvectors"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// FuzzUnmarshalRecord: no input panics, and whatever decodes re-encodes to
// a record that decodes to the same fields. (Bytes may differ: a decoder
// accepts non-minimal varints, an encoder writes minimal ones; §4.)
func FuzzUnmarshalRecord(f *testing.F) {
	vs, err := hubvectors.LoadRecords()
	if err != nil {
		f.Fatal(err)
	}
	for _, v := range vs.Valid {
		f.Add(vecBytes(f, v.Hex))
	}
	for _, v := range vs.Invalid {
		f.Add(vecBytes(f, v.Hex))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := wire.UnmarshalRecord(1, "a", b)
		if err != nil {
			return
		}
		enc, err := wire.MarshalRecord(r)
		if err != nil {
			t.Fatalf("decoded %+v but cannot re-encode: %v", r, err)
		}
		if len(enc) > len(b) {
			t.Fatalf("re-encoded %d bytes from %d", len(enc), len(b))
		}
		r2, err := wire.UnmarshalRecord(1, "a", enc)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		_, off1 := r.Time.Zone()
		_, off2 := r2.Time.Zone()
		if r2.Kind != r.Kind || r2.Class != r.Class || r2.Time.UnixMilli() != r.Time.UnixMilli() ||
			off1 != off2 || !bytes.Equal(r2.Body, r.Body) {
			t.Fatalf("round trip changed %+v into %+v", r, r2)
		}
		if again, err := wire.MarshalRecord(r2); err != nil || !bytes.Equal(again, enc) {
			t.Fatalf("encoding is not stable: % x then % x", enc, again)
		}
	})
}

// FuzzDecodeBatch: no input panics; a decoded batch satisfies the §5
// invariants and re-encodes to a batch with the same content.
func FuzzDecodeBatch(f *testing.F) {
	vs, err := hubvectors.LoadBatches()
	if err != nil {
		f.Fatal(err)
	}
	for _, v := range vs.Valid {
		f.Add(vecBytes(f, v.Hex))
	}
	for _, v := range vs.Invalid {
		f.Add(vecBytes(f, v.Hex))
	}
	c := newCodec(f, wire.Limits{MaxMessage: 1 << 20, MaxRaw: 4 << 20, MaxRecords: 10_000})
	msg, _, err := c.EncodeBatch("gate-01", "boot-1", 10, 20, testEntries(f, 10, 12, 20), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(msg)
	f.Fuzz(func(t *testing.T, msg []byte) {
		b, err := c.DecodeBatch(msg)
		if err != nil {
			return
		}
		if b.First == 0 || b.Last < b.First || len(b.Entries) == 0 || wire.ValidateID("agent", b.Agent) != nil {
			t.Fatalf("accepted header %+v", b)
		}
		prev := b.First - 1
		for _, e := range b.Entries {
			if e.Seq <= prev || e.Seq > b.Last {
				t.Fatalf("entry %d out of order or range [%d, %d]", e.Seq, b.First, b.Last)
			}
			prev = e.Seq
		}
		enc, _, err := c.EncodeBatch(b.Agent, b.BootID, b.First, b.Last, b.Entries, nil)
		if err != nil {
			t.Fatalf("decoded batch cannot be re-encoded: %v", err)
		}
		b2, err := c.DecodeBatch(enc)
		if err != nil {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
		if b2.Agent != b.Agent || b2.BootID != b.BootID || b2.First != b.First || b2.Last != b.Last {
			t.Fatalf("header changed: %+v then %+v", b, b2)
		}
		if len(b2.Entries) != len(b.Entries) {
			t.Fatalf("%d entries then %d", len(b.Entries), len(b2.Entries))
		}
		for i := range b.Entries {
			if b2.Entries[i].Seq != b.Entries[i].Seq || !bytes.Equal(b2.Entries[i].Raw, b.Entries[i].Raw) {
				t.Fatalf("entry %d changed", i)
			}
		}
	})
}
