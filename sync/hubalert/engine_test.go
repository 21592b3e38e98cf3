package hubalert

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/wire"
)

var t0 = time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)

// step is one input to the engine at t0+at, and the transitions it must
// produce, written "state rule/agent/subject".
type step struct {
	at   time.Duration
	in   any // wire.Status, health, wire.Record, or tick{}
	want []string
}

type health struct {
	agent string
	h     wire.Health
}

type tick struct{}

func death(agent string, bd uint64) wire.Status {
	return wire.Status{State: wire.StateOffline, Agent: agent, BdSeq: bd, Reason: "will"}
}

func birth(agent string, bd uint64) wire.Status {
	return wire.Status{State: wire.StateOnline, Agent: agent, BdSeq: bd, Region: "460105", Site: "s1"}
}

func rec(agent string, seq uint64, at time.Duration, kind string, body any) wire.Record {
	b, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	return wire.Record{Seq: seq, Agent: agent, Kind: kind, Class: wire.ClassCritical, Time: t0.Add(at), Body: b}
}

func devHealth(agent string, at time.Duration, connected bool) health {
	return health{agent, wire.Health{Agent: agent, Time: t0.Add(at), Devices: []wire.DeviceHealth{{Name: "reader1", Connected: connected}}}}
}

func run(t *testing.T, rules Rules, steps []step) *Engine {
	t.Helper()
	e := NewEngine(rules)
	for i, s := range steps {
		now := t0.Add(s.at)
		var out []Alert
		switch in := s.in.(type) {
		case wire.Status:
			out = e.Status(in, now)
		case health:
			out = e.Health(in.agent, in.h, now)
		case wire.Record:
			out = e.Record(in, now)
		case tick:
			out = e.Tick(now)
		default:
			t.Fatalf("step %d: bad input %T", i, in)
		}
		var got []string
		for _, a := range out {
			got = append(got, a.State+" "+a.Key)
		}
		if fmt.Sprint(got) != fmt.Sprint(s.want) {
			t.Fatalf("step %d (%T at %s): got %q, want %q", i, s.in, s.at, got, s.want)
		}
	}
	return e
}

