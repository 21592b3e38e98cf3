package allowlist

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Errors of the store.
var (
	ErrVersionGap = errors.New("allowlist: delta does not start at the current version")
	ErrStale      = errors.New("allowlist: update older than the current version")
	ErrNoSnapshot = errors.New("allowlist: no snapshot in progress")
	ErrChunkOrder = errors.New("allowlist: chunk out of order")
	ErrChecksum   = errors.New("allowlist: snapshot checksum mismatch")
	ErrIncomplete = errors.New("allowlist: snapshot incomplete")
	ErrCorrupt    = errors.New("allowlist: store corrupt")
	ErrClosed     = errors.New("allowlist: closed")
)

var (
	metaBucket     = []byte("meta")
	stateKey       = []byte("state")
	entriesBucket  = []byte("e")
	scheduleBucket = []byte("s")
)

// crashHook is called at named points of a snapshot commit; the crash test
// sets it to kill the process there.
var crashHook = func(string) {}

func genName(gen uint64) []byte {
	b := []byte{'g', 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint64(b[1:], gen)
	return b
}

// state is the meta "state" value: version, count, live generation.
type state struct{ version, count, gen uint64 }

func (s state) encode() []byte {
	b := make([]byte, 24)
	binary.BigEndian.PutUint64(b, s.version)
	binary.BigEndian.PutUint64(b[8:], s.count)
	binary.BigEndian.PutUint64(b[16:], s.gen)
	return b
}

func readState(tx *bolt.Tx) (state, error) {
	m := tx.Bucket(metaBucket)
	if m == nil {
		return state{}, fmt.Errorf("%w: no meta bucket", ErrCorrupt)
	}
	v := m.Get(stateKey)
	if len(v) != 24 {
		return state{}, fmt.Errorf("%w: meta state of %d bytes", ErrCorrupt, len(v))
	}
	return state{binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:]), binary.BigEndian.Uint64(v[16:])}, nil
}

// Options configure Open.
type Options struct {
	// Timeout bounds the wait for the file lock; 0 means 1 s.
	Timeout time.Duration
}

// Allowlist is the gate's local allowlist store. Lookup, Version and Count
// are safe for concurrent use with each other and with updates; updates
// (snapshots and deltas) are serialised.
type Allowlist struct {
	db      *bolt.DB
	version atomic.Uint64
	count   atomic.Uint64

	mu     sync.Mutex // updates, snap, closed
	snap   *snapshot
	closed bool
}

// snapshot is the receiving state of a snapshot in progress.
type snapshot struct {
	version, total uint64
	sum            [32]byte
	h              hash.Hash
	next           uint64
	gen            uint64
	last           Key
	haveLast       bool
	count          uint64
}

// Open opens (creating if needed) the allowlist file at path. A snapshot
// left staged by a crash is discarded, as is an old list a crash kept from
// being deleted. It returns bbolt's error if the file cannot be opened or
// locked, or one wrapping ErrCorrupt if its meta is unreadable.
func Open(path string, opts Options) (*Allowlist, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("allowlist: opening %s: %w", path, err)
	}
	a := &Allowlist{db: db}
	var st state
	err = db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(metaBucket) == nil {
			m, err := tx.CreateBucket(metaBucket)
			if err != nil {
				return err
			}
			st = state{gen: 1}
			if err := m.Put(stateKey, st.encode()); err != nil {
				return err
			}
			g, err := tx.CreateBucket(genName(1))
			if err != nil {
				return err
			}
			if _, err := g.CreateBucket(entriesBucket); err != nil {
				return err
			}
			_, err = g.CreateBucket(scheduleBucket)
			return err
		}
		if st, err = readState(tx); err != nil {
			return err
		}
		if g := tx.Bucket(genName(st.gen)); g == nil || g.Bucket(entriesBucket) == nil || g.Bucket(scheduleBucket) == nil {
			return fmt.Errorf("%w: live generation %d missing", ErrCorrupt, st.gen)
		}
		return dropOtherGens(tx, st.gen)
	})
	if err != nil {
		// The open or check error is the one to report.
		_ = db.Close()
		return nil, err
	}
	a.version.Store(st.version)
	a.count.Store(st.count)
	return a, nil
}

