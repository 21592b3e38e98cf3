package hub

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kioskedge/kioskedge/sync/hubstore"
	"github.com/kioskedge/kioskedge/sync/sealed"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// Message is an MQTT message to publish.
type Message struct {
	Topic    string
	QoS      byte
	Retained bool
	Payload  []byte
}

// Transport is what the hub needs from an MQTT session. Subscribe must
// remember the subscription across reconnects; handlers may be called from
// any goroutine and own their payload. PublishAsync must not block long;
// its channel receives exactly one value: nil once the broker acknowledged
// the message, an error otherwise.
type Transport interface {
	Subscribe(filter string, qos byte, h func(topic string, payload []byte)) error
	PublishAsync(m Message) <-chan error
}

// Errors returned by New and Run.
var (
	// ErrOptions is returned by New for missing or invalid options.
	ErrOptions = errors.New("hub: invalid options")
	// ErrRunning is returned by Run when it is already running or has run.
	ErrRunning = errors.New("hub: Run called twice")
)

// Reasons under which bad input is counted in Stats.Bad.
const (
	BadTopic         = "topic"          // topic outside <root>/v1/<agent>/<leaf>
	BadBatch         = "malformed"      // envelope does not decode
	BadTooBig        = "oversized"      // over the codec's limits
	BadVersion       = "version"        // unknown envelope version
	BadEmpty         = "empty"          // batch without records
	BadAgentMismatch = "agent_mismatch" // envelope agent is not the topic's
	BadStatus        = "status"         // status JSON does not decode
	BadHealth        = "health"         // health JSON does not decode
	DropQueueFull    = "queue_full"     // dropped after EnqueueWait on a full queue
	DropStopped      = "stopped"        // arrived while the hub was stopping
)

// Store is where the hub keeps what agents send: *hubstore.Store (the
// embedded bbolt store) or *hubpg.Store (PostgreSQL, shared by several
// hubs). Apply must give hubstore.Apply's Result semantics; with several
// hubs on one store, Result.Acks must be computed from the shared,
// committed coverage (hubpg does), so each hub's ack is right even when
// another hub stored the agent's next batch first.
type Store interface {
	Apply(hubstore.Write) (hubstore.Result, error)
	AgentState(id string) (hubstore.AgentState, bool)
	Agents() []hubstore.AgentState
	ForEach(agentID string, from uint64, fn func(seq uint64, raw []byte) error) error
}

