package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/kioskedge/kioskedge/sync/wire"
)

func beUint64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

// committer gathers concurrent Appends into groups and commits each group
// in one transaction. It lingers for a group as large as the previous one
// (the producers it just released tend to come back together), up to
// Options.Linger, so blocked producers share fsyncs.
func (o *Outbox) committer() {
	defer o.wg.Done()
	group := make([]*request, 0, o.opts.MaxGroup)
	var carry *request
	last := 1
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	maxBytes := int64(-1)
	if o.opts.BudgetBytes > 0 {
		maxBytes = o.opts.BudgetBytes / 2
	}
	for {
		group = group[:0]
		var gbytes int64
		add := func(r *request) bool {
			sz := recSize(r.val)
			if maxBytes >= 0 && len(group) > 0 && gbytes+sz > maxBytes {
				carry = r
				return false
			}
			group = append(group, r)
			gbytes += sz
			return true
		}
		if carry != nil {
			r := carry
			carry = nil
			add(r)
		} else {
			select {
			case r := <-o.reqs:
				add(r)
			case <-o.quit:
				o.drainOnClose()
				return
			}
		}
		target := min(last, o.opts.MaxGroup)
		lingering := false
	gather:
		for len(group) < o.opts.MaxGroup && carry == nil {
			select {
			case r := <-o.reqs:
				add(r)
				continue
			default:
			}
			if len(group) >= target {
				break
			}
			if !lingering {
				lingering = true
				timer.Reset(o.opts.Linger)
			}
			select {
			case r := <-o.reqs:
				add(r)
			case <-timer.C:
				lingering = false
				break gather
			case <-o.quit:
				break gather
			}
		}
		if lingering {
			timer.Stop()
		}
		last = len(group)
		o.commitGroup(group)
	}
}

// drainOnClose commits what was handed over before Close; nothing more can
// arrive because Close set closed under closeMu.
func (o *Outbox) drainOnClose() {
	for {
		var group []*request
		for len(group) < o.opts.MaxGroup {
			select {
			case r := <-o.reqs:
				group = append(group, r)
				continue
			default:
			}
			break
		}
		if len(group) == 0 {
			return
		}
		o.commitGroup(group)
	}
}

// commitGroup commits one group and answers every request in it.
func (o *Outbox) commitGroup(group []*request) {
	vals := make([][]byte, len(group))
	for i, r := range group {
		vals[i] = r.val
	}
	first, gen, err := o.appendValues(vals)
	if errors.Is(err, ErrCorrupt) {
		if herr := o.heal(gen, err); herr != nil {
			err = herr
		} else {
			first, _, err = o.appendValues(vals)
		}
	}
	for i, r := range group {
		if err != nil {
			r.err = err
		} else {
			r.seq = first + uint64(i)
		}
		r.done <- struct{}{}
	}
	if err == nil {
		select {
		case o.notify <- struct{}{}:
		default:
		}
	}
}

// appendValues stores vals with consecutive sequences in one transaction
// (evicting under the budget first) and returns the first sequence.
func (o *Outbox) appendValues(vals [][]byte) (first, gen uint64, err error) {
	o.wmu.Lock()
	defer o.wmu.Unlock()
	o.dbMu.RLock()
	defer o.dbMu.RUnlock()
	if o.db == nil {
		return 0, 0, ErrClosed
	}
	gen = o.gen
	cur := o.published()
	var st *state
	evicted := false
	err = safeUpdate(o.db, func(tx *bolt.Tx) error {
		w := newWriter(tx, cur)
		st = w.st
		var add int64
		for _, v := range vals {
			add += recSize(v)
		}
		if o.opts.BudgetBytes > 0 && st.bytes()+add > o.opts.BudgetBytes {
			n, err := o.evict(w, st.bytes()+add-o.opts.BudgetBytes+o.opts.BudgetBytes/20)
			if err != nil {
				return err
			}
			evicted = n > 0
		}
		first = st.nextSeq
		if err := o.reserve(st.nextSeq + uint64(len(vals)) - 1); err != nil {
			return err
		}
		for _, v := range vals {
			if err := w.put(v); err != nil {
				return err
			}
		}
		return w.finish()
	})
	if err != nil {
		return 0, gen, fmt.Errorf("outbox: commit: %w", err)
	}
	o.stMu.Lock()
	wasEmpty := o.st.depth() == 0
	o.st = st
	o.commits++
	if evicted || wasEmpty {
		o.oldestOK = false
	}
	o.stMu.Unlock()
	return first, gen, nil
}

