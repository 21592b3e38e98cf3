package main

import (
	"context"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/testhw/gpiosim"
)

// TestGateSuiteTiny runs the gate suite with tiny sizes through the real
// wiring: the swipes of listed cards were granted, each with its own relay
// edge, the unlisted ones denied, every row is present, positive and has a
// baseline, and no file is left. Nothing about speed is asserted.
func TestGateSuiteTiny(t *testing.T) {
	dir := t.TempDir()
	sz := gateSizes{entries: 5_000, swipes: 50, lookups: 1_000, deltas: 3}
	res, err := runGate(context.Background(), Config{Quick: true, Dir: dir}, sz)
	if err != nil {
		t.Fatal(err)
	}
	if res.swipes != sz.swipes || res.grants+res.denials != res.swipes {
		t.Errorf("%d swipes: %d granted, %d denied; want %d swipes", res.swipes, res.grants, res.denials, sz.swipes)
	}
	if res.grants == 0 || res.relayEdges != res.grants || len(res.decision) != res.grants {
		t.Errorf("%d grants, %d relay edges, %d timings: want as many, and some", res.grants, res.relayEdges, len(res.decision))
	}
	for i, d := range res.decision {
		if d <= 0 {
			t.Errorf("grant %d: relay moved %v after the frame's last edge", i, d)
		}
	}
	if res.wire != 26*gpiosim.DefaultInterval {
		t.Errorf("wire time %v, want %v", res.wire, 26*gpiosim.DefaultInterval)
	}
	if res.lookupsTried != sz.lookups || res.lookupsFound == 0 || res.lookupsFound == res.lookupsTried {
		t.Errorf("%d of %d lookups found: want a mix of listed and unlisted keys", res.lookupsFound, res.lookupsTried)
	}
	if len(res.delta) != sz.deltas || len(res.deltaBase) != sz.deltas {
		t.Errorf("%d deltas and %d baselines, want %d", len(res.delta), len(res.deltaBase), sz.deltas)
	}
	checkSuiteRows(t, "gate", res.rows(), []string{
		"gate/decision_p99_us", "gate/decision_p50_us", "gate/decision_max_us",
		"gate/lookup_p99_us", "gate/snapshot_apply_1m_s", "gate/delta_apply_100_ms",
	}, dir)
}

func TestGateSuiteCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	sz := gateSizes{entries: 5_000, swipes: 50, lookups: 1_000, deltas: 3}
	if _, err := runGate(ctx, Config{Dir: dir}, sz); err == nil {
		t.Fatal("a cancelled run reported a result without error")
	}
	checkSuiteRows(t, "gate", nil, nil, dir)
}

// TestMatchRelayEdges: each swipe takes the first active edge after its
// last Wiegand edge, and a swipe without one is an error.
func TestMatchRelayEdges(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	edges := []gpiosim.Edge{
		{Level: true, Time: at(1)}, {Level: false, Time: at(2)}, // before the first swipe
		{Level: true, Time: at(11)}, {Level: false, Time: at(12)},
		{Level: false, Time: at(20)}, {Level: true, Time: at(23)},
	}
	got, err := matchRelayEdges(edges, []swipe{{last: at(10)}, {last: at(20)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != time.Millisecond || got[1] != 3*time.Millisecond {
		t.Errorf("latencies %v, want [1ms 3ms]", got)
	}
	if _, err := matchRelayEdges(edges, []swipe{{last: at(3)}, {last: at(5)}}); err == nil {
		t.Error("two swipes matched one relay edge")
	}
	if _, err := matchRelayEdges(edges, []swipe{{last: at(30)}}); err == nil {
		t.Error("a swipe with no relay edge after it matched")
	}
}