// Options configures New.
type Options struct {
	Root      string    // topic root, e.g. "kioskedge/prov-a"; required
	Store     Store     // required; the hub does not close it
	Transport Transport // required
	// Codec decodes batches; nil makes one with Limits, owned (and closed)
	// by the hub.
	Codec  *wire.Codec
	Limits wire.Limits
	// ShareGroup, if set, subscribes to events with $share/<group>/… so
	// several hubs split the agents' batches; status and health stay
	// direct subscriptions (see filter).
	ShareGroup string
	// QueueLen bounds queued, uncommitted items (batches, statuses,
	// health); default 64.
	QueueLen int
	// MaxCommitBatches and MaxCommitRecords bound one commit; defaults 16
	// and 65536. A single bigger batch is still committed alone.
	MaxCommitBatches int
	MaxCommitRecords int
	// EnqueueWait is how long a handler blocks on a full queue before it
	// drops the message (counted as DropQueueFull; the agent resends after
	// its ack timeout); default 5 s.
	EnqueueWait time.Duration
	// AckGrace is how long Run waits, when stopping, for the broker to
	// confirm acks in flight; default 2 s.
	AckGrace time.Duration
	Logger   *slog.Logger // nil discards

	// SealKey opens sealed body fields (hub-protocol.md §4.4) for
	// GET /api/agents/{id}/records; nil leaves them sealed.
	SealKey *sealed.PrivateKey
	// Mask masks an opened value of the field named field for the records
	// API (cmd/hubd passes credential.Mask); nil replaces every opened
	// value by "********".
	Mask func(field, value string) string
	// RevealPersonalData lets a records request that asks reveal=1 see
	// opened values unmasked. Off, such a request gets 403.
	RevealPersonalData bool

	// OnAgentChange, if set, is called from the committer after every
	// successful commit once per agent whose status or health the commit
	// carried (stale statuses included), after the store holds it and
	// before Wait sees the commit. It must return quickly: ingest waits
	// for it.
	OnAgentChange func(agentID string)

	// OnCommit, if set, is called by the committer after every successful
	// store commit with what it applied (batches with duplicates, statuses
	// with stale ones, health). It runs on the ingest path: it must return
	// at once (hand off to a bounded queue) and must not modify w, which
	// it may keep.
	OnCommit func(w hubstore.Write)

	// CommandKey, when set (hubd -cmd-key), signs the agent.rebirth the
	// lifecycle detector sends an agent with a gap, a stale status or a
	// boot without a death (see Lifecycle); nil only records them.
	CommandKey ed25519.PrivateKey
	// GapAge is how long a missing range may stand before it counts as a
	// gap; default DefaultGapAge.
	GapAge time.Duration
	// RebirthInterval is the least time between two agent.rebirth to one
	// agent; default DefaultRebirthInterval.
	RebirthInterval time.Duration
	// GapSweep is how often the committer looks again at agents with a
	// missing range, so a gap ages into an event (and a rebirth) even when
	// the agent publishes nothing more; default GapAge/4 within [1 s, 30 s].
	GapSweep time.Duration
	// MayCommand, if set, is asked before each agent.rebirth: false skips
	// it (recorded as not sent), so of several hubs only one (a leader)
	// commands agents. nil: always.
	MayCommand func() bool
	// Now is the clock of the lifecycle detector and the ack latency; nil
	// means time.Now.
	Now func() time.Time
}

// item is one unit of work for the committer.
type item struct {
	batch  *hubstore.Ingested
	status *hubstore.StatusUpdate
	health *hubstore.HealthUpdate
	at     time.Time // when a batch arrived, for the ack latency
}

type pendingAck struct {
	done <-chan error
	ack  wire.Ack
}

// Hub ingests event batches, statuses and health into a Store and
// publishes end-to-end acks. Create it with New, start it with Run.
type Hub struct {
	opts      Options
	log       *slog.Logger
	store     Store
	tr        Transport
	codec     *wire.Codec
	ownCodec  bool
	queue     chan item
	stopping  chan struct{}
	stopOnce  sync.Once
	running   atomic.Bool
	closeOnce sync.Once

	mu      sync.Mutex
	stats   Stats
	changed chan struct{} // closed and replaced after every commit

	now func() time.Time
	lc  lifecycle
}

// Stats are the hub's counters since New.
type Stats struct {
	Batches       uint64            `json:"batches"`        // batches committed, duplicates included
	Records       uint64            `json:"records"`        // records stored
	Duplicates    uint64            `json:"duplicates"`     // records dropped as already covered
	Declared      uint64            `json:"declared"`       // records declared dropped by agents (gap records)
	Statuses      uint64            `json:"statuses"`       // statuses committed (stale ones included)
	StaleStatuses uint64            `json:"stale_statuses"` // statuses ignored for a lower BdSeq
	AckedBefore   uint64            `json:"acked_before"`   // sequences covered because a birth said an earlier hub stored them
	Health        uint64            `json:"health"`         // health snapshots committed
	Commits       uint64            `json:"commits"`        // store transactions
	CommitErrors  uint64            `json:"commit_errors"`  // failed transactions (their items are not acked)
	AcksPublished uint64            `json:"acks_published"` // acks handed to the transport
	AcksConfirmed uint64            `json:"acks_confirmed"` // acks the broker acknowledged
	AckErrors     uint64            `json:"ack_errors"`     // acks that failed or were abandoned at stop
	Unackable     uint64            `json:"unackable"`      // commits after which an agent had nothing contiguous from 1
	Bad           map[string]uint64 `json:"bad"`            // bad or dropped messages by reason

	// Lifecycle detector (see Lifecycle).
	Gaps              uint64 `json:"gaps"`                // missing ranges that outlived GapAge
	StaleBirths       uint64 `json:"stale_births"`        // statuses with a bdseq below the stored one
	BootsWithoutDeath uint64 `json:"boots_without_death"` // births with a new boot id over a birth
	RebirthsSent      uint64 `json:"rebirths_sent"`       // signed agent.rebirth published

	// AckLatencySum and AckLatencyCount: for each ack published, the time
	// from the arrival of the oldest batch it covers in that commit to
	// the ack handed to the transport, in seconds.
	AckLatencySum   float64 `json:"ack_latency_sum_s"`
	AckLatencyCount uint64  `json:"ack_latency_count"`
}

