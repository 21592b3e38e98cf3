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
	idemValHdr     = 1 + 8 + 8 // version, seq, unix ns
	idemValVersion = 0xA1      // never a wire record version: the page scan skips it
)

var (
	idemBucket     = []byte("idem")      // key → version, seq, unix ns, meta
	idemTimeBucket = []byte("idemt")     // unix ns (8 bytes BE) + key → empty
	idemCountKey   = []byte("idemcount") // in metaBucket: entries in idemBucket
)

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

// idemTx is the idempotency index inside one write transaction.
type idemTx struct {
	idx, byTime, meta *bolt.Bucket
	count             uint64
	added             int
	now               int64
	ttl               int64
}

func openIdemTx(tx *bolt.Tx, meta *bolt.Bucket, now time.Time, ttl time.Duration) (*idemTx, error) {
	idx, err := tx.CreateBucketIfNotExists(idemBucket)
	if err != nil {
		return nil, err
	}
	byTime, err := tx.CreateBucketIfNotExists(idemTimeBucket)
	if err != nil {
		return nil, err
	}
	byTime.FillPercent = 1.0 // keys grow with time
	it := &idemTx{idx: idx, byTime: byTime, meta: meta, now: now.UnixNano(), ttl: int64(ttl)}
	if v := meta.Get(idemCountKey); v != nil {
		if len(v) != 8 {
			return nil, fmt.Errorf("%w: idempotency count of %d bytes", ErrCorrupt, len(v))
		}
		it.count = beUint64(v)
	}
	return it, nil
}

// lookup returns the live entry for key: its sequence and a copy of its
// meta. An expired entry is removed.
func (it *idemTx) lookup(key []byte) (seq uint64, meta []byte, ok bool, err error) {
	v := it.idx.Get(key)
	if v == nil {
		return 0, nil, false, nil
	}
	if len(v) < idemValHdr || v[0] != idemValVersion {
		return 0, nil, false, fmt.Errorf("%w: idempotency entry of %d bytes", ErrCorrupt, len(v))
	}
	at := int64(binary.BigEndian.Uint64(v[9:]))
	if it.now-at < it.ttl {
		return beUint64(v[1:]), append(make([]byte, 0, len(v)-idemValHdr), v[idemValHdr:]...), true, nil
	}
	if err := it.remove(key, at); err != nil {
		return 0, nil, false, err
	}
	return 0, nil, false, nil
}

func (it *idemTx) remove(key []byte, at int64) error {
	if err := it.byTime.Delete(timeKey(at, key)); err != nil {
		return err
	}
	if err := it.idx.Delete(key); err != nil {
		return err
	}
	it.count--
	return nil
}

// put records key → (seq, now, meta); the key is not in the index.
func (it *idemTx) put(key []byte, seq uint64, meta []byte) error {
	v := make([]byte, idemValHdr, idemValHdr+len(meta))
	v[0] = idemValVersion
	binary.BigEndian.PutUint64(v[1:], seq)
	binary.BigEndian.PutUint64(v[9:], uint64(it.now))
	v = append(v, meta...)
	if err := it.idx.Put(key, v); err != nil {
		return err
	}
	if err := it.byTime.Put(timeKey(it.now, key), nil); err != nil {
		return err
	}
	it.count++
	it.added++
	return nil
}

// finish prunes the oldest entries, expired or beyond maxEntries, at most
// idemPruneSlack more than this transaction added, and writes the count.
func (it *idemTx) finish(maxEntries int) error {
	budget := it.added + idemPruneSlack
	c := it.byTime.Cursor()
	for k, _ := c.First(); k != nil && budget > 0; k, _ = c.First() {
		if len(k) < 9 {
			return fmt.Errorf("%w: idempotency time key of %d bytes", ErrCorrupt, len(k))
		}
		at := int64(beUint64(k))
		if it.now-at < it.ttl && it.count <= uint64(maxEntries) {
			break
		}
		if err := it.remove(append([]byte(nil), k[8:]...), at); err != nil {
			return err
		}
		budget--
	}
	return it.meta.Put(idemCountKey, binary.BigEndian.AppendUint64(nil, it.count))
}

func timeKey(at int64, key []byte) []byte {
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(key)), uint64(at)), key...)
}

// copyIdem copies the idempotency index and its count from src to dst.
func copyIdem(src, dst *bolt.Tx) error {
	if v := src.Bucket(metaBucket).Get(idemCountKey); v != nil {
		if err := dst.Bucket(metaBucket).Put(idemCountKey, append([]byte(nil), v...)); err != nil {
			return err
		}
	}
	for _, name := range [][]byte{idemBucket, idemTimeBucket} {
		sb := src.Bucket(name)
		if sb == nil {
			continue
		}
		db, err := dst.CreateBucketIfNotExists(name)
		if err != nil {
			return err
		}
		db.FillPercent = 1.0 // copied in key order
		if err := sb.ForEach(func(k, v []byte) error {
			return db.Put(append([]byte(nil), k...), append([]byte(nil), v...))
		}); err != nil {
			return err
		}
	}
	return nil
}

// IdemEntries returns the number of keys in the idempotency index.
func (o *Outbox) IdemEntries() (uint64, error) {
	o.dbMu.RLock()
	defer o.dbMu.RUnlock()
	if o.db == nil {
		return 0, ErrClosed
	}
	var n uint64
	err := safeView(o.db, func(tx *bolt.Tx) error {
		if v := tx.Bucket(metaBucket).Get(idemCountKey); len(v) == 8 {
			n = beUint64(v)
		}
		return nil
	})
	return n, err
}
