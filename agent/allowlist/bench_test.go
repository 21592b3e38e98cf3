package allowlist

import (
	"slices"
	"testing"
	"time"
)

// go test -run '^$' -bench . -benchtime 1x ./agent/allowlist
//
// Figures are reported as metrics; nothing is asserted.

const benchEntries = 1_000_000

// BenchmarkSnapshot1M applies a 1,000,000-entry snapshot (100 chunks of
// 10,000 entries) to a store holding an older list.
func BenchmarkSnapshot1M(b *testing.B) {
	es := testEntries(benchEntries, 20, 1)
	chunks, err := EncodeSnapshot(es, testSchedules, 10_000)
	if err != nil {
		b.Fatal(err)
	}
	sum := sumOf(chunks)
	a, _ := openTemp(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := a.BeginSnapshot(uint64(i+1), uint64(len(chunks)), sum); err != nil {
			b.Fatal(err)
		}
		for j, c := range chunks {
			if err := a.PutChunk(uint64(j), c); err != nil {
				b.Fatal(err)
			}
		}
		if err := a.CommitSnapshot(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/snapshot") // the last one's
	}
}

func load1M(b *testing.B) (*Allowlist, []Entry) {
	b.Helper()
	a, _ := openTemp(b)
	es := testEntries(benchEntries, 21, 1)
	loadSnapshot(b, a, 1, es, 10_000)
	return a, es
}

// BenchmarkLookup1M looks up known and unknown keys in a 1,000,000-entry
// list, reporting latency percentiles of single lookups.
func BenchmarkLookup1M(b *testing.B) {
	a, es := load1M(b)
	unknown := testEntries(1000, 22, 0)
	lat := make([]time.Duration, 0, b.N)
	var e Entry
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := es[(i*7919)%len(es)].Key
		if i%10 == 9 {
			k = unknown[i%len(unknown)].Key
		}
		start := time.Now()
		if _, err := a.LookupInto(k, &e); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1000, "p50_µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1000, "p99_µs")
	b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds())/1000, "max_µs")
}

// BenchmarkDelta100 applies deltas of 100 entries (90 upserts of new keys,
// 10 deletes) to a 1,000,000-entry list.
func BenchmarkDelta100(b *testing.B) {
	a, es := load1M(b)
	add := testEntries(100*b.N, 23, 2)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		up := add[i*90 : i*90+90]
		del := make([]Key, 10)
		for j := range del {
			del[j] = es[(i*10+j)*97%len(es)].Key
		}
		start := time.Now()
		if err := a.ApplyDelta(uint64(i+1), uint64(i+2), up, del); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max_ms")
}
