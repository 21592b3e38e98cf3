package hubalert

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/kioskedge/kioskedge/sync/wire"
)

// Alert states.
const (
	StateFiring   = "firing"
	StateResolved = "resolved"
)

// Summary is an alert's one-line description in Chinese and English.
type Summary struct {
	ZH string `json:"zh"`
	EN string `json:"en"`
}

// Labels locate the agent, from its latest birth.
type Labels struct {
	Region string `json:"region,omitempty"`
	Site   string `json:"site,omitempty"`
}

// Alert is one transition of one alert (hub-alerts.md §3): the JSON body
// of a webhook, an MQTT message and a row of /api/alerts.
type Alert struct {
	// ID names one firing episode: the same for its firing and its
	// resolved transition, new when the key fires again.
	ID       string    `json:"id"`
	Key      string    `json:"key"` // rule/agent/subject: the de-duplication key
	Rule     string    `json:"rule"`
	Agent    string    `json:"agent"`
	Subject  string    `json:"subject,omitempty"` // door, device or input; "" for the agent
	State    string    `json:"state"`
	Severity string    `json:"severity"`
	Started  time.Time `json:"started"`
	Resolved time.Time `json:"resolved,omitzero"`
	Summary  Summary   `json:"summary"`
	Labels   Labels    `json:"labels"`
}

// Key returns the de-duplication key of rule, agent and subject.
func Key(rule, agent, subject string) string { return rule + "/" + agent + "/" + subject }

// cond is the state of one key.
type cond struct {
	Alert  Alert     `json:"alert"`            // the current or last episode
	Firing bool      `json:"firing"`           // Alert.State == firing
	Since  time.Time `json:"since,omitzero"`   // offline: death seen (hub clock), not fired yet
	EvTime time.Time `json:"ev_time,omitzero"` // agent time of the last evidence applied
	EvSeq  uint64    `json:"ev_seq,omitempty"` // its record sequence, 0 for health
	Last   time.Time `json:"last,omitzero"`    // one-shot alarms: hub time of the last one
}

type agentInfo struct {
	BdSeq      uint64    `json:"bdseq"`
	HasStatus  bool      `json:"has_status"`
	Online     bool      `json:"online"`
	Region     string    `json:"region,omitempty"`
	Site       string    `json:"site,omitempty"`
	HealthTime time.Time `json:"health_time,omitzero"` // agent time of the newest health seen
}

// Engine is the pure rule evaluator: it takes statuses, health snapshots,
// records and clock ticks, keeps one state per key, and returns the
// transitions (firing once, resolved once). It does no I/O and is not
// safe for concurrent use; time is always passed in.
type Engine struct {
	rules  Rules
	conds  map[string]*cond
	agents map[string]*agentInfo
}

// NewEngine returns an engine with no state.
func NewEngine(rules Rules) *Engine {
	return &Engine{rules: rules, conds: map[string]*cond{}, agents: map[string]*agentInfo{}}
}

func (e *Engine) agent(id string) *agentInfo {
	a := e.agents[id]
	if a == nil {
		a = &agentInfo{}
		e.agents[id] = a
	}
	return a
}

// Firing returns the alerts firing now, sorted by key.
func (e *Engine) Firing() []Alert {
	var out []Alert
	for _, k := range slices.Sorted(maps.Keys(e.conds)) {
		if c := e.conds[k]; c.Firing {
			out = append(out, c.Alert)
		}
	}
	return out
}

func episodeID(key string, started time.Time) string {
	s := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d", key, started.UnixNano()))
	return hex.EncodeToString(s[:8])
}

