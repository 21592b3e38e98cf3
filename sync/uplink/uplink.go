package uplink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kioskedge/kioskedge/sync/wire"
)

// Source is the durable queue the uplink drains. *outbox.Outbox implements
// it; the interface lives here, with its only user.
type Source interface {
	// Read returns up to maxRecords entries with Seq > after, in order,
	// totalling about maxBytes; empty when nothing waits.
	Read(after uint64, maxRecords, maxBytes int) ([]wire.Entry, error)
	// Ack deletes everything through the given sequence: the hub stored it.
	Ack(through uint64) error
	// AckedThrough is the highest sequence acked so far.
	AckedThrough() uint64
	// Notify receives a value after new records were appended.
	Notify() <-chan struct{}
}

// Uplink defaults applied by New to zero fields.
const (
	DefaultBatchRecords   = 2000
	DefaultBatchBytes     = 512 << 10
	DefaultWindow         = 32
	DefaultAckTimeout     = 15 * time.Second
	DefaultHealthInterval = time.Minute

	sourceRetry = time.Second // pause after a failed Read, Ack or encode
)

// Options configures an Uplink.
type Options struct {
	// Session configures the MQTT session. Will and OnConnect are set by
	// the uplink; ClientID defaults to Agent.
	Session SessionOptions
	// Root and Agent name the topic tree (wire.Topics); BootID, Version,
	// ConfigHash, Inventory, Site and Region go into the birth.
	Root, Agent, BootID, Version, ConfigHash string
	Inventory                                []wire.Device
	Site, Region                             string
	BatchRecords                             int // records per batch, default 2000
	BatchBytes                               int // raw bytes per batch, default 512 KiB
	Window                                   int // batches awaiting the hub's ack, default 32
	// AckTimeout: with batches in flight and no ack progress for this long,
	// the uplink rewinds to the source's AckedThrough and resends. Default 15s.
	AckTimeout time.Duration
	// HealthInterval is the period of the retained health snapshot, which
	// is also published on every connect. Default 60s.
	HealthInterval time.Duration
	// Health supplies the outbox section of the health snapshot (nil: zeros).
	Health func() wire.OutboxHealth
	// Devices supplies the devices section of the health snapshot (nil:
	// none). It is called on the drain goroutine and must not block long.
	Devices func() []wire.DeviceHealth
	// Decorate, when set, adds the sections only the wiring knows (a
	// gate's allowlist and doors) to each health snapshot before it is
	// sent; it is called on the drain goroutine and must not block long.
	Decorate func(*wire.Health)
	// BdSeqPath is the file holding the birth/death sequence. Required.
	BdSeqPath string
	// Codec encodes batches; nil: New builds one, closed when Run returns.
	Codec  *wire.Codec
	Now    func() time.Time // nil: time.Now
	Logger *slog.Logger     // nil discards
}

// Stats are the uplink's counters.
type Stats struct {
	BatchesSent   uint64 // batches handed to the broker
	RecordsSent   uint64 // records in those batches (resends included)
	Acks          uint64 // hub acks that released records
	Rewinds       uint64 // resends from AckedThrough after a reconnect or ack timeout
	HubRewinds    uint64 // resends because the hub came (back) online (hub-protocol.md §12)
	AckTimeouts   uint64 // rewinds caused by AckTimeout
	BadAcks       uint64 // acks that were garbage, oversized or for another agent
	AcksBeyond    uint64 // acks past what this process has sent, ignored
	PublishErrors uint64 // batch publishes the broker did not acknowledge
	SourceErrors  uint64 // failed Read or Ack calls on the source
	Births        uint64 // births published
	BdSeq         uint64 // the current birth/death sequence
	AckedThrough  uint64 // the source's AckedThrough
	SentThrough   uint64 // highest sequence sent so far
	Connected     bool
	Reconnects    uint64
	InFlight      int // batches awaiting the hub's ack
}

