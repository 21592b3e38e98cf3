package hubfleet

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/hubstore"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// memSource is an in-memory Source.
type memSource struct {
	mu     sync.Mutex
	agents map[string]hubstore.AgentState
}

func (m *memSource) Agents() []hubstore.AgentState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Collect(maps.Values(m.agents))
}

func (m *memSource) AgentState(id string) (hubstore.AgentState, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.agents[id]
	return a, ok
}

func (m *memSource) put(a hubstore.AgentState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.agents == nil {
		m.agents = map[string]hubstore.AgentState{}
	}
	m.agents[a.ID] = a
}

var t0 = time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// state builds an agent's stored state: online or not, with a health
// snapshot whose devices are given by name → connected.
func state(t testing.TB, id, site, region string, online bool, depth uint64, devices map[string]bool, doorAlarms ...string) hubstore.AgentState {
	birth := wire.Status{State: wire.StateOnline, Agent: id, BootID: "b-" + id, BdSeq: 1, Time: t0, Version: "1.2.0", Site: site, Region: region}
	st := birth
	if !online {
		st.State, st.Time, st.Reason = wire.StateOffline, t0.Add(time.Hour), "will"
	}
	h := wire.Health{Agent: id, BootID: "b-" + id, Time: t0.Add(time.Minute), Version: "1.2.1",
		Outbox:    wire.OutboxHealth{Depth: depth, OldestUnsentS: float64(depth)},
		Allowlist: &wire.AllowlistHealth{Version: 7},
		Clock:     &wire.ClockHealth{OffsetMS: -6250.5, DelayMS: 12, Measured: t0, Skewed: true}}
	for _, name := range slices.Sorted(maps.Keys(devices)) {
		h.Devices = append(h.Devices, wire.DeviceHealth{Name: name, Connected: devices[name]})
	}
	if len(doorAlarms) > 0 {
		h.Doors = []wire.DoorHealth{{ID: "d1", Alarms: doorAlarms}}
	}
	return hubstore.AgentState{ID: id, HasStatus: true, Online: online, Received: 10, Contiguous: 9,
		Birth: mustJSON(t, birth), Status: mustJSON(t, st), Health: mustJSON(t, h)}
}

func TestRowFrom(t *testing.T) {
	r := RowFrom(state(t, "a1", "Site <1>", "330106001001", false, 5, map[string]bool{"printer": false, "reader": true}, "forced_open"))
	want := Row{ID: "a1", Site: "Site <1>", Region: "330106001001", HasStatus: true, Online: false, Since: t0.Add(time.Hour),
		Version: "1.2.1", BootID: "b-a1", HasHealth: true, OutboxDepth: 5, OldestUnsent: 5 * time.Second,
		LastHealth: t0.Add(time.Minute), Faults: []string{"device printer", "door d1: forced_open"},
		HasAllowlist: true, AllowlistVersion: 7, Received: 10, Contiguous: 9,
		HasClock: true, ClockOffset: -6250500 * time.Microsecond, ClockSkewed: true}
	if fmt.Sprint(r) != fmt.Sprint(want) {
		t.Fatalf("row\n got %+v\nwant %+v", r, want)
	}

	bare := RowFrom(hubstore.AgentState{ID: "a2", Health: []byte("{not json")})
	if !bare.Bad || bare.HasHealth || bare.HasStatus {
		t.Fatalf("undecodable health: %+v", bare)
	}
}