// reserve makes sure the side file reserves every sequence through last.
// Called with wmu held.
func (o *Outbox) reserve(last uint64) error {
	if last <= o.reserved {
		return nil
	}
	n := (last/seqBlock + 1) * seqBlock
	if err := writeReservation(o.seqPath(), n); err != nil {
		return err
	}
	o.reserved = n
	return nil
}

// safeUpdate runs a write transaction, turning a panic or memory fault
// caused by a damaged file into an error wrapping ErrCorrupt.
func safeUpdate(db *bolt.DB, fn func(*bolt.Tx) error) (err error) {
	defer catchCorrupt(&err)
	defer withPanicOnFault()()
	return db.Update(fn)
}

// writer applies record puts and deletes to a transaction and a private
// copy of the state, and writes the changed bookkeeping in finish.
type writer struct {
	tx    *bolt.Tx
	st    *state
	meta  *bolt.Bucket
	owned map[uint64]bool // segments whose stats were copied
	dirty map[uint64]bool // segments whose stats must be written
	bkts  map[uint64]*bolt.Bucket
	keys  []byte // backing store for keys, alive until commit
}

func newWriter(tx *bolt.Tx, cur *state) *writer {
	return &writer{
		tx: tx, st: cur.clone(), meta: tx.Bucket(metaBucket),
		owned: map[uint64]bool{}, dirty: map[uint64]bool{}, bkts: map[uint64]*bolt.Bucket{},
	}
}

func (w *writer) key(seq uint64) []byte {
	if cap(w.keys)-len(w.keys) < 8 {
		w.keys = make([]byte, 0, 8*1024)
	}
	off := len(w.keys)
	w.keys = binary.BigEndian.AppendUint64(w.keys, seq)
	return w.keys[off : off+8 : off+8]
}

func (w *writer) bucket(g uint64, create bool) (*bolt.Bucket, error) {
	if b := w.bkts[g]; b != nil {
		return b, nil
	}
	b := w.tx.Bucket(segName(g))
	if b == nil && create {
		var err error
		if b, err = w.tx.CreateBucket(segName(g)); err != nil {
			return nil, err
		}
	}
	if b == nil {
		return nil, nil
	}
	b.FillPercent = 1.0 // keys only ever grow at the end
	w.bkts[g] = b
	return b, nil
}

// put stores v under the next sequence.
func (w *writer) put(v []byte) error {
	cls := classOf(v)
	if cls == 0 {
		return fmt.Errorf("%w: unreadable class byte", ErrBadRecord)
	}
	return w.putAt(w.st.nextSeq, v, cls)
}

// putAt stores v under seq (>= nextSeq) and advances nextSeq past it.
func (w *writer) putAt(seq uint64, v []byte, cls wire.Class) error {
	g := segOf(seq)
	b, err := w.bucket(g, true)
	if err != nil {
		return err
	}
	if err := b.Put(w.key(seq), v); err != nil {
		return err
	}
	s := w.st.seg(g, w.owned)
	sz := recSize(v)
	s.n[cls]++
	s.b[cls] += sz
	w.st.n[cls]++
	w.st.b[cls] += sz
	w.dirty[g] = true
	w.st.nextSeq = max(w.st.nextSeq, seq+1)
	return nil
}

// drop subtracts one record from the live stats of its segment.
func (w *writer) drop(g uint64, cls wire.Class, sz int64) {
	s := w.st.seg(g, w.owned)
	s.n[cls]--
	s.b[cls] -= sz
	w.st.n[cls]--
	w.st.b[cls] -= sz
	w.dirty[g] = true
}

// dropSegment deletes segment g's bucket and its stats.
func (w *writer) dropSegment(g uint64) error {
	if s := w.st.segs[g]; s != nil {
		for c := 1; c < numClasses; c++ {
			w.st.n[c] -= s.n[c]
			w.st.b[c] -= s.b[c]
		}
	}
	delete(w.st.segs, g)
	delete(w.bkts, g)
	w.dirty[g] = true
	if err := w.tx.DeleteBucket(segName(g)); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
		return err
	}
	return nil
}

// finish writes the changed segment stats and the state.
func (w *writer) finish() error {
	for g := range w.dirty {
		s := w.st.segs[g]
		var err error
		if s == nil {
			err = w.meta.Delete(segStatsKey(g))
		} else {
			err = w.meta.Put(segStatsKey(g), encodeSegStats(s))
		}
		if err != nil {
			return err
		}
	}
	return w.meta.Put(stateKey, encodeState(w.st))
}
