package hub

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/kioskedge/kioskedge/sync/hubstore"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// Lifecycle defaults (Options.GapAge, RebirthInterval).
const (
	DefaultGapAge          = 2 * time.Minute
	DefaultRebirthInterval = 10 * time.Minute
	rebirthExpiry          = time.Minute
)

// Lifecycle events (LifecycleInfo.LastEvent).
const (
	EventGap         = "gap"                // a missing range older than GapAge
	EventStaleStatus = "stale_status"       // a status with a lower bdseq than the stored one
	EventBootNoDeath = "boot_without_death" // a birth with a new boot id while the last status was a birth
)

// LifecycleInfo is one agent's row of GET /api/lifecycle: what the
// lifecycle detector noticed about it. Only agents with something noticed
// have a row.
type LifecycleInfo struct {
	Agent string `json:"agent"`
	// GapSince is when the hub first saw the agent's current missing
	// ranges (zero when it has none); Missing lists them.
	GapSince time.Time   `json:"gap_since,omitzero"`
	Missing  [][2]uint64 `json:"missing,omitempty"`
	// Gaps counts the times a missing range outlived GapAge.
	Gaps          uint64    `json:"gaps"`
	StaleStatuses uint64    `json:"stale_statuses"`
	BootNoDeath   uint64    `json:"boot_without_death"`
	Rebirths      uint64    `json:"rebirths_sent"`
	LastRebirth   time.Time `json:"last_rebirth,omitzero"`
	LastEvent     string    `json:"last_event,omitempty"`
	LastEventAt   time.Time `json:"last_event_at,omitzero"`
}

// lifecycle is the detector's state; see Hub.lifecycleStatuses and
// Hub.lifecycleGaps.
type lifecycle struct {
	mu     sync.Mutex
	agents map[string]*lifeState
}

type lifeState struct {
	info     LifecycleInfo
	reported bool // the current gap was counted already
}

func (l *lifecycle) get(agent string) *lifeState {
	s := l.agents[agent]
	if s == nil {
		s = &lifeState{info: LifecycleInfo{Agent: agent}}
		l.agents[agent] = s
	}
	return s
}

// lifecycleStatuses runs on the committer before the statuses are applied:
// it compares each with the stored state (and with the ones before it in
// the same write) for stale statuses and boots without a death.
func (h *Hub) lifecycleStatuses(sts []hubstore.StatusUpdate) {
	type last struct {
		has, online bool
		bdseq       uint64
		boot        string
	}
	seen := map[string]last{}
	for _, su := range sts {
		st := su.Status
		prev, ok := seen[st.Agent]
		if !ok {
			if a, found := h.store.AgentState(st.Agent); found && a.HasStatus {
				prev = last{has: true, online: a.Online, bdseq: a.BdSeq}
				var ps struct {
					BootID string `json:"boot_id"`
				}
				// A stored status always decoded once; a failure leaves
				// the boot id unknown, which only skips the boot check.
				_ = json.Unmarshal(a.Status, &ps)
				prev.boot = ps.BootID
			}
		}
		event := ""
		switch {
		case prev.has && st.BdSeq < prev.bdseq:
			event = EventStaleStatus
		case prev.has && prev.online && st.State == wire.StateOnline && prev.boot != "" && st.BootID != prev.boot:
			event = EventBootNoDeath
		}
		if event != EventStaleStatus {
			seen[st.Agent] = last{has: true, online: st.State == wire.StateOnline, bdseq: st.BdSeq, boot: st.BootID}
		}
		if event == "" {
			continue
		}
		h.lifecycleEvent(st.Agent, event)
	}
}

// lifecycleGaps runs on the committer after a commit, for the agents it
// touched, with their coverage holes (hubstore.Result.Missing: an agent
// without an entry has none): a missing range seen for longer than GapAge
// is a gap.
func (h *Hub) lifecycleGaps(agents []string, missing map[string][]hubstore.Range) {
	now := h.now()
	for _, id := range agents {
		holes := missing[id]
		h.lc.mu.Lock()
		s := h.lc.agents[id]
		if len(holes) == 0 {
			if s != nil {
				s.info.GapSince, s.info.Missing, s.reported = time.Time{}, nil, false
			}
			h.lc.mu.Unlock()
			continue
		}
		if s == nil {
			s = h.lc.get(id)
		}
		if s.info.GapSince.IsZero() {
			s.info.GapSince = now
		}
		s.info.Missing = s.info.Missing[:0]
		for _, m := range holes {
			s.info.Missing = append(s.info.Missing, [2]uint64{m.First, m.Last})
		}
		due := !s.reported && now.Sub(s.info.GapSince) >= h.opts.GapAge
		if due {
			s.reported = true
		}
		// A gap still standing a RebirthInterval after the last rebirth
		// asks again; it is the same gap, not counted again.
		again := !due && s.reported && h.rebirthDue(s, now)
		h.lc.mu.Unlock()
		switch {
		case due:
			h.lifecycleEvent(id, EventGap)
		case again:
			h.log.Warn("hub gap still standing; asking for a rebirth again", "agent", id)
			h.sendRebirth(id, now)
		}
	}
}

