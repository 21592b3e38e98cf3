package allowlist

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

func TestSnapshot100k(t *testing.T) {
	t.Parallel()
	a, path := openTemp(t)
	if a.Version() != 0 || a.Count() != 0 {
		t.Fatalf("fresh store: version %d count %d", a.Version(), a.Count())
	}
	es := testEntries(100_000, 3, 1)
	loadSnapshot(t, a, 5, es, 7000)
	checkList(t, a, 5, es)
	unknown := testEntries(1000, 4, 0)
	for _, e := range unknown {
		if _, ok, err := a.Lookup(e.Key); ok || err != nil {
			t.Fatalf("unknown key found: %v %v", ok, err)
		}
	}
	s, ok, err := a.Schedule(1)
	if err != nil || !ok || s.Windows[0] != testSchedules[0].Windows[0] {
		t.Errorf("Schedule(1) = %+v %v %v", s, ok, err)
	}
	if _, ok, _ := a.Schedule(9); ok {
		t.Error("Schedule(9) found")
	}
	if all, err := a.Schedules(); err != nil || len(all) != 2 {
		t.Errorf("Schedules = %v %v", all, err)
	}
	// A second snapshot replaces the whole list.
	es2 := testEntries(1000, 5, 2)
	loadSnapshot(t, a, 6, es2, 300)
	checkList(t, a, 6, es2)
	if _, ok, _ := a.Lookup(es[0].Key); ok {
		t.Error("entry of the old list survived the snapshot")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	b, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	checkList(t, b, 6, es2)
}

func TestSnapshotRefused(t *testing.T) {
	t.Parallel()
	a, path := openTemp(t)
	old := testEntries(500, 6, 1)
	loadSnapshot(t, a, 3, old, 100)
	es := testEntries(500, 7, 2)
	chunks, err := EncodeSnapshot(es, testSchedules, 100)
	if err != nil {
		t.Fatal(err)
	}
	sum := sumOf(chunks)

	// Bad checksum.
	bad := sum
	bad[0] ^= 1
	if err := a.BeginSnapshot(4, uint64(len(chunks)), bad); err != nil {
		t.Fatal(err)
	}
	for i, c := range chunks {
		if err := a.PutChunk(uint64(i), c); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.CommitSnapshot(); !errors.Is(err, ErrChecksum) {
		t.Errorf("bad checksum: %v", err)
	}
	checkList(t, a, 3, old)

	// Incomplete, out of order, no snapshot.
	if err := a.BeginSnapshot(4, uint64(len(chunks)), sum); err != nil {
		t.Fatal(err)
	}
	if err := a.PutChunk(1, chunks[1]); !errors.Is(err, ErrChunkOrder) {
		t.Errorf("chunk 1 first: %v", err)
	}
	if err := a.PutChunk(0, chunks[0]); err != nil {
		t.Fatal(err)
	}
	if err := a.CommitSnapshot(); !errors.Is(err, ErrIncomplete) {
		t.Errorf("incomplete: %v", err)
	}
	if err := a.PutChunk(1, chunks[1]); !errors.Is(err, ErrNoSnapshot) {
		t.Errorf("after refused commit: %v", err)
	}
	checkList(t, a, 3, old)

	// A chunk whose keys do not continue the previous one.
	if err := a.BeginSnapshot(4, 2, sum); err != nil {
		t.Fatal(err)
	}
	if err := a.PutChunk(0, chunks[1]); err != nil {
		t.Fatal(err)
	}
	if err := a.PutChunk(1, chunks[0]); !errors.Is(err, ErrMalformed) {
		t.Errorf("descending chunk: %v", err)
	}
	if err := a.CommitSnapshot(); !errors.Is(err, ErrNoSnapshot) {
		t.Errorf("commit after malformed chunk: %v", err)
	}

	// Stale version.
	if err := a.BeginSnapshot(2, 1, sum); !errors.Is(err, ErrStale) {
		t.Errorf("stale snapshot: %v", err)
	}

	// Abandoned halfway, then the store is closed and reopened.
	if err := a.BeginSnapshot(4, uint64(len(chunks)), sum); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := a.PutChunk(uint64(i), chunks[i]); err != nil {
			t.Fatal(err)
		}
	}
	checkList(t, a, 3, old)
	a.Close()
	b, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	checkList(t, b, 3, old)
	if err := b.CommitSnapshot(); !errors.Is(err, ErrNoSnapshot) {
		t.Errorf("commit after reopen: %v", err)
	}
	// Abort drops the staging too, and a full snapshot still works.
	if err := b.BeginSnapshot(4, uint64(len(chunks)), sum); err != nil {
		t.Fatal(err)
	}
	if err := b.PutChunk(0, chunks[0]); err != nil {
		t.Fatal(err)
	}
	if err := b.AbortSnapshot(); err != nil {
		t.Fatal(err)
	}
	checkList(t, b, 3, old)
	loadSnapshot(t, b, 4, es, 100)
	checkList(t, b, 4, es)
}

// Readers during a commit see the old list or the new one: a key of each
// list is looked up in turn, and once any reader has seen the new list,
// nobody sees the old one again.
func TestSnapshotSwapAtomic(t *testing.T) {
	t.Parallel()
	a, _ := openTemp(t)
	old := testEntries(20_000, 8, 1)
	loadSnapshot(t, a, 1, old, 2000)
	es := testEntries(20_000, 9, 2)
	var newSeen atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var lookups atomic.Int64
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var e Entry
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				seenBefore := newSeen.Load()
				okOld, err1 := a.LookupInto(old[i%len(old)].Key, &e)
				okNew, err2 := a.LookupInto(es[i%len(es)].Key, &e)
				if err1 != nil || err2 != nil {
					t.Errorf("lookup: %v %v", err1, err2)
					return
				}
				lookups.Add(1)
				if okNew && e.AntiPassback != 2 {
					t.Errorf("new key with old content")
					return
				}
				if seenBefore && okOld {
					t.Errorf("old list seen after the new one")
					return
				}
				if okNew {
					newSeen.Store(true)
				}
			}
		}()
	}
	loadSnapshot(t, a, 2, es, 2000)
	for lookups.Load() < 1000 && !t.Failed() {
		var e Entry
		a.LookupInto(es[0].Key, &e)
	}
	close(stop)
	wg.Wait()
	checkList(t, a, 2, es)
}

