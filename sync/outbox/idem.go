package outbox

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kioskedge/kioskedge/sync/wire"
)

// Limits and defaults of the idempotency index (AppendOnce).
const (
	DefaultIdemTTL     = 24 * time.Hour
	DefaultIdemEntries = 100_000
	MaxIdemKey         = 255
	MaxIdemMeta        = 1024
	// idemPruneSlack is how many keys beyond the ones it adds (or moves
	// from the tail) a commit with keys may prune, rounded up to a whole
	// pack.
	idemPruneSlack = 64
	idemValHdr     = 1 + 8 // single entry: version, seq
	idemValVersion = 0xA1  // single entry; never a wire record version
	idemPackKeyLen = 8 + 8 // pack: stored-at, first seq
	idemPackVer    = 0xA2  // pack; never a wire record version
	// idemTailMax bounds the tail's bytes (bbolt elements: 16-byte header,
	// key, value) so that it stays one leaf page of 4 KiB.
	idemTailMax = 3600
)

// idemBucket holds the idempotency index as a log in time order. Each
// commit with new keys adds one pack: key = stored-at Unix ns (8 bytes
// big-endian) + the first sequence the pack names (8 bytes big-endian,
// unique), value = idemPackVer then, per key, uvarint key length, key,
// uvarint (sequence - first sequence), uvarint meta length, meta. Files
// written before packs may also hold single entries: key = stored-at +
// the caller's key, value = idemValVersion, sequence (8 bytes big-endian),
// meta. The value's first byte tells them apart.
//
// A new pack goes first to the tail, bucket idemTailBucket (same layout),
// a single leaf (inline in the root's leaf while under 1 KiB) that the
// commit rewrites anyway; a commit whose pack would take the tail over
// idemTailMax moves the tail's packs to idemBucket first. A commit thus
// writes idemBucket's leaf and branches (depth 3 at 100,000 keys) only
// every few commits.
var (
	idemBucket     = []byte("idem")
	idemTailBucket = []byte("idem.tail")
)

// idemEnt is the in-memory view of one key of the index: Outbox.idem maps
// every live key to it, so lookups never search the file and the bucket
// is only appended to and pruned at its front.
type idemEnt struct {
	at   int64  // stored-at Unix ns
	seq  uint64 // the key's record
	pack uint64 // the pack's first sequence; 0: a single entry (at + key)
}

// bucketKey is the key of the bucket entry holding e for key.
func (e idemEnt) bucketKey(key []byte) []byte {
	if e.pack == 0 {
		return timeKey(e.at, key)
	}
	return packKey(e.at, e.pack)
}

// AppendOnce is Append guarded by an idempotency key. In the same
// transaction (and group commit) as the record, it looks key up in the
// file's idempotency index: if the key was stored less than
// Options.IdemTTL ago, nothing is appended and it returns the sequence
// and meta stored with the key (prior != nil, a copy); otherwise it
// stores the record and key → (sequence, time, meta), and returns the new
// sequence and a nil prior. Two AppendOnce calls with one key in one group
// behave as if sequential: the second sees the first. A returned sequence
// may since have been acked or evicted.
//
// The index lives in the outbox file: it survives Close, crashes and the
// file swap after a drained Ack, and is lost only with a damaged file
// (replaced as Open describes). It keeps at most Options.IdemEntries keys
// (the oldest go first, a commit's keys together) and forgets keys older
// than Options.IdemTTL; it
// does not count toward BudgetBytes, and eviction under the budget leaves
// it alone.
//
// key is 1..MaxIdemKey bytes, meta at most MaxIdemMeta bytes (else
// ErrBadKey); other errors are Append's. prior is never nil when a key was
// found, even for an empty meta.
func (o *Outbox) AppendOnce(ctx context.Context, r wire.Record, key, meta []byte) (seq uint64, prior []byte, err error) {
	if len(key) == 0 || len(key) > MaxIdemKey {
		return 0, nil, fmt.Errorf("%w: key of %d bytes (1..%d)", ErrBadKey, len(key), MaxIdemKey)
	}
	if len(meta) > MaxIdemMeta {
		return 0, nil, fmt.Errorf("%w: meta of %d bytes (at most %d)", ErrBadKey, len(meta), MaxIdemMeta)
	}
	return o.append(ctx, r, key, meta)
}

