package hubstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/kioskedge/kioskedge/sync/wire"
)

// Errors returned by the store. Every failure wraps one of these or a bbolt
// error.
var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("hubstore: store closed")
	// ErrCorrupt is returned by Open when an agent's stored state cannot be
	// decoded. Nothing is modified.
	ErrCorrupt = errors.New("hubstore: corrupt state")
	// ErrInvalid is returned by Apply for an invalid write (bad agent id,
	// range or entry order); nothing of that write is applied.
	ErrInvalid = errors.New("hubstore: invalid write")
	// ErrNotFound is returned by Get for an unknown agent or sequence.
	ErrNotFound = errors.New("hubstore: not found")
)

var (
	bucketAgents  = []byte("agents")
	bucketRecords = []byte("records")
	keyState      = []byte("state")
	keyStatus     = []byte("status")
	keyBirth      = []byte("birth")
	keyHealth     = []byte("health")
)

// Options configures Open. The zero value is usable.
type Options struct {
	// Logger receives the few things the store reports (a restored file's
	// size); nil discards.
	Logger *slog.Logger
	// LockTimeout bounds the wait for the file lock held by another
	// process; default 2 s. Open then fails with bbolt's timeout error.
	LockTimeout time.Duration
}

// Ingested is one event batch to apply: agent's records covering the
// inclusive range [First, Last] (hub-protocol.md §5). Entries must be in
// strictly increasing sequence order inside the range; Raw is stored as is.
// The store does not keep references to Entries after Apply returns.
type Ingested struct {
	Agent       string
	First, Last uint64
	Entries     []wire.Entry
}

// StatusUpdate is a decoded status (birth/death) and its raw JSON.
type StatusUpdate struct {
	Status wire.Status
	Raw    []byte
}

// HealthUpdate is an agent's raw health snapshot JSON.
type HealthUpdate struct {
	Agent string
	Raw   []byte
}

// Write is everything applied by one Apply: one transaction, one fsync.
type Write struct {
	Batches  []Ingested
	Statuses []StatusUpdate
	Health   []HealthUpdate
}

// Result says what an Apply did.
type Result struct {
	Stored     uint64 // records written
	Duplicates uint64 // records dropped because their sequence was covered
	Declared   uint64 // records declared dropped by gap records now stored
	Stale      int    // statuses ignored because of a lower BdSeq
	// AckedBefore counts the sequences newly covered because a birth said
	// an earlier hub had stored them (see Apply).
	AckedBefore uint64
	// Acks holds, for each agent with a batch in the write and each agent
	// whose contiguous coverage a birth advanced (in first-seen order), the
	// contiguous coverage from 1 after the commit. Through is 0 when
	// sequence 1 is not covered yet; such an ack must not be sent.
	Acks []wire.Ack
	// Missing holds, for each agent the write touched that has holes in
	// its coverage after the commit, those holes (Coverage.Missing); an
	// agent without holes has no entry. The hub's gap detector reads it
	// instead of reading every agent's state again.
	Missing map[string][]Range
}

// AgentState is a snapshot of what the store holds for one agent.
type AgentState struct {
	ID              string
	Received        uint64  // records stored, duplicates excluded
	Duplicates      uint64  // records received again and dropped
	DeclaredDropped uint64  // records the agent declared dropped (gap records)
	AckedBefore     uint64  // sequences covered because a birth said an earlier hub stored them
	Contiguous      uint64  // every sequence in [1, Contiguous] is covered
	Highest         uint64  // highest covered sequence
	Missing         []Range // holes in the coverage between 1 and Highest
	HasStatus       bool
	Online          bool   // the latest status says "online"
	BdSeq           uint64 // BdSeq of the latest accepted status
	Status          json.RawMessage
	Birth           json.RawMessage // latest "online" status
	Health          json.RawMessage
}

// Store is the hub's durable store. It is safe for concurrent use; writes
// are serialised.
type Store struct {
	db  *bolt.DB
	log *slog.Logger

	applyMu sync.Mutex // serialises Apply and guards closed for writers
	mu      sync.RWMutex
	agents  map[string]*State // installed states are never modified
	closed  bool
}

// Open opens (creating if needed) the store at path and restores every
// agent's state into memory. It fails if the file is locked by another
// process beyond LockTimeout, if bbolt cannot open it, or with ErrCorrupt
// if a stored state cannot be decoded; the file is left untouched then.
func Open(path string, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 2 * time.Second
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout})
	if err != nil {
		return nil, fmt.Errorf("hubstore: open %s: %w", path, err)
	}
	s := &Store{db: db, log: log, agents: map[string]*State{}}
	err = db.Update(func(tx *bolt.Tx) error {
		ab, err := tx.CreateBucketIfNotExists(bucketAgents)
		if err != nil {
			return err
		}
		return ab.ForEachBucket(func(id []byte) error {
			a, err := loadAgent(string(id), ab.Bucket(id))
			if err != nil {
				return err
			}
			s.agents[a.ID] = a
			return nil
		})
	})
	if err != nil {
		// Closing after a failed open: the open error is what matters.
		_ = db.Close()
		return nil, fmt.Errorf("hubstore: restore %s: %w", path, err)
	}
	log.Info("hub store opened", "agents", len(s.agents))
	return s, nil
}

