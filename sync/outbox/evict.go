package outbox

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/kioskedge/kioskedge/sync/wire"
)

// GapBody is the JSON body of a gap record (kind wire.KindGap, class
// wire.ClassCritical): the exact sequences dropped from one class under the
// disk budget, as inclusive ranges in increasing order. A large eviction
// may be described by several gap records.
type GapBody struct {
	Reason string      `json:"reason"` // "disk_budget"
	Class  string      `json:"class"`  // wire.Class.String() of the dropped records
	Ranges [][2]uint64 `json:"ranges"` // inclusive [first, last]
	Count  uint64      `json:"count"`  // records named by Ranges
	Bytes  int64       `json:"bytes"`  // their logical size
}

// maxGapRanges keeps one gap body well under wire.MaxBodyLen.
const maxGapRanges = 2000

// DecodeGapBody parses and checks a gap record's body: ranges non-empty,
// increasing, non-overlapping, and Count equal to the sequences they name.
// It never panics; errors wrap ErrBadRecord.
func DecodeGapBody(b []byte) (GapBody, error) {
	var g GapBody
	if len(b) > wire.MaxBodyLen {
		return g, fmt.Errorf("%w: gap body %d bytes", ErrBadRecord, len(b))
	}
	if err := json.Unmarshal(b, &g); err != nil {
		return g, fmt.Errorf("%w: gap body: %w", ErrBadRecord, err)
	}
	if len(g.Ranges) == 0 {
		return g, fmt.Errorf("%w: gap body without ranges", ErrBadRecord)
	}
	var n, prev uint64
	for i, r := range g.Ranges {
		if r[0] == 0 || r[1] < r[0] || (i > 0 && r[0] <= prev) {
			return g, fmt.Errorf("%w: gap range %d..%d", ErrBadRecord, r[0], r[1])
		}
		n += r[1] - r[0] + 1
		prev = r[1]
	}
	if n != g.Count {
		return g, fmt.Errorf("%w: gap count %d, ranges name %d", ErrBadRecord, g.Count, n)
	}
	return g, nil
}

// evict drops the oldest live records of the lowest class present, then of
// the next class, until at least need logical bytes are freed or nothing is
// left, and writes gap records naming them into the same transaction, after
// all the evictions (so a new gap record is never itself evicted). It
// returns the number of records dropped.
//
// A gap record is class critical and can itself be evicted. Its ranges are
// then carried into the new gap records of their class (merged with what
// this call drops), so every sequence ever dropped stays named by a stored
// gap record until it is acked: loss is never silent.
func (o *Outbox) evict(w *writer, need int64) (int, error) {
	st := w.st
	total := 0
	var freed int64
	var drops [numClasses][]gapRange
	tail := segOf(st.nextSeq)
	for cls := wire.ClassHealth; cls <= wire.ClassCritical && freed < need; cls++ {
		segs := make([]uint64, 0, len(st.segs))
		for g, s := range st.segs {
			if s.n[cls] > 0 {
				segs = append(segs, g)
			}
		}
		slices.Sort(segs)
		for _, g := range segs {
			if freed >= need {
				break
			}
			b, err := w.bucket(g, false)
			if err != nil {
				return total, err
			}
			if b == nil {
				return total, fmt.Errorf("%w: segment %d missing", ErrCorrupt, g)
			}
			start := max(st.acked+1, g*segSpan)
			var del []gapRange
			c := b.Cursor()
			for k, v := c.Seek(seqKey(start)); k != nil && freed < need; k, v = c.Next() {
				if classOf(v) != cls {
					continue
				}
				seq, sz := beUint64(k), recSize(v)
				del = append(del, gapRange{seq, seq, sz})
				freed += sz
				if cls == wire.ClassCritical {
					carryGap(&drops, seq, v)
				}
			}
			for _, d := range del {
				if err := b.Delete(w.key(d.first)); err != nil {
					return total, err
				}
				w.drop(g, cls, d.bytes)
			}
			drops[cls] = append(drops[cls], del...)
			total += len(del)
			if s := st.segs[g]; s != nil && s.live() == 0 && g < tail {
				if err := w.dropSegment(g); err != nil {
					return total, err
				}
			}
		}
	}
	st.evicted += uint64(total)
	for cls := wire.ClassHealth; cls <= wire.ClassCritical; cls++ {
		if len(drops[cls]) > 0 {
			if err := o.writeGaps(w, cls, drops[cls]); err != nil {
				return total, err
			}
		}
	}
	if total > 0 {
		o.log.Warn("outbox budget exceeded, records evicted", "evicted", total,
			"freed_bytes", freed, "budget_bytes", o.opts.BudgetBytes)
	}
	return total, nil
}

// gapRange is an inclusive range of dropped sequences and their logical
// size.
type gapRange struct {
	first, last uint64
	bytes       int64
}

// carryGap adds the ranges named by v, if it is a gap record, to drops. A
// gap record that does not decode names nothing that can be carried.
func carryGap(drops *[numClasses][]gapRange, seq uint64, v []byte) {
	r, err := wire.UnmarshalRecord(seq, "", v)
	if err != nil || r.Kind != wire.KindGap {
		return
	}
	g, err := DecodeGapBody(r.Body)
	if err != nil {
		return
	}
	cls := classByName(g.Class)
	if cls == 0 {
		return
	}
	// Spread the body's bytes over its ranges so that a split across
	// several new gap records still adds up.
	left := g.Bytes
	for i, rg := range g.Ranges {
		b := g.Bytes * int64(rg[1]-rg[0]+1) / int64(g.Count)
		if i == len(g.Ranges)-1 {
			b = left
		}
		left -= b
		drops[cls] = append(drops[cls], gapRange{rg[0], rg[1], b})
	}
}

func classByName(name string) wire.Class {
	for c := wire.ClassHealth; c <= wire.ClassCritical; c++ {
		if c.String() == name {
			return c
		}
	}
	return 0
}

// writeGaps appends gap records naming the dropped ranges of class cls
// (any order; adjacent ranges are merged), at most maxGapRanges ranges per
// record.
func (o *Outbox) writeGaps(w *writer, cls wire.Class, drops []gapRange) error {
	slices.SortFunc(drops, func(a, b gapRange) int { return cmp.Compare(a.first, b.first) })
	g := GapBody{Reason: "disk_budget", Class: cls.String()}
	flush := func() error {
		body, err := json.Marshal(g)
		if err != nil {
			return fmt.Errorf("outbox: gap body: %w", err)
		}
		v, err := wire.MarshalRecord(wire.Record{Kind: wire.KindGap, Class: wire.ClassCritical, Time: o.opts.Now(), Body: body})
		if err != nil {
			return fmt.Errorf("outbox: gap record: %w", err)
		}
		if err := w.put(v); err != nil {
			return err
		}
		w.st.gapRecords++
		g = GapBody{Reason: g.Reason, Class: g.Class}
		return nil
	}
	for _, d := range drops {
		if n := len(g.Ranges); n > 0 && g.Ranges[n-1][1]+1 == d.first {
			g.Ranges[n-1][1] = d.last
		} else {
			if n == maxGapRanges {
				if err := flush(); err != nil {
					return err
				}
			}
			g.Ranges = append(g.Ranges, [2]uint64{d.first, d.last})
		}
		g.Count += d.last - d.first + 1
		g.Bytes += d.bytes
	}
	return flush()
}