// Uplink drains a Source to the hub over a Session; see the package doc.
type Uplink struct {
	opts   Options
	src    Source
	topics wire.Topics
	sess   *Session
	codec  *wire.Codec
	ownCdc bool
	log    *slog.Logger
	now    func() time.Time
	start  time.Time

	bdMu  sync.Mutex
	bdseq uint64

	wake chan struct{} // cap 1: acks, connects, status conflicts, failed publishes
	// gen is the session's connection number whose birth went out; the
	// drain sends only on that connection and rewinds when gen changes.
	gen         atomic.Uint64
	ackThrough  atomic.Uint64 // highest valid ack from the hub
	sentThrough atomic.Uint64
	rebirth     atomic.Bool
	asked       atomic.Bool // Rebirth was called
	// birthAcked is the acked_through of the latest birth handed to the
	// session: an ack timeout with the source acked beyond it republishes
	// the birth (see drain).
	birthAcked atomic.Uint64
	inFlight   atomic.Int64

	// The hub's own status (hub-protocol.md §12): hubBack is set when it
	// turns online, or a new online (another time) replaces the last.
	hubMu      sync.Mutex
	hubOnline  bool
	hubKey     string // the time of the last online status seen
	hubBack    atomic.Bool
	hubRewinds atomic.Uint64

	batches, records, acks, rewinds, timeouts, badAcks, beyond atomic.Uint64
	pubErrs, srcErrs, births                                   atomic.Uint64

	hookMu sync.Mutex
	hooks  []func()

	runOnce atomic.Bool

	// afterPublish, if set (tests only), runs on the drain goroutine right
	// after a batch ending at last was handed to the session.
	afterPublish func(last uint64)
}

// New validates opts and builds an uplink over src; it does not connect.
// It reads the bdseq file (a missing file means 0; an unreadable or
// garbled one is an error naming it). Errors wrap ErrOptions, ErrPlaintext
// or ErrTLS (from the session options).
func New(opts Options, src Source) (*Uplink, error) {
	if src == nil {
		return nil, fmt.Errorf("%w: nil Source", ErrOptions)
	}
	for _, seg := range strings.Split(opts.Root, "/") {
		if err := wire.ValidateID("Options.Root segment", seg); err != nil {
			return nil, fmt.Errorf("%w: Options.Root %q: %v", ErrOptions, opts.Root, err)
		}
	}
	if err := wire.ValidateID("Options.Agent", opts.Agent); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrOptions, err)
	}
	if opts.BootID == "" {
		return nil, fmt.Errorf("%w: Options.BootID is empty", ErrOptions)
	}
	if opts.BdSeqPath == "" {
		return nil, fmt.Errorf("%w: Options.BdSeqPath is empty", ErrOptions)
	}
	if opts.BatchRecords < 0 || opts.BatchBytes < 0 || opts.Window < 0 || opts.AckTimeout < 0 || opts.HealthInterval < 0 {
		return nil, fmt.Errorf("%w: Options.BatchRecords, BatchBytes, Window, AckTimeout and HealthInterval must not be negative", ErrOptions)
	}
	opts.BatchRecords = cmp0(opts.BatchRecords, DefaultBatchRecords)
	opts.BatchBytes = cmp0(opts.BatchBytes, DefaultBatchBytes)
	opts.Window = cmp0(opts.Window, DefaultWindow)
	opts.AckTimeout = cmp0(opts.AckTimeout, DefaultAckTimeout)
	opts.HealthInterval = cmp0(opts.HealthInterval, DefaultHealthInterval)
	u := &Uplink{
		opts:   opts,
		src:    src,
		topics: wire.Topics{Root: opts.Root, Agent: opts.Agent},
		log:    opts.Logger,
		now:    opts.Now,
		wake:   make(chan struct{}, 1),
	}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	if u.now == nil {
		u.now = time.Now
	}
	u.start = u.now()
	bd, err := readBdSeq(opts.BdSeqPath)
	if err != nil {
		return nil, err
	}
	u.bdseq = bd
	so := opts.Session
	if so.ClientID == "" {
		so.ClientID = opts.Agent
	}
	if so.Logger == nil {
		so.Logger = opts.Logger
	}
	so.Will = nil
	so.OnConnect = u.onConnect
	u.sess, err = NewSession(so)
	if err != nil {
		return nil, err
	}
	u.sess.willFor = u.nextWill
	u.codec = opts.Codec
	if u.codec == nil {
		if u.codec, err = wire.NewCodec(wire.Limits{}); err != nil {
			return nil, err
		}
		u.ownCdc = true
	}
	return u, nil
}

