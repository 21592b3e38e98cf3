package allowlist

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// testEntries returns n entries with random keys in ascending order; mark
// goes into AntiPassback so tests can tell lists apart.
func testEntries(n int, seed uint64, mark uint32) []Entry {
	r := rand.New(rand.NewPCG(seed, 1))
	es := make([]Entry, n)
	for i := range es {
		binary.BigEndian.PutUint64(es[i].Key[:], r.Uint64())
		binary.BigEndian.PutUint64(es[i].Key[8:], r.Uint64())
		es[i].ValidFrom = time.Unix(1_700_000_000+int64(i), 0).UTC()
		if i%3 == 0 {
			es[i].ValidTo = time.Unix(1_900_000_000, 0).UTC()
		}
		es[i].DoorGroups = []uint32{uint32(i % 5), uint32(i%5 + 1 + i%7)}
		es[i].Schedule = uint32(i % 3)
		es[i].Staff = i%50 == 0
		es[i].AntiPassback = mark
	}
	slices.SortFunc(es, func(a, b Entry) int { return bytes.Compare(a.Key[:], b.Key[:]) })
	return slices.CompactFunc(es, func(a, b Entry) bool { return a.Key == b.Key })
}

var testSchedules = []Schedule{
	{ID: 1, Windows: []Window{{Days: 0x3e, From: 7 * 60, To: 19 * 60}}, Holidays: []Date{20454, 20455}},
	{ID: 2, Windows: []Window{{Days: AllDays, From: 0, To: 1440}}},
}

func openTemp(t testing.TB) (*Allowlist, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "allowlist.db")
	a, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, path
}

// loadSnapshot sends a whole snapshot of es and testSchedules at version.
func loadSnapshot(t testing.TB, a *Allowlist, version uint64, es []Entry, perChunk int) {
	t.Helper()
	chunks, err := EncodeSnapshot(es, testSchedules, perChunk)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.BeginSnapshot(version, uint64(len(chunks)), sumOf(chunks)); err != nil {
		t.Fatal(err)
	}
	for i, c := range chunks {
		if err := a.PutChunk(uint64(i), c); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.CommitSnapshot(); err != nil {
		t.Fatal(err)
	}
}

func sumOf(chunks [][]byte) [32]byte {
	h := sha256.New()
	for _, c := range chunks {
		h.Write(c)
	}
	return [32]byte(h.Sum(nil))
}

func sameEntry(a, b Entry) bool {
	return a.Key == b.Key && a.ValidFrom.Equal(b.ValidFrom) && a.ValidTo.Equal(b.ValidTo) &&
		slices.Equal(a.DoorGroups, b.DoorGroups) && a.Schedule == b.Schedule && a.Staff == b.Staff &&
		a.AntiPassback == b.AntiPassback
}

// checkList asserts the store holds exactly es at version.
func checkList(t testing.TB, a *Allowlist, version uint64, es []Entry) {
	t.Helper()
	if a.Version() != version || a.Count() != uint64(len(es)) {
		t.Fatalf("version %d count %d, want %d %d", a.Version(), a.Count(), version, len(es))
	}
	var got Entry
	for _, e := range es {
		ok, err := a.LookupInto(e.Key, &got)
		if err != nil || !ok || !sameEntry(got, e) {
			t.Fatalf("lookup %s = %+v %v %v, want %+v", e.Key, got, ok, err, e)
		}
	}
}
