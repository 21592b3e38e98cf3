package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/sync/hub/hubrun"
	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
)

// The fleet suite (issue 7 item 8), rows (a) and (b):
//
// (a) Reconnect storm: 1,000 simulated agents (an uplink.Uplink each, over
// a small in-memory source of 3 records) and one hub (hubrun, in this
// process, retrying within 1 s: see hubBackoff) against a real Mosquitto. Once
// every agent is online at the hub and acked, the broker is stopped, each
// agent gets 3 more records, and after a 5 s outage the broker is started
// again on the same port. Rows:
//   - fleet/storm_recovery_s: seconds from the broker's start until every
//     agent reconnected, the hub shows it online and has acked all its
//     records;
//   - fleet/storm_peak_share_pct: the largest share of the agents whose
//     reconnect fell within any one-second window;
//   - fleet/storm_records_lost: records the agents hold that the hub does
//     not (counted at the hub, duplicates excluded); must be 0.
//
// An agent that reconnects before the hub has subscribed again sends its
// batch to no subscriber (clean sessions) and the broker drops it; the
// agent resends when the hub's retained status (hub-protocol.md §12)
// turns online, not after its 15 s ack timeout, so the recovery is the
// agents' own reconnect time plus the hub's.
//
// All three against the same agents with a fixed 1 s retry and no jitter
// (uplink.Backoff{Min: 1s, Max: 1s} with a Rand that always returns 1, so
// every retry sleeps exactly 1 s), measured in the same run. The agents
// under test use the agent's defaults (agent/config.Defaults: backoff_min
// 1 s, backoff_max 2 min, backoff_stable 1 min, reconnect_spread 30 s;
// full jitter): their first reconnect after the broker went away falls at
// random in 30 s, so recovery takes up to about 30 s, about twice the
// baseline's, and the peak second holds about 3-7% of them rather than
// 20-25%.
//
// KBENCH_FLEET_STORM_ONLY=1 runs the storm rows only (the health rows
// take another minute).
//
// (b) Health: hubd (hubrun, run as a child process so its RSS is its own)
// tracks the retained health of 10,000 agent ids, published through 4 MQTT
// clients at a steady 1,000 snapshots/s (10 s; a real fleet of 10,000 with
// a 60 s health interval sends about 170/s). Rows:
//   - fleet/health_staleness_p99_ms: p99 of the time from a snapshot's
//     publish (its own time field) to the hub having committed it (the
//     dashboard's fleet model, sync/hubfleet, tells of the change after
//     the commit), against the publish→delivery p99 of the broker alone to
//     a plain subscriber, on the same messages (the subscriber runs in
//     kbench's process next to the publishers, the hub in its own, so
//     the baseline can come out the slower of the two on a quiet run);
//   - fleet/hubd_rss_mb_10k: the hub process's VmRSS once every id is
//     tracked, against its VmRSS when ready, before any agent.
//
// -quick: 100 agents and 1,000 health ids (500/s); the row names stay.
//
// Row (c), fleet/ingest_2x_ratio (two hub instances on PostgreSQL against
// one), is measured in fleet_ingest.go.
//
// File descriptors: every agent holds one TCP connection here and one in
// the broker, so the suite raises RLIMIT_NOFILE to at least 2 per agent
// plus 512 (about 2,600 for 1,000 agents) before starting the broker,
// which inherits it; it fails, saying so, when the hard limit is lower.

// fleetSize is what the fleet suite measures; the test shrinks it.
type fleetSize struct {
	kind       broker.Kind
	agents     int
	records    int           // per agent before the outage, and again during it
	outage     time.Duration // how long the broker stays down
	healthIDs  int
	healthRate int // health snapshots per second, all publishers together
	publishers int
	// ackTimeout is the agents' uplink AckTimeout; 0 keeps the default
	// (15 s). The test shortens it to stay fast.
	ackTimeout time.Duration
	// spread is the agents' reconnect spread; 0 keeps the agent's default
	// (30 s). The test shortens it to stay fast.
	spread    time.Duration
	stormOnly bool // skip the health rows
}

// hubBackoff is the storm hub's reconnect back-off: a retry within 1 s.
// hubd's default (uplink's: 1 s doubling to 2 min, full jitter, reset
// after 1 min up) would add one random wait of up to 2^k s to both runs
// and drown the agents' difference; the hub is one client, not a storm.
var hubBackoff = uplink.Backoff{Min: time.Second, Max: time.Second, StableAfter: time.Minute}