func TestEngineRules(t *testing.T) {
	delayed := DefaultRules()
	delayed.Offline.After = Duration(2 * time.Minute)
	immediate := DefaultRules()
	immediate.Offline.After = 0
	off := DefaultRules()
	off.DoorForced.Enabled = false
	sec := time.Second
	tests := []struct {
		name  string
		rules Rules
		steps []step
	}{
		{"offline at once on the death, resolved by the birth", immediate, []step{
			{0, birth("a1", 3), nil},
			{10 * sec, death("a1", 3), []string{"firing offline/a1/"}},
			{11 * sec, death("a1", 3), nil}, // the retained death again
			{12 * sec, tick{}, nil},
			{20 * sec, birth("a1", 4), []string{"resolved offline/a1/"}},
			{21 * sec, birth("a1", 4), nil},
			{22 * sec, death("a1", 3), nil}, // a late Will of the older session: stale
		}},
		{"a session's birth after its own death is old", immediate, []step{
			{0, death("a1", 5), []string{"firing offline/a1/"}},
			{sec, birth("a1", 5), nil},
			{2 * sec, birth("a1", 6), []string{"resolved offline/a1/"}},
		}},
		{"offline after a delay", delayed, []step{
			{0, death("a1", 1), nil},
			{time.Minute, tick{}, nil},
			{2 * time.Minute, tick{}, []string{"firing offline/a1/"}},
			{3 * time.Minute, tick{}, nil},
			{4 * time.Minute, birth("a1", 2), []string{"resolved offline/a1/"}},
		}},
		{"offline shorter than the delay never fires", delayed, []step{
			{0, death("a1", 1), nil},
			{time.Minute, birth("a1", 2), nil},
			{5 * time.Minute, tick{}, nil},
		}},
		{"device down in repeated health fires once, recovery resolves once", DefaultRules(), []step{
			{0, devHealth("a1", 0, true), nil},
			{60 * sec, devHealth("a1", 60*sec, false), []string{"firing device_down/a1/reader1"}},
			{120 * sec, devHealth("a1", 120*sec, false), nil},
			{180 * sec, devHealth("a1", 180*sec, false), nil},
			{240 * sec, devHealth("a1", 240*sec, true), []string{"resolved device_down/a1/reader1"}},
			{300 * sec, devHealth("a1", 300*sec, true), nil},
		}},
		{"device records and health share one key", DefaultRules(), []step{
			{0, rec("a1", 5, 0, "device.down", map[string]any{"name": "reader1"}), []string{"firing device_down/a1/reader1"}},
			{sec, devHealth("a1", sec, false), nil},
			{2 * sec, rec("a1", 6, 2*sec, "device.up", map[string]any{"name": "reader1"}), []string{"resolved device_down/a1/reader1"}},
			{3 * sec, rec("a1", 5, 0, "device.down", map[string]any{"name": "reader1"}), nil}, // resent
			{4 * sec, devHealth("a1", sec, false), nil},                                       // older than the up record
		}},
		{"door forced open and its duplicates", DefaultRules(), []step{
			{0, rec("a1", 10, 0, "door.alarm", map[string]any{"door": "d1", "alarm": "forced_open", "active": true}), []string{"firing door_forced/a1/d1"}},
			{sec, rec("a1", 10, 0, "door.alarm", map[string]any{"door": "d1", "alarm": "forced_open", "active": true}), nil},
			{2 * sec, rec("a1", 11, sec, "door.alarm", map[string]any{"door": "d1", "alarm": "forced_open", "active": false}), []string{"resolved door_forced/a1/d1"}},
			{3 * sec, rec("a1", 10, 0, "door.alarm", map[string]any{"door": "d1", "alarm": "forced_open", "active": true}), nil},
		}},
		{"held open, fire for the gate, tamper", DefaultRules(), []step{
			{0, rec("a1", 1, 0, "door.alarm", map[string]any{"door": "d2", "alarm": "held_open", "active": true}), []string{"firing door_held/a1/d2"}},
			{0, rec("a1", 2, 0, "door.alarm", map[string]any{"door": "", "alarm": "fire", "active": true}), []string{"firing fire/a1/gate"}},
			{0, rec("a1", 3, 0, "door.alarm", map[string]any{"door": "d1", "alarm": "tamper", "active": true}), []string{"firing tamper/a1/d1"}},
			{0, rec("a1", 4, 0, "device.local_status", map[string]any{"name": "osdp1", "tamper": true, "power_failure": false}), []string{"firing tamper/a1/osdp1"}},
			{sec, rec("a1", 5, sec, "door.alarm", map[string]any{"door": "", "alarm": "fire", "active": false}), []string{"resolved fire/a1/gate"}},
			{sec, rec("a1", 6, sec, "door.alarm", map[string]any{"door": "d1", "alarm": "relay_fault", "active": true}), nil},
			{sec, rec("a1", 7, sec, "door.event", map[string]any{"door": "d1", "event": "opened"}), nil},
		}},
		{"repeated denials: one-shot, resolved when quiet", DefaultRules(), []step{
			{0, rec("a1", 1, 0, "door.alarm", map[string]any{"door": "d1", "alarm": "repeated_denials", "active": true, "reader": "in", "denials": 5}), []string{"firing repeated_denials/a1/d1/in"}},
			{5 * time.Minute, tick{}, nil},
			{10 * time.Minute, tick{}, []string{"resolved repeated_denials/a1/d1/in"}},
			{11 * time.Minute, rec("a1", 1, 0, "door.alarm", map[string]any{"door": "d1", "alarm": "repeated_denials", "active": true, "reader": "in", "denials": 5}), nil},
			{12 * time.Minute, rec("a1", 2, 12*time.Minute, "door.alarm", map[string]any{"door": "d1", "alarm": "repeated_denials", "active": true, "reader": "in", "denials": 5}), []string{"firing repeated_denials/a1/d1/in"}},
		}},
		{"backlog, disk and clock from health", DefaultRules(), []step{
			{0, health{"a1", wire.Health{Time: t0, Outbox: wire.OutboxHealth{Depth: 10, OldestUnsentS: 60, DiskBytes: 50, BudgetBytes: 100}}}, nil},
			{time.Hour, health{"a1", wire.Health{Time: t0.Add(time.Hour), Outbox: wire.OutboxHealth{Depth: 10, OldestUnsentS: 3600, DiskBytes: 95, BudgetBytes: 100}}},
				[]string{"firing oldest_unsent/a1/", "firing low_disk/a1/outbox"}},
			{2 * time.Hour, health{"a1", wire.Health{Time: t0.Add(2*time.Hour - time.Minute), Outbox: wire.OutboxHealth{DiskBytes: 10, BudgetBytes: 100}}},
				[]string{"resolved oldest_unsent/a1/", "resolved low_disk/a1/outbox", "firing clock_skew/a1/"}},
			{3 * time.Hour, health{"a1", wire.Health{Time: t0.Add(2*time.Hour - time.Minute)}}, nil}, // the same snapshot again: not a clock
			{4 * time.Hour, health{"a1", wire.Health{Time: t0.Add(4 * time.Hour)}}, []string{"resolved clock_skew/a1/"}},
			// The agent's measured offset wins over the snapshot's time:
			// a snapshot delivered late (its time 5 min old) with a
			// measured offset of 0.2 s is no skew; a measured 45 s is.
			{5*time.Hour + 5*time.Minute, health{"a1", wire.Health{Time: t0.Add(5 * time.Hour), Clock: &wire.ClockHealth{OffsetMS: 200}}}, nil},
			{6 * time.Hour, health{"a1", wire.Health{Time: t0.Add(6 * time.Hour), Clock: &wire.ClockHealth{OffsetMS: -45000}}}, []string{"firing clock_skew/a1/"}},
			{7 * time.Hour, health{"a1", wire.Health{Time: t0.Add(7 * time.Hour), Clock: &wire.ClockHealth{OffsetMS: 1500}}}, []string{"resolved clock_skew/a1/"}},
		}},
		{"a disabled rule never fires", off, []step{
			{0, rec("a1", 1, 0, "door.alarm", map[string]any{"door": "d1", "alarm": "forced_open", "active": true}), nil},
		}},
		{"bodies that do not decode are ignored", DefaultRules(), []step{
			{0, wire.Record{Seq: 1, Agent: "a1", Kind: "door.alarm", Time: t0, Body: []byte("{")}, nil},
			{0, wire.Record{Seq: 2, Agent: "a1", Kind: "device.down", Time: t0, Body: []byte(`{}`)}, nil},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { run(t, tc.rules, tc.steps) })
	}
}

func TestAlertFields(t *testing.T) {
	rules := DefaultRules()
	rules.Offline.After = 0
	e := NewEngine(rules)
	e.Status(birth("a1", 1), t0)
	out := e.Status(death("a1", 1), t0.Add(time.Minute))
	if len(out) != 1 {
		t.Fatalf("got %d transitions", len(out))
	}
	a := out[0]
	if a.ID == "" || a.Severity != SeverityMajor || a.Labels != (Labels{Region: "460105", Site: "s1"}) ||
		!a.Started.Equal(t0.Add(time.Minute)) || !strings.Contains(a.Summary.EN, "a1") || a.Summary.ZH == "" {
		t.Fatalf("alert %+v", a)
	}
	res := e.Status(birth("a1", 2), t0.Add(2*time.Minute))
	if len(res) != 1 || res[0].ID != a.ID || !res[0].Resolved.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("resolved %+v, want the same id as %s", res, a.ID)
	}
	again := e.Status(death("a1", 2), t0.Add(3*time.Minute))
	if len(again) != 1 || again[0].ID == a.ID {
		t.Fatalf("a new episode must have a new id: %+v", again)
	}
}

