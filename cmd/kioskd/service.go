package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kioskedge/kioskedge/cmd/internal/admin"
	"github.com/kioskedge/kioskedge/cmd/internal/gate"
	"github.com/kioskedge/kioskedge/cmd/internal/node"
	"github.com/kioskedge/kioskedge/cmd/internal/sdnotify"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// service is the running daemon's view of itself: what /metrics,
// /v1/status, the systemd status line and the watchdog read.
type service struct {
	agent  string
	n      *node.Node
	g      *gate.Gate // nil without [[door]]
	notify *sdnotify.Notifier
	log    *slog.Logger
	start  time.Time
	now    func() time.Time

	decMu     sync.Mutex
	decisions map[decisionKey]uint64

	syncMu   sync.Mutex
	acksSeen uint64
	lastSync time.Time // zero: no ack since start

	reloadsOK, reloadsFailed atomic.Uint64
	watchdogMissed           atomic.Uint64

	// The watchdog's outbox probe.
	probeMu      sync.Mutex
	probeSince   time.Time // a probe Append in flight since then
	commitsSeen  uint64
	lastCommitAt time.Time
	probes       sync.WaitGroup
	live         liveness // used by the watchdog goroutine only

	loopAt atomic.Int64 // the main loop's last tick, Unix ns (0 before the first)
}

// newService returns the service of node n; set g once the gate is open
// (the gate takes the service's countDecision as it opens).
func newService(agent string, n *node.Node, notify *sdnotify.Notifier, log *slog.Logger) *service {
	now := time.Now()
	return &service{agent: agent, n: n, notify: notify, log: log, start: now, now: time.Now,
		decisions: map[decisionKey]uint64{}, lastCommitAt: now}
}

// health is the snapshot the uplink publishes to the hub (the same
// sources), with a few more error counters.
func (s *service) health() wire.Health {
	now := s.now()
	us := s.n.Uplink.Stats()
	ss := s.n.Uplink.Session().Stats()
	ob := s.n.Outbox.Stats()
	h := wire.Health{
		Agent: s.agent, BootID: s.n.BootID, Time: now, Version: version, UptimeS: now.Sub(s.start).Seconds(),
		Outbox: wire.OutboxHealth{Depth: ob.Depth, DiskBytes: ob.FileBytes, BudgetBytes: ob.BudgetBytes,
			NextSeq: ob.NextSeq, AckedThrough: ob.AckedThrough, Evicted: ob.Evicted},
		Uplink:  wire.UplinkHealth{Connected: us.Connected, Reconnects: us.Reconnects, Batches: us.BatchesSent, InFlight: us.InFlight},
		Devices: s.n.Monitor.Health(),
		Counters: map[string]uint64{
			"uplink_bad_acks": us.BadAcks, "uplink_rewinds": us.Rewinds, "uplink_dropped_messages": ss.Dropped,
			"uplink_ack_timeouts": us.AckTimeouts, "uplink_publish_errors": us.PublishErrors,
			"uplink_source_errors": us.SourceErrors, "uplink_acks_beyond": us.AcksBeyond,
			"uplink_connect_failures": ss.ConnectFailures, "uplink_connections_lost": ss.ConnectionsLost,
			"outbox_corruptions": ob.Corruptions,
		},
	}
	if !ob.Oldest.IsZero() {
		h.Outbox.OldestUnsentS = max(now.Sub(ob.Oldest).Seconds(), 0)
	}
	if s.g != nil {
		s.g.Decorate(&h)
		gs := s.g.Gate.Stats()
		h.Counters["gate_records_dropped"] = gs.Dropped
		h.Counters["gate_append_errors"] = gs.AppendErrors
		h.Counters["gate_records_rejected"] = gs.Rejected
	}
	return h
}

// noteSync records the time of the hub's latest ack, as seen now.
func (s *service) noteSync() {
	acks := s.n.Uplink.Stats().Acks
	s.syncMu.Lock()
	if acks != s.acksSeen {
		s.acksSeen, s.lastSync = acks, s.now()
	}
	s.syncMu.Unlock()
}

func (s *service) lastSyncTime() *time.Time {
	s.noteSync()
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.lastSync.IsZero() {
		return nil
	}
	t := s.lastSync.UTC().Truncate(time.Second)
	return &t
}

// status is GET /v1/status.
func (s *service) status() admin.StatusResponse {
	return admin.StatusResponse{Health: s.health(), LastSync: s.lastSyncTime()}
}

// statusLine is the STATUS= text `systemctl status kioskd` shows.
func (s *service) statusLine() string {
	ob := s.n.Outbox.Stats()
	hub := "hub disconnected"
	if s.n.Uplink.Stats().Connected {
		hub = "hub connected"
	}
	devs := s.n.Monitor.Health()
	up := 0
	for _, d := range devs {
		if d.Connected {
			up++
		}
	}
	line := fmt.Sprintf("running: outbox %d, %s, devices %d/%d up", ob.Depth, hub, up, len(devs))
	if s.g != nil {
		line += fmt.Sprintf(", allowlist v%d", s.g.Sync.Stats().Version)
	}
	return line
}

// alive is the watchdog's liveness check (see liveness.go): it starts the
// outbox probe when nothing has committed for a watchdog period, and
// checks every loop's progress. s.live must be set.
func (s *service) alive(ctx context.Context, now time.Time) error {
	ob := s.n.Outbox.Stats()
	s.probeMu.Lock()
	if ob.Commits != s.commitsSeen {
		s.commitsSeen, s.lastCommitAt = ob.Commits, now
	}
	if s.probeSince.IsZero() && now.Sub(s.lastCommitAt) >= s.live.period {
		s.probeSince = now
		s.probes.Go(func() { s.probe(ctx) })
	}
	since := s.probeSince
	s.probeMu.Unlock()

	us := s.n.Uplink.Stats()
	var loopAt time.Time
	if ns := s.loopAt.Load(); ns != 0 {
		loopAt = time.Unix(0, ns)
	}
	sample := liveSample{Now: now, MainLoopAt: loopAt, ProbeSince: since, UplinkConnected: us.Connected, UplinkWork: ob.Depth > 0,
		UplinkProgress: [6]uint64{us.RecordsSent, us.Acks, us.AckTimeouts, us.PublishErrors, us.SourceErrors, us.Rewinds}}
	if s.g != nil {
		gs := s.g.Gate.Stats()
		sample.GateQueued, sample.GateDone = gs.Queued, gs.Written+gs.Dropped+gs.AppendErrors+gs.Rejected
	}
	return s.live.check(sample)
}

// probe appends a health sample (class health, evicted first) and waits
// for its commit: the watchdog's proof that the outbox committer works.
func (s *service) probe(ctx context.Context) {
	body, err := json.Marshal(s.health())
	if err == nil {
		_, err = s.n.Append(ctx, wire.Record{Kind: wire.KindHealthSample, Class: wire.ClassHealth, Time: s.now(), Body: body})
	}
	if err != nil && ctx.Err() == nil {
		s.log.Warn("watchdog probe: health sample not stored", "component", "kioskd", "err", err)
	}
	s.probeMu.Lock()
	s.probeSince = time.Time{}
	s.probeMu.Unlock()
}