// fleetMosquittoConf is the broker's extra configuration for a fleet:
// max_connections -1 is mosquitto's default (unlimited), written out.
const fleetMosquittoConf = "max_connections -1"

// fleetMaxQueued is the broker's max_queued_messages for a fleet, raised
// from mosquitto's 1,000: with the stock limit, 1,000 agents coming online
// at once overflow the hub's queue and mosquitto drops QoS 1 messages
// towards it, births among them (measured: 49 of 1,000 births lost, so the
// hub showed those agents offline until they published again). A broker
// for a fleet needs this line; max_inflight_messages stays at its 20.
const fleetMaxQueued = 100_000

const (
	fleetRoot     = "kbench/fleet"
	stormDeadline = 3 * time.Minute // waiting longer than this is a failure
	fixedAgainst  = "the same agents retrying every 1 s, no jitter"
	brokerNote    = "; mosquitto max_queued_messages 100000 (stock 1000 drops births at the hub)"
)

// The health child: kbench re-executes itself with these set.
const (
	envFleetHub    = "KBENCH_FLEET_HUB" // set: run as the health suite's hubd
	envFleetBroker = "KBENCH_FLEET_BROKER"
	envFleetDir    = "KBENCH_FLEET_DIR"
	envFleetIDs    = "KBENCH_FLEET_IDS"
)

func init() {
	// The child runs before main (and before a test binary's tests), so
	// main.go needs no line for it.
	if os.Getenv(envFleetHub) != "" {
		os.Exit(runFleetHubChild())
	}
}

func fleetSuite(ctx context.Context, cfg Config) ([]Row, error) {
	sz := fleetSize{kind: broker.Mosquitto, agents: 1000, records: 3, outage: 5 * time.Second,
		healthIDs: 10_000, healthRate: 1000, publishers: 4}
	if cfg.Quick {
		sz.agents, sz.healthIDs, sz.healthRate = 100, 1000, 500
	}
	sz.stormOnly = os.Getenv("KBENCH_FLEET_STORM_ONLY") != ""
	if _, err := broker.MosquittoPath(); err != nil {
		return nil, fmt.Errorf("the fleet suite runs against a real Mosquitto: %w (apt-get install -y mosquitto)", err)
	}
	return withIngest(ctx, cfg)(runFleet(ctx, cfg, sz)) // row (c): fleet_ingest.go
}