// New checks opts and builds a hub. It fails with ErrOptions for a missing
// store or transport or an invalid root or share group, and with the
// codec's error if one has to be built.
func New(opts Options) (*Hub, error) {
	switch {
	case opts.Store == nil:
		return nil, fmt.Errorf("%w: no store", ErrOptions)
	case opts.Transport == nil:
		return nil, fmt.Errorf("%w: no transport", ErrOptions)
	}
	if err := validateRoot(opts.Root); err != nil {
		return nil, fmt.Errorf("%w: root: %v", ErrOptions, err)
	}
	if opts.ShareGroup != "" {
		if err := wire.ValidateID("share group", opts.ShareGroup); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrOptions, err)
		}
	}
	if opts.QueueLen <= 0 {
		opts.QueueLen = 64
	}
	if opts.MaxCommitBatches <= 0 {
		opts.MaxCommitBatches = 16
	}
	if opts.MaxCommitRecords <= 0 {
		opts.MaxCommitRecords = 1 << 16
	}
	if opts.EnqueueWait <= 0 {
		opts.EnqueueWait = 5 * time.Second
	}
	if opts.AckGrace <= 0 {
		opts.AckGrace = 2 * time.Second
	}
	if opts.GapAge <= 0 {
		opts.GapAge = DefaultGapAge
	}
	if opts.GapSweep <= 0 {
		opts.GapSweep = min(max(opts.GapAge/4, time.Second), 30*time.Second)
	}
	if opts.RebirthInterval <= 0 {
		opts.RebirthInterval = DefaultRebirthInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	h := &Hub{
		opts:     opts,
		log:      log,
		store:    opts.Store,
		tr:       opts.Transport,
		codec:    opts.Codec,
		queue:    make(chan item, opts.QueueLen),
		stopping: make(chan struct{}),
		changed:  make(chan struct{}),
		stats:    Stats{Bad: map[string]uint64{}},
		now:      opts.Now,
		lc:       lifecycle{agents: map[string]*lifeState{}},
	}
	if h.codec == nil {
		c, err := wire.NewCodec(opts.Limits)
		if err != nil {
			return nil, err
		}
		h.codec, h.ownCodec = c, true
	}
	return h, nil
}

// validateRoot accepts one or more '/'-separated segments, each a valid id.
func validateRoot(root string) error {
	if root == "" {
		return errors.New("empty")
	}
	start := 0
	for i := 0; i <= len(root); i++ {
		if i == len(root) || root[i] == '/' {
			if err := wire.ValidateID("root segment", root[start:i]); err != nil {
				return err
			}
			start = i + 1
		}
	}
	return nil
}

// filter returns the subscription filter for leaf. Only events use the
// shared subscription: brokers do not deliver retained messages to shared
// subscriptions (Mosquitto among them), and status and health are small
// retained snapshots every hub instance should hold.
func (h *Hub) filter(leaf string) string {
	if h.opts.ShareGroup != "" && leaf == wire.LeafEvents {
		return wire.SharedFilter(h.opts.ShareGroup, h.opts.Root, leaf)
	}
	return wire.Filter(h.opts.Root, leaf)
}

