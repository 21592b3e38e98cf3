package outbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/kioskedge/kioskedge/sync/wire"
)

// ErrLocked is returned by OpenSnapshot when another process (kioskd)
// holds the outbox file.
var ErrLocked = errors.New("outbox: file held by another process")

// Snapshot is a read-only view of an outbox file that no process is
// writing: kioskctl outbox export reads the unacked records through it
// while kioskd is stopped. It never modifies the file, not even to repair
// it, and starts no goroutine.
type Snapshot struct {
	db *bolt.DB
	st *state
}

// OpenSnapshot opens the outbox file at path read-only, waiting up to
// lockTimeout (default 2 s when <= 0) for a process holding it to let go.
// It holds a shared lock until Close, so kioskd cannot open the file
// meanwhile.
//
// Errors: ErrLocked (wrapped) when another process holds the file; an
// error wrapping fs.ErrNotExist when there is no file; ErrCorrupt
// (wrapped) when the file or its meta fails Open's checks (kioskd's Open
// would salvage it; a snapshot does not).
func OpenSnapshot(path string, lockTimeout time.Duration) (*Snapshot, error) {
	if lockTimeout <= 0 {
		lockTimeout = 2 * time.Second
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	if fi.Size() == 0 {
		return nil, fmt.Errorf("%w: file is empty", ErrCorrupt)
	}
	db, err := openSnapshotBolt(path, lockTimeout)
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s", ErrLocked, path)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	st, err := loadState(db, path)
	if err != nil {
		_ = db.Close() // the state error is what matters; read-only, nothing to flush
		return nil, err
	}
	return &Snapshot{db: db, st: st}, nil
}

func openSnapshotBolt(path string, timeout time.Duration) (db *bolt.DB, err error) {
	defer catchCorrupt(&err)
	defer withPanicOnFault()()
	return bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, ReadOnly: true})
}

// AckedThrough returns the highest sequence the hub acknowledged.
func (s *Snapshot) AckedThrough() uint64 { return s.st.acked }

// NextSeq returns the sequence the next Append would get.
func (s *Snapshot) NextSeq() uint64 { return s.st.nextSeq }

// Read is Outbox.Read on the snapshot: up to maxRecords records with
// Seq > after and above AckedThrough, in order, copied. Errors: ErrClosed
// after Close; ErrCorrupt (wrapped) when the walk meets damage.
func (s *Snapshot) Read(after uint64, maxRecords, maxBytes int) ([]wire.Entry, error) {
	if s.db == nil {
		return nil, ErrClosed
	}
	if maxRecords <= 0 {
		maxRecords = 1000
	}
	if maxBytes <= 0 {
		maxBytes = 1 << 20
	}
	start := max(after, s.st.acked) + 1
	if start >= s.st.nextSeq {
		return nil, nil
	}
	var ents []wire.Entry
	err := safeView(s.db, func(tx *bolt.Tx) error {
		var err error
		ents, err = readRange(tx, start, s.st.nextSeq, maxRecords, maxBytes)
		return err
	})
	return ents, err
}

// Count walks the keys (not the values) of the records Read would return
// after `after`, and returns how many there are and the highest sequence
// (0 when none). Errors as Read.
func (s *Snapshot) Count(after uint64) (n, last uint64, err error) {
	if s.db == nil {
		return 0, 0, ErrClosed
	}
	start := max(after, s.st.acked) + 1
	if start >= s.st.nextSeq {
		return 0, 0, nil
	}
	err = safeView(s.db, func(tx *bolt.Tx) error {
		return walkRange(tx, start, s.st.nextSeq, func(seq uint64, _ []byte) bool {
			n, last = n+1, seq
			return true
		})
	})
	if err != nil {
		return 0, 0, err
	}
	return n, last, nil
}

// Close releases the file. It is idempotent.
func (s *Snapshot) Close() error {
	if s.db == nil {
		return nil
	}
	db := s.db
	s.db = nil
	return db.Close()
}