// lifecycleSweep runs on the committer every Options.GapSweep: the agents
// with a standing missing range are looked at again, so a gap ages into an
// event while its agent stays silent (a box whose batches were lost and
// which has nothing new to send).
func (h *Hub) lifecycleSweep() {
	h.lc.mu.Lock()
	var ids []string
	for id, s := range h.lc.agents {
		if !s.info.GapSince.IsZero() {
			ids = append(ids, id)
		}
	}
	h.lc.mu.Unlock()
	slices.Sort(ids)
	missing := make(map[string][]hubstore.Range, len(ids))
	known := ids[:0]
	for _, id := range ids {
		if a, ok := h.store.AgentState(id); ok {
			known = append(known, id)
			missing[id] = a.Missing
		}
	}
	h.lifecycleGaps(known, missing)
}

// lifecycleEvent records event for agent (counter, log, API row) and asks
// the agent for a rebirth when the hub can sign one and has not asked it
// within RebirthInterval.
func (h *Hub) lifecycleEvent(agent, event string) {
	now := h.now()
	h.lc.mu.Lock()
	s := h.lc.get(agent)
	switch event {
	case EventGap:
		s.info.Gaps++
	case EventStaleStatus:
		s.info.StaleStatuses++
	case EventBootNoDeath:
		s.info.BootNoDeath++
	}
	s.info.LastEvent, s.info.LastEventAt = event, now
	ask := h.rebirthDue(s, now)
	h.lc.mu.Unlock()
	h.mu.Lock()
	switch event {
	case EventGap:
		h.stats.Gaps++
	case EventStaleStatus:
		h.stats.StaleBirths++
	case EventBootNoDeath:
		h.stats.BootsWithoutDeath++
	}
	h.mu.Unlock()
	h.log.Warn("hub lifecycle event", "agent", agent, "event", event, "rebirth_sent", ask)
	if ask {
		h.sendRebirth(agent, now)
	}
}

// rebirthDue reports whether s may be sent a rebirth now (a command key,
// none within RebirthInterval, Options.MayCommand agrees) and, if so,
// records it as sent. Call it with h.lc.mu held, then sendRebirth.
func (h *Hub) rebirthDue(s *lifeState, now time.Time) bool {
	if h.opts.CommandKey == nil || !s.info.LastRebirth.IsZero() && now.Sub(s.info.LastRebirth) < h.opts.RebirthInterval {
		return false
	}
	if h.opts.MayCommand != nil && !h.opts.MayCommand() {
		return false
	}
	s.info.Rebirths++
	s.info.LastRebirth = now
	return true
}

// sendRebirth publishes a signed agent.rebirth on the agent's cmd topic
// without waiting: a lost one is sent again after RebirthInterval if the
// problem persists. The agent's result arrives on cmd/result.
func (h *Hub) sendRebirth(agent string, now time.Time) {
	c := wire.Command{ID: "hub-rebirth-" + randHex(6), Agent: agent, Name: wire.CmdRebirth,
		Issued: now, Expires: now.Add(rebirthExpiry), Nonce: randHex(16)}
	wire.SignCommand(h.opts.CommandKey, &c)
	h.mu.Lock()
	h.stats.RebirthsSent++
	h.mu.Unlock()
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // a Command always marshals
	}
	// The channel is buffered; the outcome is not needed (see above).
	h.tr.PublishAsync(Message{Topic: wire.Topics{Root: h.opts.Root, Agent: agent}.Cmd(), QoS: 1, Payload: b})
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error (Go ≥ 1.24 panics instead)
	return hex.EncodeToString(b)
}

// Lifecycle returns the detector's rows (agents with a gap now or any
// lifecycle event since New), sorted by agent id.
func (h *Hub) Lifecycle() []LifecycleInfo {
	h.lc.mu.Lock()
	out := make([]LifecycleInfo, 0, len(h.lc.agents))
	for _, s := range h.lc.agents {
		li := s.info
		li.Missing = slices.Clone(s.info.Missing)
		out = append(out, li)
	}
	h.lc.mu.Unlock()
	slices.SortFunc(out, func(a, b LifecycleInfo) int { return cmp.Compare(a.Agent, b.Agent) })
	return out
}
