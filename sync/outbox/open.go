package outbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Open opens or creates the outbox file at opts.Path and starts its
// committer. It reads only the meta bucket and the idempotency index (see
// AppendOnce), never the records.
//
// A file that cannot be used (bbolt refuses it, it is empty or shorter than
// its own page count says, its meta is missing or damaged, an idempotency
// entry is malformed, or reading it faults) is replaced: a fresh file gets
// the readable records under their original sequence numbers (not the
// idempotency index) and a wire.KindOutboxAlarm record, then the damaged
// file is renamed to "<Path>.corrupt-<UTC time>" and the fresh one
// put in its place; Open then succeeds and Stats().Corruptions counts the
// event. A replacement or reclaim cut short by a crash is finished or
// undone first.
//
// Errors: ErrBadOptions; a lock held by another process (bbolt's timeout
// error after 2 s); I/O errors creating the directory, the file or the
// side files; or a failure while replacing a damaged file. On error
// nothing stays open.
func Open(opts Options) (*Outbox, error) {
	if opts.Path == "" {
		return nil, fmt.Errorf("%w: empty Path", ErrBadOptions)
	}
	if opts.BudgetBytes < 0 {
		return nil, fmt.Errorf("%w: negative BudgetBytes", ErrBadOptions)
	}
	if opts.MaxGroup <= 0 {
		opts.MaxGroup = 1024
	}
	if opts.Linger <= 0 {
		opts.Linger = DefaultLinger
	}
	if opts.ReclaimAbove == 0 {
		opts.ReclaimAbove = 64 << 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.IdemTTL <= 0 {
		opts.IdemTTL = DefaultIdemTTL
	}
	if opts.IdemEntries <= 0 {
		opts.IdemEntries = DefaultIdemEntries
	}
	o := &Outbox{
		opts:   opts,
		log:    opts.Logger,
		reqs:   make(chan *request, 4096),
		quit:   make(chan struct{}),
		notify: make(chan struct{}, 1),
	}
	if o.log == nil {
		o.log = discardLogger()
	}
	o.log = o.log.With("component", "outbox")
	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o750); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	if err := settleSideFiles(opts.Path); err != nil {
		return nil, err
	}
	res, err := readReservation(o.seqPath())
	if errors.Is(err, ErrCorrupt) {
		o.log.Error("sequence reservation file damaged; relying on the database", "err", err)
	} else if err != nil {
		return nil, err
	}
	o.reserved = res

	db, st, err := o.openFile()
	if err == nil {
		if o.idem, err = loadIdem(db); err != nil && !errors.Is(err, ErrCorrupt) {
			err = fmt.Errorf("%w: idempotency index: %w", ErrCorrupt, err)
		}
	}
	if errors.Is(err, ErrCorrupt) {
		db, st, err = o.replaceCorrupt(db, err)
		o.idem = map[string]idemEnt{} // the index goes with the damaged file
	}
	if err != nil {
		if db != nil {
			_ = db.Close() // the open error is what matters
		}
		return nil, err
	}
	o.db, o.st = db, st
	if err := o.reserve(st.nextSeq - 1); err != nil {
		_ = db.Close() // the reservation error is what matters
		return nil, err
	}
	o.wg.Add(1)
	go o.committer()
	return o, nil
}

func openBolt(path string, readOnly bool) (db *bolt.DB, err error) {
	defer catchCorrupt(&err)
	defer withPanicOnFault()()
	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      2 * time.Second,
		FreelistType: bolt.FreelistMapType,
		ReadOnly:     readOnly,
	})
	if err != nil && !errors.Is(err, berrors.ErrTimeout) && !errors.Is(err, ErrCorrupt) {
		err = fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return db, err
}

// catchCorrupt turns a panic (including a memory fault on a truncated
// mapping) into an error wrapping ErrCorrupt. Use as defer catchCorrupt(&err).
func catchCorrupt(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: %v", ErrCorrupt, r)
	}
}