// Run subscribes to the agents' events, status and health topics and
// commits what arrives until ctx ends. Then it stops accepting messages,
// commits what is already queued, publishes those acks, waits up to
// AckGrace for the broker to confirm acks in flight, and returns nil. It
// returns ErrRunning if called more than once, and a Subscribe error if
// the transport refuses a subscription outright.
func (h *Hub) Run(ctx context.Context) error {
	if !h.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer h.stop()
	subs := []struct {
		leaf string
		qos  byte
		fn   func(string, []byte)
	}{
		{wire.LeafEvents, 1, h.onEvents},
		{wire.LeafStatus, 1, h.onStatus},
		{wire.LeafHealth, 1, h.onHealth},
	}
	for _, s := range subs {
		if err := h.tr.Subscribe(h.filter(s.leaf), s.qos, s.fn); err != nil {
			return fmt.Errorf("hub: subscribe %s: %w", h.filter(s.leaf), err)
		}
	}
	h.log.Info("hub ingest running", "root", h.opts.Root, "share_group", h.opts.ShareGroup)

	pending := make(chan pendingAck, 4096)
	abandon := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { h.watchAcks(pending, abandon) })

	h.commitLoop(ctx, pending)
	h.stop()
	h.drain(pending)
	close(pending)

	watched := make(chan struct{})
	go func() { wg.Wait(); close(watched) }()
	t := time.NewTimer(h.opts.AckGrace)
	defer t.Stop()
	select {
	case <-watched:
	case <-t.C:
		close(abandon)
		<-watched
	}
	h.log.Info("hub ingest stopped")
	return nil
}

func (h *Hub) stop() { h.stopOnce.Do(func() { close(h.stopping) }) }

// commitLoop takes queued items in groups and commits them until ctx ends.
func (h *Hub) commitLoop(ctx context.Context, pending chan<- pendingAck) {
	var group []item
	sweep := time.NewTicker(h.opts.GapSweep)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
			h.lifecycleSweep()
		case it := <-h.queue:
			group = h.fill(append(group[:0], it))
			h.commit(group, pending)
			clear(group)
		}
	}
}

// drain commits everything left in the queue when stopping.
func (h *Hub) drain(pending chan<- pendingAck) {
	for {
		select {
		case it := <-h.queue:
			group := h.fill([]item{it})
			h.commit(group, pending)
		default:
			return
		}
	}
}

// fill adds queued items to group without waiting, up to the commit bounds.
func (h *Hub) fill(group []item) []item {
	batches, records := 0, 0
	count := func(it item) {
		if it.batch != nil {
			batches++
			records += len(it.batch.Entries)
		}
	}
	count(group[0])
	for batches < h.opts.MaxCommitBatches && records < h.opts.MaxCommitRecords {
		select {
		case it := <-h.queue:
			group = append(group, it)
			count(it)
		default:
			return group
		}
	}
	return group
}