// dropOtherGens deletes every generation bucket but live: staged snapshots
// and old lists.
func dropOtherGens(tx *bolt.Tx, live uint64) error {
	var drop [][]byte
	err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		if len(name) == 9 && name[0] == 'g' && binary.BigEndian.Uint64(name[1:]) != live {
			drop = append(drop, append([]byte(nil), name...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, n := range drop {
		if err := tx.DeleteBucket(n); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the file; a snapshot in progress is abandoned. It is
// idempotent and returns bbolt's close error the first time.
func (a *Allowlist) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	a.snap = nil
	return a.db.Close()
}

// Version returns the version of the list in effect (0 before the first
// snapshot).
func (a *Allowlist) Version() uint64 { return a.version.Load() }

// Count returns the number of entries of the list in effect.
func (a *Allowlist) Count() uint64 { return a.count.Load() }

// Lookup returns the entry stored under key. ok is false when there is
// none. The error wraps ErrCorrupt when the stored entry does not decode,
// or is bbolt's (ErrDatabaseNotOpen after Close).
func (a *Allowlist) Lookup(key Key) (e Entry, ok bool, err error) {
	ok, err = a.LookupInto(key, &e)
	return e, ok, err
}

// LookupInto is Lookup writing into *e and reusing e.DoorGroups' capacity,
// so a caller looking up in a loop does not allocate for the entry. *e is
// unspecified when ok is false or err is non-nil.
func (a *Allowlist) LookupInto(key Key, e *Entry) (ok bool, err error) {
	tx, err := a.db.Begin(false)
	if err != nil {
		return false, fmt.Errorf("allowlist: %w", err)
	}
	// A read transaction's rollback only releases it; it cannot fail in a
	// way that matters to the lookup.
	defer func() { _ = tx.Rollback() }()
	b, err := liveBucket(tx, entriesBucket)
	if err != nil {
		return false, err
	}
	v := b.Get(key[:])
	if v == nil {
		return false, nil
	}
	e.Key = key
	if err := DecodeEntryValue(v, e); err != nil {
		return false, fmt.Errorf("%w: entry %s: %w", ErrCorrupt, key, err)
	}
	return true, nil
}

func liveBucket(tx *bolt.Tx, sub []byte) (*bolt.Bucket, error) {
	m := tx.Bucket(metaBucket)
	if m == nil {
		return nil, fmt.Errorf("%w: no meta bucket", ErrCorrupt)
	}
	v := m.Get(stateKey)
	if len(v) != 24 {
		return nil, fmt.Errorf("%w: meta state", ErrCorrupt)
	}
	var name [9]byte
	name[0] = 'g'
	copy(name[1:], v[16:])
	g := tx.Bucket(name[:])
	if g == nil {
		return nil, fmt.Errorf("%w: live generation missing", ErrCorrupt)
	}
	b := g.Bucket(sub)
	if b == nil {
		return nil, fmt.Errorf("%w: live generation incomplete", ErrCorrupt)
	}
	return b, nil
}

// Schedule returns the schedule with the given id of the list in effect;
// ok is false when there is none. Errors are as for Lookup.
func (a *Allowlist) Schedule(id uint32) (s Schedule, ok bool, err error) {
	err = a.db.View(func(tx *bolt.Tx) error {
		b, err := liveBucket(tx, scheduleBucket)
		if err != nil {
			return err
		}
		v := b.Get(binary.BigEndian.AppendUint32(nil, id))
		if v == nil {
			return nil
		}
		if s, err = DecodeSchedule(v); err != nil {
			return fmt.Errorf("%w: schedule %d: %w", ErrCorrupt, id, err)
		}
		ok = true
		return nil
	})
	return s, ok, err
}

// Schedules returns every schedule of the list in effect, by id.
func (a *Allowlist) Schedules() ([]Schedule, error) {
	var out []Schedule
	err := a.db.View(func(tx *bolt.Tx) error {
		b, err := liveBucket(tx, scheduleBucket)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			s, err := DecodeSchedule(v)
			if err != nil {
				return fmt.Errorf("%w: schedule: %w", ErrCorrupt, err)
			}
			out = append(out, s)
			return nil
		})
	})
	return out, err
}

// BeginSnapshot starts receiving snapshot version of totalChunks chunks
// whose concatenation has SHA-256 sum. Any snapshot in progress (or left
// staged by a crash) is abandoned. The list in effect is unchanged until
// CommitSnapshot. It returns ErrStale when version is below the current
// version (an equal version is accepted, as a repair), an error when
// totalChunks is 0, ErrClosed, or bbolt's error.
func (a *Allowlist) BeginSnapshot(version, totalChunks uint64, sum [32]byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	a.snap = nil
	if version < a.version.Load() {
		return fmt.Errorf("%w: snapshot %d, current %d", ErrStale, version, a.version.Load())
	}
	if totalChunks == 0 {
		return errors.New("allowlist: snapshot of 0 chunks")
	}
	var gen uint64
	err := a.db.Update(func(tx *bolt.Tx) error {
		st, err := readState(tx)
		if err != nil {
			return err
		}
		if err := dropOtherGens(tx, st.gen); err != nil {
			return err
		}
		gen = st.gen + 1
		g, err := tx.CreateBucket(genName(gen))
		if err != nil {
			return err
		}
		if _, err := g.CreateBucket(entriesBucket); err != nil {
			return err
		}
		_, err = g.CreateBucket(scheduleBucket)
		return err
	})
	if err != nil {
		return fmt.Errorf("allowlist: staging snapshot: %w", err)
	}
	a.snap = &snapshot{version: version, total: totalChunks, sum: sum, h: sha256.New(), gen: gen}
	return nil
}

// PutChunk decodes chunk i (firmware-specs/allowlist.md §4) and writes its
// records into the staged snapshot in one transaction. Chunks must come in
// order from 0. It returns ErrNoSnapshot, ErrChunkOrder (the snapshot stays
// open for the right chunk), an error wrapping ErrMalformed (the snapshot
// is abandoned), or bbolt's error (the snapshot is abandoned).
func (a *Allowlist) PutChunk(i uint64, data []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.snap
	if s == nil {
		return ErrNoSnapshot
	}
	if i != s.next || i >= s.total {
		return fmt.Errorf("%w: got %d, want %d of %d", ErrChunkOrder, i, s.next, s.total)
	}
	last, haveLast, n := s.last, s.haveLast, uint64(0)
	err := a.db.Update(func(tx *bolt.Tx) error {
		g := tx.Bucket(genName(s.gen))
		if g == nil {
			return fmt.Errorf("%w: staging bucket missing", ErrCorrupt)
		}
		eb, sb := g.Bucket(entriesBucket), g.Bucket(scheduleBucket)
		// Keys arrive in ascending order, so pages are only appended to:
		// fill them completely.
		eb.FillPercent = 1.0
		var err error
		haveLast, err = walkChunk(data, &last, haveLast, chunkVisitor{
			entry: func(k Key, v []byte, _ *Entry) error {
				n++
				return eb.Put(k[:], v)
			},
			schedule: func(sc Schedule, enc []byte) error {
				return sb.Put(binary.BigEndian.AppendUint32(nil, sc.ID), enc)
			},
		})
		return err
	})
	if err != nil {
		a.snap = nil
		return fmt.Errorf("allowlist: chunk %d: %w", i, err)
	}
	s.h.Write(data)
	s.last, s.haveLast = last, haveLast
	s.count += n
	s.next++
	return nil
}

// CommitSnapshot checks that every chunk arrived and the SHA-256 matches,
// then makes the snapshot the list in effect in one transaction: readers
// see the old list or the new one, never a mix, and a crash before the
// commit's fsync leaves the old list. The snapshot is over afterwards
// whatever the outcome. It returns ErrNoSnapshot, ErrIncomplete,
// ErrChecksum, ErrStale (a delta moved the list past the snapshot's
// version meanwhile), or bbolt's error (the old list stays in effect).
func (a *Allowlist) CommitSnapshot() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.snap
	a.snap = nil
	if s == nil {
		return ErrNoSnapshot
	}
	if s.next != s.total {
		return fmt.Errorf("%w: %d of %d chunks", ErrIncomplete, s.next, s.total)
	}
	if !bytes.Equal(s.h.Sum(nil), s.sum[:]) {
		return ErrChecksum
	}
	if s.version < a.version.Load() {
		return fmt.Errorf("%w: snapshot %d, current %d", ErrStale, s.version, a.version.Load())
	}
	var old uint64
	err := a.db.Update(func(tx *bolt.Tx) error {
		st, err := readState(tx)
		if err != nil {
			return err
		}
		if tx.Bucket(genName(s.gen)) == nil {
			return fmt.Errorf("%w: staging bucket missing", ErrCorrupt)
		}
		old = st.gen
		crashHook("commit")
		return tx.Bucket(metaBucket).Put(stateKey, state{version: s.version, count: s.count, gen: s.gen}.encode())
	})
	if err != nil {
		return fmt.Errorf("allowlist: committing snapshot: %w", err)
	}
	a.version.Store(s.version)
	a.count.Store(s.count)
	crashHook("swapped")
	// The old list goes in its own transaction so the swap stays short; if
	// this fails or a crash comes first, Open drops it.
	err = a.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(genName(old)) })
	if err != nil {
		return fmt.Errorf("allowlist: dropping the old list (the new one is in effect): %w", err)
	}
	return nil
}