// fire starts an episode for key unless it is firing.
func (e *Engine) fire(out []Alert, rule, agent, subject string, at time.Time, sum Summary) []Alert {
	r := e.rules.rule(rule)
	if !r.Enabled {
		return out
	}
	key := Key(rule, agent, subject)
	c := e.conds[key]
	if c == nil {
		c = &cond{}
		e.conds[key] = c
	}
	if c.Firing {
		return out
	}
	a := e.agent(agent)
	c.Firing, c.Since = true, time.Time{}
	c.Alert = Alert{
		ID: episodeID(key, at), Key: key, Rule: rule, Agent: agent, Subject: subject,
		State: StateFiring, Severity: r.Severity, Started: at.UTC(), Summary: sum,
		Labels: Labels{Region: a.Region, Site: a.Site},
	}
	return append(out, c.Alert)
}

// resolve ends key's episode if it is firing.
func (e *Engine) resolve(out []Alert, key string, at time.Time) []Alert {
	c := e.conds[key]
	if c == nil {
		return out
	}
	c.Since = time.Time{}
	if !c.Firing {
		return out
	}
	c.Firing = false
	c.Alert.State, c.Alert.Resolved = StateResolved, at.UTC()
	return append(out, c.Alert)
}

// evidence reports whether evidence of agent time t (record sequence seq,
// 0 for health) is newer than what key last applied, and records it if
// so. Resent records and health older than a record already applied are
// ignored, so a duplicate never fires an episode again.
func (e *Engine) evidence(key string, t time.Time, seq uint64) bool {
	c := e.conds[key]
	if c == nil {
		c = &cond{}
		e.conds[key] = c
	}
	if t.Before(c.EvTime) || (t.Equal(c.EvTime) && seq != 0 && seq <= c.EvSeq) {
		return false
	}
	c.EvTime = t
	if seq != 0 {
		c.EvSeq = seq
	}
	return true
}

// set applies a level condition (active or not) observed with evidence.
func (e *Engine) set(out []Alert, rule, agent, subject string, active bool, t time.Time, seq uint64, now time.Time, sum Summary) []Alert {
	key := Key(rule, agent, subject)
	if !e.evidence(key, t, seq) {
		return out
	}
	if active {
		return e.fire(out, rule, agent, subject, now, sum)
	}
	return e.resolve(out, key, now)
}

// Status applies a birth or death. A status with a lower BdSeq than the
// last one applied for the agent is stale and ignored (as the store does),
// and so is a birth with the BdSeq of a death already applied (a
// session's birth comes before its death, so it is an old one).
// A death starts the offline condition: it fires at once when
// offline.after is 0, else from Tick once it has lasted that long. A
// birth resolves it.
func (e *Engine) Status(st wire.Status, now time.Time) []Alert {
	a := e.agent(st.Agent)
	if a.HasStatus && (st.BdSeq < a.BdSeq || (st.BdSeq == a.BdSeq && !a.Online && st.State == wire.StateOnline)) {
		return nil // stale; a session's birth never follows its own death
	}
	a.HasStatus, a.BdSeq = true, st.BdSeq
	var out []Alert
	key := Key(RuleOffline, st.Agent, "")
	if st.State == wire.StateOnline {
		a.Online = true
		if st.Region != "" || st.Site != "" {
			a.Region, a.Site = st.Region, st.Site
		}
		return e.resolve(out, key, now)
	}
	a.Online = false
	c := e.conds[key]
	if c == nil {
		c = &cond{}
		e.conds[key] = c
	}
	if c.Firing || !c.Since.IsZero() {
		return nil // the same death again (a retained one after a hub restart)
	}
	c.Since = now
	return e.Tick(now)
}

// Tick fires offline conditions that have lasted offline.after and
// resolves one-shot alarms (repeated_denials) quiet for resolve_after.
func (e *Engine) Tick(now time.Time) []Alert {
	var out []Alert
	for _, key := range slices.Sorted(maps.Keys(e.conds)) {
		c := e.conds[key]
		rule, agent, subject := splitKey(key)
		switch {
		case rule == RuleOffline && !c.Firing && !c.Since.IsZero():
			if d := e.rules.Offline.After.D(); now.Sub(c.Since) >= d {
				since := c.Since
				out = e.fire(out, RuleOffline, agent, subject, since, Summary{
					ZH: fmt.Sprintf("终端 %s 离线（自 %s）", agent, since.UTC().Format(time.RFC3339)),
					EN: fmt.Sprintf("agent %s offline since %s", agent, since.UTC().Format(time.RFC3339)),
				})
			}
		case rule == RuleRepeatedDenials && c.Firing:
			if now.Sub(c.Last) >= e.rules.RepeatedDenials.ResolveAfter.D() {
				out = e.resolve(out, key, now)
			}
		}
	}
	return out
}

