package node_test

// Hub database loss (hub-protocol.md §5.3, "acked before"): an agent that
// already deleted what hub A acked meets hub B on a fresh database. Its
// birth says how far it was acked, so hub B can ack its later records.

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/cmd/internal/node"
	"github.com/kioskedge/kioskedge/sync/hubstore"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/hubtest"
	"github.com/kioskedge/kioskedge/testhw/synth"
)

// appendN appends n synthetic records and returns the last sequence.
func appendN(t *testing.T, n *node.Node, count int) uint64 {
	t.Helper()
	comm := synth.NewCommunity(uint64(count), 1000, 2, time.Now())
	var last uint64
	for range count {
		seq, err := n.Append(context.Background(), comm.Next())
		if err != nil {
			t.Fatalf("append: %v", err)
		}
		last = seq
	}
	return last
}

// waitDrained waits until the agent's outbox holds nothing unacked.
func waitDrained(t *testing.T, n *node.Node, ackedThrough uint64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := n.Outbox.Stats()
		if st.Depth == 0 && st.AckedThrough == ackedThrough {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox never drained: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHubDatabaseLossAcksAgain(t *testing.T) {
	broker.Each(t, func(t *testing.T, b *broker.Broker) {
		dir := t.TempDir()
		hubA := hubtest.Start(t, b.URL(), hubtest.Options{Root: root, DBPath: filepath.Join(dir, "hub-a.db"), Backoff: fast})
		n := openNode(t, agentConfig("agent-1", filepath.Join(dir, "agent"), b.URL()))
		if last := appendN(t, n, 3000); last != 3000 {
			t.Fatalf("first batch of appends ends at %d", last)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.Run(ctx) }()
		hubA.WaitHolds(t, "agent-1", 3000, 60*time.Second)
		waitDrained(t, n, 3000)
		hubA.Stop()

		// Hub B: a fresh database; the agent stays connected to the broker.
		dbB := filepath.Join(dir, "hub-b.db")
		hubB := hubtest.Start(t, b.URL(), hubtest.Options{Root: root, DBPath: dbB, Backoff: fast})
		if last := appendN(t, n, 2000); last != 5000 {
			t.Fatalf("second batch of appends ends at %d", last)
		}
		hubB.WaitHolds(t, "agent-1", 5000, 60*time.Second)
		waitDrained(t, n, 5000)
		r, _ := hubB.Received("agent-1")
		if r.Count != 2000 || r.Highest != 5000 || r.HighestContiguous != 5000 || len(r.Missing) != 0 || r.AckedBefore != 3000 {
			t.Fatalf("hub B reports %+v", r)
		}
		if st := hubB.Server().Hub().Stats(); st.AckedBefore != 3000 {
			t.Fatalf("hub B stats %+v", st)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("uplink run: %v", err)
		}
		hubB.Stop()

		// Hub B's file holds exactly 3001..5000, and keeps the marking.
		s, err := hubstore.Open(dbB, hubstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var seqs []uint64
		if err := s.ForEach("agent-1", 1, func(seq uint64, _ []byte) error { seqs = append(seqs, seq); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(seqs) != 2000 || seqs[0] != 3001 || seqs[len(seqs)-1] != 5000 || !slices.IsSorted(seqs) {
			t.Fatalf("hub B stores %d records, %v…%v", len(seqs), seqs[:min(3, len(seqs))], seqs[max(0, len(seqs)-3):])
		}
		if st, ok := s.AgentState("agent-1"); !ok || st.AckedBefore != 3000 || st.Contiguous != 5000 {
			t.Fatalf("hub B state after reopen %+v", st)
		}
	})
}
