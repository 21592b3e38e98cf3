package outbox

import (
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
// left, and writes gap records naming them into the same transaction. It
// returns the number of records dropped.
func (o *Outbox) evict(w *writer, need int64) (int, error) {
	st := w.st
	total := 0
	var freed int64
	tail := segOf(st.nextSeq)
	for cls := wire.ClassHealth; cls <= wire.ClassCritical && freed < need; cls++ {
		var seqs []uint64
		var sizes []int64
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
			var del []uint64
			var dsz []int64
			c := b.Cursor()
			for k, v := c.Seek(seqKey(start)); k != nil && freed < need; k, v = c.Next() {
				if classOf(v) != cls {
					continue
				}
				del = append(del, beUint64(k))
				dsz = append(dsz, recSize(v))
				freed += recSize(v)
			}
			for i, seq := range del {
				if err := b.Delete(w.key(seq)); err != nil {
					return total, err
				}
				w.drop(g, cls, dsz[i])
			}
			seqs = append(seqs, del...)
			sizes = append(sizes, dsz...)
			if s := st.segs[g]; s != nil && s.live() == 0 && g < tail {
				if err := w.dropSegment(g); err != nil {
					return total, err
				}
			}
		}
		if len(seqs) == 0 {
			continue
		}
		total += len(seqs)
		st.evicted += uint64(len(seqs))
		if err := o.writeGaps(w, cls, seqs, sizes); err != nil {
			return total, err
		}
	}
	if total > 0 {
		o.log.Warn("outbox budget exceeded, records evicted", "evicted", total,
			"freed_bytes", freed, "budget_bytes", o.opts.BudgetBytes)
	}
	return total, nil
}

// writeGaps appends gap records naming seqs (sorted, with their logical
// sizes) of class cls, at most maxGapRanges ranges per record.
func (o *Outbox) writeGaps(w *writer, cls wire.Class, seqs []uint64, sizes []int64) error {
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
	for i, s := range seqs {
		if n := len(g.Ranges); n > 0 && g.Ranges[n-1][1]+1 == s {
			g.Ranges[n-1][1] = s
		} else {
			if n == maxGapRanges {
				if err := flush(); err != nil {
					return err
				}
			}
			g.Ranges = append(g.Ranges, [2]uint64{s, s})
		}
		g.Count++
		g.Bytes += sizes[i]
	}
	return flush()
}
