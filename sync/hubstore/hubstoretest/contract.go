package hubstoretest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/hubstore"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// Store is the part of a hub store the contract exercises.
type Store interface {
	Apply(hubstore.Write) (hubstore.Result, error)
	AgentState(id string) (hubstore.AgentState, bool)
	Agents() []hubstore.AgentState
	ForEach(agentID string, from uint64, fn func(seq uint64, raw []byte) error) error
	Close() error
}

// Factory prepares empty storage for one test and returns how to open it.
// Each call of open returns a new handle on the same data; the suite
// closes a handle before opening the next one, and closes the last.
type Factory func(t *testing.T) (open func() Store)

// Run runs the contract as subtests of t.
func Run(t *testing.T, f Factory) {
	for _, c := range []struct {
		name string
		fn   func(t *testing.T, open func() Store)
	}{
		{"ApplyReopen", testApplyReopen},
		{"Dedup", testDedup},
		{"OutOfOrderAndGaps", testOutOfOrderAndGaps},
		{"StaleStatus", testStaleStatus},
		{"Invalid", testInvalid},
		{"ManyAgents", testManyAgents},
		{"AckedThroughOnFreshStore", testAckedThroughOnFreshStore},
		{"AckedThroughFillsHoles", testAckedThroughFillsHoles},
		{"AckedThroughIgnored", testAckedThroughIgnored},
		{"HealthAndStatusOnly", testHealthAndStatusOnly},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, f(t)) })
	}
}

var t0 = time.Date(2025, 3, 1, 8, 0, 0, 0, time.FixedZone("CST", 8*3600))

// Record is a valid access record for seq.
func Record(seq uint64) []byte {
	b, err := wire.MarshalRecord(wire.Record{Kind: wire.KindAccess, Class: wire.ClassCritical,
		Time: t0.Add(time.Duration(seq) * time.Millisecond), Body: fmt.Appendf(nil, `{"n":%d}`, seq)})
	if err != nil {
		panic(err)
	}
	return b
}

// GapRecord is a gap record declaring count records (or ranges) dropped.
func GapRecord(count uint64, ranges ...[2]uint64) []byte {
	body, err := json.Marshal(map[string]any{"reason": "budget", "class": "health", "ranges": ranges, "count": count, "bytes": 100})
	if err != nil {
		panic(err)
	}
	b, err := wire.MarshalRecord(wire.Record{Kind: wire.KindGap, Class: wire.ClassCritical, Time: t0, Body: body})
	if err != nil {
		panic(err)
	}
	return b
}

// Batch is a batch of agent covering [first, last] carrying every
// sequence in it (Record(seq)).
func Batch(agent string, first, last uint64) hubstore.Ingested {
	b := hubstore.Ingested{Agent: agent, First: first, Last: last}
	for s := first; s <= last; s++ {
		b.Entries = append(b.Entries, wire.Entry{Seq: s, Raw: Record(s)})
	}
	return b
}

func rs(pairs ...uint64) []hubstore.Range {
	var out []hubstore.Range
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, hubstore.Range{First: pairs[i], Last: pairs[i+1]})
	}
	return out
}

func birthWith(agent string, bd, ackedThrough uint64) hubstore.StatusUpdate {
	st := wire.Status{State: wire.StateOnline, Agent: agent, BdSeq: bd, AckedThrough: ackedThrough}
	return hubstore.StatusUpdate{Status: st, Raw: fmt.Appendf(nil, `{"state":"online","agent":%q,"bdseq":%d,"acked_through":%d}`, agent, bd, ackedThrough)}
}