func cmp0[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

func readBdSeq(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("uplink: bdseq file: %w", err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: bdseq file %s is garbled (%v); remove it to start over", ErrOptions, path, err)
	}
	return v, nil
}

// writeBdSeq replaces the file atomically: temp file, fsync, rename, fsync dir.
func writeBdSeq(path string, v uint64) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".bdseq-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.WriteString(strconv.FormatUint(v, 10) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp) // best effort; the error below is what matters
		return err
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		return err
	}
	return nil
}

// nextWill runs before every connection attempt (on the session's Run
// goroutine): it bumps and persists bdseq, so the Will of this attempt and
// the birth after it carry a number no earlier connection used.
func (u *Uplink) nextWill() *Message {
	u.bdMu.Lock()
	u.bdseq++
	bd := u.bdseq
	u.bdMu.Unlock()
	if err := writeBdSeq(u.opts.BdSeqPath, bd); err != nil {
		// Still connect: an unpersisted bdseq only risks a stale Will
		// winning after a restart, while not connecting loses the uplink.
		u.log.Error("uplink: persist bdseq", "path", u.opts.BdSeqPath, "err", err)
	}
	return &Message{Topic: u.topics.Status(), QoS: 1, Retained: true, Payload: u.status(wire.StateOffline, "will", bd)}
}

func (u *Uplink) currentBdSeq() uint64 {
	u.bdMu.Lock()
	defer u.bdMu.Unlock()
	return u.bdseq
}

func (u *Uplink) status(state, reason string, bd uint64) []byte {
	st := wire.Status{
		State: state, Agent: u.opts.Agent, BootID: u.opts.BootID, BdSeq: bd, Time: u.now(),
		Version: u.opts.Version, ConfigHash: u.opts.ConfigHash, Reason: reason,
	}
	if state == wire.StateOnline {
		st.Inventory = u.opts.Inventory
		st.Site, st.Region = u.opts.Site, u.opts.Region
		// What a hub already stored: a hub whose store lost it marks the
		// range as stored before and can ack again (hub-protocol.md §5.3).
		st.AckedThrough = u.src.AckedThrough()
		u.birthAcked.Store(st.AckedThrough)
	}
	b, err := json.Marshal(st)
	if err != nil {
		panic(err) // a Status always marshals
	}
	return b
}

// onConnect runs on the session's goroutine after every connect, once the
// ack and status subscriptions are in place: birth, then rewind the drain.
func (u *Uplink) onConnect(ctx context.Context, s *Session) {
	n := s.connects.Load()
	u.publishBirth(ctx)
	u.hookMu.Lock()
	hooks := append([]func(){}, u.hooks...)
	u.hookMu.Unlock()
	for _, f := range hooks {
		f()
	}
	// Monotonic: the OnConnect of an earlier connection can finish after a
	// later one's (its birth failing with the lost connection). Storing its
	// smaller number would leave gen != connects, and the drain sends only
	// when they are equal: it would stop for good.
	for {
		g := u.gen.Load()
		if n <= g || u.gen.CompareAndSwap(g, n) {
			break
		}
	}
	u.poke()
}

// OnConnect registers f to be called after each (re)connect, once the
// birth has been published, on the session's connect goroutine; f must not
// block long. Parts of the agent that talk to the hub over their own topics
// (the allowlist receiver asking to catch up) use it.
func (u *Uplink) OnConnect(f func()) {
	u.hookMu.Lock()
	defer u.hookMu.Unlock()
	u.hooks = append(u.hooks, f)
}

func (u *Uplink) publishBirth(ctx context.Context) {
	bd := u.currentBdSeq()
	err := u.sess.Publish(ctx, Message{Topic: u.topics.Status(), QoS: 1, Retained: true,
		Payload: u.status(wire.StateOnline, "", bd)})
	if err != nil {
		u.log.Warn("uplink: birth not acknowledged", "bdseq", bd, "err", err)
		return
	}
	u.births.Add(1)
	u.log.Info("uplink: birth published", "bdseq", bd)
}

// republishBirth publishes the birth again on the current connection,
// with the current bdseq, without waiting: a lost birth is retried on the
// next trigger or connect.
func (u *Uplink) republishBirth(why string) {
	bd := u.currentBdSeq()
	u.log.Info("uplink: republishing birth", "why", why, "bdseq", bd)
	u.births.Add(1)
	u.sess.PublishAsync(Message{Topic: u.topics.Status(), QoS: 1, Retained: true,
		Payload: u.status(wire.StateOnline, "", bd)})
}