func loadAgent(id string, b *bolt.Bucket) (*State, error) {
	a := &State{ID: id}
	if v := b.Get(keyState); v != nil {
		if err := decodeState(v, a); err != nil {
			return nil, fmt.Errorf("agent %q: %w", id, err)
		}
	}
	a.Status = clone(b.Get(keyStatus))
	a.Birth = clone(b.Get(keyBirth))
	a.Health = clone(b.Get(keyHealth))
	return a, nil
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return bytes.Clone(b)
}

// stateVersion is what encodeState writes. Version 1 (without the
// acked-before counter) is still read, as ackedBefore 0.
const stateVersion = 2

// encodeState appends an agent's counters, status flags and coverage:
//
//	version(2) uvarint(received) uvarint(duplicates) uvarint(declared)
//	uvarint(ackedBefore) flags(1: bit0 has status, bit1 online)
//	uvarint(bdseq) coverage
func encodeState(dst []byte, a *State) []byte {
	dst = append(dst, stateVersion)
	dst = binary.AppendUvarint(dst, a.Received)
	dst = binary.AppendUvarint(dst, a.Duplicates)
	dst = binary.AppendUvarint(dst, a.Declared)
	dst = binary.AppendUvarint(dst, a.AckedBefore)
	var flags byte
	if a.HasStatus {
		flags |= 1
	}
	if a.Online {
		flags |= 2
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, a.BdSeq)
	return a.Coverage.AppendEncoded(dst)
}

// decodeState parses what encodeState wrote into a; every malformed input
// returns an error wrapping ErrCorrupt.
func decodeState(p []byte, a *State) error {
	if len(p) < 1 || (p[0] != 1 && p[0] != stateVersion) {
		return fmt.Errorf("%w: state version", ErrCorrupt)
	}
	counters := []*uint64{&a.Received, &a.Duplicates, &a.Declared, &a.AckedBefore}
	if p[0] == 1 {
		counters = counters[:3]
	}
	p = p[1:]
	for _, f := range counters {
		v, k := binary.Uvarint(p)
		if k <= 0 {
			return fmt.Errorf("%w: counters", ErrCorrupt)
		}
		*f, p = v, p[k:]
	}
	if len(p) < 1 || p[0] > 3 {
		return fmt.Errorf("%w: flags", ErrCorrupt)
	}
	a.HasStatus, a.Online = p[0]&1 != 0, p[0]&2 != 0
	p = p[1:]
	v, k := binary.Uvarint(p)
	if k <= 0 {
		return fmt.Errorf("%w: bdseq", ErrCorrupt)
	}
	a.BdSeq, p = v, p[k:]
	cov, err := DecodeCoverage(p)
	if err != nil {
		return err
	}
	a.Coverage = cov
	return nil
}

