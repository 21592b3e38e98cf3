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
	// idemPruneSlack is how many entries beyond the ones it adds a commit
	// with keys may prune.
	idemPruneSlack = 64
	idemValHdr     = 1 + 8 // version, seq
	idemValVersion = 0xA1  // never a wire record version
)

// idemBucket holds the idempotency index as a log in time order:
// key = stored-at Unix ns (8 bytes big-endian) + the caller's key, value =
// version, seq (8 bytes big-endian), the caller's meta.
var idemBucket = []byte("idem")

// idemEnt is the in-memory view of one index entry: Outbox.idem maps
// every key in the bucket to it, so lookups never search the file and
// the bucket is only appended to and pruned at its front.
type idemEnt struct {
	at  int64 // stored-at Unix ns: with the key, the entry's bucket key
	seq uint64
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
// (the oldest go first) and forgets keys older than Options.IdemTTL; it
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
// was replaced).
func loadIdem(db *bolt.DB) (map[string]idemEnt, error) {
	m := map[string]idemEnt{}
	err := safeView(db, func(tx *bolt.Tx) error {
		b := tx.Bucket(idemBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(k) < 9 || len(v) < idemValHdr || v[0] != idemValVersion {
				return fmt.Errorf("%w: idempotency entry of %d+%d bytes", ErrCorrupt, len(k), len(v))
			}
			m[string(k[8:])] = idemEnt{at: int64(beUint64(k)), seq: beUint64(v[1:])}
			return nil
		})
	})
	return m, err
}

// idemTx is the idempotency index inside one write transaction: changes
// go to the bucket and to add/del, applied to Outbox.idem only once the
// transaction committed.
type idemTx struct {
	b     *bolt.Bucket
	mem   map[string]idemEnt // committed entries (read only here)
	add   map[string]idemEnt // entries added by this transaction
	del   map[string]bool    // committed entries removed by it
	count int
	now   int64
	ttl   int64
}

func openIdemTx(tx *bolt.Tx, mem map[string]idemEnt, now time.Time, ttl time.Duration) (*idemTx, error) {
	b, err := tx.CreateBucketIfNotExists(idemBucket)
	if err != nil {
		return nil, err
	}
	b.FillPercent = 1.0 // keys grow with time
	return &idemTx{b: b, mem: mem, add: map[string]idemEnt{}, del: map[string]bool{},
		count: len(mem), now: now.UnixNano(), ttl: int64(ttl)}, nil
}

// lookup returns the live entry for key: its sequence and a copy of its
// meta. An expired entry is removed.
func (it *idemTx) lookup(key []byte) (seq uint64, meta []byte, ok bool, err error) {
	e, ok := it.add[string(key)]
	if !ok {
		if e, ok = it.mem[string(key)]; !ok || it.del[string(key)] {
			return 0, nil, false, nil
		}
		if it.now-e.at >= it.ttl {
			if err := it.b.Delete(timeKey(e.at, key)); err != nil {
				return 0, nil, false, err
			}
			it.del[string(key)] = true
			it.count--
			return 0, nil, false, nil
		}
	}
	v := it.b.Get(timeKey(e.at, key))
	if len(v) < idemValHdr || v[0] != idemValVersion {
		return 0, nil, false, fmt.Errorf("%w: idempotency entry missing or of %d bytes", ErrCorrupt, len(v))
	}
	return e.seq, append(make([]byte, 0, len(v)-idemValHdr), v[idemValHdr:]...), true, nil
}

// put records key → (seq, now, meta); the key has no live entry.
func (it *idemTx) put(key []byte, seq uint64, meta []byte) error {
	v := make([]byte, idemValHdr, idemValHdr+len(meta))
	v[0] = idemValVersion
	binary.BigEndian.PutUint64(v[1:], seq)
	v = append(v, meta...)
	if err := it.b.Put(timeKey(it.now, key), v); err != nil {
		return err
	}
	it.add[string(key)] = idemEnt{at: it.now, seq: seq}
	it.count++
	return nil
}

// prune removes the oldest entries, expired or beyond maxEntries, at most
// idemPruneSlack more than this transaction added.
func (it *idemTx) prune(maxEntries int) error {
	budget := len(it.add) + idemPruneSlack
	c := it.b.Cursor()
	for k, _ := c.First(); k != nil && budget > 0; k, _ = c.First() {
		if len(k) < 9 {
			return fmt.Errorf("%w: idempotency key of %d bytes", ErrCorrupt, len(k))
		}
		at := int64(beUint64(k))
		if it.now-at < it.ttl && it.count <= maxEntries {
			return nil
		}
		key := string(k[8:])
		if err := c.Delete(); err != nil { // no second seek for k
			return err
		}
		if e, ok := it.add[key]; ok && e.at == at {
			delete(it.add, key)
		} else {
			it.del[key] = true
		}
		it.count--
		budget--
	}
	return nil
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

// copyIdem copies the idempotency index from src to dst.
func copyIdem(src, dst *bolt.Tx) error {
	sb := src.Bucket(idemBucket)
	if sb == nil {
		return nil
	}
	db, err := dst.CreateBucketIfNotExists(idemBucket)
	if err != nil {
		return err
	}
	db.FillPercent = 1.0 // copied in key order
	return sb.ForEach(func(k, v []byte) error {
		return db.Put(append([]byte(nil), k...), append([]byte(nil), v...))
	})
}

// IdemEntries returns the number of keys in the idempotency index,
// expired ones not yet pruned included.
func (o *Outbox) IdemEntries() int {
	o.wmu.Lock()
	defer o.wmu.Unlock()
	return len(o.idem)
}