func apply(t *testing.T, s Store, w hubstore.Write) hubstore.Result {
	t.Helper()
	res, err := s.Apply(w)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// openT opens a handle and closes it at the end of the test unless the
// test closed it.
func openT(t *testing.T, open func() Store) Store {
	s := open()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func seqs(t *testing.T, s Store, agent string, from uint64) ([]uint64, [][]byte) {
	t.Helper()
	var out []uint64
	var raws [][]byte
	if err := s.ForEach(agent, from, func(seq uint64, raw []byte) error {
		out = append(out, seq)
		raws = append(raws, slices.Clone(raw))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out, raws
}

func testApplyReopen(t *testing.T, open func() Store) {
	s := open()
	res := apply(t, s, hubstore.Write{Batches: []hubstore.Ingested{Batch("a1", 1, 10), Batch("a2", 1, 5), Batch("a1", 11, 20)}})
	if res.Stored != 25 || res.Duplicates != 0 {
		t.Fatalf("result %+v", res)
	}
	wantAcks := []wire.Ack{{Agent: "a1", Through: 20}, {Agent: "a2", Through: 5}}
	if !slices.Equal(res.Acks, wantAcks) {
		t.Fatalf("acks %v, want %v", res.Acks, wantAcks)
	}
	birth := []byte(`{"state":"online","agent":"a1","bdseq":3}`)
	res = apply(t, s, hubstore.Write{
		Statuses: []hubstore.StatusUpdate{{Status: wire.Status{State: wire.StateOnline, Agent: "a1", BdSeq: 3}, Raw: birth}},
		Health:   []hubstore.HealthUpdate{{Agent: "a2", Raw: []byte(`{"agent":"a2"}`)}},
	})
	if res.Stale != 0 || len(res.Acks) != 0 {
		t.Fatalf("status result %+v", res)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := s.Apply(hubstore.Write{Batches: []hubstore.Ingested{Batch("a1", 21, 21)}}); err == nil {
		t.Fatal("apply after close succeeded")
	}

	s = openT(t, open)
	a1, ok := s.AgentState("a1")
	if !ok || a1.Received != 20 || a1.Contiguous != 20 || a1.Highest != 20 || a1.Missing != nil ||
		!a1.Online || a1.BdSeq != 3 || string(a1.Birth) != string(birth) || string(a1.Status) != string(birth) {
		t.Fatalf("a1 after reopen: %+v", a1)
	}
	a2, ok := s.AgentState("a2")
	if !ok || a2.Received != 5 || string(a2.Health) != `{"agent":"a2"}` || a2.HasStatus {
		t.Fatalf("a2 after reopen: %+v", a2)
	}
	got, raws := seqs(t, s, "a1", 15)
	if !slices.Equal(got, []uint64{15, 16, 17, 18, 19, 20}) {
		t.Fatalf("ForEach from 15: %v", got)
	}
	for i, seq := range got {
		if string(raws[i]) != string(Record(seq)) {
			t.Fatalf("record %d differs", seq)
		}
	}
	if got, _ := seqs(t, s, "nobody", 1); len(got) != 0 {
		t.Fatalf("ForEach of an unknown agent: %v", got)
	}
	stop := errors.New("stop")
	n := 0
	if err := s.ForEach("a1", 1, func(uint64, []byte) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("ForEach did not stop at fn's error: %v after %d", err, n)
	}
	if ids := s.Agents(); len(ids) != 2 || ids[0].ID != "a1" || ids[1].ID != "a2" {
		t.Fatalf("agents %+v", ids)
	}
	if _, ok := s.AgentState("nobody"); ok {
		t.Fatal("unknown agent found")
	}
}

func testDedup(t *testing.T, open func() Store) {
	s := openT(t, open)
	apply(t, s, hubstore.Write{Batches: []hubstore.Ingested{Batch("a", 1, 100)}})
	// A full resend, a partial overlap and a resend within the same write.
	res := apply(t, s, hubstore.Write{Batches: []hubstore.Ingested{Batch("a", 1, 100), Batch("a", 51, 150), Batch("a", 101, 150)}})
	if res.Stored != 50 || res.Duplicates != 100+50+50 {
		t.Fatalf("result %+v", res)
	}
	st, _ := s.AgentState("a")
	if st.Received != 150 || st.Duplicates != 200 || st.Contiguous != 150 {
		t.Fatalf("state %+v", st)
	}
	// The resend of an already covered batch still yields an ack.
	res = apply(t, s, hubstore.Write{Batches: []hubstore.Ingested{Batch("a", 1, 10)}})
	if res.Stored != 0 || !slices.Equal(res.Acks, []wire.Ack{{Agent: "a", Through: 150}}) {
		t.Fatalf("resend result %+v", res)
	}
	if got, _ := seqs(t, s, "a", 1); len(got) != 150 || got[0] != 1 || got[149] != 150 {
		t.Fatalf("stored %d records", len(got))
	}
}

func testOutOfOrderAndGaps(t *testing.T, open func() Store) {
	s := openT(t, open)
	res := apply(t, s, hubstore.Write{Batches: []hubstore.Ingested{Batch("a", 11, 20), Batch("a", 31, 40)}})
	if !slices.Equal(res.Acks, []wire.Ack{{Agent: "a", Through: 0}}) {
		t.Fatalf("acks %v", res.Acks)
	}
	st, _ := s.AgentState("a")
	if !slices.Equal(st.Missing, rs(1, 10, 21, 30)) || st.Contiguous != 0 || st.Highest != 40 {
		t.Fatalf("state %+v", st)
	}
	if len(res.Missing) != 1 || !slices.Equal(res.Missing["a"], st.Missing) {
		t.Fatalf("result's missing ranges %v, want the state's %v", res.Missing, st.Missing)
	}
	b := hubstore.Ingested{Agent: "a", First: 1, Last: 10, Entries: []wire.Entry{
		{Seq: 1, Raw: Record(1)}, {Seq: 2, Raw: GapRecord(7, [2]uint64{3, 9})}, {Seq: 10, Raw: Record(10)}}}
	b2 := hubstore.Ingested{Agent: "a", First: 21, Last: 30, Entries: []wire.Entry{
		{Seq: 21, Raw: GapRecord(0, [2]uint64{22, 30})}}}
	res = apply(t, s, hubstore.Write{Batches: []hubstore.Ingested{b, b2}})
	if res.Declared != 7+9 || !slices.Equal(res.Acks, []wire.Ack{{Agent: "a", Through: 40}}) || res.Missing != nil {
		t.Fatalf("result %+v", res)
	}
	st, _ = s.AgentState("a")
	if st.Missing != nil || st.DeclaredDropped != 16 || st.Received != 24 {
		t.Fatalf("state %+v", st)
	}
	// Sequences declared dropped are covered, not stored.
	got, _ := seqs(t, s, "a", 1)
	if len(got) != 24 || got[0] != 1 || got[1] != 2 || got[2] != 10 {
		t.Fatalf("stored %v", got)
	}
}

func testStaleStatus(t *testing.T, open func() Store) {
	s := openT(t, open)
	st := func(state string, bd uint64) hubstore.StatusUpdate {
		return hubstore.StatusUpdate{Status: wire.Status{State: state, Agent: "a", BdSeq: bd}, Raw: fmt.Appendf(nil, `{"state":%q,"bdseq":%d}`, state, bd)}
	}
	res := apply(t, s, hubstore.Write{Statuses: []hubstore.StatusUpdate{st("online", 5), st("offline", 4), st("offline", 5)}})
	if res.Stale != 1 {
		t.Fatalf("stale %d", res.Stale)
	}
	a, _ := s.AgentState("a")
	if a.Online || a.BdSeq != 5 || string(a.Birth) != `{"state":"online","bdseq":5}` || string(a.Status) != `{"state":"offline","bdseq":5}` {
		t.Fatalf("state %+v", a)
	}
	if res := apply(t, s, hubstore.Write{Statuses: []hubstore.StatusUpdate{st("online", 4)}}); res.Stale != 1 {
		t.Fatalf("older birth accepted: %+v", res)
	}
	if res := apply(t, s, hubstore.Write{Statuses: []hubstore.StatusUpdate{st("online", 6)}}); res.Stale != 0 {
		t.Fatalf("newer birth rejected: %+v", res)
	}
	if a, _ := s.AgentState("a"); !a.Online || a.BdSeq != 6 {
		t.Fatalf("state %+v", a)
	}
}

func testInvalid(t *testing.T, open func() Store) {
	s := openT(t, open)
	good := Batch("a", 1, 3)
	for name, b := range map[string]hubstore.Ingested{
		"bad agent":    {Agent: "a/b", First: 1, Last: 1},
		"zero first":   {Agent: "a", First: 0, Last: 1},
		"inverted":     {Agent: "a", First: 5, Last: 4},
		"out of range": {Agent: "a", First: 1, Last: 2, Entries: []wire.Entry{{Seq: 3}}},
		"not ordered":  {Agent: "a", First: 1, Last: 9, Entries: []wire.Entry{{Seq: 3}, {Seq: 3}}},
	} {
		if _, err := s.Apply(hubstore.Write{Batches: []hubstore.Ingested{good, b}}); !errors.Is(err, hubstore.ErrInvalid) {
			t.Errorf("%s: err %v", name, err)
		}
	}
	if _, ok := s.AgentState("a"); ok {
		t.Fatal("an invalid write applied part of itself")
	}
}

func testManyAgents(t *testing.T, open func() Store) {
	s := open()
	const agents, rounds, per = 50, 4, 25
	for r := 0; r < rounds; r++ {
		var w hubstore.Write
		for a := 0; a < agents; a++ {
			first := uint64(r*per + 1)
			w.Batches = append(w.Batches, Batch(fmt.Sprintf("agent-%03d", a), first, first+per-1))
		}
		if res := apply(t, s, w); len(res.Acks) != agents || res.Stored != agents*per {
			t.Fatalf("round %d: %+v", r, res)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, open)
	all := s.Agents()
	if len(all) != agents {
		t.Fatalf("%d agents after reopen", len(all))
	}
	for i, a := range all {
		if a.ID != fmt.Sprintf("agent-%03d", i) || a.Received != rounds*per || a.Contiguous != rounds*per {
			t.Fatalf("%+v", a)
		}
	}
}

func testAckedThroughOnFreshStore(t *testing.T, open func() Store) {
	s := open()
	res := apply(t, s, hubstore.Write{Batches: []hubstore.Ingested{Batch("a", 5001, 5100)}})
	if !slices.Equal(res.Acks, []wire.Ack{{Agent: "a", Through: 0}}) {
		t.Fatalf("acks before the birth %v", res.Acks)
	}
	res = apply(t, s, hubstore.Write{Statuses: []hubstore.StatusUpdate{birthWith("a", 3, 5000)}})
	if res.AckedBefore != 5000 || !slices.Equal(res.Acks, []wire.Ack{{Agent: "a", Through: 5100}}) {
		t.Fatalf("birth result %+v", res)
	}
	res = apply(t, s, hubstore.Write{Batches: []hubstore.Ingested{Batch("a", 5101, 5200)}})
	if res.Stored != 100 || !slices.Equal(res.Acks, []wire.Ack{{Agent: "a", Through: 5200}}) {
		t.Fatalf("later batch result %+v", res)
	}
	res = apply(t, s, hubstore.Write{Batches: []hubstore.Ingested{Batch("a", 4990, 5010)}})
	if res.Stored != 0 || res.Duplicates != 21 {
		t.Fatalf("resend inside the acked-before range %+v", res)
	}
	check := func(when string, s Store) {
		t.Helper()
		st, ok := s.AgentState("a")
		if !ok || st.Contiguous != 5200 || st.Highest != 5200 || st.Missing != nil ||
			st.AckedBefore != 5000 || st.Received != 200 || st.Duplicates != 21 || !st.Online || st.BdSeq != 3 {
			t.Fatalf("%s: state %+v", when, st)
		}
	}
	check("open", s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check("after reopen", openT(t, open))
}

func testAckedThroughFillsHoles(t *testing.T, open func() Store) {
	s := openT(t, open)
	apply(t, s, hubstore.Write{Batches: []hubstore.Ingested{Batch("a", 101, 200), Batch("a", 301, 400)}})
	res := apply(t, s, hubstore.Write{Statuses: []hubstore.StatusUpdate{birthWith("a", 1, 250)}})
	if res.AckedBefore != 150 || !slices.Equal(res.Acks, []wire.Ack{{Agent: "a", Through: 250}}) {
		t.Fatalf("result %+v", res)
	}
	st, _ := s.AgentState("a")
	if st.AckedBefore != 150 || st.Contiguous != 250 || !slices.Equal(st.Missing, rs(251, 300)) {
		t.Fatalf("state %+v", st)
	}
}

func testAckedThroughIgnored(t *testing.T, open func() Store) {
	s := openT(t, open)
	apply(t, s, hubstore.Write{Batches: []hubstore.Ingested{Batch("a", 1, 100)}, Statuses: []hubstore.StatusUpdate{birthWith("a", 5, 0)}})
	cases := []struct {
		name string
		su   hubstore.StatusUpdate
	}{
		{"below coverage", birthWith("a", 5, 60)},
		{"at coverage", birthWith("a", 6, 100)},
		{"stale bdseq", birthWith("a", 4, 9000)},
		{"death", hubstore.StatusUpdate{Status: wire.Status{State: wire.StateOffline, Agent: "a", BdSeq: 6, AckedThrough: 9000},
			Raw: []byte(`{"state":"offline","bdseq":6,"acked_through":9000}`)}},
	}
	for _, c := range cases {
		res := apply(t, s, hubstore.Write{Statuses: []hubstore.StatusUpdate{c.su}})
		if res.AckedBefore != 0 || len(res.Acks) != 0 {
			t.Fatalf("%s: result %+v", c.name, res)
		}
		st, _ := s.AgentState("a")
		if st.AckedBefore != 0 || st.Contiguous != 100 || st.Highest != 100 {
			t.Fatalf("%s: state %+v", c.name, st)
		}
	}
	if st, _ := s.AgentState("a"); st.BdSeq != 6 || st.Online {
		t.Fatalf("statuses not applied as usual: %+v", st)
	}
}

// Health and status without any batch create the agent and ack nothing.
func testHealthAndStatusOnly(t *testing.T, open func() Store) {
	s := openT(t, open)
	res := apply(t, s, hubstore.Write{
		Health:   []hubstore.HealthUpdate{{Agent: "h", Raw: []byte(`{"v":1}`)}, {Agent: "h", Raw: []byte(`{"v":2}`)}},
		Statuses: []hubstore.StatusUpdate{{Status: wire.Status{State: wire.StateOffline, Agent: "o", BdSeq: 1}, Raw: []byte(`{"state":"offline"}`)}},
	})
	if len(res.Acks) != 0 || res.Stored != 0 {
		t.Fatalf("result %+v", res)
	}
	h, ok := s.AgentState("h")
	if !ok || string(h.Health) != `{"v":2}` || h.HasStatus || h.Contiguous != 0 {
		t.Fatalf("h %+v", h)
	}
	o, ok := s.AgentState("o")
	if !ok || !o.HasStatus || o.Online || o.Birth != nil || string(o.Status) != `{"state":"offline"}` {
		t.Fatalf("o %+v", o)
	}
}
