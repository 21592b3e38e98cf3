package allowlist

import (
	"bytes"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/firmware-specs/allowlistvectors"
)

func loadVectors(t *testing.T) allowlistvectors.Vectors {
	t.Helper()
	v, err := allowlistvectors.Load()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func vectorEntry(ve allowlistvectors.Entry) Entry {
	e := Entry{Key: Key(ve.Key), Schedule: ve.Schedule, Staff: ve.Staff, AntiPassback: ve.AntiPassback}
	if ve.ValidFrom != 0 {
		e.ValidFrom = time.Unix(ve.ValidFrom, 0)
	}
	if ve.ValidTo != 0 {
		e.ValidTo = time.Unix(ve.ValidTo, 0)
	}
	if len(ve.DoorGroups) > 0 {
		e.DoorGroups = ve.DoorGroups
	}
	return e
}

func TestVectorsEntries(t *testing.T) {
	v := loadVectors(t)
	for _, ve := range v.Entries {
		want := vectorEntry(ve)
		b, err := AppendEntryValue(nil, &want)
		if err != nil || !bytes.Equal(b, ve.Value) {
			t.Errorf("%s: encoded %x %v, want %x", ve.Name, b, err, []byte(ve.Value))
		}
		got := Entry{Key: want.Key}
		if err := DecodeEntryValue(ve.Value, &got); err != nil || !sameEntry(got, want) {
			t.Errorf("%s: decoded %+v %v", ve.Name, got, err)
		}
	}
	for _, m := range v.MalformedEntries {
		var e Entry
		if err := DecodeEntryValue(m.Hex, &e); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", m.Name, err)
		}
	}
}

func TestVectorsSchedules(t *testing.T) {
	v := loadVectors(t)
	for _, vs := range v.Schedules {
		s := Schedule{ID: vs.ID}
		for _, w := range vs.Windows {
			var d Days
			for _, day := range w.Days {
				d |= 1 << day
			}
			from, err1 := ParseTimeOfDay(w.From)
			to, err2 := ParseTimeOfDay(w.To)
			if err1 != nil || err2 != nil {
				t.Fatalf("%s: %v %v", vs.Name, err1, err2)
			}
			s.Windows = append(s.Windows, Window{Days: d, From: from, To: to})
		}
		for _, h := range vs.Holidays {
			tm, err := time.Parse(time.DateOnly, h)
			if err != nil {
				t.Fatal(err)
			}
			s.Holidays = append(s.Holidays, DateOf(tm))
		}
		b, err := AppendSchedule(nil, &s)
		if err != nil || !bytes.Equal(b, vs.Hex) {
			t.Errorf("%s: encoded %x %v, want %x", vs.Name, b, err, []byte(vs.Hex))
		}
		got, err := DecodeSchedule(vs.Hex)
		if err != nil || got.ID != s.ID || !slices.Equal(got.Windows, s.Windows) || !slices.Equal(got.Holidays, s.Holidays) {
			t.Errorf("%s: decoded %+v %v", vs.Name, got, err)
		}
	}
}

func TestVectorsSnapshot(t *testing.T) {
	v := loadVectors(t)
	for _, m := range v.MalformedChunks {
		if _, err := DecodeChunk(m.Hex); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", m.Name, err)
		}
	}
	a, err := Open(filepath.Join(t.TempDir(), "a.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	sn := v.Snapshot
	if err := a.BeginSnapshot(sn.Version, uint64(len(sn.Chunks)), [32]byte(sn.SHA256)); err != nil {
		t.Fatal(err)
	}
	for i, c := range sn.Chunks {
		if err := a.PutChunk(uint64(i), c); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.CommitSnapshot(); err != nil {
		t.Fatal(err)
	}
	var want []Entry
	for _, ve := range v.Entries {
		if slices.Contains(sn.Entries, ve.Name) {
			want = append(want, vectorEntry(ve))
		}
	}
	checkList(t, a, sn.Version, want)
	for _, id := range sn.Schedules {
		if _, ok, err := a.Schedule(id); !ok || err != nil {
			t.Errorf("schedule %d: %v %v", id, ok, err)
		}
	}
}
