// Package outboxtest holds the contract suite every outbox store must pass
// (order, durability across Close/Open, Read semantics, Ack, budgets).
// sync/outbox runs it against the bbolt outbox; another store implementing
// Store can run it the same way.
package outboxtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/wire"
)

// Store is the behaviour the contract checks.
type Store interface {
	Append(ctx context.Context, r wire.Record) (uint64, error)
	Read(after uint64, maxRecords, maxBytes int) ([]wire.Entry, error)
	Ack(through uint64) error
	AckedThrough() uint64
	Close() error
}

// Opener opens (or reopens) the store kept in dir with the given budget in
// logical bytes (0 = unlimited). It fails t itself on error.
type Opener func(t testing.TB, dir string, budgetBytes int64) Store

// Rec builds a test record of the given class with a body of about size
// bytes carrying n, so values can be checked.
func Rec(cls wire.Class, n, size int) wire.Record {
	body := fmt.Appendf(nil, `{"n":%d,"pad":"`, n)
	for len(body) < size-2 {
		body = append(body, 'x')
	}
	body = append(body, `"}`...)
	kind := "test.event"
	if cls == wire.ClassHealth {
		kind = wire.KindHealthSample
	}
	return wire.Record{Kind: kind, Class: cls, Time: time.Unix(1700000000, 0).UTC(), Body: body}
}

// ReadAll reads every record after `after` in chunks.
func ReadAll(t testing.TB, s Store, after uint64) []wire.Entry {
	t.Helper()
	var all []wire.Entry
	for {
		ents, err := s.Read(after, 500, 1<<20)
		if err != nil {
			t.Fatalf("Read(%d): %v", after, err)
		}
		if len(ents) == 0 {
			return all
		}
		all = append(all, ents...)
		after = ents[len(ents)-1].Seq
	}
}