func (u *Uplink) poke() {
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// onAck handles the hub's ack on paho's delivery goroutine: never blocks.
func (u *Uplink) onAck(_ string, payload []byte) {
	a, err := wire.DecodeAck(payload)
	switch {
	case err != nil:
		u.badAcks.Add(1)
		u.log.Warn("uplink: bad ack", "bytes", len(payload), "err", err)
		return
	case a.Agent != u.opts.Agent:
		u.badAcks.Add(1)
		u.log.Warn("uplink: ack for another agent", "agent", a.Agent)
		return
	case a.Through <= u.src.AckedThrough():
		return // stale, e.g. the retained ack of an earlier run
	case a.Through > u.sentThrough.Load():
		u.beyond.Add(1)
		u.log.Warn("uplink: ack beyond what was sent, ignored", "through", a.Through, "sent_through", u.sentThrough.Load())
		return
	}
	for {
		cur := u.ackThrough.Load()
		if a.Through <= cur || u.ackThrough.CompareAndSwap(cur, a.Through) {
			break
		}
	}
	u.poke()
}

// onStatus watches the agent's own retained status: a death with an older
// bdseq (a late Will) must not stand while we are online.
func (u *Uplink) onStatus(_ string, payload []byte) {
	st, err := wire.DecodeStatus(payload)
	if err != nil || st.Agent != u.opts.Agent {
		return
	}
	if st.State == wire.StateOffline && st.BdSeq < u.currentBdSeq() {
		u.rebirth.Store(true)
		u.poke()
	}
}

// hubStatusTopic is <root>/v1/$hub/status, where the hub application
// publishes its own retained state (hub-protocol.md §12; hubrun.HubStatusTopic,
// whose package the agent does not import).
func hubStatusTopic(root string) string {
	return wire.Topics{Root: root, Agent: wire.HubSegment}.Status()
}

// maxHubStatus bounds the hub status the uplink decodes; the hub's is
// about 80 bytes.
const maxHubStatus = 4 << 10

// onHubStatus watches the hub's status on paho's delivery goroutine: when
// the hub turns online, or a new online replaces the last one (the hub
// reconnected, its subscriptions renewed first), the drain resends what
// the hub has not acked at once: batches sent while it was away reached
// no subscriber, and the ack timeout would otherwise delay them.
//
// A retained status, which the broker sends when the uplink subscribes
// (on each connect), is only remembered: it was published before this
// connection sent anything, so the hub it announces was already
// subscribed, and the connect has resent everything unacked anyway.
// Resending again would only duplicate what is in flight.
func (u *Uplink) onHubStatus(_ string, payload []byte, retained bool) {
	if len(payload) > maxHubStatus {
		return
	}
	var st struct {
		State string          `json:"state"`
		Time  json.RawMessage `json:"time"`
	}
	if json.Unmarshal(payload, &st) != nil {
		return // an empty payload clears the retained status: no news
	}
	online := st.State == wire.StateOnline
	u.hubMu.Lock()
	back := online && !retained && (!u.hubOnline || string(st.Time) != u.hubKey)
	u.hubOnline = online
	if online {
		u.hubKey = string(st.Time)
	}
	u.hubMu.Unlock()
	if back {
		u.hubBack.Store(true)
		u.poke()
	}
}

type inflight struct {
	last uint64
	done <-chan error
}

// Run drains the source until ctx ends, then publishes the death (state
// offline, reason "shutdown") and disconnects. It returns nil on ctx end,
// ErrClosed if called twice, or an error if the subscriptions cannot be
// registered.
func (u *Uplink) Run(ctx context.Context) error {
	if !u.runOnce.CompareAndSwap(false, true) {
		return ErrClosed
	}
	if u.ownCdc {
		defer u.codec.Close()
	}
	if err := u.sess.Subscribe(u.topics.Ack(), 1, u.onAck); err != nil {
		return err
	}
	if err := u.sess.Subscribe(u.topics.Status(), 1, u.onStatus); err != nil {
		return err
	}
	// Optional: a broker ACL that keeps agents out of the hub's status
	// leaves them resending on the ack timeout only.
	if err := u.sess.subscribeOptional(hubStatusTopic(u.opts.Root), 1, u.onHubStatus); err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	sessDone := make(chan error, 1)
	go func() { sessDone <- u.sess.Run(sctx) }()

	u.drain(ctx)

	death := Message{Topic: u.topics.Status(), QoS: 1, Retained: true,
		Payload: u.status(wire.StateOffline, "shutdown", u.currentBdSeq())}
	if err := u.sess.Close(&death); err != nil {
		u.log.Warn("uplink: death not acknowledged", "err", err)
	}
	cancel()
	<-sessDone
	return nil
}

func (u *Uplink) drain(ctx context.Context) {
	var (
		cursor    = u.src.AckedThrough()
		queue     []inflight
		seenGen   uint64
		progress  = u.now()
		pubFailed bool      // a batch was not acknowledged by the broker
		retryAt   time.Time // after a source error, no reads before this
		scratch   []byte
		health    = time.NewTimer(u.opts.HealthInterval)
		deadline  = time.NewTimer(time.Hour)
	)
	defer health.Stop()
	defer deadline.Stop()
	rewind := func() {
		acked := u.src.AckedThrough()
		if cursor > acked {
			u.rewinds.Add(1)
		}
		cursor = acked
		queue = queue[:0]
		pubFailed = false
		progress = u.now()
	}
	for {
		g := u.gen.Load()
		if g != seenGen {
			seenGen = g
			rewind()
			u.publishHealth()
		}
		if u.rebirth.Swap(false) && u.sess.Connected() {
			u.republishBirth("older death retained on our status")
		}
		if u.asked.Swap(false) && u.sess.Connected() {
			u.republishBirth("asked by the hub")
			u.publishHealth()
			rewind() // resend what the hub has not acked: it may have a gap
		}
		// Release what the hub acked.
		if a := u.ackThrough.Load(); a > u.src.AckedThrough() {
			if err := u.src.Ack(a); err != nil {
				u.srcErrs.Add(1)
				u.log.Error("uplink: source ack", "through", a, "err", err)
			} else {
				u.acks.Add(1)
				progress = u.now()
			}
		}
		acked := u.src.AckedThrough()
		n := 0
		for n < len(queue) && queue[n].last <= acked {
			n++
		}
		if n > 0 {
			queue = append(queue[:0], queue[n:]...)
			progress = u.now()
		}
		cursor = max(cursor, acked)
		// The hub is (back) online: what is still in flight may have been
		// sent while it was away, to no subscriber. Nothing in flight (the
		// usual case right after a connect, which rewound already): nothing
		// to resend.
		if u.hubBack.Swap(false) && len(queue) > 0 {
			u.hubRewinds.Add(1)
			u.log.Info("uplink: hub online, resending what it has not acked", "from", acked+1, "in_flight", len(queue))
			rewind()
		}
		for _, f := range queue {
			select {
			case err := <-f.done:
				if err != nil {
					// Not resent here: the reconnect or AckTimeout rewinds.
					u.pubErrs.Add(1)
					pubFailed = true
				}
			default:
			}
		}
		if pubFailed && len(queue) == 0 {
			rewind() // nothing outstanding: resend the failed range now
		}
		if len(queue) > 0 && u.now().Sub(progress) >= u.opts.AckTimeout {
			u.timeouts.Add(1)
			u.log.Warn("uplink: no ack progress, resending", "from", u.src.AckedThrough()+1, "in_flight", len(queue))
			rewind()
			// The hub may have lost its store while we stayed connected:
			// its retained birth from us must say how far we were acked.
			if u.src.AckedThrough() > u.birthAcked.Load() && u.sess.Connected() {
				u.republishBirth("acked through grew since the last birth")
			}
		}
		// Send while the window has room.
		canSend := !pubFailed && g == u.sess.connects.Load() && u.sess.Connected() && !u.now().Before(retryAt)
		for canSend && len(queue) < u.opts.Window {
			ents, err := u.src.Read(cursor, u.opts.BatchRecords, u.opts.BatchBytes)
			if err != nil {
				u.srcErrs.Add(1)
				u.log.Error("uplink: source read", "after", cursor, "err", err)
				retryAt = u.now().Add(sourceRetry)
				break
			}
			if len(ents) == 0 {
				break
			}
			last := ents[len(ents)-1].Seq
			var msg []byte
			msg, scratch, err = u.codec.EncodeBatch(u.opts.Agent, u.opts.BootID, cursor+1, last, ents, scratch)
			if err != nil {
				u.srcErrs.Add(1)
				u.log.Error("uplink: encode batch", "first", cursor+1, "last", last, "err", err)
				retryAt = u.now().Add(sourceRetry)
				break
			}
			if len(queue) == 0 {
				progress = u.now()
			}
			// sentThrough first: the hub's ack for this batch may reach
			// onAck before PublishAsync returns here, and onAck ignores
			// acks beyond sentThrough; a dropped last ack would stall the
			// drain until the ack timeout.
			if last > u.sentThrough.Load() {
				u.sentThrough.Store(last)
			}
			done := u.sess.publishAsync(Message{Topic: u.topics.Events(), QoS: 1, Payload: msg}, u.poke)
			if u.afterPublish != nil {
				u.afterPublish(last)
			}
			queue = append(queue, inflight{last: last, done: done})
			cursor = last
			u.batches.Add(1)
			u.records.Add(uint64(len(ents)))
		}
		u.inFlight.Store(int64(len(queue)))

		wait := time.Hour
		if len(queue) > 0 {
			// A failed publish pokes wake, so only the ack timeout is timed.
			wait = max(u.opts.AckTimeout-u.now().Sub(progress), time.Millisecond)
		}
		if !retryAt.IsZero() && u.now().Before(retryAt) {
			wait = min(wait, max(retryAt.Sub(u.now()), time.Millisecond))
		}
		deadline.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-u.wake:
		case <-u.src.Notify():
		case <-deadline.C:
		case <-health.C:
			u.publishHealth()
			health.Reset(u.opts.HealthInterval)
		}
	}
}