// loadIdem reads the index into memory (Open, and after a damaged file
// was replaced). A key found in several entries (stored again after it
// expired) takes the newest, the one with the highest sequence; the older
// entries stay in the file until pruned.
func loadIdem(db *bolt.DB) (map[string]idemEnt, error) {
	m := map[string]idemEnt{}
	err := safeView(db, func(tx *bolt.Tx) error {
		for _, name := range [][]byte{idemBucket, idemTailBucket} {
			b := tx.Bucket(name)
			if b == nil {
				continue
			}
			err := b.ForEach(func(k, v []byte) error {
				return scanEntry(k, v, func(key []byte, e idemEnt, _ []byte) bool {
					if old, ok := m[string(key)]; !ok || e.seq > old.seq {
						m[string(key)] = e
					}
					return true
				})
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return m, err
}

// scanEntry calls fn for every key of the bucket entry k, v (a pack or a
// single entry) until fn returns false. meta aliases v. A malformed entry
// is ErrCorrupt.
func scanEntry(k, v []byte, fn func(key []byte, e idemEnt, meta []byte) bool) error {
	if len(k) < 9 || len(v) == 0 {
		return fmt.Errorf("%w: idempotency entry of %d+%d bytes", ErrCorrupt, len(k), len(v))
	}
	at := int64(beUint64(k))
	switch v[0] {
	case idemValVersion:
		if len(v) < idemValHdr {
			break
		}
		fn(k[8:], idemEnt{at: at, seq: beUint64(v[1:])}, v[idemValHdr:])
		return nil
	case idemPackVer:
		if len(k) != idemPackKeyLen {
			break
		}
		return scanPack(at, beUint64(k[8:]), v[1:], fn)
	}
	return fmt.Errorf("%w: idempotency entry of %d+%d bytes, version %#x", ErrCorrupt, len(k), len(v), v[0])
}

// scanPack decodes the keys of a pack's value after its version byte.
func scanPack(at int64, first uint64, p []byte, fn func(key []byte, e idemEnt, meta []byte) bool) error {
	if first == 0 || len(p) == 0 {
		return fmt.Errorf("%w: idempotency pack %d of %d bytes", ErrCorrupt, first, len(p))
	}
	field := func() ([]byte, bool) {
		n, w := binary.Uvarint(p)
		if w <= 0 || n > uint64(len(p)-w) {
			return nil, false
		}
		f := p[w : w+int(n) : w+int(n)]
		p = p[w+int(n):]
		return f, true
	}
	for len(p) > 0 {
		key, ok := field()
		if !ok || len(key) == 0 || len(key) > MaxIdemKey {
			return fmt.Errorf("%w: idempotency pack %d: bad key", ErrCorrupt, first)
		}
		d, w := binary.Uvarint(p)
		if w <= 0 || d > ^first {
			return fmt.Errorf("%w: idempotency pack %d: bad sequence", ErrCorrupt, first)
		}
		p = p[w:]
		meta, ok := field()
		if !ok || len(meta) > MaxIdemMeta {
			return fmt.Errorf("%w: idempotency pack %d: bad meta", ErrCorrupt, first)
		}
		if !fn(key, idemEnt{at: at, seq: first + d, pack: first}, meta) {
			return nil
		}
	}
	return nil
}

// idemTx is the idempotency index inside one write transaction: the new
// keys gather in one pack, written by finish; changes go to add/del,
// applied to Outbox.idem only once the transaction committed.
type idemTx struct {
	b     *bolt.Bucket // the packs moved out of the tail, and single entries
	tail  *bolt.Bucket
	mem   map[string]idemEnt // committed keys (read only here)
	add   map[string]idemEnt // keys stored by this transaction
	del   map[string]bool    // committed keys removed by it
	count int                // live keys: mem - del + add
	now   int64
	ttl   int64
	first uint64 // the pack's first sequence (0: no pack yet)
	pack  []byte // the pack's value
}

func openIdemTx(tx *bolt.Tx, mem map[string]idemEnt, now time.Time, ttl time.Duration) (*idemTx, error) {
	b, err := tx.CreateBucketIfNotExists(idemBucket)
	if err != nil {
		return nil, err
	}
	b.FillPercent = 1.0 // keys grow with time
	tail, err := tx.CreateBucketIfNotExists(idemTailBucket)
	if err != nil {
		return nil, err
	}
	tail.FillPercent = 1.0
	return &idemTx{b: b, tail: tail, mem: mem, add: map[string]idemEnt{}, del: map[string]bool{},
		count: len(mem), now: now.UnixNano(), ttl: int64(ttl)}, nil
}

// committed returns key's committed entry, unless this transaction
// removed it.
func (it *idemTx) committed(key string) (idemEnt, bool) {
	e, ok := it.mem[key]
	return e, ok && !it.del[key]
}

// lookup returns the live entry for key: its sequence and a copy of its
// meta. An expired entry counts as absent; it stays in its pack until
// pruned, and put replaces it in memory.
func (it *idemTx) lookup(key []byte) (seq uint64, meta []byte, ok bool, err error) {
	var v []byte
	e, ok := it.add[string(key)]
	if ok {
		v = it.pack
	} else {
		if e, ok = it.committed(string(key)); !ok || it.now-e.at >= it.ttl {
			return 0, nil, false, nil
		}
		if e.pack != 0 {
			v = it.tail.Get(e.bucketKey(key))
		}
		if v == nil {
			v = it.b.Get(e.bucketKey(key))
		}
	}
	found := false
	if v != nil {
		k := e.bucketKey(key)
		err = scanEntry(k, v, func(k []byte, f idemEnt, m []byte) bool {
			if f.seq != e.seq || string(k) != string(key) {
				return true
			}
			meta, found = append(make([]byte, 0, len(m)), m...), true
			return false
		})
		if err != nil {
			return 0, nil, false, err
		}
	}
	if !found {
		return 0, nil, false, fmt.Errorf("%w: idempotency entry missing", ErrCorrupt)
	}
	return e.seq, meta, true, nil
}

// put adds key → (seq, meta) to this transaction's pack; the key has no
// live entry.
func (it *idemTx) put(key []byte, seq uint64, meta []byte) {
	if it.first == 0 {
		it.first = seq
		it.pack = append(make([]byte, 0, 1024), idemPackVer)
	}
	it.pack = binary.AppendUvarint(it.pack, uint64(len(key)))
	it.pack = append(it.pack, key...)
	it.pack = binary.AppendUvarint(it.pack, seq-it.first)
	it.pack = binary.AppendUvarint(it.pack, uint64(len(meta)))
	it.pack = append(it.pack, meta...)
	if _, ok := it.committed(string(key)); !ok {
		it.count++ // else an expired entry is replaced
	}
	it.add[string(key)] = idemEnt{at: it.now, seq: seq, pack: it.first}
}

// finish writes the pack to the tail (moving the tail's packs to the
// index bucket first when it would grow beyond idemTailMax), then prunes
// whole entries, oldest first: the expired ones, and the oldest keys
// beyond maxEntries. Once over maxEntries, or when it moved the tail (the
// index bucket's top is written anyway), it prunes down to maxEntries -
// idemPruneAhead(maxEntries), so that a commit at the maximum does not
// write the bucket's front pages every time. It stops once it removed
// idemPruneSlack more keys than it added or moved.
func (it *idemTx) finish(maxEntries int) error {
	budget := len(it.add) + idemPruneSlack
	limit := maxEntries
	if it.first != 0 {
		moved, err := it.makeRoom(16 + idemPackKeyLen + len(it.pack))
		if err != nil {
			return err
		}
		if moved > 0 {
			budget += moved
			limit = maxEntries - idemPruneAhead(maxEntries)
		}
		if err := it.tail.Put(packKey(it.now, it.first), it.pack); err != nil {
			return err
		}
	}
	if it.count > maxEntries {
		limit = maxEntries - idemPruneAhead(maxEntries)
	}
	cb, ct := it.b.Cursor(), it.tail.Cursor()
	for budget > 0 {
		// The oldest entry: the tail's packs are normally younger than
		// the index bucket's; compare anyway (a clock set back).
		c := cb
		k, v := cb.First()
		if kt, vt := ct.First(); kt != nil && (k == nil || string(kt) < string(k)) {
			c, k, v = ct, kt, vt
		}
		if k == nil {
			return nil
		}
		if len(k) < 9 {
			return fmt.Errorf("%w: idempotency key of %d bytes", ErrCorrupt, len(k))
		}
		if it.now-int64(beUint64(k)) < it.ttl && it.count <= limit {
			return nil
		}
		err := scanEntry(k, v, func(key []byte, e idemEnt, _ []byte) bool {
			it.drop(string(key), e)
			budget--
			return true
		})
		if err != nil {
			return err
		}
		if err := c.Delete(); err != nil { // no second seek for k
			return err
		}
	}
	return nil
}

// idemPruneAhead is how far below maxEntries a commit that prunes for the
// maximum goes.
func idemPruneAhead(maxEntries int) int { return min(maxEntries/8, 256) }

// makeRoom moves the tail's packs to the index bucket if n more bytes
// would take it beyond idemTailMax, and returns how many keys it moved.
func (it *idemTx) makeRoom(n int) (moved int, err error) {
	size := n
	c := it.tail.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		size += 16 + len(k) + len(v)
	}
	if size <= idemTailMax {
		return 0, nil
	}
	for k, v := c.First(); k != nil; k, v = c.First() {
		if err := scanEntry(k, v, func([]byte, idemEnt, []byte) bool { moved++; return true }); err != nil {
			return 0, err
		}
		if err := it.b.Put(append([]byte(nil), k...), append([]byte(nil), v...)); err != nil {
			return 0, err
		}
		if err := c.Delete(); err != nil {
			return 0, err
		}
	}
	return moved, nil
}

// drop forgets key if its live entry is e, whose bucket entry is being
// pruned; a key stored again since keeps its newer entry.
func (it *idemTx) drop(key string, e idemEnt) {
	if a, ok := it.add[key]; ok {
		if a != e {
			return
		}
		delete(it.add, key)
		if _, ok := it.mem[key]; ok {
			it.del[key] = true // its older entry was pruned before this one
		}
		it.count--
		return
	}
	if c, ok := it.committed(key); ok && c == e {
		it.del[key] = true
		it.count--
	}
}

// apply publishes the committed changes to mem (wmu held).
func (it *idemTx) apply(mem map[string]idemEnt) {
	for k := range it.del {
		delete(mem, k)
	}
	for k, e := range it.add {
		mem[k] = e
	}
}

func timeKey(at int64, key []byte) []byte {
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(key)), uint64(at)), key...)
}

func packKey(at int64, first uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(make([]byte, 0, idemPackKeyLen), uint64(at)), first)
}

// copyIdem copies the idempotency index (both buckets) from src to dst.
func copyIdem(src, dst *bolt.Tx) error {
	for _, name := range [][]byte{idemBucket, idemTailBucket} {
		sb := src.Bucket(name)
		if sb == nil {
			continue
		}
		db, err := dst.CreateBucketIfNotExists(name)
		if err != nil {
			return err
		}
		db.FillPercent = 1.0 // copied in key order
		err = sb.ForEach(func(k, v []byte) error {
			return db.Put(append([]byte(nil), k...), append([]byte(nil), v...))
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// IdemEntries returns the number of keys in the idempotency index,
// expired ones not yet pruned included (a key stored again after it
// expired counts once).
func (o *Outbox) IdemEntries() int {
	o.wmu.Lock()
	defer o.wmu.Unlock()
	return len(o.idem)
}