func runFleet(ctx context.Context, cfg Config, sz fleetSize) ([]Row, error) {
	need := uint64(2*sz.agents + 512)
	limit, err := raiseNoFile(need)
	if err != nil {
		return nil, err
	}
	cfg.progressf("fleet: RLIMIT_NOFILE %d (needs %d: 2 per agent and 512 spare)", limit, need)
	dir, err := cfg.tempDir("fleet")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	b, err := broker.Start(broker.Options{Kind: sz.kind, MosquittoConf: fleetMosquittoConf, MaxQueuedMessages: fleetMaxQueued})
	if err != nil {
		return nil, err
	}
	defer b.Close()

	def := config.Defaults().Hub
	bo := uplink.Backoff{Min: def.BackoffMin.D(), Max: def.BackoffMax.D(), StableAfter: def.BackoffStable.D(),
		Spread: def.ReconnectSpread.D()}
	if sz.spread > 0 {
		bo.Spread = sz.spread
	}
	cfg.progressf("fleet: storm, %d agents with the agent's default back-off (%v to %v, reconnect spread %v), %v outage",
		sz.agents, bo.Min, bo.Max, bo.Spread, sz.outage)
	jit, err := stormOnce(ctx, cfg, b, filepath.Join(dir, "jitter"), "jitter", sz, bo, nil)
	if err != nil {
		return nil, fmt.Errorf("storm: %w", err)
	}
	cfg.progressf("fleet: storm baseline, %d agents retrying every 1 s without jitter", sz.agents)
	fixed, err := stormOnce(ctx, cfg, b, filepath.Join(dir, "fixed"), "fixed", sz,
		uplink.Backoff{Min: time.Second, Max: time.Second, StableAfter: time.Minute}, func() float64 { return 1 })
	if err != nil {
		return nil, fmt.Errorf("storm baseline: %w", err)
	}
	rows := []Row{
		newRow("fleet", "storm_recovery_s", jit.recovery.Seconds(), "s", fixed.recovery.Seconds(), fixedAgainst),
		newRow("fleet", "storm_peak_share_pct", jit.peakShare*100, "%", fixed.peakShare*100, fixedAgainst),
		newRow("fleet", "storm_records_lost", float64(jit.lost), "records", float64(fixed.lost), fixedAgainst+brokerNote),
	}
	if jit.lost != 0 || fixed.lost != 0 {
		return rows, fmt.Errorf("storm: the hub lost records (%d with jitter, %d fixed)", jit.lost, fixed.lost)
	}
	if sz.stormOnly {
		cfg.progressf("fleet: KBENCH_FLEET_STORM_ONLY set: health rows skipped")
		return rows, nil
	}

	cfg.progressf("fleet: health, %d ids at %d/s through %d clients", sz.healthIDs, sz.healthRate, sz.publishers)
	h, err := healthOnce(ctx, cfg, b, filepath.Join(dir, "health"), sz)
	if err != nil {
		return rows, fmt.Errorf("health: %w", err)
	}
	rows = append(rows,
		newRow("fleet", "health_staleness_p99_ms", h.p99ms, "ms", h.brokerP99ms,
			"publish→delivery p99 of the broker alone to a plain subscriber, same messages"),
		newRow("fleet", "hubd_rss_mb_10k", h.rssMB, "MB", h.idleRssMB,
			fmt.Sprintf("the hub process when ready, before any agent (%d ids tracked)", sz.healthIDs)),
	)
	return rows, nil
}

// raiseNoFile raises the soft RLIMIT_NOFILE to at least need (up to the
// hard limit) and returns the soft limit now in effect.
func raiseNoFile(need uint64) (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, fmt.Errorf("RLIMIT_NOFILE: %w", err)
	}
	if l.Cur >= need {
		return l.Cur, nil
	}
	if l.Max < need {
		return l.Cur, fmt.Errorf("RLIMIT_NOFILE hard limit %d is below the %d file descriptors the fleet suite needs (ulimit -Hn)", l.Max, need)
	}
	l.Cur = need
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, fmt.Errorf("raise RLIMIT_NOFILE to %d: %w", need, err)
	}
	return need, nil
}

// fleetSource is a tiny in-memory uplink.Source.
type fleetSource struct {
	mu     sync.Mutex
	recs   []wire.Entry // unacked, in order
	next   uint64
	acked  atomic.Uint64
	notify chan struct{}
}

func newFleetSource() *fleetSource {
	return &fleetSource{next: 1, notify: make(chan struct{}, 1)}
}

func (s *fleetSource) append(n int) error {
	s.mu.Lock()
	for range n {
		raw, err := wire.MarshalRecord(wire.Record{Kind: wire.KindAccess, Class: wire.ClassCritical,
			Time: time.Now(), Body: []byte(`{"door":"d1","granted":true}`)})
		if err != nil {
			s.mu.Unlock()
			return err
		}
		s.recs = append(s.recs, wire.Entry{Seq: s.next, Raw: raw})
		s.next++
	}
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return nil
}

func (s *fleetSource) Read(after uint64, maxRecords, maxBytes int) ([]wire.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []wire.Entry
	size := 0
	for _, e := range s.recs {
		if e.Seq <= after {
			continue
		}
		if len(out) >= maxRecords || (len(out) > 0 && size+len(e.Raw) > maxBytes) {
			break
		}
		out = append(out, e)
		size += len(e.Raw)
	}
	return out, nil
}

func (s *fleetSource) Ack(through uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if through <= s.acked.Load() {
		return nil
	}
	s.acked.Store(through)
	i := 0
	for i < len(s.recs) && s.recs[i].Seq <= through {
		i++
	}
	s.recs = s.recs[i:]
	return nil
}

func (s *fleetSource) AckedThrough() uint64    { return s.acked.Load() }
func (s *fleetSource) Notify() <-chan struct{} { return s.notify }

type stormResult struct {
	recovery  time.Duration
	peakShare float64 // 0..1
	lost      int64
}

