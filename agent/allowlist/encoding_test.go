package allowlist

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/firmware-specs/allowlistvectors"
)

func TestEntryEncoding(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    Entry
		hex  string
	}{
		{"minimal", Entry{}, "01000000000000"},
		{"staff all fields", Entry{ValidFrom: time.Unix(1700000000, 0), ValidTo: time.Unix(1800000000, 0),
			DoorGroups: []uint32{1, 300}, Schedule: 7, Staff: true, AntiPassback: 2},
			"0101" + "80c49fd50c" + "80c8ceb40d" + "07" + "02" + "01ac02" + "02"},
	} {
		b, err := AppendEntryValue(nil, &tc.e)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if hex.EncodeToString(b) != tc.hex {
			t.Errorf("%s: encoded %x, want %s", tc.name, b, tc.hex)
		}
		var got Entry
		if err := DecodeEntryValue(b, &got); err != nil || !sameEntry(got, tc.e) {
			t.Errorf("%s: decoded %+v %v", tc.name, got, err)
		}
	}
}

func TestEntryDecodeErrors(t *testing.T) {
	for _, h := range []string{
		"",                       // empty
		"02000000000000",         // format
		"01020000000000",         // unknown flag
		"010000000000",           // truncated
		"0100000000000000",       // trailing
		"010000000002050300",     // groups not ascending
		"01000000004100",         // 65 groups
		"0100000080000000",       // non-minimal schedule
		"010000000000ffffffff1f", // anti-passback > 32 bits
	} {
		b, _ := hex.DecodeString(h)
		var e Entry
		if err := DecodeEntryValue(b, &e); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: err %v, want ErrMalformed", h, err)
		}
	}
	if _, err := AppendEntryValue(nil, &Entry{DoorGroups: []uint32{2, 2}}); !errors.Is(err, ErrMalformed) {
		t.Errorf("duplicate door groups encoded: %v", err)
	}
}

func TestScheduleEncoding(t *testing.T) {
	for _, s := range testSchedules {
		b, err := AppendSchedule(nil, &s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeSchedule(b)
		if err != nil {
			t.Fatal(err)
		}
		b2, _ := AppendSchedule(nil, &got)
		if !bytes.Equal(b, b2) || got.ID != s.ID || len(got.Windows) != len(s.Windows) || len(got.Holidays) != len(s.Holidays) {
			t.Errorf("schedule %d: round trip %+v", s.ID, got)
		}
	}
	b, _ := AppendSchedule(nil, &testSchedules[0])
	if want := "01013ea403f40802e69f01e79f01"; hex.EncodeToString(b) != want {
		t.Errorf("encoded %x, want %s", b, want)
	}
	for _, bad := range []Schedule{
		{ID: 0},
		{ID: 1, Windows: []Window{{Days: 0, From: 0, To: 60}}},
		{ID: 1, Windows: []Window{{Days: 0x80, From: 0, To: 60}}},
		{ID: 1, Windows: []Window{{Days: 1, From: 60, To: 60}}},
		{ID: 1, Windows: []Window{{Days: 1, From: 0, To: 1441}}},
		{ID: 1, Holidays: []Date{3, 3}},
	} {
		if _, err := AppendSchedule(nil, &bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%+v encoded: %v", bad, err)
		}
	}
}

func TestTimeOfDay(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want TimeOfDay
		ok   bool
	}{
		{"00:00", 0, true}, {"07:30", 450, true}, {"23:59", 1439, true}, {"24:00", 1440, true},
		{"24:01", 0, false}, {"12:60", 0, false}, {"7:30", 0, false}, {"07-30", 0, false}, {"0a:00", 0, false},
	} {
		got, err := ParseTimeOfDay(tc.s)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%q: %v %v", tc.s, got, err)
		}
		if tc.ok && got.String() != tc.s {
			t.Errorf("%q: String %q", tc.s, got)
		}
	}
}