// commit applies one group in one store transaction, then publishes acks.
func (h *Hub) commit(group []item, pending chan<- pendingAck) {
	var w hubstore.Write
	arrived := map[string]time.Time{} // per agent, its oldest batch in the group
	// touched lists the group's agents once each (for the lifecycle
	// detector), changed those with a status or health (OnAgentChange).
	// A group's statuses and health are unbounded (fill counts batches):
	// a set, not a scan of the list.
	var touched, changed []string
	seen := map[string]bool{} // agent → has a status or health
	touch := func(agent string, change bool) {
		had, ok := seen[agent]
		if !ok {
			touched = append(touched, agent)
		}
		if change && !had {
			changed = append(changed, agent)
		}
		seen[agent] = had || change
	}
	for _, it := range group {
		switch {
		case it.batch != nil:
			w.Batches = append(w.Batches, *it.batch)
			if t, ok := arrived[it.batch.Agent]; !ok || it.at.Before(t) {
				arrived[it.batch.Agent] = it.at
			}
			touch(it.batch.Agent, false)
		case it.status != nil:
			w.Statuses = append(w.Statuses, *it.status)
			touch(it.status.Status.Agent, true)
		case it.health != nil:
			w.Health = append(w.Health, *it.health)
			touch(it.health.Agent, true)
		}
	}
	if len(w.Statuses) > 0 {
		h.lifecycleStatuses(w.Statuses)
	}
	res, err := h.store.Apply(w)
	if err != nil {
		h.mu.Lock()
		h.stats.CommitErrors++
		h.mu.Unlock()
		// Nothing is acked: agents resend after their ack timeout.
		h.log.Error("hub commit failed", "batches", len(w.Batches), "err", err)
		return
	}
	var published, unackable, latN uint64
	var latSum float64
	for _, a := range res.Acks {
		if a.Through == 0 {
			unackable++
			continue
		}
		payload, err := json.Marshal(a)
		if err != nil {
			panic(err) // a struct of a string and an integer always marshals
		}
		done := h.tr.PublishAsync(Message{
			Topic:    wire.Topics{Root: h.opts.Root, Agent: a.Agent}.Ack(),
			QoS:      1,
			Retained: true,
			Payload:  payload,
		})
		published++
		if t, ok := arrived[a.Agent]; ok && !t.IsZero() {
			latSum += h.now().Sub(t).Seconds()
			latN++
		}
		pending <- pendingAck{done: done, ack: a}
	}
	// Before the commit is counted, so a Wait on it sees the change.
	if f := h.opts.OnAgentChange; f != nil {
		for _, id := range changed {
			f(id)
		}
	}
	// Before the commit is counted, so a Wait on it sees the detector's view.
	h.lifecycleGaps(touched, res.Missing)
	h.mu.Lock()
	s := &h.stats
	s.Commits++
	s.Batches += uint64(len(w.Batches))
	s.Records += res.Stored
	s.Duplicates += res.Duplicates
	s.Declared += res.Declared
	s.Statuses += uint64(len(w.Statuses))
	s.StaleStatuses += uint64(res.Stale)
	s.AckedBefore += res.AckedBefore
	s.Health += uint64(len(w.Health))
	s.AcksPublished += published
	s.Unackable += unackable
	s.AckLatencySum += latSum
	s.AckLatencyCount += latN
	close(h.changed)
	h.changed = make(chan struct{})
	h.mu.Unlock()
	if h.opts.OnCommit != nil {
		h.opts.OnCommit(w)
	}
	if res.AckedBefore > 0 {
		h.log.Info("hub store lacked records an earlier hub acked; marked them acked before", "sequences", res.AckedBefore)
	}
	if unackable > 0 {
		h.log.Warn("hub cannot ack: sequence 1 not covered yet for some agents", "agents", unackable)
	}
}

// watchAcks counts broker confirmations of acks until pending is closed
// and drained, or abandon is closed.
func (h *Hub) watchAcks(pending <-chan pendingAck, abandon <-chan struct{}) {
	for p := range pending {
		var err error
		select {
		case err = <-p.done:
		case <-abandon:
			err = errors.New("hub: stopped before the broker confirmed the ack")
		}
		h.mu.Lock()
		if err != nil {
			h.stats.AckErrors++
		} else {
			h.stats.AcksConfirmed++
		}
		n := h.stats.AckErrors
		h.mu.Unlock()
		if err != nil && isPow2(n) {
			// The agent resends after its ack timeout and gets a new ack.
			h.log.Warn("hub ack not confirmed", "agent", p.ack.Agent, "through", p.ack.Through, "err", err, "ack_errors", n)
		}
	}
}

func isPow2(n uint64) bool { return bits.OnesCount64(n) == 1 }

// bad counts a bad or dropped message and logs the first ones of each
// reason and then every power of two.
func (h *Hub) bad(reason, topic string, err error) {
	h.mu.Lock()
	h.stats.Bad[reason]++
	n := h.stats.Bad[reason]
	h.mu.Unlock()
	if isPow2(n) {
		h.log.Warn("hub dropped a message", "reason", reason, "topic", topic, "err", err, "count", n)
	}
}

