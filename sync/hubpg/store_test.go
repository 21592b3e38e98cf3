package hubpg

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/kioskedge/kioskedge/sync/hubstore"
	"github.com/kioskedge/kioskedge/sync/hubstore/hubstoretest"
	"github.com/kioskedge/kioskedge/sync/wire"
)

func TestContract(t *testing.T) {
	for _, mode := range []struct {
		name string
		mode insertMode
	}{{"unnest", insertUnnest}, {"copy", insertCopy}} {
		t.Run(mode.name, func(t *testing.T) {
			hubstoretest.Run(t, func(t *testing.T) func() hubstoretest.Store {
				dsn := newDB(t)
				return func() hubstoretest.Store {
					s, err := Open(context.Background(), dsn, Options{insertMode: mode.mode})
					if err != nil {
						t.Fatal(err)
					}
					return s
				}
			})
		})
	}
}

func TestGetAndClosed(t *testing.T) {
	s, err := Open(context.Background(), newDB(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(hubstore.Write{Batches: []hubstore.Ingested{hubstoretest.Batch("a", 1, 3)}}); err != nil {
		t.Fatal(err)
	}
	if raw, err := s.Get("a", 2); err != nil || string(raw) != string(hubstoretest.Record(2)) {
		t.Fatalf("Get: %v", err)
	}
	if _, err := s.Get("a", 4); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get beyond: %v", err)
	}
	big := hubstore.Ingested{Agent: "a", First: 1 << 63, Last: 1 << 63}
	if _, err := s.Apply(hubstore.Write{Batches: []hubstore.Ingested{big}}); !errors.Is(err, hubstore.ErrInvalid) {
		t.Fatalf("sequence above bigint: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(hubstore.Write{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Apply after Close: %v", err)
	}
	if err := s.ForEach("a", 1, func(uint64, []byte) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("ForEach after Close: %v", err)
	}
	if _, ok := s.AgentState("a"); ok || s.Agents() != nil {
		t.Fatal("reads after Close answered")
	}
}

// A record already in the table but outside the coverage (written behind
// Apply's back) is counted as a duplicate, not stored twice.
func TestConflictCountsDuplicate(t *testing.T) {
	for _, mode := range []insertMode{insertCopy, insertUnnest} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) { testConflictCountsDuplicate(t, mode) })
	}
}

