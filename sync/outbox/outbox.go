package outbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kioskedge/kioskedge/sync/wire"
)

// Errors returned by the outbox. Each returned error wraps one of them (or a
// bbolt / OS error) so callers can branch with errors.Is.
var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("outbox: closed")
	// ErrTooLarge is returned by Append for a record whose stored size
	// alone exceeds Options.BudgetBytes: it could never be kept.
	ErrTooLarge = errors.New("outbox: record larger than the disk budget")
	// ErrBadRecord is returned by Append for a record wire.MarshalRecord
	// rejects (invalid class, empty or long kind, oversized body).
	ErrBadRecord = errors.New("outbox: bad record")
	// ErrBadAck is returned by Ack for a sequence never handed out.
	ErrBadAck = errors.New("outbox: ack beyond the last sequence")
	// ErrCorrupt marks damage found in the file or a side file.
	ErrCorrupt = errors.New("outbox: corrupt database")
	// ErrBadKey is returned by AppendOnce for an empty or long key or a
	// long meta.
	ErrBadKey = errors.New("outbox: bad idempotency key")
	// ErrBadOptions is returned by Open for invalid options.
	ErrBadOptions = errors.New("outbox: bad options")
)

// Options configure Open. Zero values take the documented defaults.
type Options struct {
	// Path is the bbolt file. Its directory also holds the side files:
	// "<Path>.seq" (sequence reservation), "<Path>.corrupt-<UTC time>"
	// (quarantined damaged files), "<Path>.salvage" (a replacement for a
	// damaged file in progress) and "<Path>.fresh" (a reclaim in progress).
	Path string
	// BudgetBytes bounds the logical size of the stored records (key +
	// value + 16 bytes each); 0 means unlimited.
	BudgetBytes int64
	// MaxGroup is the maximum number of records per commit (default 1024).
	MaxGroup int
	// Linger is how long the committer waits for a group as large as the
	// previous one before committing what it has (default DefaultLinger).
	Linger time.Duration
	// ReclaimAbove: when an Ack drains the outbox and the file is larger
	// than this, the file is swapped for a fresh one (default 64 MiB;
	// negative disables).
	ReclaimAbove int64
	// IdemTTL is how long AppendOnce remembers a key (default
	// DefaultIdemTTL, 24 h).
	IdemTTL time.Duration
	// IdemEntries bounds the keys AppendOnce remembers; the oldest go
	// first (default DefaultIdemEntries, 100,000).
	IdemEntries int
	// Now gives the time for alarm and gap records and for the
	// idempotency index (default time.Now).
	Now func() time.Time
	// Logger receives the few log lines the outbox writes (nil: discard).
	Logger *slog.Logger
}

// Stats is a snapshot of the outbox's bookkeeping.
type Stats struct {
	Depth        uint64    // records stored and not yet acked
	Bytes        int64     // their logical size, compared with BudgetBytes
	FileBytes    int64     // size of the bbolt file on disk
	BudgetBytes  int64     // Options.BudgetBytes
	NextSeq      uint64    // the sequence the next Append will get
	AckedThrough uint64    // every sequence up to here is acked and gone
	Oldest       time.Time // Time of the oldest unacked record (zero if none)
	Evicted      uint64    // records ever dropped under the budget
	GapRecords   uint64    // gap records ever written
	Corruptions  uint64    // damaged files ever replaced
	Commits      uint64    // append commits since Open
	// Appended counts the records those commits stored (Appended/Commits
	// is the mean group size) and CommitTime the time they took, from the
	// start of the write transaction to the end of its second fdatasync
	// (CommitTime/Commits is the mean commit).
	Appended   uint64
	CommitTime time.Duration
}