// stormOnce runs one reconnect storm with a fresh hub and fresh agents
// using back-off bo (and jitter source rnd; nil = uplink's).
func stormOnce(ctx context.Context, cfg Config, b *broker.Broker, dir, name string, sz fleetSize,
	bo uplink.Backoff, rnd func() float64) (stormResult, error) {
	var res stormResult
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, err
	}
	root := fleetRoot + "/" + name
	srv, err := hubrun.New(hubrun.Config{Broker: b.URL(), AllowPlaintext: true, Root: root,
		DBPath: filepath.Join(dir, "hub.db"), ClientID: "kbench-fleet-hub-" + name, NoClock: true,
		Backoff: hubBackoff})
	if err != nil {
		return res, err
	}
	defer srv.Close()
	hubCtx, stopHub := context.WithCancel(ctx)
	var hubWG sync.WaitGroup
	hubWG.Go(func() { _ = srv.Run(hubCtx) }) // nil when stopped; ingest errors show as missing acks
	defer func() { stopHub(); hubWG.Wait() }()

	codec, err := wire.NewCodec(wire.Limits{})
	if err != nil {
		return res, err
	}
	defer codec.Close()

	var armed atomic.Bool
	type agent struct {
		id  string
		src *fleetSource
		u   *uplink.Uplink
		at  atomic.Int64 // unix ns of the first connect after armed; 0 none
		// timeoutsAt is the agent's AckTimeouts at that connect: one
		// counted before it fired while the agent was away (its in-flight
		// batch failed with the connection), not a hub that did not ack.
		timeoutsAt atomic.Uint64
	}
	agents := make([]*agent, sz.agents)
	for i := range agents {
		a := &agent{id: fmt.Sprintf("fleet-%05d", i), src: newFleetSource()}
		if err := a.src.append(sz.records); err != nil {
			return res, err
		}
		a.u, err = uplink.New(uplink.Options{
			Session: uplink.SessionOptions{Broker: b.URL(), AllowPlaintext: true, Backoff: bo, Rand: rnd},
			Root:    root, Agent: a.id, BootID: "kbench-" + name, Version: "kbench",
			BdSeqPath: filepath.Join(dir, a.id+".bdseq"), Codec: codec, HealthInterval: time.Hour, AckTimeout: sz.ackTimeout,
		}, a.src)
		if err != nil {
			return res, err
		}
		a.u.OnConnect(func() {
			if armed.Load() && a.at.CompareAndSwap(0, time.Now().UnixNano()) {
				a.timeoutsAt.Store(a.u.Stats().AckTimeouts)
			}
		})
		agents[i] = a
	}
	agentCtx, stopAgents := context.WithCancel(ctx)
	var agentWG sync.WaitGroup
	for _, a := range agents {
		agentWG.Go(func() { _ = a.u.Run(agentCtx) }) // nil when stopped
	}
	defer func() { stopAgents(); agentWG.Wait() }()

	// done reports whether every agent has been acked through want and
	// the hub shows it online.
	counts := func(want uint64, reconnected bool) (acked, online int) {
		for _, a := range agents {
			if a.src.AckedThrough() >= want && (!reconnected || a.at.Load() != 0) {
				acked++
			}
		}
		if acked < len(agents) {
			return acked, 0 // the hub's list is read only when it can matter
		}
		for _, ai := range srv.Hub().Agents() {
			if ai.Online {
				online++
			}
		}
		return acked, online
	}
	done := func(want uint64, reconnected bool) bool {
		acked, online := counts(want, reconnected)
		return acked == len(agents) && online == len(agents)
	}
	var t0 time.Time          // the broker's start after the outage
	var hubBack time.Duration // from the broker's start until the hub is connected again
	waitDone := func(want uint64, reconnected bool) error {
		deadline := time.Now().Add(stormDeadline)
		lastReport := time.Now()
		for !done(want, reconnected) {
			if reconnected && hubBack == 0 && srv.Session().Connected() {
				hubBack = time.Since(t0)
			}
			if time.Now().After(deadline) {
				acked, online := counts(want, reconnected)
				return fmt.Errorf("%s: after %v, %d of %d agents acked through %d, %d online at the hub",
					name, stormDeadline, acked, len(agents), want, online)
			}
			if time.Since(lastReport) > 5*time.Second {
				acked, online := counts(want, reconnected)
				cfg.progressf("fleet: %s: %d of %d agents acked through %d, %d online at the hub", name, acked, len(agents), want, online)
				lastReport = time.Now()
			}
			if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
				return err
			}
		}
		return nil
	}
	first := uint64(sz.records)
	if err := waitDone(first, false); err != nil {
		return res, err
	}
	// resends sums the agents' resends after the hub said it was online
	// and after an ack timeout.
	resends := func() (hubRewinds, ackTimeouts uint64) {
		for _, a := range agents {
			st := a.u.Stats()
			hubRewinds += st.HubRewinds
			ackTimeouts += st.AckTimeouts
		}
		return hubRewinds, ackTimeouts
	}
	rewinds0, timeouts0 := resends()
	cfg.progressf("fleet: %s: %d agents online and acked (resends: %d on the hub's online status, %d on the ack timeout); stopping the broker",
		name, len(agents), rewinds0, timeouts0)

	armed.Store(true)
	if err := b.Stop(); err != nil {
		return res, err
	}
	for _, a := range agents {
		if err := a.src.append(sz.records); err != nil {
			return res, err
		}
	}
	if err := sleepCtx(ctx, sz.outage); err != nil {
		return res, err
	}
	t0 = time.Now()
	if err := b.Restart(); err != nil {
		return res, err
	}
	if err := waitDone(2*first, true); err != nil {
		return res, err
	}
	res.recovery = time.Since(t0)

	times := make([]int64, len(agents))
	for i, a := range agents {
		times[i] = a.at.Load()
	}
	res.peakShare = float64(peakInWindow(times, int64(time.Second))) / float64(len(agents))
	var held uint64
	for _, a := range agents {
		r, ok := srv.Hub().AgentReceived(a.id)
		if ok {
			held += r.Count
		}
	}
	res.lost = int64(2*first*uint64(len(agents))) - int64(held)
	hubRewinds, ackTimeouts := resends()
	hubRewinds -= rewinds0
	ackTimeouts -= timeouts0
	var timeoutsOnline uint64 // ack timeouts after the agent's reconnect
	for _, a := range agents {
		timeoutsOnline += a.u.Stats().AckTimeouts - a.timeoutsAt.Load()
	}
	cfg.progressf("fleet: %s: recovered in %v (the hub reconnected after %v), peak %.1f%% in one second, %d of %d records at the hub; "+
		"resends since the outage: %d on the hub's online status, %d on the ack timeout (%d of them after the agent reconnected)",
		name, res.recovery.Round(time.Millisecond), hubBack.Round(time.Millisecond), res.peakShare*100, held, 2*first*uint64(len(agents)),
		hubRewinds, ackTimeouts, timeoutsOnline)
	return res, nil
}

