package outbox

import (
	"encoding/binary"
	"flag"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kioskedge/kioskedge/sync/outbox/outboxtest"
	"github.com/kioskedge/kioskedge/sync/wire"
)

var drainN = flag.Int("outbox.drain", 200_000, "records prefilled for BenchmarkDrain")

// baselineRate measures one bbolt Update (one commit) per 300-byte record,
// the rate an outbox without group commit would reach.
func baselineRate(b *testing.B) float64 {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "base.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	v, _ := wire.MarshalRecord(outboxtest.Rec(wire.ClassEvent, 0, 300))
	const n = 400
	start := time.Now()
	for i := range n {
		if err := db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte("r"))
			if err != nil {
				return err
			}
			return bk.Put(seqKey(uint64(i+1)), v)
		}); err != nil {
			b.Fatal(err)
		}
	}
	return n / time.Since(start).Seconds()
}

func benchAppend(b *testing.B, producers int) {
	base := baselineRate(b)
	o, err := Open(Options{Path: filepath.Join(b.TempDir(), "o.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	r := outboxtest.Rec(wire.ClassEvent, 0, 300)
	lat := make([][]time.Duration, producers)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for p := range producers {
		n := b.N / producers
		if p < b.N%producers {
			n++
		}
		wg.Go(func() {
			l := make([]time.Duration, 0, n)
			for range n {
				t0 := time.Now()
				if _, err := o.Append(bg, r); err != nil {
					b.Error(err)
					return
				}
				l = append(l, time.Since(t0))
			}
			lat[p] = l
		})
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	rate := float64(b.N) / el.Seconds()
	b.ReportMetric(rate, "rec/s")
	b.ReportMetric(base, "baseline_rec/s")
	b.ReportMetric(rate/base, "x_baseline")
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50_ms")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99_ms")
	}
	st := o.Stats()
	b.ReportMetric(float64(b.N)/float64(max(st.Commits, 1)), "rec/commit")
}

// BenchmarkAppend64: 64 producers of 300-byte records against the
// one-commit-per-record baseline measured in the same run.
func BenchmarkAppend64(b *testing.B) { benchAppend(b, 64) }

// BenchmarkAppend256: the same with 256 producers.
func BenchmarkAppend256(b *testing.B) { benchAppend(b, 256) }

// BenchmarkDrain prefills -outbox.drain records, reopens (reporting the
// Open time) and drains them with Read(2000)+Ack.
func BenchmarkDrain(b *testing.B) {
	for range b.N {
		b.StopTimer()
		dir := b.TempDir()
		path := filepath.Join(dir, "o.db")
		o, err := Open(Options{Path: path, ReclaimAbove: -1})
		if err != nil {
			b.Fatal(err)
		}
		appendBulk(b, o, *drainN, wire.ClassEvent, 300)
		if err := o.Close(); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		o, err = Open(Options{Path: path, ReclaimAbove: -1})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(t0).Microseconds())/1000, "open_ms")
		b.StartTimer()
		start := time.Now()
		var after uint64
		n := 0
		for {
			ents, err := o.Read(after, 2000, 4<<20)
			if err != nil {
				b.Fatal(err)
			}
			if len(ents) == 0 {
				break
			}
			after = ents[len(ents)-1].Seq
			n += len(ents)
			if err := o.Ack(after); err != nil {
				b.Fatal(err)
			}
		}
		el := time.Since(start)
		b.StopTimer()
		if n != *drainN {
			b.Fatalf("drained %d of %d", n, *drainN)
		}
		b.ReportMetric(float64(n)/el.Seconds(), "drain_rec/s")
		if err := o.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendOnce: producers of 300-byte records with unique 16-byte
// keys (as localapi's) and 17-byte metas; baseline the same producers
// calling Append on another outbox in the same run. In "full" the index is
// prefilled to its maximum (IdemEntries 2,000), so every commit also
// prunes; in "growing" it never reaches the maximum. The "g18" runs use 18
// producers, the group size the kiosk's HTTP API commits. Besides the
// rates it reports bbolt page writes per commit (TxStats) for both.
func BenchmarkAppendOnce(b *testing.B) {
	b.Run("growing", func(b *testing.B) { benchAppendOnce(b, 32, DefaultIdemEntries, 0) })
	b.Run("full", func(b *testing.B) { benchAppendOnce(b, 32, 2000, 2000) })
	b.Run("g18-growing", func(b *testing.B) { benchAppendOnce(b, 18, DefaultIdemEntries, 0) })
	b.Run("g18-full", func(b *testing.B) { benchAppendOnce(b, 18, 2000, 2000) })
}

func benchAppendOnce(b *testing.B, producers, maxEntries, prefill int) {
	type result struct{ rate, pages, recs, us float64 }
	run := func(keyed bool) result {
		o, err := Open(Options{Path: filepath.Join(b.TempDir(), "o.db"), IdemEntries: maxEntries})
		if err != nil {
			b.Fatal(err)
		}
		defer o.Close()
		r := outboxtest.Rec(wire.ClassEvent, 0, 300)
		key := func(i int) []byte {
			k := make([]byte, 16)
			binary.BigEndian.PutUint64(k, uint64(i)*0x9E3779B97F4A7C15) // spread like a hash
			binary.BigEndian.PutUint64(k[8:], uint64(i))
			return k
		}
		meta := make([]byte, 17)
		if keyed {
			for i := range prefill {
				if _, _, err := o.AppendOnce(bg, r, key(-1-i), meta); err != nil {
					b.Fatal(err)
				}
			}
		}
		writes0, st0 := pageWrites(o), o.Stats()
		commits0 := st0.Commits
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range producers {
			wg.Go(func() {
				for i := int(next.Add(1)); i <= b.N; i = int(next.Add(1)) {
					var err error
					if keyed {
						_, _, err = o.AppendOnce(bg, r, key(i), meta)
					} else {
						_, err = o.Append(bg, r)
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		el := time.Since(start)
		st := o.Stats()
		commits := float64(max(st.Commits-commits0, 1))
		return result{
			rate:  float64(b.N) / el.Seconds(),
			pages: float64(pageWrites(o)-writes0) / commits,
			recs:  float64(b.N) / commits,
			us:    float64((st.CommitTime - st0.CommitTime).Microseconds()) / commits,
		}
	}
	b.ResetTimer()
	plain := run(false)
	keyed := run(true)
	b.ReportMetric(keyed.rate, "rec/s")
	b.ReportMetric(plain.rate, "baseline_rec/s")
	b.ReportMetric(keyed.rate/plain.rate, "x_baseline")
	b.ReportMetric(keyed.pages, "pages/commit")
	b.ReportMetric(plain.pages, "baseline_pages/commit")
	b.ReportMetric(keyed.us, "us/commit")
	b.ReportMetric(plain.us, "baseline_us/commit")
	b.ReportMetric(keyed.recs, "rec/commit")
	b.ReportMetric(plain.recs, "baseline_rec/commit")
}

// pageWrites is the number of pages bbolt wrote since o's file was opened.
func pageWrites(o *Outbox) int64 {
	st := o.db.Stats()
	return st.TxStats.GetWrite()
}
