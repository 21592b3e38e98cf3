package hubstore

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kioskedge/kioskedge/sync/wire"
)

// birthWith is an accepted-looking birth of agent a carrying ackedThrough.
func birthWith(agent string, bd, ackedThrough uint64) StatusUpdate {
	st := wire.Status{State: wire.StateOnline, Agent: agent, BdSeq: bd, AckedThrough: ackedThrough}
	return StatusUpdate{Status: st, Raw: fmt.Appendf(nil, `{"state":"online","agent":%q,"bdseq":%d,"acked_through":%d}`, agent, bd, ackedThrough)}
}

// A fresh store meets an agent whose earlier hub acked through 5000: the
// batches from 5001 on become ackable, with nothing missing.
func TestBirthAckedThroughOnFreshStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// A batch arriving before the birth cannot be acked yet.
	res := mustApply(t, s, Write{Batches: []Ingested{batch(t, "a", 5001, 5100)}})
	if !slices.Equal(res.Acks, []wire.Ack{{Agent: "a", Through: 0}}) {
		t.Fatalf("acks before the birth %v", res.Acks)
	}
	res = mustApply(t, s, Write{Statuses: []StatusUpdate{birthWith("a", 3, 5000)}})
	if res.AckedBefore != 5000 || !slices.Equal(res.Acks, []wire.Ack{{Agent: "a", Through: 5100}}) {
		t.Fatalf("birth result %+v", res)
	}
	res = mustApply(t, s, Write{Batches: []Ingested{batch(t, "a", 5101, 5200)}})
	if res.Stored != 100 || !slices.Equal(res.Acks, []wire.Ack{{Agent: "a", Through: 5200}}) {
		t.Fatalf("later batch result %+v", res)
	}
	// A late resend of an old record is a duplicate, not stored.
	res = mustApply(t, s, Write{Batches: []Ingested{batch(t, "a", 4990, 5010)}})
	if res.Stored != 0 || res.Duplicates != 21 {
		t.Fatalf("resend inside the acked-before range %+v", res)
	}
	check := func(when string) {
		t.Helper()
		st, ok := s.AgentState("a")
		if !ok || st.Contiguous != 5200 || st.Highest != 5200 || st.Missing != nil ||
			st.AckedBefore != 5000 || st.Received != 200 || st.Duplicates != 21 || !st.Online || st.BdSeq != 3 {
			t.Fatalf("%s: state %+v", when, st)
		}
	}
	check("open")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	check("after reopen")
}

// Only the part of [1, acked_through] not covered yet is counted, and the
// ack goes out in the same Apply even without a batch.
func TestBirthAckedThroughFillsHoles(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "hub.db"))
	mustApply(t, s, Write{Batches: []Ingested{batch(t, "a", 101, 200), batch(t, "a", 301, 400)}})
	res := mustApply(t, s, Write{Statuses: []StatusUpdate{birthWith("a", 1, 250)}})
	if res.AckedBefore != 150 || !slices.Equal(res.Acks, []wire.Ack{{Agent: "a", Through: 250}}) {
		t.Fatalf("result %+v", res)
	}
	st, _ := s.AgentState("a")
	if st.AckedBefore != 150 || st.Contiguous != 250 || !slices.Equal(st.Missing, rs(251, 300)) {
		t.Fatalf("state %+v", st)
	}
}

func TestBirthAckedThroughIgnored(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "hub.db"))
	mustApply(t, s, Write{Batches: []Ingested{batch(t, "a", 1, 100)}, Statuses: []StatusUpdate{birthWith("a", 5, 0)}})
	cases := []struct {
		name string
		su   StatusUpdate
	}{
		{"below coverage", birthWith("a", 5, 60)},
		{"at coverage", birthWith("a", 6, 100)},
		{"stale bdseq", birthWith("a", 4, 9000)},
		{"death", StatusUpdate{Status: wire.Status{State: wire.StateOffline, Agent: "a", BdSeq: 6, AckedThrough: 9000},
			Raw: []byte(`{"state":"offline","bdseq":6,"acked_through":9000}`)}},
	}
	for _, c := range cases {
		res := mustApply(t, s, Write{Statuses: []StatusUpdate{c.su}})
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

// A state written before the acked-before counter existed still opens.
func TestDecodeStateVersion1(t *testing.T) {
	a := &State{Received: 10, Duplicates: 2, Declared: 3, AckedBefore: 99, HasStatus: true, Online: true, BdSeq: 7}
	a.Coverage.Add(1, 10)
	v2 := encodeState(nil, a)
	// Version 1 is version 2 without the fifth uvarint (one byte here).
	v1 := append([]byte{1}, v2[1:4]...)
	v1 = append(v1, v2[5:]...)
	var got State
	if err := decodeState(v1, &got); err != nil {
		t.Fatal(err)
	}
	if got.Received != 10 || got.Duplicates != 2 || got.Declared != 3 || got.AckedBefore != 0 ||
		!got.Online || got.BdSeq != 7 || got.Coverage.Contiguous() != 10 {
		t.Fatalf("decoded %+v", got)
	}
	if err := decodeState(v2, &got); err != nil || got.AckedBefore != 99 {
		t.Fatalf("version 2: %+v, %v", got, err)
	}
}