func splitKey(key string) (rule, agent, subject string) {
	rule, rest, _ := strings.Cut(key, "/")
	agent, subject, _ = strings.Cut(rest, "/")
	return rule, agent, subject
}

// Health applies a health snapshot received at now: oldest unsent record
// age, outbox disk against its budget, clock skew (the offset the agent
// measured, else the snapshot's time against now; only for a snapshot
// newer than the last one seen, so a retained one delivered again is not
// taken for a slow clock), and each
// reported device's connection.
func (e *Engine) Health(agent string, h wire.Health, now time.Time) []Alert {
	a := e.agent(agent)
	fresh := h.Time.After(a.HealthTime)
	if !fresh && !h.Time.Equal(a.HealthTime) {
		return nil // older than the one applied
	}
	a.HealthTime = h.Time
	var out []Alert
	t := h.Time
	if r := e.rules.OldestUnsent; r.Enabled {
		age := time.Duration(h.Outbox.OldestUnsentS * float64(time.Second))
		out = e.set(out, RuleOldestUnsent, agent, "", h.Outbox.Depth > 0 && age >= r.After.D(), t, 0, now, Summary{
			ZH: fmt.Sprintf("终端 %s 最早未上传记录已 %s", agent, age.Round(time.Second)),
			EN: fmt.Sprintf("agent %s oldest unsent record is %s old", agent, age.Round(time.Second)),
		})
	}
	if r := e.rules.LowDisk; r.Enabled && h.Outbox.BudgetBytes > 0 {
		free := 100 * float64(h.Outbox.BudgetBytes-h.Outbox.DiskBytes) / float64(h.Outbox.BudgetBytes)
		out = e.set(out, RuleLowDisk, agent, "outbox", free < r.BelowPct, t, 0, now, Summary{
			ZH: fmt.Sprintf("终端 %s 缓存空间剩余 %.0f%%", agent, free),
			EN: fmt.Sprintf("agent %s outbox budget %.0f%% free", agent, free),
		})
	}
	if r := e.rules.ClockSkew; r.Enabled && fresh && (h.Clock != nil || !h.Time.IsZero()) {
		// The agent's own NTP-style measurement over time/req when it
		// reports one (hub-protocol.md §6); else the snapshot's time
		// against the hub's clock, which counts the delivery delay too.
		skew := h.Time.Sub(now)
		if h.Clock != nil {
			skew = -time.Duration(h.Clock.OffsetMS * float64(time.Millisecond))
		}
		out = e.set(out, RuleClockSkew, agent, "", skew > r.Above.D() || -skew > r.Above.D(), t, 0, now, Summary{
			ZH: fmt.Sprintf("终端 %s 时钟偏差 %s", agent, skew.Round(time.Second)),
			EN: fmt.Sprintf("agent %s clock off by %s", agent, skew.Round(time.Second)),
		})
	}
	for _, d := range h.Devices {
		out = e.set(out, RuleDeviceDown, agent, d.Name, !d.Connected, t, 0, now, deviceDownSummary(agent, d.Name))
	}
	return out
}

func deviceDownSummary(agent, dev string) Summary {
	return Summary{ZH: fmt.Sprintf("终端 %s 设备 %s 故障", agent, dev), EN: fmt.Sprintf("agent %s device %s down", agent, dev)}
}

// Record kinds the engine reads (gate-records.md, agent/devices).
const (
	kindDoorAlarm   = "door.alarm"
	kindDeviceDown  = "device.down"
	kindDeviceUp    = "device.up"
	kindLocalStatus = "device.local_status" // an OSDP reader's tamper and power
)

