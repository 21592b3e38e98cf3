package main

import (
	"sort"
	"strings"

	"github.com/kioskedge/kioskedge/agent/access"
	agentgate "github.com/kioskedge/kioskedge/agent/gate"
	"github.com/kioskedge/kioskedge/cmd/internal/promtext"
)

// decisionKey labels kioskedge_access_decisions_total.
type decisionKey struct{ door, result, reason string }

// countDecision is the gate's OnDecision hook.
func (s *service) countDecision(d access.Decision) {
	k := decisionKey{door: d.Door, result: "denied", reason: agentgate.Reason(d.Reason)}
	if d.Granted {
		k.result = "granted"
	}
	s.decMu.Lock()
	s.decisions[k]++
	s.decMu.Unlock()
}

// writeMetrics writes every family (names prefixed kioskedge_) from the
// components' own counters, gathered at each scrape. The HELP text of
// each family below is its documentation.
func (s *service) writeMetrics(w *promtext.Writer) {
	h := s.health()
	us := s.n.Uplink.Stats()
	ob := s.n.Outbox.Stats()
	gauge := func(name, help string, v float64) {
		w.Family(name, promtext.Gauge, help)
		w.Sample(v)
	}
	counter := func(name, help string, v uint64) {
		w.Family(name, promtext.Counter, help)
		w.Sample(float64(v))
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}

	w.Family("kioskedge_build_info", promtext.Gauge, "Always 1; the labels say which agent runs which version.")
	w.Sample(1, promtext.L("agent", h.Agent, "version", version, "boot_id", h.BootID)...)
	gauge("kioskedge_uptime_seconds", "Seconds since kioskd started.", h.UptimeS)

	gauge("kioskedge_outbox_depth", "Records stored and not yet acknowledged by the hub.", float64(h.Outbox.Depth))
	gauge("kioskedge_outbox_oldest_unsent_age_seconds", "Age of the oldest record not yet acknowledged by the hub (0 when empty).", h.Outbox.OldestUnsentS)
	gauge("kioskedge_outbox_disk_bytes", "Size of the outbox file.", float64(h.Outbox.DiskBytes))
	gauge("kioskedge_outbox_bytes", "Logical size of the stored records, compared with the budget.", float64(ob.Bytes))
	gauge("kioskedge_outbox_budget_bytes", "The outbox disk budget (outbox.budget; 0 = unlimited).", float64(h.Outbox.BudgetBytes))
	gauge("kioskedge_outbox_next_seq", "The sequence number the next record will get.", float64(h.Outbox.NextSeq))
	gauge("kioskedge_outbox_acked_through", "Every record up to this sequence is stored at the hub.", float64(h.Outbox.AckedThrough))
	counter("kioskedge_outbox_evicted_records_total", "Records dropped under the disk budget (each run stated by a gap record).", ob.Evicted)
	counter("kioskedge_outbox_commits_total", "Outbox commits (group-committed appends) since start.", ob.Commits)

	gauge("kioskedge_uplink_connected", "1 while connected to the hub's broker.", b2f(us.Connected))
	counter("kioskedge_uplink_reconnects_total", "Connections to the broker after the first.", us.Reconnects)
	counter("kioskedge_uplink_batches_sent_total", "Batches handed to the broker (resends included).", us.BatchesSent)
	counter("kioskedge_uplink_records_sent_total", "Records in those batches; rate() of it is the sync rate.", us.RecordsSent)
	counter("kioskedge_uplink_acks_total", "Hub acknowledgements that released records.", us.Acks)
	gauge("kioskedge_uplink_in_flight_batches", "Batches awaiting the hub's acknowledgement.", float64(us.InFlight))
	var last float64
	if t := s.lastSyncTime(); t != nil {
		last = float64(t.UnixNano()) / 1e9
	}
	gauge("kioskedge_uplink_last_sync_timestamp_seconds", "Unix time of the last hub acknowledgement seen (to the second; 0 = none since start).", last)

	w.Family("kioskedge_access_decisions_total", promtext.Counter, "Access decisions at the gate's readers, by door, result and reason.")
	s.decMu.Lock()
	keys := make([]decisionKey, 0, len(s.decisions))
	for k := range s.decisions {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		return a.door+"\x00"+a.result+"\x00"+a.reason < b.door+"\x00"+b.result+"\x00"+b.reason
	})
	for _, k := range keys {
		w.Sample(float64(s.decisions[k]), promtext.L("door", k.door, "result", k.result, "reason", k.reason)...)
	}
	s.decMu.Unlock()

	w.Family("kioskedge_device_up", promtext.Gauge, "1 when the device is connected and answering.")
	for _, d := range h.Devices {
		w.Sample(b2f(d.Connected), promtext.L("device", d.Name, "kind", deviceKind(d.Detail))...)
	}
	w.Family("kioskedge_device_errors_total", promtext.Counter, "Errors of the device's driver (framing, checksum, timeout, NAK, I/O), summed.")
	for _, d := range h.Devices {
		w.Sample(float64(d.Errors), promtext.L("device", d.Name, "kind", deviceKind(d.Detail))...)
	}
	w.Family("kioskedge_device_reconnects_total", promtext.Counter, "Times the device came back after being unplugged (ID-card and social security card readers, printers).")
	for _, r := range s.reconnects() {
		w.Sample(float64(r.n), promtext.L("device", r.name, "kind", r.kind)...)
	}

	if h.Allowlist != nil {
		gauge("kioskedge_allowlist_version", "The allowlist version in effect (0 before the first).", float64(h.Allowlist.Version))
		gauge("kioskedge_allowlist_entries", "Entries in the allowlist in effect.", float64(h.Allowlist.Entries))
	}
	if h.Doors != nil {
		w.Family("kioskedge_door_alarm_active", promtext.Gauge, "1 for each alarm active at a door (forced_open, held_open, fire, tamper, …).")
		for _, d := range h.Doors {
			for _, a := range d.Alarms {
				w.Sample(1, promtext.L("door", d.ID, "alarm", a)...)
			}
		}
	}

	var errKinds, cmdKinds []string
	for k := range h.Counters {
		if strings.HasPrefix(k, "command_") {
			cmdKinds = append(cmdKinds, k)
		} else {
			errKinds = append(errKinds, k)
		}
	}
	sort.Strings(errKinds)
	sort.Strings(cmdKinds)
	w.Family("kioskedge_errors_total", promtext.Counter, "Bad input and failures by kind (the health snapshot's counters).")
	for _, k := range errKinds {
		w.Sample(float64(h.Counters[k]), promtext.L("kind", k)...)
	}
	if len(cmdKinds) > 0 {
		w.Family("kioskedge_commands_total", promtext.Counter, "Signed hub commands by result code.")
		for _, k := range cmdKinds {
			w.Sample(float64(h.Counters[k]), promtext.L("code", strings.TrimPrefix(k, "command_"))...)
		}
	}

	counter("kioskedge_watchdog_missed_total", "Watchdog pings withheld because a loop looked hung (see kioskd's doc).", s.watchdogMissed.Load())
	w.Family("kioskedge_config_reloads_total", promtext.Counter, "SIGHUP config reloads by result.")
	w.Sample(float64(s.reloadsOK.Load()), promtext.L("result", "ok")...)
	w.Sample(float64(s.reloadsFailed.Load()), promtext.L("result", "rejected")...)
}

// deviceKind is the kind a Monitor health Detail starts with ("idcard",
// "idcard: disconnected").
func deviceKind(detail string) string {
	k, _, _ := strings.Cut(detail, ":")
	return k
}

type reconnectCount struct {
	name, kind string
	n          uint64
}

// reconnects lists the drivers kioskd can reach directly; the Monitor
// keeps the others' counts to itself (it records device.reconnected
// records for every device).
func (s *service) reconnects() []reconnectCount {
	var out []reconnectCount
	for name, r := range s.n.Devices.IDCardReaders() {
		out = append(out, reconnectCount{name, "idcard", r.Health().Reconnects})
	}
	for name, r := range s.n.Devices.SSCardReaders() {
		out = append(out, reconnectCount{name, "sscard", r.Health().Reconnects})
	}
	for name, p := range s.n.Devices.Printers() {
		out = append(out, reconnectCount{name, "escpos", p.Health().Reconnects})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}
