package allowsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kioskedge/kioskedge/agent/allowlist"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// Errors of the package.
var (
	ErrOptions = errors.New("allowsync: invalid options")
	ErrRunning = errors.New("allowsync: already running")
)

// Store is what the syncer needs of the allowlist store
// (*allowlist.Allowlist).
type Store interface {
	Version() uint64
	Count() uint64
	BeginSnapshot(version, totalChunks uint64, sum [32]byte) error
	PutChunk(i uint64, data []byte) error
	CommitSnapshot() error
	AbortSnapshot() error
	ApplyDelta(fromVersion, toVersion uint64, upserts []allowlist.Entry, deletes []allowlist.Key) error
}

// Defaults of Options.
const (
	DefaultQueueLen           = 256
	DefaultQueueBytes         = 32 << 20
	DefaultMinRequestInterval = 10 * time.Second
)

// Options configure New.
type Options struct {
	Store Store // required
	// Request publishes a request on the agent's allowlist request topic
	// (wire.Topics.AllowlistRequest, QoS 1). It is called on Run's
	// goroutine and should not block long (publish asynchronously); an
	// error is counted and logged, and the next Resync asks again.
	Request func(wire.AllowlistRequest) error // required
	// QueueLen and QueueBytes bound the messages Handle queued and not yet
	// applied; 0 takes DefaultQueueLen, DefaultQueueBytes.
	QueueLen   int
	QueueBytes int
	// MinRequestInterval spaces requests: one due less than this after the
	// previous is deferred until the interval has passed (several deferred
	// ones make one, a snapshot want winning), so a burst of bad chunks
	// makes one request and a broken store cannot make the hub send
	// snapshots back to back. Resync is never deferred. 0 takes
	// DefaultMinRequestInterval.
	MinRequestInterval time.Duration
	Now                func() time.Time                     // nil: time.Now
	After              func(time.Duration) <-chan time.Time // nil: time.After
	Logger             *slog.Logger                         // nil discards
}

// Stats are the syncer's progress and counters.
type Stats struct {
	Version uint64 // the version in effect
	Entries uint64 // entries in effect
	// Receiving is true while a snapshot is arriving: ReceivingVersion,
	// chunk ChunksReceived of ChunksTotal.
	Receiving        bool
	ReceivingVersion uint64
	ChunksReceived   uint32
	ChunksTotal      uint32

	SnapshotsApplied uint64 // snapshots committed
	ChunksApplied    uint64 // chunks staged
	DeltasApplied    uint64
	Duplicates       uint64 // chunks already staged (redelivery), ignored
	Stale            uint64 // chunks and deltas older than the list in effect, ignored
	Gaps             uint64 // deltas not starting at the version in effect
	Incomplete       uint64 // snapshots abandoned for a missing chunk, or chunks of a snapshot whose start was missed
	Orphans          uint64 // further chunks of an abandoned snapshot, ignored
	Malformed        uint64 // messages, chunks or delta entries that do not decode
	ChecksumFailures uint64
	Restarted        uint64 // snapshots abandoned because a new one began
	Dropped          uint64 // messages dropped on a full queue
	StoreErrors      uint64 // other store failures
	Requests         uint64 // requests published
	RequestErrors    uint64
	Deferred         uint64 // requests deferred by MinRequestInterval (and merged)
}

// Health returns the allowlist part of the health snapshot.
func (s Stats) Health() wire.AllowlistHealth {
	h := wire.AllowlistHealth{Version: s.Version, Entries: s.Entries}
	if s.Receiving {
		h.Receiving = fmt.Sprintf("%d/%d", s.ChunksReceived, s.ChunksTotal)
	}
	return h
}

type snapID struct {
	version uint64
	total   uint32
	sum     [32]byte
}

type receiving struct {
	id   snapID
	next uint32
}