func TestParseRules(t *testing.T) {
	good := `
state_file = "/tmp/x.json"
[offline]
after = "0s"
[door_held]
enabled = false
[low_disk]
below_pct = 20
severity = "major"
[[webhook]]
name = "hotline"
url = "https://hotline.example/alerts"
secret = "0123456789abcdef0123"
`
	rs, err := ParseRules([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if rs.Offline.After != 0 || rs.DoorHeld.Enabled || !rs.DoorForced.Enabled || rs.LowDisk.BelowPct != 20 ||
		rs.LowDisk.Severity != SeverityMajor || rs.Fire.Severity != SeverityCritical || len(rs.Webhooks) != 1 ||
		rs.Webhooks[0].Queue != 1024 || rs.Webhooks[0].MaxAttempts != 20 || !rs.MQTT {
		t.Fatalf("parsed %+v", rs)
	}
	for _, bad := range []struct{ text, want string }{
		{"[offline]\nafterr = \"1s\"", "offline.afterr"},
		{"[offline]\nafter = \"soon\"", "after"},
		{"[fire]\nseverity = \"loud\"", "fire.severity"},
		{"[low_disk]\nbelow_pct = 120", "low_disk.below_pct"},
		{"[[webhook]]\nurl = \"ftp://x\"\nsecret = \"0123456789abcdef\"", "webhook[0].url"},
		{"[[webhook]]\nurl = \"http://x\"", "secret"},
		{"[[webhook]]\nurl = \"http://x\"\nsecret = \"0123456789abcdef\"\nsecret_file = \"/x\"", "both"},
	} {
		_, err := ParseRules([]byte(bad.text))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: err %v, want one naming %q", bad.text, err, bad.want)
		}
	}
}