// AbortSnapshot abandons the snapshot in progress, if any, and drops what
// was staged. It returns bbolt's error or ErrClosed.
func (a *Allowlist) AbortSnapshot() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	a.snap = nil
	return a.db.Update(func(tx *bolt.Tx) error {
		st, err := readState(tx)
		if err != nil {
			return err
		}
		return dropOtherGens(tx, st.gen)
	})
}

// ApplyDelta moves the list from fromVersion to toVersion: upserts are
// stored (replacing entries with the same key), then deletes removed (a
// missing key is no error), in one transaction. It applies only when
// fromVersion is the current version; otherwise it returns ErrStale when
// toVersion is not above the current version (an old delta; nothing to
// do), or ErrVersionGap (the caller requests a snapshot). It also returns
// an error when toVersion <= fromVersion, one wrapping ErrMalformed when
// an upsert breaks the encoding, ErrClosed, or bbolt's error; on every
// error the list is unchanged.
func (a *Allowlist) ApplyDelta(fromVersion, toVersion uint64, upserts []Entry, deletes []Key) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	if toVersion <= fromVersion {
		return fmt.Errorf("allowlist: delta from %d to %d", fromVersion, toVersion)
	}
	cur := a.version.Load()
	switch {
	case toVersion <= cur:
		return fmt.Errorf("%w: delta to %d, current %d", ErrStale, toVersion, cur)
	case fromVersion != cur:
		return fmt.Errorf("%w: delta from %d, current %d", ErrVersionGap, fromVersion, cur)
	}
	var count uint64
	err := a.db.Update(func(tx *bolt.Tx) error {
		st, err := readState(tx)
		if err != nil {
			return err
		}
		b, err := liveBucket(tx, entriesBucket)
		if err != nil {
			return err
		}
		count = st.count
		for i := range upserts {
			e := &upserts[i]
			// bbolt keeps the value until the commit: one buffer each.
			buf, err := AppendEntryValue(nil, e)
			if err != nil {
				return err
			}
			if b.Get(e.Key[:]) == nil {
				count++
			}
			if err := b.Put(e.Key[:], buf); err != nil {
				return err
			}
		}
		for _, k := range deletes {
			if b.Get(k[:]) == nil {
				continue
			}
			if err := b.Delete(k[:]); err != nil {
				return err
			}
			count--
		}
		st.version, st.count = toVersion, count
		return tx.Bucket(metaBucket).Put(stateKey, st.encode())
	})
	if err != nil {
		return fmt.Errorf("allowlist: applying delta %d→%d: %w", fromVersion, toVersion, err)
	}
	a.version.Store(toVersion)
	a.count.Store(count)
	return nil
}