// publishHealth publishes the retained health snapshot without waiting.
func (u *Uplink) publishHealth() {
	if !u.sess.Connected() {
		return
	}
	st := u.Stats()
	h := wire.Health{
		Agent: u.opts.Agent, BootID: u.opts.BootID, Time: u.now(), Version: u.opts.Version,
		UptimeS: u.now().Sub(u.start).Seconds(),
		Uplink: wire.UplinkHealth{Connected: st.Connected, Reconnects: st.Reconnects,
			Batches: st.BatchesSent, InFlight: st.InFlight},
		Counters: map[string]uint64{"uplink_bad_acks": st.BadAcks, "uplink_rewinds": st.Rewinds,
			"uplink_dropped_messages": u.sess.Stats().Dropped},
	}
	if u.opts.Health != nil {
		h.Outbox = u.opts.Health()
	}
	if u.opts.Devices != nil {
		h.Devices = u.opts.Devices()
	}
	if u.opts.Decorate != nil {
		u.opts.Decorate(&h)
	}
	b, err := json.Marshal(h)
	if err != nil {
		u.log.Error("uplink: marshal health", "err", err)
		return
	}
	// The result is not awaited: the next snapshot supersedes this one.
	u.sess.PublishAsync(Message{Topic: u.topics.Health(), QoS: 1, Retained: true, Payload: b})
}

