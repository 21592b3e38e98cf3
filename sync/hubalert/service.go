package hubalert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kioskedge/kioskedge/sync/hubstore"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// ErrOptions is returned by New for missing or invalid options.
var ErrOptions = errors.New("hubalert: invalid options")

// Topics returns the transition topic (QoS 1, not retained) and the
// retained summary of firing alerts under root (hub-alerts.md §5).
func Topics(root string) (transitions, firing string) {
	t := root + "/" + wire.Version + "/" + wire.HubSegment + "/alerts"
	return t, t + "/firing"
}

// Options configures New.
type Options struct {
	Rules Rules
	// Root is the topic root, for the MQTT topics; required with Publish.
	Root string
	// Publish sends an MQTT message; it must not block long and its
	// channel gets one value (nil once the broker acknowledged). nil, or
	// Rules.MQTT false, publishes nothing.
	Publish func(topic string, qos byte, retained bool, payload []byte) <-chan error
	// Now and After are the clock; defaults time.Now and time.After.
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
	// Tick is the period of time-based rules and of saving the state;
	// default 1 s.
	Tick time.Duration
	// Queue bounds the commits waiting for evaluation; default 1024. A
	// full queue drops the commit (counted in Stats.Dropped): ingest
	// never waits for alerts.
	Queue int
	// States, if set, returns every agent's stored state (the hub passes
	// its store's Agents); at the start of each Run and every Reconcile
	// the service applies each agent's latest stored status, so a death
	// in a commit dropped on a full queue, or committed while no service
	// ran, still raises the offline alert. Default Reconcile 30 s.
	States    func() []hubstore.AgentState
	Reconcile time.Duration
	// HTTPClient sends webhooks; nil uses a plain client (each attempt is
	// bounded by the webhook's timeout).
	HTTPClient *http.Client
	Logger     *slog.Logger
	// State, if set, keeps the state instead of Rules.StateFile (a hub on
	// PostgreSQL shares one between its instances: sync/hubpg). nil uses
	// FileState(Rules.StateFile), or keeps the state in memory when
	// StateFile is "".
	State StateStore
}

// Stats are the service's counters.
type Stats struct {
	Commits   uint64         `json:"commits"`   // commits evaluated
	Dropped   uint64         `json:"dropped"`   // commits dropped on a full queue
	Firing    int            `json:"firing"`    // alerts firing now
	Fired     uint64         `json:"fired"`     // firing transitions since start
	Resolved  uint64         `json:"resolved"`  // resolved transitions since start
	MQTTSent  uint64         `json:"mqtt_sent"` // transitions the broker acknowledged
	MQTTError uint64         `json:"mqtt_errors"`
	SaveError uint64         `json:"save_errors"`
	Webhooks  []WebhookStats `json:"webhooks"`
}

// Service evaluates the rules over what the hub commits and delivers the
// transitions. Create it with New, feed it with Offer (from the hub's
// OnCommit), run it with Run, then Close it.
type Service struct {
	opts  Options
	log   *slog.Logger
	in    chan hubstore.Write
	hooks []*webhook
	mqtt  chan mqttMsg

	dropped atomic.Uint64
	running atomic.Bool
	// summaryLost is set when the retained summary was not acknowledged
	// (the session was down at start, say); the next tick publishes it again.
	summaryLost atomic.Bool

	mu      sync.Mutex // guards everything below
	eng     *Engine
	history []Alert // oldest first, at most Rules.History
	stats   Stats
	dirty   bool
}

type mqttMsg struct {
	topic    string
	retained bool
	payload  []byte
}