// openFile opens the file at the configured path and loads its state. An
// error wrapping ErrCorrupt means the file must be replaced; db may then be
// non-nil and is closed by the caller.
func (o *Outbox) openFile() (*bolt.DB, *state, error) {
	path := o.opts.Path
	fi, err := os.Stat(path)
	existed := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("outbox: %w", err)
	}
	if existed && fi.Size() == 0 {
		return nil, nil, fmt.Errorf("%w: file is empty", ErrCorrupt)
	}
	db, err := openBolt(path, false)
	if err != nil {
		return nil, nil, err
	}
	if !existed {
		if o.reserved > 0 {
			o.log.Warn("outbox file missing; starting a fresh one above the reserved sequences",
				"reserved_through", o.reserved)
		}
		st := newState()
		st.nextSeq = o.reserved + 1
		return db, st, initFile(db, st)
	}
	st, err := loadState(db, path)
	return db, st, err
}

func initFile(db *bolt.DB, st *state) error {
	return db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		return b.Put(stateKey, encodeState(st))
	})
}

// loadState reads the meta bucket and checks it against the file: no record
// is read.
func loadState(db *bolt.DB, path string) (*state, error) {
	var st *state
	err := safeView(db, func(tx *bolt.Tx) error {
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		if tx.Size() > fi.Size() {
			return fmt.Errorf("%w: file is %d bytes, its pages need %d (truncated)", ErrCorrupt, fi.Size(), tx.Size())
		}
		m := tx.Bucket(metaBucket)
		if m == nil {
			return fmt.Errorf("%w: no meta bucket", ErrCorrupt)
		}
		if st, err = decodeState(m.Get(stateKey)); err != nil {
			return err
		}
		c := m.Cursor()
		for k, v := c.Seek([]byte{'g'}); k != nil && k[0] == 'g'; k, v = c.Next() {
			if len(k) != 9 {
				return fmt.Errorf("%w: meta key %q", ErrCorrupt, k)
			}
			s, err := decodeSegStats(v)
			if err != nil {
				return err
			}
			g := beUint64(k[1:])
			if s.live() > 0 && tx.Bucket(segName(g)) == nil {
				return fmt.Errorf("%w: segment %d has %d records in meta but no bucket", ErrCorrupt, g, s.live())
			}
			if g > segOf(st.nextSeq) {
				return fmt.Errorf("%w: segment %d beyond next sequence %d", ErrCorrupt, g, st.nextSeq)
			}
			st.segs[g] = s
			for c := 1; c < numClasses; c++ {
				st.n[c] += s.n[c]
				st.b[c] += s.b[c]
			}
		}
		return nil
	})
	return st, err
}

// Ack records that the hub stored every sequence through `through`: the
// records are deleted durably (whole segments by DeleteBucket, the acked
// part of the last segment only logically, through the acked marker) and
// will never be returned by Read again. An Ack at or below AckedThrough is
// a no-op returning nil. When the outbox is then empty and the file is
// larger than Options.ReclaimAbove, the file is swapped for a fresh one.
//
// Errors: ErrClosed; ErrBadAck (through >= NextSeq; nothing changes);
// an I/O error from the commit (nothing changes); ErrCorrupt if the file
// is found damaged (it is then replaced as Open does, and the ack must be
// repeated against the salvaged records); an error
// from the reclaim, after the ack itself is durable (a retry is a no-op).
func (o *Outbox) Ack(through uint64) error {
	o.wmu.Lock()
	st, gen, err := o.ackLocked(through)
	if errors.Is(err, ErrCorrupt) {
		o.wmu.Unlock()
		if herr := o.heal(gen, err); herr != nil {
			return errors.Join(err, herr)
		}
		return err
	}
	defer o.wmu.Unlock()
	if err != nil || st == nil {
		return err
	}
	if st.depth() != 0 || o.opts.ReclaimAbove < 0 {
		return nil
	}
	fi, err := os.Stat(o.opts.Path)
	if err != nil {
		return fmt.Errorf("outbox: ack stored, reclaim: %w", err)
	}
	if fi.Size() <= o.opts.ReclaimAbove {
		return nil
	}
	if err := o.reclaim(st); err != nil {
		return fmt.Errorf("outbox: ack stored, reclaim failed: %w", err)
	}
	o.log.Info("outbox drained, file swapped for a fresh one", "old_bytes", fi.Size())
	return nil
}