// Rebirth makes the drain publish the birth (same boot id and bdseq) and
// a fresh health snapshot again, and resend every record the hub has not
// acked, without waiting for them (the agent.rebirth command,
// hub-commands.md §3). Not connected, it does nothing: the next connect
// publishes a birth and health anyway and resends from the acked point.
func (u *Uplink) Rebirth() {
	if !u.sess.Connected() {
		return
	}
	u.asked.Store(true)
	u.poke()
}

// Session returns the uplink's MQTT session, e.g. to subscribe to more
// topics (commands, allowlists) before Run.
func (u *Uplink) Session() *Session { return u.sess }

// Stats returns a snapshot of the uplink's counters.
func (u *Uplink) Stats() Stats {
	ss := u.sess.Stats()
	return Stats{
		BatchesSent: u.batches.Load(), RecordsSent: u.records.Load(), Acks: u.acks.Load(),
		Rewinds: u.rewinds.Load(), HubRewinds: u.hubRewinds.Load(), AckTimeouts: u.timeouts.Load(), BadAcks: u.badAcks.Load(),
		AcksBeyond: u.beyond.Load(), PublishErrors: u.pubErrs.Load(), SourceErrors: u.srcErrs.Load(),
		Births: u.births.Load(), BdSeq: u.currentBdSeq(), AckedThrough: u.src.AckedThrough(),
		SentThrough: u.sentThrough.Load(), Connected: ss.Connected, Reconnects: ss.Reconnects,
		InFlight: int(u.inFlight.Load()),
	}
}