// peakInWindow returns the largest number of times (any order) within any
// window of length w: t[j]-t[i] < w.
func peakInWindow(times []int64, w int64) int {
	t := slices.Clone(times)
	slices.Sort(t)
	best, i := 0, 0
	for j := range t {
		for t[j]-t[i] >= w {
			i++
		}
		best = max(best, j-i+1)
	}
	return best
}

type healthResult struct {
	p99ms, brokerP99ms float64
	rssMB, idleRssMB   float64
}

// healthOnce starts the hub child, publishes one health snapshot per id at
// sz.healthRate through sz.publishers clients, and reads the child's p99
// and RSS once it has committed every id.
func healthOnce(ctx context.Context, cfg Config, b *broker.Broker, dir string, sz fleetSize) (healthResult, error) {
	var res healthResult
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, err
	}
	exe, err := os.Executable()
	if err != nil {
		return res, err
	}
	cctx, cancel := context.WithTimeout(ctx, stormDeadline)
	defer cancel()
	cmd := exec.CommandContext(cctx, exe)
	cmd.Env = append(os.Environ(), envFleetHub+"=1", envFleetBroker+"="+b.URL(), envFleetDir+"="+dir,
		envFleetIDs+"="+strconv.Itoa(sz.healthIDs))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return res, err
	}
	if err := cmd.Start(); err != nil {
		return res, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // a child already gone is fine
		_ = cmd.Wait()                          // its exit status is checked through its lines
	}()
	lines := bufio.NewReader(out)
	readLine := func(prefix string) ([]float64, error) {
		line, err := lines.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("hub child: %w", err)
		}
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), prefix+" ")
		if !ok {
			return nil, fmt.Errorf("hub child said %q", line)
		}
		var vals []float64
		for f := range strings.FieldsSeq(rest) {
			v, err := strconv.ParseFloat(f, 64)
			if err != nil {
				return nil, fmt.Errorf("hub child said %q", line)
			}
			vals = append(vals, v)
		}
		return vals, nil
	}
	ready, err := readLine("ready")
	if err != nil || len(ready) != 1 {
		return res, errors.Join(err, errors.New("hub child: no ready line"))
	}
	res.idleRssMB = ready[0]

	// The baseline: a plain subscriber to the same messages.
	var (
		latMu sync.Mutex
		lat   []float64
	)
	sub, err := uplink.NewSession(uplink.SessionOptions{Broker: b.URL(), ClientID: "kbench-fleet-sub", AllowPlaintext: true})
	if err != nil {
		return res, err
	}
	if err := sub.Subscribe(wire.Filter(fleetRoot+"/health", wire.LeafHealth), 1, func(_ string, p []byte) {
		now := time.Now()
		h, err := wire.DecodeHealth(p)
		if err != nil {
			return
		}
		latMu.Lock()
		lat = append(lat, float64(now.Sub(h.Time).Microseconds())/1000)
		latMu.Unlock()
	}); err != nil {
		return res, err
	}
	sessCtx, stopSess := context.WithCancel(ctx)
	var sessWG sync.WaitGroup
	defer func() { stopSess(); sessWG.Wait() }()
	sessWG.Go(func() { _ = sub.Run(sessCtx) }) // nil when stopped
	pubs := make([]*uplink.Session, sz.publishers)
	for i := range pubs {
		if pubs[i], err = uplink.NewSession(uplink.SessionOptions{Broker: b.URL(),
			ClientID: fmt.Sprintf("kbench-fleet-pub-%d", i), AllowPlaintext: true}); err != nil {
			return res, err
		}
		p := pubs[i]
		sessWG.Go(func() { _ = p.Run(sessCtx) })
	}
	deadline := time.Now().Add(30 * time.Second)
	for !sub.Connected() || slices.ContainsFunc(pubs, func(p *uplink.Session) bool { return !p.Connected() }) {
		if time.Now().After(deadline) {
			return res, errors.New("health clients did not connect")
		}
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return res, err
		}
	}

	start := time.Now()
	interval := time.Second / time.Duration(sz.healthRate)
	var pubWG sync.WaitGroup
	pubErrs := make(chan error, len(pubs))
	for p, s := range pubs {
		pubWG.Go(func() {
			for i := p; i < sz.healthIDs; i += len(pubs) {
				if err := sleepCtx(ctx, time.Until(start.Add(time.Duration(i)*interval))); err != nil {
					pubErrs <- err
					return
				}
				id := fmt.Sprintf("health-%05d", i)
				payload, err := fleetHealth(id)
				if err == nil {
					err = s.Publish(ctx, uplink.Message{Topic: wire.Topics{Root: fleetRoot + "/health", Agent: id}.Health(),
						QoS: 1, Retained: true, Payload: payload})
				}
				if err != nil {
					pubErrs <- err
					return
				}
			}
		})
	}
	pubWG.Wait()
	close(pubErrs)
	if err := <-pubErrs; err != nil {
		return res, err
	}
	elapsed := time.Since(start)
	cfg.progressf("fleet: health: %d snapshots published in %v (%.0f/s)", sz.healthIDs,
		elapsed.Round(time.Millisecond), float64(sz.healthIDs)/elapsed.Seconds())
	doneVals, err := readLine("done")
	if err != nil || len(doneVals) != 3 {
		return res, errors.Join(err, errors.New("hub child: no done line"))
	}
	res.p99ms, res.rssMB = doneVals[0], doneVals[1]
	for {
		latMu.Lock()
		got := len(lat)
		latMu.Unlock()
		if got >= sz.healthIDs {
			break
		}
		if time.Now().After(deadline.Add(stormDeadline)) {
			return res, fmt.Errorf("the plain subscriber got %d of %d snapshots", got, sz.healthIDs)
		}
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return res, err
		}
	}
	latMu.Lock()
	res.brokerP99ms = percentile(lat, 0.99)
	latMu.Unlock()
	cfg.progressf("fleet: health: hub p99 %.1f ms over %.0f commits, broker alone p99 %.1f ms; hub RSS %.1f MB (%.1f MB idle)",
		res.p99ms, doneVals[2], res.brokerP99ms, res.rssMB, res.idleRssMB)
	return res, nil
}

