package wire_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/wire"
)

func TestRecordRoundTrip(t *testing.T) {
	at := time.Date(2024, 5, 1, 8, 30, 0, 123_456_789, time.UTC)
	for _, c := range []struct {
		name string
		off  int // zone offset in seconds
		t    time.Time
	}{
		{"utc", 0, at},
		{"plus-0300", 3 * 3600, at},
		{"minus-0500", -5 * 3600, at},
		{"plus-0545", 5*3600 + 45*60, at},
		{"minus-0930", -(9*3600 + 30*60), at},
		{"plus-1800", 18 * 3600, at},
		{"minus-1800", -18 * 3600, at},
		{"odd-seconds", 4*3600 + 51*60 + 7, at}, // historical local mean times
		{"epoch", 0, time.UnixMilli(0)},
		{"before-epoch", 3600, time.UnixMilli(-1)},
		{"year-1", 0, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"year-9999", -3600, time.Date(9999, 12, 31, 23, 59, 59, 999_000_000, time.UTC)},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := wire.Record{
				Seq: 99, Agent: "gate-01", Kind: wire.KindAccess, Class: wire.ClassCritical,
				Time: c.t.In(time.FixedZone("local", c.off)),
				Body: []byte(`{"door":"d1","result":"granted"}`),
			}
			b, err := wire.MarshalRecord(in)
			if err != nil {
				t.Fatal(err)
			}
			if cl, err := wire.RecordClass(b); err != nil || cl != wire.ClassCritical {
				t.Errorf("RecordClass = %v, %v", cl, err)
			}
			out, err := wire.UnmarshalRecord(99, "gate-01", b)
			if err != nil {
				t.Fatal(err)
			}
			if out.Seq != 99 || out.Agent != "gate-01" || out.Kind != in.Kind || out.Class != in.Class || !bytes.Equal(out.Body, in.Body) {
				t.Errorf("got %+v", out)
			}
			// Time is carried to the millisecond, with the zone offset.
			if want := in.Time.Truncate(time.Millisecond); !out.Time.Equal(want) && out.Time.UnixMilli() != in.Time.UnixMilli() {
				t.Errorf("time %v, want %v", out.Time, want)
			}
			if out.Time.UnixMilli() != in.Time.UnixMilli() {
				t.Errorf("unix ms %d, want %d", out.Time.UnixMilli(), in.Time.UnixMilli())
			}
			if _, off := out.Time.Zone(); off != c.off {
				t.Errorf("zone offset %d, want %d", off, c.off)
			}
			if out.Time.Format("15:04:05.000") != in.Time.Format("15:04:05.000") {
				t.Errorf("wall clock %s, want %s", out.Time.Format(time.RFC3339Nano), in.Time.Format(time.RFC3339Nano))
			}
			// Re-encoding the decoded record gives the same bytes.
			again, err := wire.MarshalRecord(out)
			if err != nil || !bytes.Equal(again, b) {
				t.Errorf("re-encoded % x, %v; want % x", again, err, b)
			}
		})
	}
}

func TestRecordAppendKeepsPrefix(t *testing.T) {
	r := wire.Record{Kind: "a", Class: wire.ClassHealth, Time: time.UnixMilli(0).UTC()}
	b, err := wire.AppendRecord([]byte("prefix"), r)
	if err != nil || !bytes.Equal(b, []byte("prefix\x01\x01\x01a\x00\x00\x00")) {
		t.Errorf("AppendRecord = %q, %v", b, err)
	}
}

func TestRecordLimits(t *testing.T) {
	ok := wire.Record{Kind: "a", Class: wire.ClassEvent, Time: time.UnixMilli(1).UTC()}
	for _, c := range []struct {
		name string
		mod  func(*wire.Record)
		ok   bool
	}{
		{"valid", func(*wire.Record) {}, true},
		{"kind 64 bytes", func(r *wire.Record) { r.Kind = strings.Repeat("k", wire.MaxKindLen) }, true},
		{"kind 65 bytes", func(r *wire.Record) { r.Kind = strings.Repeat("k", wire.MaxKindLen+1) }, false},
		{"empty kind", func(r *wire.Record) { r.Kind = "" }, false},
		{"body at max", func(r *wire.Record) { r.Body = make([]byte, wire.MaxBodyLen) }, true},
		{"body over max", func(r *wire.Record) { r.Body = make([]byte, wire.MaxBodyLen+1) }, false},
		{"class 0", func(r *wire.Record) { r.Class = 0 }, false},
		{"class 4", func(r *wire.Record) { r.Class = 4 }, false},
		{"zone +18:00", func(r *wire.Record) { r.Time = r.Time.In(time.FixedZone("", 18*3600)) }, true},
		{"zone +18:00:01", func(r *wire.Record) { r.Time = r.Time.In(time.FixedZone("", 18*3600+1)) }, false},
		{"zone -18:00:01", func(r *wire.Record) { r.Time = r.Time.In(time.FixedZone("", -18*3600-1)) }, false},
	} {
		r := ok
		c.mod(&r)
		b, err := wire.MarshalRecord(r)
		if !c.ok {
			if !errors.Is(err, wire.ErrBadRecord) {
				t.Errorf("%s: MarshalRecord err = %v, want ErrBadRecord", c.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		// Whatever the encoder accepts, the decoder accepts.
		if _, err := wire.UnmarshalRecord(1, "a", b); err != nil {
			t.Errorf("%s: decoding what was encoded: %v", c.name, err)
		}
	}
}

func TestRecordClass(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		want error
	}{
		{nil, wire.ErrShortRecord},
		{[]byte{1}, wire.ErrShortRecord},
		{[]byte{2, 1}, wire.ErrRecordVersion},
		{[]byte{1, 0}, wire.ErrBadRecord},
		{[]byte{1, 4}, wire.ErrBadRecord},
	} {
		if _, err := wire.RecordClass(c.in); !errors.Is(err, c.want) {
			t.Errorf("RecordClass(% x) = %v, want %v", c.in, err, c.want)
		}
	}
	for _, cl := range []wire.Class{wire.ClassHealth, wire.ClassEvent, wire.ClassCritical} {
		if got, err := wire.RecordClass([]byte{1, byte(cl)}); err != nil || got != cl {
			t.Errorf("RecordClass(%v) = %v, %v", cl, got, err)
		}
	}
	if wire.ClassHealth.String() != "health" || wire.ClassEvent.String() != "event" ||
		wire.ClassCritical.String() != "critical" || wire.Class(9).String() != "class(9)" {
		t.Error("Class.String")
	}
	// Eviction order: lower classes go first.
	if !(wire.ClassHealth < wire.ClassEvent && wire.ClassEvent < wire.ClassCritical) {
		t.Error("class order")
	}
}