// New validates opts and loads the saved state, if any, from
// Options.State or Rules.StateFile. It returns ErrOptions for Publish
// without Root, or an error wrapping the state's read or decode failure.
func New(opts Options) (*Service, error) {
	if opts.Publish != nil && opts.Root == "" {
		return nil, fmt.Errorf("%w: Publish needs Root", ErrOptions)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.After == nil {
		opts.After = time.After
	}
	if opts.Tick <= 0 {
		opts.Tick = time.Second
	}
	if opts.Queue <= 0 {
		opts.Queue = 1024
	}
	if opts.Reconcile <= 0 {
		opts.Reconcile = 30 * time.Second
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Rules.History <= 0 {
		opts.Rules.History = 1000
	}
	if opts.State == nil && opts.Rules.StateFile != "" {
		opts.State = FileState(opts.Rules.StateFile)
	}
	s := &Service{
		opts: opts, log: opts.Logger,
		in:   make(chan hubstore.Write, opts.Queue),
		mqtt: make(chan mqttMsg, 256),
		eng:  NewEngine(opts.Rules),
	}
	for _, w := range opts.Rules.Webhooks {
		s.hooks = append(s.hooks, newWebhook(w, opts.HTTPClient, opts.Now, opts.After, s.log))
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// Offer hands one committed write to the evaluator without waiting: it is
// the hub's OnCommit hook. A full queue drops it and counts it.
func (s *Service) Offer(w hubstore.Write) {
	select {
	case s.in <- w:
	default:
		if n := s.dropped.Add(1); bits.OnesCount64(n) == 1 {
			s.log.Warn("alert queue full; commit not evaluated", "dropped", n)
		}
	}
}

// Run evaluates and delivers until ctx ends, then saves the state and
// returns nil. Webhook deliveries still being retried are abandoned;
// those still queued wait for the next Run. Run may be called again
// after it returned (a hub instance that leads again, see Reload); it
// returns ErrOptions while another Run is running.
func (s *Service) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return fmt.Errorf("%w: Run called twice", ErrOptions)
	}
	defer s.running.Store(false)
	var wg sync.WaitGroup
	for _, w := range s.hooks {
		wg.Go(func() { w.run(ctx) })
	}
	if s.opts.Publish != nil && s.opts.Rules.MQTT {
		wg.Go(func() { s.publishLoop(ctx) })
		s.publishFiring()
	}
	defer wg.Wait()
	lastSave, lastReconcile := s.opts.Now(), s.opts.Now()
	if s.opts.States != nil {
		// What the store holds now: statuses committed while no service
		// ran (a hub instance taking the lead over from another) count.
		s.reconcile(lastReconcile)
	}
	tick := s.opts.After(s.opts.Tick)
	for {
		select {
		case <-ctx.Done():
			s.save()
			return nil
		case w := <-s.in:
			s.evaluate(w)
		case <-tick:
			now := s.opts.Now()
			if s.opts.States != nil && now.Sub(lastReconcile) >= s.opts.Reconcile {
				s.reconcile(now)
				lastReconcile = now
			}
			s.mu.Lock()
			out := s.eng.Tick(now)
			s.mu.Unlock()
			s.emit(out)
			if len(out) == 0 && s.summaryLost.Swap(false) {
				s.publishFiring()
			}
			if now := s.opts.Now(); now.Sub(lastSave) >= saveEvery || len(out) > 0 {
				s.save()
				lastSave = now
			}
			tick = s.opts.After(s.opts.Tick)
		}
	}
}

// evaluate applies one committed write.
func (s *Service) evaluate(w hubstore.Write) {
	now := s.opts.Now()
	var out []Alert
	s.mu.Lock()
	s.stats.Commits++
	for _, su := range w.Statuses {
		out = append(out, s.eng.Status(su.Status, now)...)
	}
	for _, hu := range w.Health {
		h, err := wire.DecodeHealth(hu.Raw)
		if err != nil {
			continue // the hub accepted it, so it decoded there
		}
		out = append(out, s.eng.Health(hu.Agent, h, now)...)
	}
	for _, b := range w.Batches {
		for _, e := range b.Entries {
			r, err := wire.UnmarshalRecord(e.Seq, b.Agent, e.Raw)
			if err != nil {
				continue
			}
			out = append(out, s.eng.Record(r, now)...)
		}
	}
	s.dirty = true
	s.mu.Unlock()
	s.emit(out)
}

// reconcile applies every agent's latest stored status; statuses the
// engine already applied change nothing.
func (s *Service) reconcile(now time.Time) {
	var out []Alert
	for _, a := range s.opts.States() {
		if !a.HasStatus || len(a.Status) == 0 {
			continue
		}
		st, err := wire.DecodeStatus(a.Status)
		if err != nil || st.Agent != a.ID {
			continue // the hub stored it decoded; nothing to learn here
		}
		s.mu.Lock()
		out = append(out, s.eng.Status(st, now)...)
		s.mu.Unlock()
	}
	s.emit(out)
}

// emit records transitions in the history and hands them to every
// receiver.
func (s *Service) emit(out []Alert) {
	if len(out) == 0 {
		return
	}
	s.mu.Lock()
	for _, a := range out {
		if a.State == StateFiring {
			s.stats.Fired++
		} else {
			s.stats.Resolved++
		}
		s.history = append(s.history, a)
	}
	if over := len(s.history) - s.opts.Rules.History; over > 0 {
		s.history = append(s.history[:0:0], s.history[over:]...)
	}
	s.dirty = true
	s.mu.Unlock()
	mqttOn := s.opts.Publish != nil && s.opts.Rules.MQTT
	transitions, _ := Topics(s.opts.Root)
	for _, a := range out {
		body, err := json.Marshal(a)
		if err != nil {
			panic(err) // strings and times always marshal
		}
		s.log.Info("alert", "rule", a.Rule, "agent", a.Agent, "subject", a.Subject, "state", a.State, "id", a.ID)
		for _, w := range s.hooks {
			w.offer(delivery{event: a.ID + ":" + a.State, id: a.ID, body: body})
		}
		if mqttOn {
			s.queueMQTT(mqttMsg{topic: transitions, payload: body})
		}
	}
	if mqttOn {
		s.publishFiring()
	}
}

// maxFiringSummary bounds the retained summary's alerts.
const maxFiringSummary = 200

// publishFiring queues the retained summary of firing alerts.
func (s *Service) publishFiring() {
	s.mu.Lock()
	firing := s.eng.Firing()
	s.mu.Unlock()
	sum := struct {
		Time      time.Time `json:"time"`
		Count     int       `json:"count"`
		Truncated bool      `json:"truncated,omitempty"`
		Alerts    []Alert   `json:"alerts"`
	}{Time: s.opts.Now().UTC(), Count: len(firing), Alerts: firing}
	if len(firing) > maxFiringSummary {
		sum.Alerts, sum.Truncated = firing[:maxFiringSummary], true
	}
	if sum.Alerts == nil {
		sum.Alerts = []Alert{}
	}
	body, err := json.Marshal(sum)
	if err != nil {
		panic(err)
	}
	_, firingTopic := Topics(s.opts.Root)
	s.queueMQTT(mqttMsg{topic: firingTopic, retained: true, payload: body})
}

func (s *Service) queueMQTT(m mqttMsg) {
	select {
	case s.mqtt <- m:
	default:
		s.mu.Lock()
		s.stats.MQTTError++
		s.mu.Unlock()
	}
}

// publishLoop publishes queued MQTT messages one at a time, waiting for
// each acknowledgement (bounded), so a slow broker fills only this queue.
func (s *Service) publishLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-s.mqtt:
			done := s.opts.Publish(m.topic, 1, m.retained, m.payload)
			var err error
			select {
			case err = <-done:
			case <-ctx.Done():
				return
			}
			if err != nil && m.retained {
				s.summaryLost.Store(true)
			}
			s.mu.Lock()
			if err != nil {
				s.stats.MQTTError++
			} else if !m.retained {
				s.stats.MQTTSent++
			}
			s.mu.Unlock()
		}
	}
}