// Apply writes w in one bbolt transaction (one commit, one fsync) and only
// then updates the in-memory state. Records whose sequence is already
// covered — before this write or by an earlier batch of it — are counted as
// duplicates and not written. A status whose BdSeq is lower than the
// agent's current one is counted as stale and ignored. Gap records
// (kind wire.KindGap) add their declared count to DeclaredDropped.
//
// An accepted birth (state online) with AckedThrough A > 0 whose agent's
// coverage does not hold all of [1, A] adds [1, A] to the coverage: the
// agent deletes records only on a hub's ack, so an earlier hub (a lost or
// replaced store) stored them (hub-protocol.md §5.3). The sequences newly
// covered this way are counted in AckedBefore, in the same transaction as
// the status; if the agent's contiguous coverage advanced, Result.Acks
// holds an ack for it.
//
// It returns ErrInvalid (applying nothing) for an invalid write, ErrClosed
// after Close, or the transaction's error; on any error the memory state is
// unchanged and nothing of w is durable.
func (s *Store) Apply(w Write) (Result, error) {
	entries, err := w.Validate()
	if err != nil {
		return Result{}, err
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.closed {
		return Result{}, ErrClosed
	}
	// Only Apply (under applyMu) installs states, so reading s.agents
	// without mu is safe here.
	plan, err := PlanWrite(&w, func(id string) (State, error) {
		if old := s.agents[id]; old != nil {
			return *old, nil
		}
		return State{ID: id}, nil
	})
	if err != nil {
		return Result{}, err
	}
	// One key buffer for the whole write: bbolt keeps references to keys
	// and values until the commit.
	keys := make([]byte, 8*entries)
	err = s.db.Update(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketAgents)
		for _, ap := range plan.Agents {
			a := &ap.State
			b, err := root.CreateBucketIfNotExists([]byte(a.ID))
			if err != nil {
				return err
			}
			r, err := b.CreateBucketIfNotExists(bucketRecords)
			if err != nil {
				return err
			}
			// Sequence keys arrive mostly in increasing order: fill pages
			// completely instead of splitting them in half.
			r.FillPercent = 1.0
			for _, e := range ap.Records {
				key := keys[:8:8]
				keys = keys[8:]
				binary.BigEndian.PutUint64(key, e.Seq)
				if err := r.Put(key, e.Raw); err != nil {
					return err
				}
			}
			// A fresh buffer per agent: bbolt keeps a reference to the
			// value until the commit (a shared buffer once gave every agent
			// of a write the last one's state on disk).
			if err := b.Put(keyState, encodeState(nil, a)); err != nil {
				return err
			}
			if ap.StatusChanged {
				if err := b.Put(keyStatus, a.Status); err != nil {
					return err
				}
				if a.Online {
					if err := b.Put(keyBirth, a.Birth); err != nil {
						return err
					}
				}
			}
			if ap.HealthChanged {
				if err := b.Put(keyHealth, a.Health); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("hubstore: apply: %w", err)
	}
	s.mu.Lock()
	for _, ap := range plan.Agents {
		s.agents[ap.State.ID] = &ap.State
	}
	s.mu.Unlock()
	return plan.Result, nil
}

// PutStatus stores a status in its own transaction; see Apply. It reports
// whether the status was accepted (false: stale BdSeq).
func (s *Store) PutStatus(st wire.Status, raw []byte) (bool, error) {
	res, err := s.Apply(Write{Statuses: []StatusUpdate{{Status: st, Raw: raw}}})
	return err == nil && res.Stale == 0, err
}

// PutHealth stores an agent's health snapshot in its own transaction; see
// Apply.
func (s *Store) PutHealth(agentID string, raw []byte) error {
	_, err := s.Apply(Write{Health: []HealthUpdate{{Agent: agentID, Raw: raw}}})
	return err
}

// AgentState returns a snapshot of the agent's state from memory, and
// false if the store has never heard of the agent (or is closed).
func (s *Store) AgentState(id string) (AgentState, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.agents[id]
	if !ok || s.closed {
		return AgentState{}, false
	}
	return a.Snapshot(), true
}

// Agents returns a snapshot of every known agent, sorted by id; nil after
// Close.
func (s *Store) Agents() []AgentState {
	s.mu.RLock()
	out := make([]AgentState, 0, len(s.agents))
	if !s.closed {
		for _, a := range s.agents {
			out = append(out, a.Snapshot())
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(x, y AgentState) int {
		if x.ID < y.ID {
			return -1
		}
		if x.ID > y.ID {
			return 1
		}
		return 0
	})
	return out
}

// Covered reports whether seq of agent is covered (stored or declared
// dropped), from memory.
func (s *Store) Covered(agentID string, seq uint64) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.agents[agentID]
	return ok && a.Coverage.Contains(seq)
}

// Get returns a copy of the stored record of agent at seq, or ErrNotFound.
// Sequences covered only by a gap declaration are not found.
func (s *Store) Get(agentID string, seq uint64) ([]byte, error) {
	var out []byte
	err := s.view(func(tx *bolt.Tx) error {
		r := records(tx, agentID)
		if r == nil {
			return ErrNotFound
		}
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], seq)
		v := r.Get(k[:])
		if v == nil {
			return ErrNotFound
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, err
}

// ForEach calls fn for each stored record of agent with sequence ≥ from,
// in sequence order, inside one read transaction. raw is valid only during
// the call. It stops at fn's first error and returns it; an unknown agent
// yields no calls and no error.
func (s *Store) ForEach(agentID string, from uint64, fn func(seq uint64, raw []byte) error) error {
	return s.view(func(tx *bolt.Tx) error {
		r := records(tx, agentID)
		if r == nil {
			return nil
		}
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], from)
		c := r.Cursor()
		for key, v := c.Seek(k[:]); key != nil; key, v = c.Next() {
			if len(key) != 8 {
				continue
			}
			if err := fn(binary.BigEndian.Uint64(key), v); err != nil {
				return err
			}
		}
		return nil
	})
}

func records(tx *bolt.Tx, agentID string) *bolt.Bucket {
	b := tx.Bucket(bucketAgents).Bucket([]byte(agentID))
	if b == nil {
		return nil
	}
	return b.Bucket(bucketRecords)
}

func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	err := s.db.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// Path returns the file's path.
func (s *Store) Path() string { return s.db.Path() }

// Close waits for a running Apply, then closes the file. It is idempotent;
// later calls return nil.
func (s *Store) Close() error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("hubstore: close: %w", err)
	}
	return nil
}
