package allowsync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/agent/allowlist"
	"github.com/kioskedge/kioskedge/sync/wire"
)

func entries(n int, seed uint64, mark uint32) []allowlist.Entry {
	r := rand.New(rand.NewPCG(seed, 7))
	es := make([]allowlist.Entry, n)
	for i := range es {
		binary.BigEndian.PutUint64(es[i].Key[:], r.Uint64())
		binary.BigEndian.PutUint64(es[i].Key[8:], r.Uint64())
		es[i].ValidFrom = time.Unix(1_700_000_000+int64(i), 0).UTC()
		es[i].DoorGroups = []uint32{1, uint32(2 + i%5)}
		es[i].AntiPassback = mark
	}
	slices.SortFunc(es, func(a, b allowlist.Entry) int { return bytes.Compare(a.Key[:], b.Key[:]) })
	return slices.CompactFunc(es, func(a, b allowlist.Entry) bool { return a.Key == b.Key })
}

// snapshotMsgs encodes es as the wire messages of snapshot version.
func snapshotMsgs(t testing.TB, version uint64, es []allowlist.Entry, perChunk int) [][]byte {
	t.Helper()
	chunks, err := allowlist.EncodeSnapshot(es, []allowlist.Schedule{{ID: 1, Windows: []allowlist.Window{{Days: allowlist.AllDays, From: 0, To: 1440}}}}, perChunk)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	for _, c := range chunks {
		h.Write(c)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	msgs := make([][]byte, len(chunks))
	for i, c := range chunks {
		if msgs[i], err = wire.AppendChunkMessage(nil, version, uint32(i), uint32(len(chunks)), sum, c); err != nil {
			t.Fatal(err)
		}
	}
	return msgs
}

func deltaMsg(t testing.TB, from, to uint64, ups []allowlist.Entry, dels []allowlist.Key) []byte {
	t.Helper()
	d := wire.Delta{From: from, To: to}
	for i := range ups {
		v, err := allowlist.AppendEntryValue(nil, &ups[i])
		if err != nil {
			t.Fatal(err)
		}
		d.Upserts = append(d.Upserts, wire.DeltaUpsert{Key: wire.DeltaKey(ups[i].Key), Value: v})
	}
	for _, k := range dels {
		d.Deletes = append(d.Deletes, wire.DeltaKey(k))
	}
	b, err := wire.AppendDeltaMessage(nil, &d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type fixture struct {
	store *allowlist.Allowlist
	path  string
	s     *Syncer
	mu    sync.Mutex
	reqs  []wire.AllowlistRequest
	now   time.Time
	due   chan time.Time // fires deferred requests in Run
}

func newFixture(t testing.TB, opts Options) *fixture {
	t.Helper()
	f := &fixture{path: filepath.Join(t.TempDir(), "allowlist.db"), now: time.Unix(1_800_000_000, 0), due: make(chan time.Time, 1)}
	var err error
	if f.store, err = allowlist.Open(f.path, allowlist.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.store.Close() })
	f.build(t, opts)
	return f
}

func (f *fixture) build(t testing.TB, opts Options) {
	t.Helper()
	opts.Store = f.store
	opts.Request = func(r wire.AllowlistRequest) error {
		f.mu.Lock()
		f.reqs = append(f.reqs, r)
		f.mu.Unlock()
		return nil
	}
	opts.Now = func() time.Time { return f.now }
	opts.After = func(time.Duration) <-chan time.Time { return f.due }
	var err error
	if f.s, err = New(opts); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) requests() []wire.AllowlistRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

// feed applies messages synchronously, as Run would one after the other.
func (f *fixture) feed(msgs ...[]byte) {
	for _, m := range msgs {
		f.s.apply(m)
	}
}

func mustHave(t *testing.T, a *allowlist.Allowlist, es []allowlist.Entry, version uint64) {
	t.Helper()
	if a.Version() != version || a.Count() != uint64(len(es)) {
		t.Fatalf("store at version %d with %d entries, want %d with %d", a.Version(), a.Count(), version, len(es))
	}
	for _, i := range []int{0, len(es) / 2, len(es) - 1} {
		e, ok, err := a.Lookup(es[i].Key)
		if err != nil || !ok || e.AntiPassback != es[i].AntiPassback {
			t.Fatalf("entry %d: ok=%v err=%v mark %d want %d", i, ok, err, e.AntiPassback, es[i].AntiPassback)
		}
	}
}

func TestSnapshotInOrder(t *testing.T) {
	f := newFixture(t, Options{})
	es := entries(2500, 1, 1)
	msgs := snapshotMsgs(t, 3, es, 1000)
	f.feed(msgs[:2]...)
	if st := f.s.Stats(); !st.Receiving || st.ChunksReceived != 2 || st.ChunksTotal != 3 || st.Health().Receiving != "2/3" {
		t.Fatalf("mid-snapshot stats %+v", st)
	}
	f.feed(msgs[2])
	mustHave(t, f.store, es, 3)
	st := f.s.Stats()
	if st.SnapshotsApplied != 1 || st.ChunksApplied != 3 || st.Receiving || len(f.requests()) != 0 {
		t.Fatalf("stats %+v requests %v", st, f.requests())
	}
}

func TestSnapshotFailures(t *testing.T) {
	old := entries(300, 9, 9)
	es := entries(2500, 1, 1)
	for _, c := range []struct {
		name   string
		msgs   func(m [][]byte) [][]byte
		reason string
		check  func(t *testing.T, st Stats)
	}{
		{"out of order", func(m [][]byte) [][]byte { return [][]byte{m[0], m[2], m[1]} }, wire.ReasonIncomplete,
			func(t *testing.T, st Stats) {
				if st.Incomplete != 1 || st.Orphans != 1 {
					t.Errorf("%+v", st)
				}
			}},
		{"missing last", func(m [][]byte) [][]byte { return m[:2] }, "", nil},
		{"missing first", func(m [][]byte) [][]byte { return m[1:] }, wire.ReasonIncomplete,
			func(t *testing.T, st Stats) {
				if st.Incomplete != 1 || st.Orphans != 1 {
					t.Errorf("%+v", st)
				}
			}},
		{"wrong checksum", func(m [][]byte) [][]byte {
			out := make([][]byte, len(m))
			for i := range m {
				out[i] = bytes.Clone(m[i])
				out[i][30] ^= 1 // inside the sum
			}
			return out
		}, wire.ReasonChecksum, func(t *testing.T, st Stats) {
			if st.ChecksumFailures != 1 {
				t.Errorf("%+v", st)
			}
		}},
		{"corrupt chunk", func(m [][]byte) [][]byte {
			bad := bytes.Clone(m[1])
			bad[wire.AllowlistHeaderLen] = 'X' // chunk magic
			return [][]byte{m[0], bad, m[2]}
		}, wire.ReasonCorrupt, func(t *testing.T, st Stats) {
			if st.Malformed != 1 || st.Orphans != 1 {
				t.Errorf("%+v", st)
			}
		}},
		{"stale", func([][]byte) [][]byte { return snapshotMsgs(t, 1, es, 1000) }, "", func(t *testing.T, st Stats) {
			if st.Stale != 3 {
				t.Errorf("%+v", st)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, Options{})
			f.feed(snapshotMsgs(t, 2, old, 100)...)
			f.feed(c.msgs(snapshotMsgs(t, 3, es, 1000))...)
			mustHave(t, f.store, old, 2) // the old list stays in effect
			reqs := f.requests()
			switch {
			case c.reason == "" && len(reqs) != 0:
				t.Fatalf("requests %v", reqs)
			case c.reason != "" && (len(reqs) != 1 || reqs[0] != wire.AllowlistRequest{Have: 2, Want: wire.WantSnapshot, Reason: c.reason}):
				t.Fatalf("requests %v, want one snapshot request for %s", reqs, c.reason)
			}
			if c.check != nil {
				c.check(t, f.s.Stats())
			}
			// The repair: the same snapshot again, in order, applies.
			f.feed(snapshotMsgs(t, 3, es, 1000)...)
			mustHave(t, f.store, es, 3)
		})
	}
}

func TestDuplicateChunksAndRestart(t *testing.T) {
	f := newFixture(t, Options{})
	es := entries(2500, 1, 1)
	m := snapshotMsgs(t, 3, es, 1000)
	f.feed(m[0], m[0], m[1], m[0], m[1], m[2], m[2])
	mustHave(t, f.store, es, 3)
	if st := f.s.Stats(); st.Duplicates != 4 || st.SnapshotsApplied != 1 {
		t.Fatalf("%+v", st)
	}
	// A newer snapshot starting mid-snapshot restarts.
	es5 := entries(1500, 5, 5)
	m4, m5 := snapshotMsgs(t, 4, entries(2500, 4, 4), 1000), snapshotMsgs(t, 5, es5, 1000)
	f.feed(m4[0], m4[1])
	f.feed(m5...)
	f.feed(m4[2]) // the rest of the abandoned one is stale now
	mustHave(t, f.store, es5, 5)
	if st := f.s.Stats(); st.Restarted != 1 || len(f.requests()) != 0 {
		t.Fatalf("%+v %v", st, f.requests())
	}
}

func TestCrashMidSnapshotKeepsOldList(t *testing.T) {
	f := newFixture(t, Options{})
	old, es := entries(300, 9, 9), entries(2500, 1, 1)
	f.feed(snapshotMsgs(t, 2, old, 100)...)
	f.feed(snapshotMsgs(t, 3, es, 1000)[:2]...)
	// The process dies: the store is closed with the snapshot staged.
	if err := f.store.Close(); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.store, err = allowlist.Open(f.path, allowlist.Options{}); err != nil {
		t.Fatal(err)
	}
	f.build(t, Options{})
	mustHave(t, f.store, old, 2)
	// After the restart the rest of the old snapshot is orphaned; the
	// start request (Run) gets a fresh one.
	m := snapshotMsgs(t, 3, es, 1000)
	f.feed(m[2])
	f.feed(m...)
	mustHave(t, f.store, es, 3)
}

func TestDeltas(t *testing.T) {
	f := newFixture(t, Options{})
	es := entries(1000, 1, 1)
	f.feed(snapshotMsgs(t, 1, es, 400)...)
	add := entries(3, 77, 7)
	f.feed(deltaMsg(t, 1, 2, add, []allowlist.Key{es[0].Key, es[1].Key}))
	if f.store.Version() != 2 || f.store.Count() != 1001 {
		t.Fatalf("after delta: v%d %d entries", f.store.Version(), f.store.Count())
	}
	if _, ok, _ := f.store.Lookup(add[1].Key); !ok {
		t.Fatal("upserted entry missing")
	}
	if _, ok, _ := f.store.Lookup(es[0].Key); ok {
		t.Fatal("deleted entry still there")
	}
	f.feed(deltaMsg(t, 1, 2, add, nil)) // stale: redelivered
	f.feed(deltaMsg(t, 3, 4, add, nil)) // gap
	f.feed(deltaMsg(t, 3, 4, add, nil)) // again: one request
	st := f.s.Stats()
	if st.DeltasApplied != 1 || st.Stale != 1 || st.Gaps != 2 || st.Deferred != 1 {
		t.Fatalf("%+v", st)
	}
	if r := f.requests(); len(r) != 1 || r[0] != (wire.AllowlistRequest{Have: 2, Want: wire.WantCatchUp, Reason: wire.ReasonGap}) {
		t.Fatalf("requests %v", r)
	}
	// Later the same request is made again.
	f.now = f.now.Add(DefaultMinRequestInterval)
	f.feed(deltaMsg(t, 3, 4, add, nil))
	if r := f.requests(); len(r) != 2 {
		t.Fatalf("requests %v", r)
	}
	// A delta whose entry value is malformed changes nothing.
	d := wire.Delta{From: 2, To: 3, Upserts: []wire.DeltaUpsert{{Key: wire.DeltaKey{1}, Value: []byte{9}}}}
	b, _ := wire.AppendDeltaMessage(nil, &d)
	f.feed(b, []byte("garbage"))
	if f.store.Version() != 2 || f.s.Stats().Malformed != 2 {
		t.Fatalf("v%d %+v", f.store.Version(), f.s.Stats())
	}
}

// A gap seen while a snapshot arrives is asked about after it committed.
func TestGapDuringSnapshot(t *testing.T) {
	f := newFixture(t, Options{})
	es := entries(2500, 1, 1)
	m := snapshotMsgs(t, 3, es, 1000)
	f.feed(m[0])
	f.feed(deltaMsg(t, 3, 4, entries(1, 5, 5), nil))
	if len(f.requests()) != 0 {
		t.Fatal(f.requests())
	}
	f.feed(m[1:]...)
	if r := f.requests(); len(r) != 1 || r[0] != (wire.AllowlistRequest{Have: 3, Want: wire.WantCatchUp, Reason: wire.ReasonGap}) {
		t.Fatalf("requests %v", r)
	}
}

func TestRunQueueAndOverflow(t *testing.T) {
	f := newFixture(t, Options{QueueLen: 2})
	es := entries(2500, 1, 1)
	m := snapshotMsgs(t, 3, es, 1000)
	// Before Run: the queue takes two, the third is dropped.
	f.s.Handle(m[0])
	f.s.Handle(m[1])
	f.s.Handle(m[2])
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	// The snapshot request came right after the start one: it waits for
	// the interval.
	waitFor(t, func() bool { return f.s.Stats().Deferred == 1 })
	if len(f.requests()) != 1 {
		t.Fatalf("requests %v", f.requests())
	}
	f.due <- f.now
	waitFor(t, func() bool { return len(f.requests()) == 2 })
	r := f.requests()
	if r[0] != (wire.AllowlistRequest{Have: 0, Want: wire.WantCatchUp, Reason: wire.ReasonStart}) ||
		r[1] != (wire.AllowlistRequest{Have: 0, Want: wire.WantSnapshot, Reason: wire.ReasonOverflow}) {
		t.Fatalf("requests %v", r)
	}
	if st := f.s.Stats(); st.Dropped != 1 || st.Receiving {
		t.Fatalf("%+v", st)
	}
	for _, b := range m {
		f.s.Handle(b)
	}
	waitFor(t, func() bool { return f.store.Version() == 3 })
	mustHave(t, f.store, es, 3)
	f.s.Resync()
	waitFor(t, func() bool { return len(f.requests()) == 3 })
	if r := f.requests()[2]; r.Have != 3 || r.Want != wire.WantCatchUp {
		t.Fatalf("resync request %v", r)
	}
	if err := f.s.Run(ctx); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestLargeSnapshot sends a 200k-entry snapshot through Handle and Run; 1M
// is kbench's. The time is logged, not asserted.
func TestLargeSnapshot(t *testing.T) {
	f := newFixture(t, Options{})
	es := entries(200_000, 3, 3)
	msgs := snapshotMsgs(t, 1, es, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- f.s.Run(ctx) }()
	for _, m := range msgs {
		f.s.Handle(m)
	}
	waitFor(t, func() bool { return f.store.Version() == 1 })
	t.Logf("%d entries in %d chunks applied in %v", len(es), len(msgs), time.Since(start))
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mustHave(t, f.store, es, 1)
	if st := f.s.Stats(); st.Dropped != 0 || st.ChunksApplied != uint64(len(msgs)) {
		t.Fatalf("%+v", st)
	}
}

func TestRequestErrorsAndOptions(t *testing.T) {
	f := newFixture(t, Options{})
	f.s.opts.Request = func(wire.AllowlistRequest) error { return errors.New("not connected") }
	f.feed(deltaMsg(t, 3, 4, entries(1, 5, 5), nil))
	if st := f.s.Stats(); st.RequestErrors != 1 || st.Requests != 0 {
		t.Fatalf("%+v", st)
	}
	if _, err := New(Options{Store: f.store}); !errors.Is(err, ErrOptions) {
		t.Error(err)
	}
}

// A snapshot of the version in effect is applied only when asked for.
func TestSameVersionSnapshotOnlyOnRequest(t *testing.T) {
	f := newFixture(t, Options{})
	es := entries(500, 1, 1)
	f.feed(snapshotMsgs(t, 3, es, 200)...)
	other := entries(400, 2, 2)
	f.feed(snapshotMsgs(t, 3, other, 200)...) // same version, other content: not asked for
	mustHave(t, f.store, es, 3)
	if st := f.s.Stats(); st.Stale != 1 || st.Orphans != 2 {
		t.Fatalf("%+v", st)
	}
	f.s.request(wire.WantSnapshot, wire.ReasonCorrupt, false)
	f.feed(snapshotMsgs(t, 3, other, 200)...)
	mustHave(t, f.store, other, 3)
}
