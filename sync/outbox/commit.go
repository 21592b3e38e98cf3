package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/kioskedge/kioskedge/sync/wire"
)

func beUint64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

// DefaultLinger is Options.Linger's default: the longest a commit waits
// for the producers the previous one released. It only delays a group
// smaller than the previous one, so a lone Append never waits.
const DefaultLinger = 2 * time.Millisecond

// committer gathers concurrent Appends into groups and commits each group
// in one transaction. A group starts with everything handed over while
// the previous commit ran (up to Options.MaxGroup records and half the
// budget); when that is fewer records than the previous group had, the
// committer lingers up to Options.Linger for as many (the producers it
// just released tend to come back together), so blocked producers share
// fsyncs.
//
// Measured with the kiosk's 32 HTTP clients on 2 cores (kbench kiosk), a
// commit costs about the same for 10 records as for 30 (two fdatasyncs
// dominate), and committing whatever waits at once gave smaller groups and
// fewer records per second than lingering for the previous group's size.
// How long to linger decides the rhythm: with 400 µs the clients split into
// two halves, one making its HTTP round trip while the other's commit ran,
// and that round trip, on the one core the commit left free (its
// fdatasyncs keep their P), outlasted the commit, so the committer still
// waited about 30 % of the time; with DefaultLinger all the released
// clients come back into the next group: half the commits, 29-30 records
// each, +6 % records per second (median of six interleaved runs).
func (o *Outbox) committer() {
	defer o.wg.Done()
	g := &gatherer{group: make([]*request, 0, o.opts.MaxGroup), maxBytes: -1}
	if o.opts.BudgetBytes > 0 {
		g.maxBytes = o.opts.BudgetBytes / 2
	}
	last := 1
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		g.reset()
		if r := g.takeCarry(); r != nil {
			g.add(r)
		} else {
			select {
			case r := <-o.reqs:
				g.add(r)
			case <-o.quit:
				o.drainOnClose(g)
				return
			}
		}
		g.drain(o.reqs, o.opts.MaxGroup)
		o.linger(g, min(last, o.opts.MaxGroup), timer)
		last = len(g.group)
		o.commitGroup(g.group)
	}
}

// linger waits up to Options.Linger for g to reach target records (or to
// fill), then returns; Close ends it early.
func (o *Outbox) linger(g *gatherer, target int, timer *time.Timer) {
	if len(g.group) >= target || g.full(o.opts.MaxGroup) {
		return
	}
	if o.onLinger != nil {
		o.onLinger(len(g.group))
	}
	timer.Reset(o.opts.Linger)
	defer timer.Stop()
	for len(g.group) < target && !g.full(o.opts.MaxGroup) {
		select {
		case r := <-o.reqs:
			g.add(r)
			g.drain(o.reqs, o.opts.MaxGroup)
		case <-timer.C:
			return
		case <-o.quit:
			return
		}
	}
}

// gatherer builds one group, keeping it within half the budget: a request
// that does not fit waits, as carry, for the next group.
type gatherer struct {
	group    []*request
	bytes    int64
	maxBytes int64 // -1: unlimited
	carry    *request
}

func (g *gatherer) reset() {
	clear(g.group) // drop the references to answered requests
	g.group, g.bytes = g.group[:0], 0
}

func (g *gatherer) takeCarry() *request {
	r := g.carry
	g.carry = nil
	return r
}

// add appends r to the group, or keeps it as carry when it would take a
// non-empty group over maxBytes.
func (g *gatherer) add(r *request) {
	sz := recSize(r.val)
	if g.maxBytes >= 0 && len(g.group) > 0 && g.bytes+sz > g.maxBytes {
		g.carry = r
		return
	}
	g.group = append(g.group, r)
	g.bytes += sz
}

// full reports whether the group can take no more requests.
func (g *gatherer) full(maxGroup int) bool { return len(g.group) >= maxGroup || g.carry != nil }

// drain adds whatever is queued in reqs, without waiting, until the group
// is full.
func (g *gatherer) drain(reqs <-chan *request, maxGroup int) {
	for !g.full(maxGroup) {
		select {
		case r := <-reqs:
			g.add(r)
		default:
			return
		}
	}
}

// drainOnClose commits what was handed over before Close, in groups
// gathered like the committer's (without lingering); nothing more can
// arrive because Close set closed under closeMu.
func (o *Outbox) drainOnClose(g *gatherer) {
	for {
		g.reset()
		if r := g.takeCarry(); r != nil {
			g.add(r)
		}
		g.drain(o.reqs, o.opts.MaxGroup)
		if len(g.group) == 0 {
			return
		}
		o.commitGroup(g.group)
	}
}

