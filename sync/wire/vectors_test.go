package wire_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/kioskedge/kioskedge/firmware-specs/hubvectors"
	"github.com/kioskedge/kioskedge/sync/wire"
)

func vecBytes(t testing.TB, h string) []byte {
	t.Helper()
	b, err := hubvectors.Bytes(h)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRecordVectors(t *testing.T) {
	vs, err := hubvectors.LoadRecords()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs.Valid {
		t.Run(v.Name, func(t *testing.T) {
			stored := vecBytes(t, v.Hex)
			r, err := wire.UnmarshalRecord(7, "gate-01", stored)
			if err != nil {
				t.Fatal(err)
			}
			_, off := r.Time.Zone()
			if r.Kind != v.Kind || uint8(r.Class) != v.Class || r.Time.UnixMilli() != v.UnixMS ||
				off != v.ZoneOffsetS || string(r.Body) != v.Body || r.Seq != 7 || r.Agent != "gate-01" {
				t.Errorf("decoded %+v (offset %d)", r, off)
			}
			// The encoder produces exactly the vector's bytes.
			enc, err := wire.MarshalRecord(r)
			if err != nil || !bytes.Equal(enc, stored) {
				t.Errorf("encoded % x, %v\nwant % x", enc, err, stored)
			}
		})
	}
	for _, v := range vs.Invalid {
		t.Run(v.Name, func(t *testing.T) {
			want := map[string]error{
				hubvectors.ErrShort: wire.ErrShortRecord, hubvectors.ErrVersion: wire.ErrRecordVersion,
				hubvectors.ErrMalformed: wire.ErrBadRecord,
			}[v.Error]
			if want == nil {
				t.Fatalf("error class %q is not a record error", v.Error)
			}
			if r, err := wire.UnmarshalRecord(1, "a", vecBytes(t, v.Hex)); !errors.Is(err, want) {
				t.Errorf("err %v, want %v (record %+v)", err, want, r)
			}
		})
	}
}

func TestBatchVectors(t *testing.T) {
	vs, err := hubvectors.LoadBatches()
	if err != nil {
		t.Fatal(err)
	}
	c := newCodec(t, wire.Limits{}) // the vectors assume the default limits
	for _, v := range vs.Valid {
		t.Run(v.Name, func(t *testing.T) {
			b, err := c.DecodeBatch(vecBytes(t, v.Hex))
			if err != nil {
				t.Fatal(err)
			}
			if b.Agent != v.Agent || b.BootID != v.BootID || b.First != v.First || b.Last != v.Last || b.Compression != v.Compression {
				t.Errorf("header %+v", b)
			}
			var want []wire.Entry
			for _, e := range v.Entries {
				want = append(want, wire.Entry{Seq: e.Seq, Raw: vecBytes(t, e.Hex)})
				// Every record in a valid batch vector is itself valid.
				if _, err := wire.UnmarshalRecord(e.Seq, v.Agent, vecBytes(t, e.Hex)); err != nil {
					t.Errorf("entry %d: %v", e.Seq, err)
				}
			}
			sameEntries(t, b.Entries, want)
			// Re-encoded with zstd it carries the same content.
			msg, _, err := c.EncodeBatch(b.Agent, b.BootID, b.First, b.Last, b.Entries, nil)
			if err != nil {
				t.Fatal(err)
			}
			again, err := c.DecodeBatch(msg)
			if err != nil {
				t.Fatal(err)
			}
			sameEntries(t, again.Entries, want)
		})
	}
	for _, v := range vs.Invalid {
		t.Run(v.Name, func(t *testing.T) {
			want := map[string]error{
				hubvectors.ErrMalformed: wire.ErrBadBatch, hubvectors.ErrVersion: wire.ErrBatchVersion,
				hubvectors.ErrEmpty: wire.ErrEmptyBatch, hubvectors.ErrTooBig: wire.ErrBatchTooBig,
			}[v.Error]
			if want == nil {
				t.Fatalf("error class %q is not a batch error", v.Error)
			}
			if b, err := c.DecodeBatch(vecBytes(t, v.Hex)); !errors.Is(err, want) {
				t.Errorf("err %v, want %v (batch %+v)", err, want, b)
			}
		})
	}
}