// Syncer applies the hub's allowlist messages to a store. Handle, Resync
// and Stats are safe for concurrent use; Run runs once.
type Syncer struct {
	opts    Options
	log     *slog.Logger
	queue   chan []byte
	wake    chan struct{}
	queued  atomic.Int64 // bytes in queue
	over    atomic.Bool  // a message was dropped
	resync  atomic.Bool
	running atomic.Bool

	// Run's goroutine only.
	snap      *receiving
	orphan    snapID // abandoned snapshot whose remaining chunks are ignored
	applied   snapID // the last snapshot committed: its chunks again are duplicates
	lastReq   wire.AllowlistRequest
	lastAt    time.Time
	answered  bool                   // something arrived since the last request
	deferred  *wire.AllowlistRequest // due at lastAt + MinRequestInterval
	pendingTo uint64                 // highest delta target seen while a snapshot was arriving

	mu    sync.Mutex
	stats Stats
}

// New checks opts and returns a Syncer; it starts nothing. It returns
// ErrOptions without a Store or Request.
func New(opts Options) (*Syncer, error) {
	if opts.Store == nil || opts.Request == nil {
		return nil, fmt.Errorf("%w: Store and Request are required", ErrOptions)
	}
	opts.QueueLen = cmp0(opts.QueueLen, DefaultQueueLen)
	opts.QueueBytes = cmp0(opts.QueueBytes, DefaultQueueBytes)
	opts.MinRequestInterval = cmp0(opts.MinRequestInterval, DefaultMinRequestInterval)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.After == nil {
		opts.After = time.After
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Syncer{opts: opts, log: log, queue: make(chan []byte, opts.QueueLen), wake: make(chan struct{}, 1)}, nil
}

func cmp0[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

func (s *Syncer) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Handle queues one payload of the allowlist topic for Run and returns at
// once; it keeps payload (the caller must not modify it). When the queue
// is full (QueueLen messages or QueueBytes bytes) the payload is dropped
// and counted, and Run requests a snapshot once it has caught up.
func (s *Syncer) Handle(payload []byte) {
	n := int64(len(payload))
	if s.queued.Add(n) > int64(s.opts.QueueBytes) {
		s.queued.Add(-n)
		s.dropped()
		return
	}
	select {
	case s.queue <- payload:
	default:
		s.queued.Add(-n)
		s.dropped()
	}
}

func (s *Syncer) dropped() {
	s.count(func(st *Stats) { st.Dropped++ })
	s.over.Store(true)
	s.poke()
}

// Resync makes Run ask the hub to catch up from the version in effect,
// whatever it asked before; the wiring calls it after each MQTT connect.
func (s *Syncer) Resync() {
	s.resync.Store(true)
	s.poke()
}

// Stats returns the progress and counters.
func (s *Syncer) Stats() Stats {
	s.mu.Lock()
	st := s.stats
	s.mu.Unlock()
	st.Version, st.Entries = s.opts.Store.Version(), s.opts.Store.Count()
	return st
}

func (s *Syncer) count(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

func (s *Syncer) progress() {
	s.count(func(st *Stats) {
		st.Receiving = s.snap != nil
		st.ReceivingVersion, st.ChunksReceived, st.ChunksTotal = 0, 0, 0
		if s.snap != nil {
			st.ReceivingVersion, st.ChunksReceived, st.ChunksTotal = s.snap.id.version, s.snap.next, s.snap.id.total
		}
	})
}

// Run asks the hub to catch up, then applies queued messages until ctx
// ends; a snapshot still arriving then is abandoned (the list in effect
// stays). It returns nil, or ErrRunning if Run is already running.
func (s *Syncer) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer s.running.Store(false)
	s.request(wire.WantCatchUp, wire.ReasonStart, true)
	var due <-chan time.Time // armed while a request is deferred
	for {
		if s.deferred == nil {
			due = nil
		} else if due == nil {
			due = s.opts.After(s.lastAt.Add(s.opts.MinRequestInterval).Sub(s.opts.Now()))
		}
		select {
		case <-ctx.Done():
			if s.snap != nil {
				s.abort()
			}
			return nil
		case p := <-s.queue:
			s.queued.Add(-int64(len(p)))
			s.apply(p)
		case <-due:
			due = nil
			if r := s.deferred; r != nil {
				s.request(r.Want, r.Reason, true)
			}
		case <-s.wake:
		}
		if s.resync.Swap(false) {
			s.request(wire.WantCatchUp, wire.ReasonStart, true)
		}
		if len(s.queue) == 0 && s.over.Swap(false) {
			// The dropped message may have been any chunk or delta: start
			// over from a snapshot.
			if s.snap != nil {
				s.orphan = s.snap.id
				s.abort()
			}
			s.request(wire.WantSnapshot, wire.ReasonOverflow, false)
		}
	}
}

// request publishes a request, or defers it when the previous one was
// less than MinRequestInterval ago (force: never).
func (s *Syncer) request(want, reason string, force bool) {
	r := wire.AllowlistRequest{Have: s.opts.Store.Version(), Want: want, Reason: reason}
	now := s.opts.Now()
	if !force && !s.lastAt.IsZero() && now.Sub(s.lastAt) < s.opts.MinRequestInterval {
		if s.deferred == nil || want == wire.WantSnapshot {
			s.deferred = &r
		}
		s.count(func(st *Stats) { st.Deferred++ })
		return
	}
	s.deferred = nil
	s.lastReq, s.lastAt, s.answered = r, now, false
	if err := s.opts.Request(r); err != nil {
		s.count(func(st *Stats) { st.RequestErrors++ })
		s.log.Warn("allowlist request failed", "want", want, "reason", reason, "err", err)
		return
	}
	s.count(func(st *Stats) { st.Requests++ })
	s.log.Info("allowlist requested", "have", r.Have, "want", want, "reason", reason)
}

// abort abandons the snapshot in progress; the store drops what it staged.
func (s *Syncer) abort() {
	s.snap = nil
	s.progress()
	if err := s.opts.Store.AbortSnapshot(); err != nil {
		s.count(func(st *Stats) { st.StoreErrors++ })
		s.log.Warn("allowlist abort", "err", err)
	}
}

func (s *Syncer) apply(p []byte) {
	m, err := wire.DecodeAllowlistMessage(p)
	if err != nil {
		s.count(func(st *Stats) { st.Malformed++ })
		s.log.Warn("allowlist message dropped", "bytes", len(p), "err", err)
		return
	}
	switch m.Type {
	case wire.AllowlistChunk:
		s.chunk(&m)
	case wire.AllowlistDelta:
		s.delta(&m.Delta)
	}
}

// chunk applies one snapshot chunk (hub-allowlist.md §5).
func (s *Syncer) chunk(m *wire.AllowlistMessage) {
	st := s.opts.Store
	id := snapID{version: m.Version, total: m.Total, sum: m.Sum}
	if m.Version < st.Version() {
		s.count(func(st *Stats) { st.Stale++ })
		return
	}
	if s.snap == nil || s.snap.id != id {
		if id == s.applied {
			s.count(func(st *Stats) { st.Duplicates++ })
			return
		}
		if m.Index != 0 {
			// A snapshot whose start this agent missed.
			if s.orphan == id {
				s.count(func(st *Stats) { st.Orphans++ })
				return
			}
			s.orphan = id
			s.count(func(st *Stats) { st.Incomplete++ })
			if s.snap != nil {
				s.abort()
			}
			s.request(wire.WantSnapshot, wire.ReasonIncomplete, false)
			return
		}
		if m.Version == st.Version() && (s.lastReq.Want != wire.WantSnapshot || s.answered) {
			// The list in effect, sent to a group or to another agent's
			// request: a repair only when this agent asked for one. Its
			// other chunks are ignored too.
			s.orphan = id
			s.count(func(st *Stats) { st.Stale++ })
			return
		}
		if s.snap != nil {
			s.count(func(st *Stats) { st.Restarted++ })
			s.snap = nil
		}
		// BeginSnapshot abandons whatever was staged.
		if err := st.BeginSnapshot(m.Version, uint64(m.Total), m.Sum); err != nil {
			s.progress()
			if errors.Is(err, allowlist.ErrStale) {
				s.count(func(st *Stats) { st.Stale++ })
				return
			}
			s.count(func(st *Stats) { st.StoreErrors++ })
			s.log.Warn("allowlist snapshot begin", "version", m.Version, "err", err)
			return
		}
		s.snap, s.orphan, s.answered = &receiving{id: id}, snapID{}, true
		s.log.Info("allowlist snapshot receiving", "version", m.Version, "chunks", m.Total)
	}
	r := s.snap
	switch {
	case m.Index < r.next:
		s.count(func(st *Stats) { st.Duplicates++ })
		return
	case m.Index > r.next:
		s.count(func(st *Stats) { st.Incomplete++ })
		s.log.Warn("allowlist chunk missing", "version", m.Version, "want", r.next, "got", m.Index)
		s.failSnapshot(id, wire.ReasonIncomplete)
		return
	}
	if err := st.PutChunk(uint64(m.Index), m.Chunk); err != nil {
		reason := wire.ReasonCorrupt
		if errors.Is(err, allowlist.ErrMalformed) {
			s.count(func(st *Stats) { st.Malformed++ })
		} else {
			s.count(func(st *Stats) { st.StoreErrors++ })
		}
		s.log.Warn("allowlist chunk refused", "version", m.Version, "chunk", m.Index, "err", err)
		s.failSnapshot(id, reason)
		return
	}
	r.next++
	s.count(func(st *Stats) { st.ChunksApplied++ })
	s.progress()
	if r.next < r.id.total {
		return
	}
	s.snap = nil
	s.progress()
	err := st.CommitSnapshot()
	switch {
	case err == nil:
		s.applied, s.deferred = id, nil
		s.count(func(st *Stats) { st.SnapshotsApplied++ })
		s.log.Info("allowlist snapshot applied", "version", m.Version, "entries", st.Count())
		if s.pendingTo > st.Version() {
			s.request(wire.WantCatchUp, wire.ReasonGap, false)
		}
		s.pendingTo = 0
	case errors.Is(err, allowlist.ErrChecksum):
		s.count(func(st *Stats) { st.ChecksumFailures++ })
		s.log.Warn("allowlist snapshot checksum mismatch", "version", m.Version)
		s.orphan = id
		s.request(wire.WantSnapshot, wire.ReasonChecksum, false)
	case errors.Is(err, allowlist.ErrStale):
		s.count(func(st *Stats) { st.Stale++ })
	default:
		s.count(func(st *Stats) { st.StoreErrors++ })
		s.log.Warn("allowlist snapshot commit", "version", m.Version, "err", err)
		s.orphan = id
		s.request(wire.WantSnapshot, wire.ReasonCorrupt, false)
	}
}

// failSnapshot abandons the snapshot id, ignores its remaining chunks and
// asks for a new one.
func (s *Syncer) failSnapshot(id snapID, reason string) {
	s.orphan = id
	s.abort()
	s.request(wire.WantSnapshot, reason, false)
}

// delta applies one delta (hub-allowlist.md §5).
func (s *Syncer) delta(d *wire.Delta) {
	ups := make([]allowlist.Entry, len(d.Upserts))
	for i, u := range d.Upserts {
		ups[i].Key = allowlist.Key(u.Key)
		if err := allowlist.DecodeEntryValue(u.Value, &ups[i]); err != nil {
			s.count(func(st *Stats) { st.Malformed++ })
			s.log.Warn("allowlist delta refused", "from", d.From, "to", d.To, "err", err)
			s.request(wire.WantSnapshot, wire.ReasonCorrupt, false)
			return
		}
	}
	dels := make([]allowlist.Key, len(d.Deletes))
	for i, k := range d.Deletes {
		dels[i] = allowlist.Key(k)
	}
	err := s.opts.Store.ApplyDelta(d.From, d.To, ups, dels)
	switch {
	case err == nil:
		s.answered, s.deferred = true, nil
		s.count(func(st *Stats) { st.DeltasApplied++ })
		s.log.Info("allowlist delta applied", "from", d.From, "to", d.To, "upserts", len(ups), "deletes", len(dels))
	case errors.Is(err, allowlist.ErrStale):
		s.count(func(st *Stats) { st.Stale++ })
	case errors.Is(err, allowlist.ErrVersionGap):
		s.count(func(st *Stats) { st.Gaps++ })
		if s.snap != nil {
			// The snapshot arriving may already hold it; ask after it.
			s.pendingTo = max(s.pendingTo, d.To)
			return
		}
		s.request(wire.WantCatchUp, wire.ReasonGap, false)
	default:
		if errors.Is(err, allowlist.ErrMalformed) {
			s.count(func(st *Stats) { st.Malformed++ })
		} else {
			s.count(func(st *Stats) { st.StoreErrors++ })
		}
		s.log.Warn("allowlist delta failed", "from", d.From, "to", d.To, "err", err)
		s.request(wire.WantSnapshot, wire.ReasonCorrupt, false)
	}
}