// Run runs the contract suite.
func Run(t *testing.T, open Opener) {
	ctx := context.Background()
	t.Run("OrderAndValues", func(t *testing.T) {
		s := open(t, t.TempDir(), 0)
		defer closeStore(t, s)
		var seqs []uint64
		var want [][]byte
		for i := range 200 {
			r := Rec(wire.Class(i%3+1), i, 100+i)
			seq, err := s.Append(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			if seq == 0 || (len(seqs) > 0 && seq <= seqs[len(seqs)-1]) {
				t.Fatalf("seq %d after %v", seq, seqs[max(0, len(seqs)-1):])
			}
			seqs = append(seqs, seq)
			v, _ := wire.MarshalRecord(r)
			want = append(want, v)
		}
		got := ReadAll(t, s, 0)
		if len(got) != len(seqs) {
			t.Fatalf("read %d records, appended %d", len(got), len(seqs))
		}
		for i, e := range got {
			if e.Seq != seqs[i] || string(e.Raw) != string(want[i]) {
				t.Fatalf("record %d: seq %d (want %d), value differs: %v", i, e.Seq, seqs[i], string(e.Raw) != string(want[i]))
			}
		}
	})
	t.Run("ConcurrentUnique", func(t *testing.T) {
		s := open(t, t.TempDir(), 0)
		defer closeStore(t, s)
		var mu sync.Mutex
		seen := map[uint64]int{}
		var wg sync.WaitGroup
		for p := range 16 {
			wg.Go(func() {
				for i := range 50 {
					seq, err := s.Append(ctx, Rec(wire.ClassEvent, p*1000+i, 300))
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					seen[seq] = p*1000 + i
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(seen) != 800 {
			t.Fatalf("%d distinct seqs for 800 appends", len(seen))
		}
		got := ReadAll(t, s, 0)
		if len(got) != 800 {
			t.Fatalf("read %d, want 800", len(got))
		}
		for i, e := range got {
			if i > 0 && e.Seq <= got[i-1].Seq {
				t.Fatalf("out of order at %d", i)
			}
			r, err := wire.UnmarshalRecord(e.Seq, "", e.Raw)
			if err != nil {
				t.Fatal(err)
			}
			var b struct{ N int }
			if err := json.Unmarshal(r.Body, &b); err != nil || b.N != seen[e.Seq] {
				t.Fatalf("seq %d holds n=%d, appended n=%d (%v)", e.Seq, b.N, seen[e.Seq], err)
			}
		}
	})
	t.Run("DurableAcrossReopen", func(t *testing.T) {
		dir := t.TempDir()
		s := open(t, dir, 0)
		var last uint64
		for i := range 50 {
			seq, err := s.Append(ctx, Rec(wire.ClassCritical, i, 200))
			if err != nil {
				t.Fatal(err)
			}
			last = seq
		}
		if err := s.Ack(10); err != nil {
			t.Fatal(err)
		}
		closeStore(t, s)
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := s.Append(ctx, Rec(wire.ClassCritical, 0, 10)); err == nil {
			t.Fatal("Append after Close succeeded")
		}
		s = open(t, dir, 0)
		defer closeStore(t, s)
		if s.AckedThrough() != 10 {
			t.Fatalf("AckedThrough %d after reopen, want 10", s.AckedThrough())
		}
		got := ReadAll(t, s, 0)
		if len(got) != 40 || got[0].Seq != 11 || got[39].Seq != last {
			t.Fatalf("after reopen read %d records %v..", len(got), got[:min(1, len(got))])
		}
		seq, err := s.Append(ctx, Rec(wire.ClassCritical, 99, 200))
		if err != nil || seq <= last {
			t.Fatalf("append after reopen: seq %d (last %d), %v", seq, last, err)
		}
	})
	t.Run("ReadLimits", func(t *testing.T) {
		s := open(t, t.TempDir(), 0)
		defer closeStore(t, s)
		if ents, err := s.Read(0, 10, 1000); err != nil || len(ents) != 0 {
			t.Fatalf("empty store: %d records, %v", len(ents), err)
		}
		var seqs []uint64
		for i := range 30 {
			seq, err := s.Append(ctx, Rec(wire.ClassEvent, i, 1000))
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, seq)
		}
		ents, err := s.Read(seqs[4], 7, 1<<20)
		if err != nil || len(ents) != 7 || ents[0].Seq != seqs[5] {
			t.Fatalf("Read(after=%d, 7): %d records, %v", seqs[4], len(ents), err)
		}
		ents, err = s.Read(0, 100, 3500)
		if err != nil || len(ents) != 3 {
			t.Fatalf("Read(maxBytes 3500) of ~1000-byte records: %d records, %v", len(ents), err)
		}
		ents, err = s.Read(0, 100, 10)
		if err != nil || len(ents) != 1 || ents[0].Seq != seqs[0] {
			t.Fatalf("Read(maxBytes 10) must return the first record alone: %d records, %v", len(ents), err)
		}
		ents[0].Raw[5] ^= 0xff // values are copies
		again, _ := s.Read(0, 1, 10)
		if string(again[0].Raw) == string(ents[0].Raw) {
			t.Fatal("Read returned a value aliasing the store")
		}
		if ents, _ := s.Read(seqs[29], 10, 1<<20); len(ents) != 0 {
			t.Fatalf("Read after the last seq returned %d", len(ents))
		}
	})
	t.Run("Ack", func(t *testing.T) {
		s := open(t, t.TempDir(), 0)
		defer closeStore(t, s)
		var seqs []uint64
		for i := range 100 {
			seq, err := s.Append(ctx, Rec(wire.ClassEvent, i, 50))
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, seq)
		}
		if err := s.Ack(seqs[59]); err != nil {
			t.Fatal(err)
		}
		if s.AckedThrough() != seqs[59] {
			t.Fatalf("AckedThrough %d, want %d", s.AckedThrough(), seqs[59])
		}
		if err := s.Ack(seqs[10]); err != nil {
			t.Fatalf("older ack: %v", err)
		}
		if s.AckedThrough() != seqs[59] {
			t.Fatal("an older Ack moved AckedThrough back")
		}
		got := ReadAll(t, s, 0)
		if len(got) != 40 || got[0].Seq != seqs[60] {
			t.Fatalf("after ack read %d from %v", len(got), got[:min(1, len(got))])
		}
		if err := s.Ack(seqs[99] + 1000); err == nil {
			t.Fatal("Ack beyond the last sequence succeeded")
		}
		if err := s.Ack(seqs[99]); err != nil {
			t.Fatal(err)
		}
		if got := ReadAll(t, s, 0); len(got) != 0 {
			t.Fatalf("%d records after acking all", len(got))
		}
	})
	t.Run("BudgetNamesEveryLoss", func(t *testing.T) {
		const budget = 64 << 10
		s := open(t, t.TempDir(), budget)
		defer closeStore(t, s)
		kind := map[uint64]wire.Class{}
		for i := range 600 {
			cls := wire.ClassHealth
			if i%4 == 0 {
				cls = wire.ClassCritical
			}
			seq, err := s.Append(ctx, Rec(cls, i, 300))
			if err != nil {
				t.Fatal(err)
			}
			kind[seq] = cls
		}
		got := ReadAll(t, s, 0)
		present := map[uint64]bool{}
		gapped := map[uint64]bool{}
		var bytes int
		for _, e := range got {
			present[e.Seq] = true
			bytes += len(e.Raw)
			r, err := wire.UnmarshalRecord(e.Seq, "", e.Raw)
			if err != nil {
				t.Fatal(err)
			}
			if r.Kind != wire.KindGap {
				continue
			}
			var g struct {
				Ranges [][2]uint64 `json:"ranges"`
				Count  uint64      `json:"count"`
			}
			if err := json.Unmarshal(r.Body, &g); err != nil {
				t.Fatalf("gap body %s: %v", r.Body, err)
			}
			var n uint64
			for _, rg := range g.Ranges {
				for q := rg[0]; q <= rg[1]; q++ {
					gapped[q] = true
					n++
				}
			}
			if n != g.Count {
				t.Fatalf("gap count %d, ranges name %d", g.Count, n)
			}
		}
		if bytes > 2*budget {
			t.Fatalf("stored %d value bytes under a budget of %d", bytes, budget)
		}
		if len(gapped) == 0 {
			t.Fatal("budget exceeded fourfold but no gap record")
		}
		for seq, cls := range kind {
			switch {
			case present[seq] && gapped[seq]:
				t.Fatalf("seq %d both present and named in a gap", seq)
			case !present[seq] && !gapped[seq]:
				t.Fatalf("seq %d lost silently", seq)
			case gapped[seq] && cls == wire.ClassCritical:
				// Allowed only if no health record older than it is present.
				for q, c := range kind {
					if c == wire.ClassHealth && present[q] {
						t.Fatalf("critical %d evicted while health %d kept", seq, q)
					}
				}
			}
		}
		// Health records are evicted oldest first: the present ones are the newest.
		var kept, dropped []uint64
		for seq, cls := range kind {
			if cls == wire.ClassHealth {
				if present[seq] {
					kept = append(kept, seq)
				} else {
					dropped = append(dropped, seq)
				}
			}
		}
		if len(kept) > 0 && len(dropped) > 0 && slices.Min(kept) < slices.Max(dropped) {
			t.Fatalf("health %d kept but newer %d evicted", slices.Min(kept), slices.Max(dropped))
		}
	})
}

func closeStore(t testing.TB, s Store) {
	t.Helper()
	if err := s.Close(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Close: %v", err)
	}
}