// Outbox is a durable, ordered, bounded queue of records in one bbolt file.
// All methods are safe for concurrent use.
type Outbox struct {
	opts Options
	log  *slog.Logger

	reqs   chan *request
	quit   chan struct{}
	notify chan struct{}
	wg     sync.WaitGroup

	closeMu sync.RWMutex // guards closed against Append's enqueue
	closed  bool
	closeMx sync.Mutex // serialises Close
	doneErr error

	// wmu serialises every write transaction and the publication of st.
	wmu sync.Mutex
	// dbMu guards db against the swap done by reclaim.
	dbMu sync.RWMutex
	db   *bolt.DB

	stMu     sync.Mutex
	st       *state // published state: committed and fsynced
	reserved uint64 // sequence reservation written to the side file
	commits  uint64
	appended uint64
	commitNs int64
	oldest   time.Time
	oldestOK bool // oldest is up to date

	gen uint64 // file generation, bumped when a damaged file is replaced (dbMu)

	// idem maps every key of the file's idempotency index to its entry
	// (wmu); see idemTx.
	idem map[string]idemEnt

	// beforeCommit and onLinger, when set by a test before the first
	// Append, are called by the committer with each group's size before its
	// transaction, and with the group's size when it starts to linger.
	beforeCommit func(n int)
	onLinger     func(n int)
}

type request struct {
	val []byte
	cls wire.Class
	// key and meta are AppendOnce's (key nil for Append); prior is set
	// by the commit when the key was found.
	key, meta, prior []byte
	seq              uint64
	err              error
	done             chan struct{}
}

var reqPool = sync.Pool{New: func() any { return &request{done: make(chan struct{}, 1)} }}

// crashHook, when set by a test, is called at the named points of the
// multi-step file replacements so a child process can be killed there.
var crashHook func(point string)

func crashPoint(point string) {
	if crashHook != nil {
		crashHook(point)
	}
}

func (o *Outbox) seqPath() string { return o.opts.Path + ".seq" }

// Append stores r durably and returns its sequence number. It returns only
// after the transaction holding the record was committed and fsynced; r.Seq
// and r.Agent are ignored. Concurrent Appends share transactions.
//
// Errors: ErrBadRecord (record rejected by wire.MarshalRecord), ErrTooLarge
// (larger than the whole budget), ErrClosed (Close was called), ctx.Err()
// if ctx ends before the record was handed to the committer (then it is not
// stored), or the commit's error (then it is not stored). Once handed over,
// Append waits for the commit regardless of ctx, so a returned seq is never
// lost and a stored record is never unreported.
func (o *Outbox) Append(ctx context.Context, r wire.Record) (uint64, error) {
	seq, _, err := o.append(ctx, r, nil, nil)
	return seq, err
}