// Record applies one stored record received at now: door.alarm
// (forced_open, held_open, fire, tamper, repeated_denials),
// device.down/device.up and an OSDP reader's device.local_status tamper.
// Other kinds and bodies that do not decode are ignored.
func (e *Engine) Record(r wire.Record, now time.Time) []Alert {
	switch r.Kind {
	case kindDoorAlarm:
		var b struct {
			Door   string `json:"door"`
			Alarm  string `json:"alarm"`
			Active bool   `json:"active"`
			Reader string `json:"reader"`
		}
		if json.Unmarshal(r.Body, &b) != nil {
			return nil
		}
		subject := b.Door
		if subject == "" {
			subject = "gate"
		}
		var rule string
		var sum Summary
		switch b.Alarm {
		case "forced_open":
			rule, sum = RuleDoorForced, Summary{ZH: fmt.Sprintf("终端 %s 门 %s 被强行打开", r.Agent, subject), EN: fmt.Sprintf("agent %s door %s forced open", r.Agent, subject)}
		case "held_open":
			rule, sum = RuleDoorHeld, Summary{ZH: fmt.Sprintf("终端 %s 门 %s 长时间未关", r.Agent, subject), EN: fmt.Sprintf("agent %s door %s held open", r.Agent, subject)}
		case "fire":
			rule, sum = RuleFire, Summary{ZH: fmt.Sprintf("终端 %s 消防报警（%s），门已释放", r.Agent, subject), EN: fmt.Sprintf("agent %s fire alarm (%s), doors released", r.Agent, subject)}
		case "tamper":
			rule, sum = RuleTamper, Summary{ZH: fmt.Sprintf("终端 %s %s 防拆报警", r.Agent, subject), EN: fmt.Sprintf("agent %s %s tamper", r.Agent, subject)}
		case "repeated_denials":
			if !b.Active {
				return nil
			}
			if b.Reader != "" {
				subject += "/" + b.Reader
			}
			key := Key(RuleRepeatedDenials, r.Agent, subject)
			if !e.evidence(key, r.Time, r.Seq) {
				return nil
			}
			out := e.fire(nil, RuleRepeatedDenials, r.Agent, subject, now, Summary{
				ZH: fmt.Sprintf("终端 %s 门 %s 连续刷卡失败", r.Agent, subject),
				EN: fmt.Sprintf("agent %s door %s repeated denials", r.Agent, subject),
			})
			e.conds[key].Last = now
			return out
		default:
			return nil
		}
		return e.set(nil, rule, r.Agent, subject, b.Active, r.Time, r.Seq, now, sum)
	case kindDeviceDown, kindDeviceUp:
		var b struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(r.Body, &b) != nil || b.Name == "" {
			return nil
		}
		return e.set(nil, RuleDeviceDown, r.Agent, b.Name, r.Kind == kindDeviceDown, r.Time, r.Seq, now, deviceDownSummary(r.Agent, b.Name))
	case kindLocalStatus:
		var b struct {
			Name   string `json:"name"`
			Tamper *bool  `json:"tamper"`
		}
		if json.Unmarshal(r.Body, &b) != nil || b.Name == "" || b.Tamper == nil {
			return nil
		}
		return e.set(nil, RuleTamper, r.Agent, b.Name, *b.Tamper, r.Time, r.Seq, now, Summary{
			ZH: fmt.Sprintf("终端 %s 读卡器 %s 防拆报警", r.Agent, b.Name),
			EN: fmt.Sprintf("agent %s reader %s tamper", r.Agent, b.Name),
		})
	}
	return nil
}

// snapshot is the engine's persisted form.
type snapshot struct {
	Version int                   `json:"version"`
	Conds   map[string]*cond      `json:"conds"`
	Agents  map[string]*agentInfo `json:"agents"`
	History []Alert               `json:"history"`
}