func newFleet(t testing.TB, src *memSource) *Fleet {
	t.Helper()
	f, err := New(Options{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func ids(p Page) []string {
	var out []string
	for _, r := range p.Rows {
		out = append(out, r.ID)
	}
	return out
}

func TestList(t *testing.T) {
	src := &memSource{}
	src.put(state(t, "a1", "East Gate", "330106001001", true, 0, map[string]bool{"reader": true}))
	src.put(state(t, "a2", "West Gate", "330106002001", false, 40, map[string]bool{"reader": false}))
	src.put(state(t, "a3", "North Kiosk", "330205001001", true, 3, nil, "held_open"))
	src.put(state(t, "b4", "South Kiosk", "320101001001", true, 1, nil))
	f := newFleet(t, src)

	for _, tc := range []struct {
		name  string
		q     Query
		want  []string
		total int // 0: len(want)
	}{
		{"all", Query{}, []string{"a1", "a2", "a3", "b4"}, 0},
		{"province", Query{Region: "33"}, []string{"a1", "a2", "a3"}, 0},
		{"county", Query{Region: "330106"}, []string{"a1", "a2"}, 0},
		{"online", Query{Status: StatusOnline}, []string{"a1", "a3", "b4"}, 0},
		{"offline", Query{Status: StatusOffline}, []string{"a2"}, 0},
		{"fault", Query{Fault: true}, []string{"a2", "a3"}, 0},
		{"text site", Query{Text: "kiosk"}, []string{"a3", "b4"}, 0},
		{"text id", Query{Text: " B4 "}, []string{"b4"}, 0},
		{"outbox desc", Query{Sort: SortOutbox, Desc: true}, []string{"a2", "a3", "b4", "a1"}, 0},
		{"site", Query{Sort: SortSite}, []string{"a1", "a3", "b4", "a2"}, 0},
		{"status", Query{Sort: SortStatus}, []string{"a1", "a3", "b4", "a2"}, 0},
		{"page 2 of 2", Query{PerPage: 3, Page: 1}, []string{"b4"}, 4},
		{"combined", Query{Region: "33", Status: StatusOnline, Fault: true}, []string{"a3"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := f.List(tc.q)
			got := ids(p)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			total := tc.total
			if total == 0 {
				total = len(tc.want)
			}
			if p.Total != total || p.Pages != (total+p.PerPage-1)/p.PerPage {
				t.Fatalf("total %d pages %d, want %d rows", p.Total, p.Pages, total)
			}
		})
	}
	if p := f.List(Query{Page: 9}); len(p.Rows) != 0 || p.Rows == nil || p.Total != 4 {
		t.Fatalf("past the end: %+v", p)
	}
	if c := f.Counts(); c != (Counts{Agents: 4, Online: 3, Offline: 1, Faulted: 2}) {
		t.Fatalf("counts %+v", c)
	}
}

func TestUpdateNotifiesSubscribers(t *testing.T) {
	src := &memSource{}
	src.put(state(t, "a1", "S", "33", true, 0, map[string]bool{"reader": true}))
	f := newFleet(t, src)
	sub := f.Subscribe()
	defer sub.Close()

	src.put(state(t, "a1", "S", "33", true, 0, map[string]bool{"reader": false}))
	f.Update("a1")
	f.Update("a1") // coalesces
	f.Update("nobody")
	src.put(state(t, "a2", "T", "33", false, 0, nil))
	f.Update("a2")
	select {
	case <-sub.Ready():
	default:
		t.Fatal("no ready signal after updates")
	}
	if got := sub.Take(); !slices.Equal(got, []string{"a1", "a2"}) {
		t.Fatalf("take %v", got)
	}
	if got := sub.Take(); got != nil {
		t.Fatalf("second take %v", got)
	}
	r, _ := f.Row("a1")
	if !slices.Equal(r.Faults, []string{"device reader"}) {
		t.Fatalf("row not updated: %+v", r)
	}
	if _, ok := f.Row("a2"); !ok {
		t.Fatal("new agent has no row")
	}
	sub.Close()
	f.Update("a1")
	if got := sub.Take(); got != nil {
		t.Fatalf("closed subscription got %v", got)
	}
}

func TestNewWithoutSource(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("no error")
	}
}

// fleet10k is a fleet of 10,000 agents across 20 counties, a tenth
// offline and a twentieth faulted.
func fleet10k(tb testing.TB) *Fleet {
	src := &memSource{}
	for i := range 10000 {
		county := fmt.Sprintf("3301%02d", i%20)
		dev := map[string]bool{"reader": i%20 != 0, "printer": true}
		src.put(state(tb, fmt.Sprintf("kiosk-%05d", i), fmt.Sprintf("Community %d", i), county+"001001", i%10 != 0, uint64(i%97), dev))
	}
	return newFleet(tb, src)
}

// TestList10k logs how long the first page of a 10,000-agent fleet takes
// (the target is 1 s for the whole page; this is the model's
// share). It asserts the page, not the time.
func TestList10k(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("builds 10,000 agents; timing only (see BenchmarkList10k, BenchmarkAgentsPage10k)")
	}
	f := fleet10k(t)
	start := time.Now()
	p := f.List(Query{Sort: SortOutbox, Desc: true})
	first := time.Since(start)
	start = time.Now()
	q := f.List(Query{Region: "330105", Status: StatusOnline, Text: "community 1"})
	filtered := time.Since(start)
	t.Logf("10,000 agents: first page sorted by outbox %v, filtered page %v", first, filtered)
	if p.Total != 10000 || len(p.Rows) != DefaultPerPage || p.Rows[0].OutboxDepth != 96 {
		t.Fatalf("page: total %d rows %d first %+v", p.Total, len(p.Rows), p.Rows[0])
	}
	for _, r := range q.Rows {
		if r.Region[:6] != "330105" || !r.Online {
			t.Fatalf("filter let through %+v", r)
		}
	}
}

func BenchmarkList10k(b *testing.B) {
	f := fleet10k(b)
	b.ResetTimer()
	for b.Loop() {
		f.List(Query{Sort: SortStatus, Region: "33", Text: "community"})
	}
}

// TestRebuiltFromStore builds the fleet from a real store reopened from
// disk, as hubd does at start.
func TestRebuiltFromStore(t *testing.T) {
	path := t.TempDir() + "/hub.db"
	s, err := hubstore.Open(path, hubstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := state(t, "gate-9", "Site", "330106", true, 4, map[string]bool{"reader": false})
	st, err := wire.DecodeStatus(a.Status)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutStatus(st, a.Status); err != nil {
		t.Fatal(err)
	}
	if err := s.PutHealth("gate-9", a.Health); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = hubstore.Open(path, hubstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f, err := New(Options{Source: s})
	if err != nil {
		t.Fatal(err)
	}
	r, ok := f.Row("gate-9")
	if !ok || !r.Online || r.Site != "Site" || r.OutboxDepth != 4 || !slices.Equal(r.Faults, []string{"device reader"}) {
		t.Fatalf("rebuilt row %+v, %v", r, ok)
	}
}