// append hands r (and AppendOnce's key and meta) to the committer and
// waits for its commit.
func (o *Outbox) append(ctx context.Context, r wire.Record, key, meta []byte) (uint64, []byte, error) {
	req := reqPool.Get().(*request)
	val, err := wire.AppendRecord(req.val[:0], r)
	if err != nil {
		reqPool.Put(req)
		return 0, nil, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	if o.opts.BudgetBytes > 0 && recSize(val) > o.opts.BudgetBytes {
		reqPool.Put(req)
		return 0, nil, fmt.Errorf("%w: %d bytes, budget %d", ErrTooLarge, recSize(val), o.opts.BudgetBytes)
	}
	req.val, req.cls, req.seq, req.err = val, r.Class, 0, nil
	req.key, req.meta, req.prior = key, meta, nil
	o.closeMu.RLock()
	if o.closed {
		o.closeMu.RUnlock()
		reqPool.Put(req)
		return 0, nil, ErrClosed
	}
	select {
	case o.reqs <- req:
	case <-ctx.Done():
		o.closeMu.RUnlock()
		reqPool.Put(req)
		return 0, nil, ctx.Err()
	}
	o.closeMu.RUnlock()
	<-req.done
	seq, prior, err := req.seq, req.prior, req.err
	req.key, req.meta, req.prior = nil, nil, nil
	if cap(req.val) <= 4096 {
		reqPool.Put(req) // the committer no longer holds it
	}
	return seq, prior, err
}

// Notify returns a channel with capacity 1 that receives a value (without
// blocking the committer) after every commit that added records. It is
// never closed.
func (o *Outbox) Notify() <-chan struct{} { return o.notify }

// AckedThrough returns the highest sequence acked so far (0 if none).
func (o *Outbox) AckedThrough() uint64 {
	o.stMu.Lock()
	defer o.stMu.Unlock()
	return o.st.acked
}

// Stats returns a snapshot. Computing Oldest may need a short read
// transaction; if that fails (closed or damaged file) Oldest is left zero.
func (o *Outbox) Stats() Stats {
	o.stMu.Lock()
	st := o.st
	s := Stats{
		Depth: st.depth(), Bytes: st.bytes(), BudgetBytes: o.opts.BudgetBytes,
		NextSeq: st.nextSeq, AckedThrough: st.acked, Evicted: st.evicted,
		GapRecords: st.gapRecords, Corruptions: st.corruptions, Commits: o.commits,
		Appended: o.appended, CommitTime: time.Duration(o.commitNs),
		Oldest: o.oldest,
	}
	ok := o.oldestOK
	o.stMu.Unlock()
	if fi, err := os.Stat(o.opts.Path); err == nil {
		s.FileBytes = fi.Size()
	}
	if !ok {
		s.Oldest = o.refreshOldest()
	}
	return s
}

// refreshOldest reads the time of the first live record.
func (o *Outbox) refreshOldest() time.Time {
	ents, err := o.Read(0, 1, 1)
	var t time.Time
	if err != nil {
		return t
	}
	if len(ents) == 1 {
		if r, err := wire.UnmarshalRecord(ents[0].Seq, "", ents[0].Raw); err == nil {
			t = r.Time
		}
	}
	o.stMu.Lock()
	o.oldest, o.oldestOK = t, true
	o.stMu.Unlock()
	return t
}

func (o *Outbox) published() *state {
	o.stMu.Lock()
	defer o.stMu.Unlock()
	return o.st
}

// Read returns up to maxRecords records with Seq > after (and above
// AckedThrough), in order, whose values total at most maxBytes, except
// that the first record is returned even if it alone is larger. Values are
// copied; no transaction stays open. maxRecords <= 0 means 1000 and
// maxBytes <= 0 means 1 MiB. An empty result with a nil error means
// nothing is waiting. If the walk meets damaged pages, the file is replaced
// as Open does (quarantine, salvage, alarm record) and the read is retried
// once. Errors: ErrClosed; ErrCorrupt if the retry fails too; an error
// from the replacement.
func (o *Outbox) Read(after uint64, maxRecords, maxBytes int) ([]wire.Entry, error) {
	ents, gen, err := o.read(after, maxRecords, maxBytes)
	if errors.Is(err, ErrCorrupt) {
		if herr := o.heal(gen, err); herr != nil {
			return nil, herr
		}
		ents, _, err = o.read(after, maxRecords, maxBytes)
	}
	return ents, err
}

func (o *Outbox) read(after uint64, maxRecords, maxBytes int) (ents []wire.Entry, gen uint64, err error) {
	if maxRecords <= 0 {
		maxRecords = 1000
	}
	if maxBytes <= 0 {
		maxBytes = 1 << 20
	}
	o.dbMu.RLock()
	defer o.dbMu.RUnlock()
	if o.db == nil {
		return nil, 0, ErrClosed
	}
	gen = o.gen
	st := o.published()
	start := max(after, st.acked) + 1
	limit := st.nextSeq // never show records whose commit has not returned
	if start >= limit {
		return nil, gen, nil
	}
	err = safeView(o.db, func(tx *bolt.Tx) error {
		ents, err = readRange(tx, start, limit, maxRecords, maxBytes)
		return err
	})
	if err != nil {
		return nil, gen, err
	}
	return ents, gen, nil
}

// readRange copies the records with start <= seq < limit, in order, up to
// maxRecords and maxBytes (the first record always fits); see Read.
func readRange(tx *bolt.Tx, start, limit uint64, maxRecords, maxBytes int) (ents []wire.Entry, err error) {
	var slab []byte
	total := 0
	err = walkRange(tx, start, limit, func(seq uint64, v []byte) bool {
		if len(ents) > 0 && (len(ents) >= maxRecords || total+len(v) > maxBytes) {
			return false
		}
		if cap(slab)-len(slab) < len(v) {
			slab = make([]byte, 0, max(len(v), min(maxBytes, 256<<10)))
		}
		off := len(slab)
		slab = append(slab, v...)
		ents = append(ents, wire.Entry{Seq: seq, Raw: slab[off:len(slab):len(slab)]})
		total += len(v)
		return true
	})
	if err != nil {
		return nil, err
	}
	return ents, nil
}

// walkRange calls fn for each record with start <= seq < limit, in order,
// until fn returns false; v is valid only during the transaction.
func walkRange(tx *bolt.Tx, start, limit uint64, fn func(seq uint64, v []byte) bool) error {
	rc := tx.Cursor()
	for name, _ := rc.Seek(segName(segOf(start))); name != nil && isSegName(name); name, _ = rc.Next() {
		b := tx.Bucket(name)
		if b == nil {
			return fmt.Errorf("%w: segment bucket %x unreadable", ErrCorrupt, name)
		}
		c := b.Cursor()
		for k, v := c.Seek(seqKey(start)); k != nil; k, v = c.Next() {
			if len(k) != 8 {
				return fmt.Errorf("%w: key of %d bytes", ErrCorrupt, len(k))
			}
			seq := beUint64(k)
			if seq >= limit || !fn(seq, v) {
				return nil
			}
		}
	}
	return nil
}

// safeView runs a read transaction, turning a panic or memory fault
// caused by a damaged file into an error wrapping ErrCorrupt.
func safeView(db *bolt.DB, fn func(*bolt.Tx) error) (err error) {
	defer catchCorrupt(&err)
	defer withPanicOnFault()()
	return db.View(fn)
}

// Close stops the committer after it has committed every Append already
// handed to it, then closes the file. It is idempotent: later calls return
// the first call's result. Appends after Close return ErrClosed.
func (o *Outbox) Close() error {
	o.closeMx.Lock()
	defer o.closeMx.Unlock()
	o.closeMu.Lock()
	if o.closed {
		o.closeMu.Unlock()
		return o.doneErr
	}
	o.closed = true
	close(o.quit)
	o.closeMu.Unlock()
	o.wg.Wait()
	o.wmu.Lock()
	defer o.wmu.Unlock()
	o.dbMu.Lock()
	defer o.dbMu.Unlock()
	if o.db != nil {
		if err := o.db.Close(); err != nil {
			o.doneErr = fmt.Errorf("outbox: close: %w", err)
		}
		o.db = nil
	}
	return o.doneErr
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// heal replaces a file found damaged after Open, exactly as Open does,
// unless another caller already replaced generation gen.
func (o *Outbox) heal(gen uint64, cause error) error {
	o.wmu.Lock()
	defer o.wmu.Unlock()
	o.dbMu.Lock()
	defer o.dbMu.Unlock()
	if o.db == nil {
		return ErrClosed
	}
	if o.gen != gen {
		return nil
	}
	old := o.db
	o.db = nil
	o.gen++
	ndb, st, err := o.replaceCorrupt(old, cause)
	if err != nil {
		if ndb != nil {
			err = errors.Join(err, ndb.Close())
		}
		return fmt.Errorf("outbox: replacing damaged file: %w", err)
	}
	o.db = ndb
	o.idem = map[string]idemEnt{} // the index went with the damaged file
	o.stMu.Lock()
	o.st = st
	o.oldestOK = false
	o.stMu.Unlock()
	return nil
}