func TestDeltas(t *testing.T) {
	t.Parallel()
	a, path := openTemp(t)
	es := testEntries(1000, 10, 1)
	loadSnapshot(t, a, 10, es, 250)

	add := testEntries(100, 11, 3)
	changed := es[0]
	changed.Staff, changed.DoorGroups = true, []uint32{9}
	if err := a.ApplyDelta(10, 11, append(add, changed), []Key{es[1].Key, es[2].Key, add[0].Key}); err != nil {
		t.Fatal(err)
	}
	want := append(append([]Entry{changed}, es[3:]...), add[1:]...)
	checkList(t, a, 11, want)
	for _, k := range []Key{es[1].Key, add[0].Key} {
		if _, ok, _ := a.Lookup(k); ok {
			t.Errorf("deleted %s still there", k)
		}
	}

	for _, tc := range []struct {
		from, to uint64
		want     error
	}{
		{10, 11, ErrStale},
		{9, 10, ErrStale},
		{12, 13, ErrVersionGap},
		{10, 12, ErrVersionGap},
	} {
		if err := a.ApplyDelta(tc.from, tc.to, add[:1], nil); !errors.Is(err, tc.want) {
			t.Errorf("delta %d→%d: %v, want %v", tc.from, tc.to, err, tc.want)
		}
	}
	if err := a.ApplyDelta(11, 11, nil, nil); err == nil {
		t.Error("delta 11→11 accepted")
	}
	if err := a.ApplyDelta(11, 12, []Entry{{DoorGroups: []uint32{3, 1}}}, nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad upsert: %v", err)
	}
	checkList(t, a, 11, want)
	if err := a.ApplyDelta(11, 15, nil, []Key{changed.Key, changed.Key}); err != nil {
		t.Fatal(err)
	}
	checkList(t, a, 15, want[1:])
	// A snapshot overtaken by a delta while it was received is stale.
	chunks, _ := EncodeSnapshot(es, nil, 0)
	if err := a.BeginSnapshot(15, 1, sumOf(chunks)); err != nil {
		t.Fatal(err)
	}
	if err := a.PutChunk(0, chunks[0]); err != nil {
		t.Fatal(err)
	}
	if err := a.ApplyDelta(15, 16, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.CommitSnapshot(); !errors.Is(err, ErrStale) {
		t.Errorf("overtaken snapshot: %v", err)
	}
	a.Close()
	if err := a.ApplyDelta(16, 17, nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	b, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	checkList(t, b, 16, want[1:])
}