// Stats returns a copy of the counters.
func (s *Service) Stats() Stats {
	s.mu.Lock()
	st := s.stats
	st.Firing = len(s.eng.Firing())
	s.mu.Unlock()
	st.Dropped = s.dropped.Load()
	st.Webhooks = make([]WebhookStats, 0, len(s.hooks))
	for _, w := range s.hooks {
		st.Webhooks = append(st.Webhooks, w.Stats())
	}
	return st
}

// Firing returns the alerts firing now, sorted by key.
func (s *Service) Firing() []Alert {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eng.Firing()
}

// FiringByRule returns how many alerts fire now for each enabled rule
// (0 for a rule with none), for the hub's Prometheus metrics.
func (s *Service) FiringByRule() map[string]int {
	out := map[string]int{}
	for _, n := range ruleNames {
		if s.opts.Rules.rule(n).Enabled {
			out[n] = 0
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.eng.Firing() {
		out[a.Rule]++
	}
	return out
}

// History returns up to limit transitions, newest first (limit ≤ 0: all).
func (s *Service) History(limit int) []Alert {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.history)
	if limit > 0 && limit < n {
		n = limit
	}
	out := make([]Alert, 0, n)
	for i := len(s.history) - 1; i >= 0 && len(out) < n; i-- {
		out = append(out, s.history[i])
	}
	return out
}

// Close saves the state. It is idempotent; call it after Run returned.
func (s *Service) Close() error {
	s.save()
	return nil
}

const stateVersion = 1

// saveEvery is how often the state is saved when only evidence changed;
// a tick with transitions saves at once.
const saveEvery = 5 * time.Second

// Reload replaces the state (every key's episode and evidence, the
// agents, the history) with the saved one and drops the commits and
// deliveries queued but not handled: a hub instance that does not lead
// calls it to show the leader's alerts, and one that becomes leader
// calls it before Run to start from the last leader's state. Without a
// saved state (no Options.State nor Rules.StateFile, or nothing saved
// yet) the state becomes empty. It returns ErrOptions while Run runs, or
// the state's read or decode error, leaving the state as it was.
func (s *Service) Reload() error {
	if !s.running.CompareAndSwap(false, true) {
		return fmt.Errorf("%w: Reload while Run runs", ErrOptions)
	}
	defer s.running.Store(false)
	snap, err := s.read()
	if err != nil {
		return err
	}
	for drained := false; !drained; {
		select {
		case <-s.in:
		case <-s.mqtt:
		default:
			drained = true
		}
	}
	for _, w := range s.hooks {
		w.drain()
	}
	s.mu.Lock()
	s.apply(snap)
	s.dirty = false
	s.mu.Unlock()
	return nil
}

// load reads the saved state, if any, at New.
func (s *Service) load() error {
	snap, err := s.read()
	if err != nil {
		return err
	}
	s.apply(snap)
	return nil
}

// read loads and decodes the saved state; a zero snapshot when none.
func (s *Service) read() (snapshot, error) {
	var snap snapshot
	if s.opts.State == nil {
		return snap, nil
	}
	b, err := s.opts.State.Load()
	if err != nil {
		return snap, fmt.Errorf("hubalert: state: %w", err)
	}
	if b == nil {
		return snap, nil
	}
	if err := json.Unmarshal(b, &snap); err != nil {
		return snap, fmt.Errorf("hubalert: state: %w", err)
	}
	if snap.Version != stateVersion {
		return snap, fmt.Errorf("hubalert: state: version %d, want %d", snap.Version, stateVersion)
	}
	return snap, nil
}

// apply makes snap the state; s.mu held or not yet shared.
func (s *Service) apply(snap snapshot) {
	s.eng.conds, s.eng.agents = snap.Conds, snap.Agents
	if s.eng.conds == nil {
		s.eng.conds = map[string]*cond{}
	}
	if s.eng.agents == nil {
		s.eng.agents = map[string]*agentInfo{}
	}
	s.history = snap.History
	if over := len(s.history) - s.opts.Rules.History; over > 0 {
		s.history = s.history[over:]
	}
}

// save writes the state (Options.State; the state file by an atomic
// rewrite) if anything changed; failures are counted and logged, and
// retried at the next tick.
func (s *Service) save() {
	s.mu.Lock()
	if s.opts.State == nil || !s.dirty {
		s.mu.Unlock()
		return
	}
	b, err := json.Marshal(snapshot{Version: stateVersion, Conds: s.eng.conds, Agents: s.eng.agents, History: s.history})
	s.dirty = false
	s.mu.Unlock()
	if err == nil {
		err = s.opts.State.Save(b)
	}
	if err != nil {
		s.mu.Lock()
		s.stats.SaveError++
		s.dirty = true
		s.mu.Unlock()
		s.log.Error("alert state not saved", "err", err)
	}
}

func isPow2(n uint64) bool { return bits.OnesCount64(n) == 1 }