// enqueue hands it to the committer, blocking up to EnqueueWait on a full
// queue. It reports whether it was queued.
func (h *Hub) enqueue(it item, topic string) bool {
	select {
	case <-h.stopping:
		h.bad(DropStopped, topic, nil)
		return false
	default:
	}
	select {
	case h.queue <- it:
		return true
	default:
	}
	t := time.NewTimer(h.opts.EnqueueWait)
	defer t.Stop()
	select {
	case h.queue <- it:
		return true
	case <-h.stopping:
		h.bad(DropStopped, topic, nil)
	case <-t.C:
		h.bad(DropQueueFull, topic, nil)
	}
	return false
}

func (h *Hub) topicAgent(topic string) (string, bool) {
	agent, _, err := wire.ParseTopic(h.opts.Root, topic)
	if err != nil || wire.ValidateID("agent", agent) != nil {
		h.bad(BadTopic, topic, err)
		return "", false
	}
	return agent, true
}

// onEvents handles one event batch message; see the package doc.
func (h *Hub) onEvents(topic string, payload []byte) {
	agent, ok := h.topicAgent(topic)
	if !ok {
		return
	}
	b, err := h.codec.DecodeBatch(payload)
	if err != nil {
		reason := BadBatch
		switch {
		case errors.Is(err, wire.ErrBatchTooBig):
			reason = BadTooBig
		case errors.Is(err, wire.ErrBatchVersion):
			reason = BadVersion
		case errors.Is(err, wire.ErrEmptyBatch):
			reason = BadEmpty
		}
		h.bad(reason, topic, err)
		return
	}
	if b.Agent != agent {
		h.bad(BadAgentMismatch, topic, nil)
		return
	}
	h.enqueue(item{batch: &hubstore.Ingested{Agent: agent, First: b.First, Last: b.Last, Entries: b.Entries}, at: h.now()}, topic)
}

// onStatus handles a retained birth/death.
func (h *Hub) onStatus(topic string, payload []byte) {
	if topic == (wire.Topics{Root: h.opts.Root, Agent: wire.HubSegment}).Status() {
		return // the hub's own status (hub-protocol.md §12), not an agent's
	}
	agent, ok := h.topicAgent(topic)
	if !ok || len(payload) == 0 { // an empty retained message clears the topic
		return
	}
	st, err := wire.DecodeStatus(payload)
	if err != nil {
		h.bad(BadStatus, topic, err)
		return
	}
	if st.Agent != agent {
		h.bad(BadAgentMismatch, topic, nil)
		return
	}
	h.enqueue(item{status: &hubstore.StatusUpdate{Status: st, Raw: payload}}, topic)
}

// onHealth handles a retained health snapshot.
func (h *Hub) onHealth(topic string, payload []byte) {
	agent, ok := h.topicAgent(topic)
	if !ok || len(payload) == 0 {
		return
	}
	hs, err := wire.DecodeHealth(payload)
	if err != nil {
		h.bad(BadHealth, topic, err)
		return
	}
	if hs.Agent != "" && hs.Agent != agent {
		h.bad(BadAgentMismatch, topic, nil)
		return
	}
	h.enqueue(item{health: &hubstore.HealthUpdate{Agent: agent, Raw: payload}}, topic)
}

// Stats returns a copy of the counters.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.stats
	s.Bad = maps.Clone(h.stats.Bad)
	return s
}

// Wait blocks until cond returns true, checking it now and after every
// commit, or until ctx ends (returning ctx's error). cond must not call
// Wait.
func (h *Hub) Wait(ctx context.Context, cond func() bool) error {
	for {
		h.mu.Lock()
		ch := h.changed
		h.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// Close releases the codec the hub built, if any. It is idempotent and
// must be called after Run returned (or if Run was never called).
func (h *Hub) Close() error {
	h.closeOnce.Do(func() {
		h.stop()
		if h.ownCodec {
			h.codec.Close()
		}
	})
	return nil
}
