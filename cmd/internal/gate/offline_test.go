package gate_test

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/fakeclock"
	"github.com/kioskedge/kioskedge/testhw/gpiosim"
	"github.com/kioskedge/kioskedge/testhw/hubtest"
)

// scriptedRun swipes the script at agent a and returns its decisions in
// order, once the last (a clean valid card, the script's end marker) is
// among them; read reads the agent's decisions (from its outbox or from
// the hub).
func scriptedRun(t *testing.T, a *agent, pools *cardPools, script []swipe, edges [][]gpiosim.TxEdge, read func() []decision) []decision {
	t.Helper()
	loadSnapshot(t, a.gate.Allowlist, 1, pools.entries(t, a.key, a.clock.Now()))
	a.waitReaders(t, 1)
	f := newFeeder(t, a, "main-in")
	for i := range script {
		f.send(t, edges[i])
	}
	marker := script[len(script)-1].card.hexHash(t, a.key)
	var decs []decision
	waitUntil(t, "the script's last decision", func() bool {
		decs = read()
		return len(decs) > 0 && decs[len(decs)-1].Cred == marker
	})
	return decs
}

// TestOfflineDecisionsMatchOnline is the second criterion: the
// same scripted swipes (allowlisted cards clean and noisy, unknown,
// expired, not yet valid, wrong-door, parity errors, truncated frames and
// garbage) are decided identically by an agent whose broker is down for
// the whole run (its port closed) and by one online; once the broker is
// back, with a hub on it, the hub receives every record the offline agent
// wrote (every sequence number, and the same decisions in the same
// order). Run against mochi and mosquitto.
//
// Not parallel (two agents, two hubs per broker kind): the tests that
// pace swipes in real time would be starved.
func TestOfflineDecisionsMatchOnline(t *testing.T) {
	broker.Each(t, func(t *testing.T, online *broker.Broker) {
		offline := broker.ForTest(t, broker.Options{Kind: online.Kind()})
		if err := offline.Stop(); err != nil {
			t.Fatal(err)
		}

		// One script for both agents.
		rng := rand.New(rand.NewPCG(7, 7))
		pools := newPools(rng, 200, 20, 20, 20)
		gen := newGenerator(rng, pools, deterministicWeights, false)
		var script []swipe
		for range 150 {
			script = append(script, gen.next())
		}
		last := swipe{cat: catValid, card: pools.valid[0], grantable: true}
		last.bits = last.card.bits()
		script = append(script, last)
		edges := make([][]gpiosim.TxEdge, len(script))
		for i, s := range script {
			edges[i] = s.schedule(rng)
		}

		hubOn := hubtest.Start(t, online.URL(), hubtest.Options{})
		on := newAgent(t, online.URL(), "gate-on", `unlock_pulse = "10ms"`, oneDoor, fakeclock.New(time.Now().Truncate(time.Millisecond)))
		off := newAgent(t, offline.URL(), "gate-off", `unlock_pulse = "10ms"`, oneDoor, fakeclock.New(time.Now().Truncate(time.Millisecond)))
		on.start(t)
		off.start(t)
		waitUntil(t, "the online agent connected", on.node.Uplink.Session().Connected)

		onDecs := scriptedRun(t, on, pools, script, edges, func() []decision { return decisions(t, hubOn.Records(t, "gate-on")) })
		offDecs := scriptedRun(t, off, pools, script, edges, func() []decision { return decisions(t, outboxRecords(t, off)) })
		if s := off.node.Uplink.Session().Stats(); s.Connects != 0 {
			t.Fatalf("the offline agent connected %d times", s.Connects)
		}

		var tl tally
		for _, s := range script {
			tl.swipes[s.cat]++
		}
		outcome := func(ds []decision) []string {
			var out []string
			for _, d := range ds {
				out = append(out, d.String())
			}
			return out
		}
		onOut, offOut := outcome(onDecs), outcome(offDecs)
		if !slices.Equal(onOut, offOut) {
			t.Fatalf("offline decisions differ from online:\n online  %v\n offline %v", onOut, offOut)
		}
		// And they are the ones the script calls for.
		var want []string
		for _, s := range script {
			w, _ := s.cat.expect()
			want = append(want, w)
		}
		if !slices.Equal(onOut, want) {
			t.Fatalf("decisions %v, want %v", onOut, want)
		}
		t.Logf("%d swipes decided alike online and offline", len(script))

		// The broker comes back, with a hub: everything reaches it.
		records := outboxRecords(t, off)
		lastSeq := records[len(records)-1].Seq
		start := time.Now()
		if err := offline.Restart(); err != nil {
			t.Fatal(err)
		}
		hubOff := hubtest.Start(t, offline.URL(), hubtest.Options{})
		hubOff.WaitHolds(t, "gate-off", lastSeq, 60*time.Second)
		atHub := decisions(t, hubOff.Records(t, "gate-off"))
		if !slices.Equal(atHub[:min(len(atHub), len(offDecs))], offDecs) || len(atHub) != len(offDecs) {
			t.Fatalf("the hub holds %d decisions of the offline agent, want its %d in order", len(atHub), len(offDecs))
		}
		t.Logf("%d records (%d decisions) of the offline agent at the hub %v after the broker returned", lastSeq, len(atHub), time.Since(start).Round(time.Millisecond))
	})
}