func testConflictCountsDuplicate(t *testing.T, mode insertMode) {
	s := openDB(t, newDB(t), Options{insertMode: mode})
	if _, err := s.pool.Exec(context.Background(), `INSERT INTO records VALUES ('a', 2, '\x00')`); err != nil {
		t.Fatal(err)
	}
	res, err := s.Apply(hubstore.Write{Batches: []hubstore.Ingested{hubstoretest.Batch("a", 1, 3)}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stored != 2 || res.Duplicates != 1 || !slices.Equal(res.Acks, []wire.Ack{{Agent: "a", Through: 3}}) {
		t.Fatalf("result %+v", res)
	}
	if st, _ := s.AgentState("a"); st.Received != 2 || st.Duplicates != 1 || st.Contiguous != 3 {
		t.Fatalf("state %+v", st)
	}
}

// storedSeqs returns the sequences stored for agent, in order.
func storedSeqs(t *testing.T, s *Store, agent string) []uint64 {
	t.Helper()
	var seqs []uint64
	if err := s.ForEach(agent, 1, func(seq uint64, _ []byte) error { seqs = append(seqs, seq); return nil }); err != nil {
		t.Fatal(err)
	}
	return seqs
}

// Two stores (two hubs) on one database split one agent's batches: odd
// batches to A, even ones to B, concurrently. Every record is stored once
// and the ack of whichever write completes the coverage is the last
// sequence.
func TestTwoStoresInterleaved(t *testing.T) {
	dsn := newDB(t)
	a, b := openDB(t, dsn, Options{}), openDB(t, dsn, Options{})
	const batches, per = 60, 10
	type result struct {
		acks   []uint64
		stored uint64
	}
	var results [2]result
	var wg sync.WaitGroup
	for i, s := range []*Store{a, b} {
		wg.Go(func() {
			for k := i; k < batches; k += 2 {
				first := uint64(k*per + 1)
				res, err := s.Apply(hubstore.Write{Batches: []hubstore.Ingested{hubstoretest.Batch("agent-1", first, first+per-1)}})
				if err != nil {
					t.Error(err)
					return
				}
				results[i].stored += res.Stored
				results[i].acks = append(results[i].acks, res.Acks[0].Through)
			}
		})
	}
	wg.Wait()
	const total = batches * per
	if got := results[0].stored + results[1].stored; got != total {
		t.Fatalf("stored %d, want %d", got, total)
	}
	seqs := storedSeqs(t, a, "agent-1")
	if len(seqs) != total || seqs[0] != 1 || seqs[total-1] != total {
		t.Fatalf("%d records stored, want 1..%d", len(seqs), total)
	}
	var last uint64
	for i, r := range results {
		if !slices.IsSorted(r.acks) {
			t.Errorf("store %d acks went backwards: %v", i, r.acks)
		}
		last = max(last, r.acks[len(r.acks)-1])
	}
	if last != total {
		t.Fatalf("highest ack %d, want %d", last, total)
	}
	if st, _ := b.AgentState("agent-1"); st.Contiguous != total || st.Received != total || st.Duplicates != 0 {
		t.Fatalf("state %+v", st)
	}
	t.Logf("acks A %v", results[0].acks)
	t.Logf("acks B %v", results[1].acks)
}

// Randomized interleaving: several agents' batches, with resends and
// overlaps, spread over three stores and six goroutines in random order.
// The final state must equal the bbolt store's after the same batches
// applied sequentially, every record stored once, every Apply's ack never
// above what was covered when it returned, and the final ack complete.
func TestRandomInterleaving(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	const agents, maxSeq = 5, 400
	var writes []hubstore.Write
	for a := range agents {
		id := fmt.Sprintf("agent-%d", a)
		for next := uint64(1); next <= maxSeq; {
			n := uint64(1 + rng.IntN(30))
			last := min(next+n-1, maxSeq)
			b := hubstoretest.Batch(id, next, last)
			writes = append(writes, hubstore.Write{Batches: []hubstore.Ingested{b}})
			if rng.IntN(4) == 0 { // a resend
				writes = append(writes, hubstore.Write{Batches: []hubstore.Ingested{b}})
			}
			if rng.IntN(6) == 0 && next > 5 { // an overlapping batch
				writes = append(writes, hubstore.Write{Batches: []hubstore.Ingested{hubstoretest.Batch(id, next-5, last)}})
			}
			next = last + 1
		}
	}
	rng.Shuffle(len(writes), func(i, j int) { writes[i], writes[j] = writes[j], writes[i] })
	// Group some writes so one Apply carries several agents' batches.
	var grouped []hubstore.Write
	for i := 0; i < len(writes); {
		n := 1 + rng.IntN(3)
		var w hubstore.Write
		for ; n > 0 && i < len(writes); n, i = n-1, i+1 {
			w.Batches = append(w.Batches, writes[i].Batches...)
		}
		grouped = append(grouped, w)
	}

	dsn := newDB(t)
	stores := []*Store{openDB(t, dsn, Options{}), openDB(t, dsn, Options{insertMode: insertCopy}), openDB(t, dsn, Options{})}
	work := make(chan hubstore.Write)
	var mu sync.Mutex
	var stored, dups uint64
	var wg sync.WaitGroup
	for g := range 6 {
		s := stores[g%len(stores)]
		wg.Go(func() {
			for w := range work {
				res, err := s.Apply(w)
				if err != nil {
					t.Error(err)
					continue
				}
				for _, ack := range res.Acks {
					// What the ack says is stored must be stored.
					if st, _ := s.AgentState(ack.Agent); st.Contiguous < ack.Through {
						t.Errorf("ack %v beyond the coverage %d", ack, st.Contiguous)
					}
				}
				mu.Lock()
				stored += res.Stored
				dups += res.Duplicates
				mu.Unlock()
			}
		})
	}
	for _, w := range grouped {
		work <- w
	}
	close(work)
	wg.Wait()

	ref, err := hubstore.Open(filepath.Join(t.TempDir(), "ref.db"), hubstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	var refStored, refDups uint64
	for _, w := range grouped {
		res, err := ref.Apply(w)
		if err != nil {
			t.Fatal(err)
		}
		refStored += res.Stored
		refDups += res.Duplicates
	}
	if stored != refStored || dups != refDups || stored != agents*maxSeq {
		t.Fatalf("stored %d dups %d; bbolt stored %d dups %d", stored, dups, refStored, refDups)
	}
	got, want := stores[1].Agents(), ref.Agents()
	if len(got) != agents {
		t.Fatalf("%d agents", len(got))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Received != w.Received || g.Duplicates != w.Duplicates || g.Contiguous != maxSeq || w.Contiguous != maxSeq {
			t.Fatalf("agent %d: postgres %+v, bbolt %+v", i, g, w)
		}
		if seqs := storedSeqs(t, stores[0], g.ID); len(seqs) != maxSeq || seqs[maxSeq-1] != maxSeq {
			t.Fatalf("%s: %d records", g.ID, len(seqs))
		}
	}
	// One more resend through any store acks everything.
	res, err := stores[2].Apply(hubstore.Write{Batches: []hubstore.Ingested{hubstoretest.Batch("agent-0", 1, 1)}})
	if err != nil || !slices.Equal(res.Acks, []wire.Ack{{Agent: "agent-0", Through: maxSeq}}) {
		t.Fatalf("final ack %+v %v", res, err)
	}
}

// Two processes' stores opening one empty database at once both succeed
// (the schema creation is serialised).
func TestConcurrentOpen(t *testing.T) {
	dsn := newDB(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			s, err := Open(context.Background(), dsn, Options{})
			if err != nil {
				t.Error(err)
				return
			}
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}
