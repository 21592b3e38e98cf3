package outbox

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/kioskedge/kioskedge/sync/outbox/outboxtest"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// snapshot is what the file holds: every stored record above the acked
// marker, and every sequence named by a stored gap record.
type snapshot struct {
	cls   map[uint64]wire.Class // stored records
	named map[uint64]bool       // named by a stored gap record
}

func takeSnapshot(t *testing.T, o *Outbox) snapshot {
	t.Helper()
	s := snapshot{cls: map[uint64]wire.Class{}, named: map[uint64]bool{}}
	for _, e := range outboxtest.ReadAll(t, o, 0) {
		r, err := wire.UnmarshalRecord(e.Seq, "", e.Raw)
		if err != nil {
			t.Fatalf("seq %d: %v", e.Seq, err)
		}
		s.cls[e.Seq] = r.Class
		if r.Kind != wire.KindGap {
			continue
		}
		g, err := DecodeGapBody(r.Body)
		if err != nil {
			t.Fatalf("gap %d: %v", e.Seq, err)
		}
		for _, rg := range g.Ranges {
			if rg[1] >= e.Seq {
				t.Fatalf("gap %d names %v, not all older than itself", e.Seq, rg)
			}
			for q := rg[0]; q <= rg[1]; q++ {
				if s.named[q] {
					t.Fatalf("seq %d named by two stored gap records", q)
				}
				s.named[q] = true
			}
		}
	}
	return s
}

// checkAccounting checks that every sequence handed out is stored, named by
// a stored gap record, or acked, that nothing is both stored and named, and
// that the meta counters equal a full recount of the records.
func checkAccounting(t *testing.T, o *Outbox, s snapshot) {
	t.Helper()
	st := o.Stats()
	for q := uint64(1); q < st.NextSeq; q++ {
		_, stored := s.cls[q]
		switch {
		case stored && s.named[q]:
			t.Fatalf("seq %d both stored and named by a gap record", q)
		case stored && q <= st.AckedThrough:
			t.Fatalf("seq %d stored though acked through %d", q, st.AckedThrough)
		case !stored && !s.named[q] && q > st.AckedThrough:
			t.Fatalf("seq %d lost silently (next %d, acked %d)", q, st.NextSeq, st.AckedThrough)
		}
	}
	checkRecount(t, o)
}

// checkRecount compares the published state and the meta bucket with a
// walk over every live record.
func checkRecount(t *testing.T, o *Outbox) {
	t.Helper()
	pub := o.published()
	segs := map[uint64]*segStats{}
	var n [numClasses]uint64
	var b [numClasses]int64
	var disk map[uint64]*segStats
	err := o.db.View(func(tx *bolt.Tx) error {
		c := tx.Cursor()
		for name, _ := c.Seek([]byte{'s'}); name != nil && isSegName(name); name, _ = c.Next() {
			g := beUint64(name[1:])
			bc := tx.Bucket(name).Cursor()
			for k, v := bc.First(); k != nil; k, v = bc.Next() {
				if beUint64(k) <= pub.acked {
					continue
				}
				s := segs[g]
				if s == nil {
					s = &segStats{}
					segs[g] = s
				}
				cls := classOf(v)
				s.n[cls]++
				s.b[cls] += recSize(v)
				n[cls]++
				b[cls] += recSize(v)
			}
		}
		disk = map[uint64]*segStats{}
		mc := tx.Bucket(metaBucket).Cursor()
		for k, v := mc.Seek([]byte{'g'}); k != nil && k[0] == 'g'; k, v = mc.Next() {
			s, err := decodeSegStats(v)
			if err != nil {
				return err
			}
			disk[beUint64(k[1:])] = s
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != pub.n || b != pub.b {
		t.Fatalf("totals: published %v %v, recount %v %v", pub.n, pub.b, n, b)
	}
	for name, m := range map[string]map[uint64]*segStats{"published": pub.segs, "meta bucket": disk} {
		for g, s := range m {
			want := segs[g]
			if want == nil {
				want = &segStats{}
			}
			if *s != *want {
				t.Fatalf("%s segment %d stats %+v, recount %+v", name, g, *s, *want)
			}
		}
		for g, want := range segs {
			if m[g] == nil {
				t.Fatalf("%s has no stats for segment %d holding %+v", name, g, *want)
			}
		}
	}
}

// TestBudgetAccountingProperty appends records of random classes and sizes
// under a small budget with random acks and reopens, and after every step
// checks the accounting (checkAccounting) and the eviction order: records
// dropped by one Append are of the lowest classes present and the oldest
// of their class.
func TestBudgetAccountingProperty(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 99))
			dir := t.TempDir()
			budget := int64(3<<10 + rng.IntN(5<<10))
			open := func() *Outbox {
				o, err := Open(Options{Path: filepath.Join(dir, "o.db"), BudgetBytes: budget})
				if err != nil {
					t.Fatal(err)
				}
				return o
			}
			o := open()
			defer func() { o.Close() }()
			before := takeSnapshot(t, o)
			evicted := map[wire.Class]int{}
			for step := range 600 {
				switch x := rng.IntN(100); {
				case x < 3:
					st := o.Stats()
					if st.NextSeq-1 > st.AckedThrough {
						through := st.AckedThrough + 1 + rng.Uint64N(st.NextSeq-1-st.AckedThrough)
						if err := o.Ack(through); err != nil {
							t.Fatal(err)
						}
					}
				case x < 5:
					if err := o.Close(); err != nil {
						t.Fatal(err)
					}
					o = open()
				default:
					cls := wire.Class(1 + rng.IntN(3))
					if _, err := o.Append(bg, outboxtest.Rec(cls, step, 10+rng.IntN(400))); err != nil {
						t.Fatal(err)
					}
				}
				after := takeSnapshot(t, o)
				checkAccounting(t, o, after)
				acked := o.AckedThrough()
				// Dropped by this step other than by the ack.
				var dropped []uint64
				for q := range before.cls {
					if _, ok := after.cls[q]; !ok && q > acked {
						dropped = append(dropped, q)
					}
				}
				for _, q := range dropped {
					c := before.cls[q]
					evicted[c]++
					for r, rc := range after.cls {
						if _, old := before.cls[r]; !old {
							continue
						}
						if rc < c {
							t.Fatalf("step %d: seq %d (class %v) evicted while %d (class %v) kept", step, q, c, r, rc)
						}
						if rc == c && r < q {
							t.Fatalf("step %d: seq %d evicted while older %d of class %v kept", step, q, r, c)
						}
					}
				}
				before = after
			}
			if evicted[wire.ClassHealth] == 0 || evicted[wire.ClassCritical] == 0 {
				t.Fatalf("the test never evicted every class: %v", evicted)
			}
			t.Logf("budget %d: evicted %v, %+v", budget, evicted, o.Stats())
		})
	}
}
