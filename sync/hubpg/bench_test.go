package hubpg

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/kioskedge/kioskedge/sync/hubstore"
	"github.com/kioskedge/kioskedge/sync/hubstore/hubstoretest"
)

// BenchmarkApply compares ingest into PostgreSQL (both insert modes) with
// the embedded bbolt store, the baseline: each op is one hub commit of 16
// agents' batches of 64 records (the hub's default MaxCommitBatches).
// Compare records/s between sub-benchmarks of one run, not across runs.
func BenchmarkApply(b *testing.B) {
	const agents, per = 16, 64
	writes := func(n int) []hubstore.Write {
		ws := make([]hubstore.Write, n)
		for i := range ws {
			first := uint64(i*per + 1)
			for a := range agents {
				ws[i].Batches = append(ws[i].Batches, hubstoretest.Batch(fmt.Sprintf("agent-%02d", a), first, first+per-1))
			}
		}
		return ws
	}
	run := func(b *testing.B, s interface {
		Apply(hubstore.Write) (hubstore.Result, error)
	}) {
		ws := writes(b.N)
		b.ResetTimer()
		for i := range b.N {
			res, err := s.Apply(ws[i])
			if err != nil {
				b.Fatal(err)
			}
			if res.Stored != agents*per {
				b.Fatalf("stored %d", res.Stored)
			}
		}
		b.ReportMetric(float64(b.N*agents*per)/b.Elapsed().Seconds(), "records/s")
	}
	b.Run("bbolt", func(b *testing.B) {
		s, err := hubstore.Open(filepath.Join(b.TempDir(), "hub.db"), hubstore.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		run(b, s)
	})
	for _, m := range []struct {
		name string
		mode insertMode
	}{{"pg-unnest", insertUnnest}, {"pg-copy", insertCopy}} {
		b.Run(m.name, func(b *testing.B) {
			s, err := Open(context.Background(), newDB(b), Options{insertMode: m.mode})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			run(b, s)
		})
	}
}