// commitGroup commits one group and answers every request in it.
func (o *Outbox) commitGroup(group []*request) {
	if o.beforeCommit != nil {
		o.beforeCommit(len(group))
	}
	gen, err := o.appendValues(group)
	if errors.Is(err, ErrCorrupt) {
		if herr := o.heal(gen, err); herr != nil {
			err = herr
		} else {
			_, err = o.appendValues(group)
		}
	}
	for _, r := range group {
		if err != nil {
			r.err, r.seq, r.prior = err, 0, nil
		}
		r.done <- struct{}{}
	}
	// The producers just answered are queued on this goroutine's P. Let
	// them run before the next commit: its fdatasyncs keep the P (until
	// the runtime's monitor takes it back) and would hold them behind it.
	// Measured with kbench kiosk (runtime trace): the answered handlers
	// waited 117 µs on average before running without this, 105 µs with
	// it; throughput +1-4 %, inside the run-to-run spread.
	runtime.Gosched()
	if err == nil {
		select {
		case o.notify <- struct{}{}:
		default:
		}
	}
}

// appendValues stores the group's records with consecutive sequences in
// one transaction (evicting under the budget first), setting each
// request's seq. A request with a key found in the idempotency index
// stores nothing and gets the key's sequence and meta (prior) instead.
func (o *Outbox) appendValues(group []*request) (gen uint64, err error) {
	o.wmu.Lock()
	defer o.wmu.Unlock()
	o.dbMu.RLock()
	defer o.dbMu.RUnlock()
	if o.db == nil {
		return 0, ErrClosed
	}
	gen = o.gen
	cur := o.published()
	var st *state
	var it *idemTx // the index in the transaction, when the group has keys
	evicted := false
	stored := 0
	keyed := false
	var add int64
	for _, r := range group {
		add += recSize(r.val)
		keyed = keyed || r.key != nil
	}
	start := time.Now()
	err = safeUpdate(o.db, func(tx *bolt.Tx) error {
		w := newWriter(tx, cur)
		w.keyHint = len(group)
		st = w.st
		if o.opts.BudgetBytes > 0 && st.bytes()+add > o.opts.BudgetBytes {
			// add counts records a known key will not store: evicting a
			// little more than needed is harmless.
			n, err := o.evict(w, st.bytes()+add-o.opts.BudgetBytes+o.opts.BudgetBytes/20)
			if err != nil {
				return err
			}
			evicted = n > 0
		}
		if err := o.reserve(st.nextSeq + uint64(len(group)) - 1); err != nil {
			return err
		}
		if keyed {
			var err error
			if it, err = openIdemTx(tx, o.idem, o.opts.Now(), o.opts.IdemTTL); err != nil {
				return err
			}
		}
		for _, r := range group {
			r.prior = nil
			if r.key != nil {
				seq, meta, ok, err := it.lookup(r.key)
				if err != nil {
					return err
				}
				if ok {
					r.seq, r.prior = seq, meta
					continue
				}
			}
			r.seq = st.nextSeq
			if err := w.put(r.val); err != nil {
				return err
			}
			stored++
			if r.key != nil {
				it.put(r.key, r.seq, r.meta)
			}
		}
		if it != nil {
			if err := it.finish(o.opts.IdemEntries); err != nil {
				return err
			}
		}
		return w.finish()
	})
	if err != nil {
		return gen, fmt.Errorf("outbox: commit: %w", err)
	}
	if it != nil {
		it.apply(o.idem)
	}
	o.stMu.Lock()
	wasEmpty := o.st.depth() == 0
	o.st = st
	o.commits++
	o.appended += uint64(stored)
	o.commitNs += int64(time.Since(start))
	if evicted || wasEmpty {
		o.oldestOK = false
	}
	o.stMu.Unlock()
	return gen, nil
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
	// keyHint is how many keys the next backing chunk holds; it doubles
	// with every chunk.
	keyHint int
}

func newWriter(tx *bolt.Tx, cur *state) *writer {
	return &writer{
		tx: tx, st: cur.clone(), meta: tx.Bucket(metaBucket),
		owned: map[uint64]bool{}, dirty: map[uint64]bool{}, bkts: map[uint64]*bolt.Bucket{},
	}
}

func (w *writer) key(seq uint64) []byte {
	if cap(w.keys)-len(w.keys) < 8 {
		w.keyHint = max(w.keyHint, 16)
		w.keys = make([]byte, 0, 8*w.keyHint)
		w.keyHint *= 2
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