func (o *Outbox) ackLocked(through uint64) (*state, uint64, error) {
	o.dbMu.RLock()
	defer o.dbMu.RUnlock()
	if o.db == nil {
		return nil, 0, ErrClosed
	}
	gen := o.gen
	cur := o.published()
	if through <= cur.acked {
		return nil, gen, nil
	}
	if through >= cur.nextSeq {
		return nil, gen, fmt.Errorf("%w: %d, next sequence %d", ErrBadAck, through, cur.nextSeq)
	}
	var st *state
	err := safeUpdate(o.db, func(tx *bolt.Tx) error {
		w := newWriter(tx, cur)
		st = w.st
		var whole []uint64
		rc := tx.Cursor()
		for name, _ := rc.Seek(segName(0)); name != nil && isSegName(name); name, _ = rc.Next() {
			g := beUint64(name[1:])
			if (g+1)*segSpan-1 > through {
				break
			}
			whole = append(whole, g)
		}
		for g := range st.segs { // stats without a bucket (empty segments)
			if (g+1)*segSpan-1 <= through && !slices.Contains(whole, g) {
				whole = append(whole, g)
			}
		}
		for _, g := range whole {
			if err := w.dropSegment(g); err != nil {
				return err
			}
		}
		if g := segOf(through); (g+1)*segSpan-1 > through && st.segs[g] != nil && st.segs[g].live() > 0 {
			b, err := w.bucket(g, false)
			if err != nil {
				return err
			}
			if b == nil {
				return fmt.Errorf("%w: segment %d missing", ErrCorrupt, g)
			}
			c := b.Cursor()
			for k, v := c.Seek(seqKey(max(st.acked+1, g*segSpan))); k != nil && beUint64(k) <= through; k, v = c.Next() {
				cls := classOf(v)
				if cls == 0 {
					return fmt.Errorf("%w: record %d unreadable", ErrCorrupt, beUint64(k))
				}
				w.drop(g, cls, recSize(v))
			}
		}
		st.acked = through
		return w.finish()
	})
	if err != nil {
		return nil, gen, fmt.Errorf("outbox: ack: %w", err)
	}
	o.stMu.Lock()
	o.st = st
	o.oldestOK = false
	o.stMu.Unlock()
	return st, gen, nil
}

// reclaim swaps the (empty) file for a fresh one holding only st. Crash
// safe: the fresh file is complete and fsynced under a temp name before it
// is renamed over the old one. Called with wmu held.
func (o *Outbox) reclaim(st *state) error {
	o.dbMu.Lock()
	defer o.dbMu.Unlock()
	path, tmp := o.opts.Path, o.opts.Path+".fresh"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	ndb, err := openBolt(tmp, false)
	if err != nil {
		return err
	}
	fresh := st.clone()
	fresh.segs = map[uint64]*segStats{}
	if err := initFile(ndb, fresh); err != nil {
		return errors.Join(err, ndb.Close())
	}
	if err := safeView(o.db, func(src *bolt.Tx) error {
		return ndb.Update(func(dst *bolt.Tx) error { return copyIdem(src, dst) })
	}); err != nil {
		return errors.Join(err, ndb.Close())
	}
	if err := ndb.Close(); err != nil {
		return err
	}
	if err := o.db.Close(); err != nil {
		o.log.Error("closing the drained file before the swap", "err", err)
	}
	o.db = nil
	crashPoint("reclaim-fresh-written")
	renameErr := os.Rename(tmp, path)
	if renameErr == nil {
		crashPoint("reclaim-renamed")
		renameErr = syncDir(filepath.Dir(path))
	}
	db, err := openBolt(path, false)
	if err != nil {
		return errors.Join(renameErr, err)
	}
	o.db = db
	o.stMu.Lock()
	o.st = fresh
	o.stMu.Unlock()
	return renameErr
}

func withPanicOnFault() func() {
	old := debug.SetPanicOnFault(true)
	return func() { debug.SetPanicOnFault(old) }
}