// fleetHealth is one agent's health snapshot, timed now.
func fleetHealth(id string) ([]byte, error) {
	now := time.Now()
	return json.Marshal(wire.Health{Agent: id, BootID: "kbench", Time: now, Version: "kbench", UptimeS: 3600,
		Outbox: wire.OutboxHealth{Depth: 2, OldestUnsentS: 1.5, DiskBytes: 1 << 20, NextSeq: 1000, AckedThrough: 998},
		Uplink: wire.UplinkHealth{Connected: true, Batches: 400},
		Devices: []wire.DeviceHealth{{Name: "reader", Connected: true, LastSeen: now},
			{Name: "printer", Connected: true, LastSeen: now}},
	})
}

// percentile returns the q-quantile (nearest rank) of v; 0 when empty.
func percentile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// runFleetHubChild is the health suite's hubd: a hubrun server with the
// dashboard's fleet model. It prints "ready <VmRSS MB>", then, once the
// fleet holds the health of every expected id, "done <p99 ms> <VmRSS MB>
// <samples>", and exits.
func runFleetHubChild() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "kbench fleet hub:", err)
		return 1
	}
	n, err := strconv.Atoi(os.Getenv(envFleetIDs))
	if err != nil {
		return fail(err)
	}
	srv, err := hubrun.New(hubrun.Config{Broker: os.Getenv(envFleetBroker), AllowPlaintext: true, Root: fleetRoot + "/health",
		DBPath: filepath.Join(os.Getenv(envFleetDir), "hub.db"), ClientID: "kbench-fleet-hubd",
		HTTPAddr: "127.0.0.1:0", NoClock: true})
	if err != nil {
		return fail(err)
	}
	defer srv.Close()
	if srv.Fleet() == nil {
		return fail(errors.New("hubrun built no fleet model"))
	}
	sub := srv.Fleet().Subscribe()
	defer sub.Close()
	ctx, stop, err := runChildHub(srv)
	defer stop()
	if err != nil {
		return fail(err)
	}
	rss, err := procStatusMB(os.Getpid(), "VmRSS:")
	if err != nil {
		return fail(err)
	}
	fmt.Printf("ready %.3f\n", rss)
	seen := make(map[string]bool, n)
	lat := make([]float64, 0, n)
	for len(seen) < n {
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-sub.Ready():
		}
		now := time.Now()
		for _, id := range sub.Take() {
			r, ok := srv.Fleet().Row(id)
			if !ok || !r.HasHealth {
				continue
			}
			lat = append(lat, float64(now.Sub(r.LastHealth).Microseconds())/1000)
			seen[id] = true
		}
	}
	if rss, err = procStatusMB(os.Getpid(), "VmRSS:"); err != nil {
		return fail(err)
	}
	fmt.Printf("done %.3f %.3f %d\n", percentile(lat, 0.99), rss, len(lat))
	return 0
}

// runChildHub runs a child's hub until SIGTERM or SIGINT, which end ctx,
// and waits (up to 30 s) until it is connected, then a little more:
// Connected is set once the subscriptions are in place, and a short pause
// lets the hub's own start-up publishes settle. stop ends the run and
// waits for it; it is to be called, even on error, before srv.Close.
func runChildHub(srv *hubrun.Server) (ctx context.Context, stop func(), err error) {
	ctx, stopSignals := signalCtx()
	runCtx, stopRun := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Run(runCtx) }) // nil when stopped
	stop = func() {
		stopRun()
		wg.Wait()
		stopSignals()
	}
	deadline := time.Now().Add(30 * time.Second)
	for srv.Session() == nil || !srv.Session().Connected() {
		if time.Now().After(deadline) {
			return ctx, stop, errors.New("hub did not connect")
		}
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return ctx, stop, err
		}
	}
	return ctx, stop, sleepCtx(ctx, 200*time.Millisecond)
}