func TestDate(t *testing.T) {
	loc := time.FixedZone("CST", 8*3600)
	d := DateOf(time.Date(2026, 1, 1, 0, 30, 0, 0, loc)) // 2025-12-31 in UTC
	if d.String() != "2026-01-01" || d != 20454 {
		t.Errorf("DateOf = %d %s", d, d)
	}
	if !Days(0x3e).Has(time.Monday) || Days(0x3e).Has(time.Sunday) {
		t.Error("Days.Has")
	}
}

func TestParseKey(t *testing.T) {
	k, err := ParseKey("000102030405060708090a0b0c0d0e0f")
	if err != nil || k[15] != 15 || k.String() != "000102030405060708090a0b0c0d0e0f" {
		t.Errorf("%v %v", k, err)
	}
	for _, s := range []string{"", "00", "000102030405060708090a0b0c0d0e0g"} {
		if _, err := ParseKey(s); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v", s, err)
		}
	}
}

func TestChunkEncoding(t *testing.T) {
	es := testEntries(50, 1, 9)
	b, err := AppendChunk(nil, &Chunk{Entries: es, Schedules: testSchedules})
	if err != nil {
		t.Fatal(err)
	}
	c, err := DecodeChunk(b)
	if err != nil || len(c.Entries) != len(es) || len(c.Schedules) != len(testSchedules) {
		t.Fatalf("decode: %d %d %v", len(c.Entries), len(c.Schedules), err)
	}
	for i := range es {
		if !sameEntry(c.Entries[i], es[i]) {
			t.Fatalf("entry %d: %+v want %+v", i, c.Entries[i], es[i])
		}
	}
	if c.Entries[0].DoorGroups[0] != es[0].DoorGroups[0] || &c.Entries[0].DoorGroups[0] == &c.Entries[1].DoorGroups[0] {
		t.Error("decoded entries share door group storage")
	}
	rev := []Entry{es[1], es[0]}
	if _, err := AppendChunk(nil, &Chunk{Entries: rev}); !errors.Is(err, ErrMalformed) {
		t.Errorf("descending keys encoded: %v", err)
	}
	for name, bad := range map[string][]byte{
		"magic":     append([]byte("KAC2"), b[4:]...),
		"truncated": b[:len(b)-1],
		"trailing":  append(append([]byte(nil), b...), 0),
		"type":      append([]byte("KAC1\x01\x03\x01\x00"), 0),
		"short":     []byte("KAC1\x01\x01\x02\x00\x00"),
	} {
		if _, err := DecodeChunk(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzDecodeEntryValue(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0})
	if v, err := allowlistvectors.Load(); err == nil {
		for _, e := range v.Entries {
			f.Add([]byte(e.Value))
		}
		for _, m := range v.MalformedEntries {
			f.Add([]byte(m.Hex))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Entry
		if DecodeEntryValue(b, &e) != nil {
			return
		}
		// A decodable value has one encoding: re-encoding gives it back.
		b2, err := AppendEntryValue(nil, &e)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("%x re-encoded as %x (%v)", b, b2, err)
		}
	})
}

func FuzzDecodeChunk(f *testing.F) {
	b, _ := AppendChunk(nil, &Chunk{Entries: testEntries(3, 2, 1), Schedules: testSchedules})
	f.Add(b)
	f.Add([]byte("KAC1\x00"))
	if v, err := allowlistvectors.Load(); err == nil {
		for _, c := range v.Snapshot.Chunks {
			f.Add([]byte(c))
		}
		for _, m := range v.MalformedChunks {
			f.Add([]byte(m.Hex))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeChunk(b)
		if err != nil {
			return
		}
		b2, err := AppendChunk(nil, &c)
		if err != nil {
			t.Fatalf("decoded chunk does not encode: %v", err)
		}
		c2, err := DecodeChunk(b2)
		if err != nil || len(c2.Entries) != len(c.Entries) || len(c2.Schedules) != len(c.Schedules) {
			t.Fatalf("re-encoded chunk: %v", err)
		}
		for i := range c.Entries {
			if !sameEntry(c.Entries[i], c2.Entries[i]) {
				t.Fatalf("entry %d changed", i)
			}
		}
	})
}
