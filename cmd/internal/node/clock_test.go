package node_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/hubtest"
)

// TestHealthCarriesClockOffset: a running agent measures its clock against
// the hub's clock responder and its health snapshot (as the hub stores it)
// carries the offset, within the bound on one machine, so no clock.skew
// record is written.
func TestHealthCarriesClockOffset(t *testing.T) {
	broker.Each(t, func(t *testing.T, b *broker.Broker) {
		dir := t.TempDir()
		hub := hubtest.Start(t, b.URL(), hubtest.Options{Root: root, DBPath: filepath.Join(dir, "hub.db"), Backoff: fast})
		c := agentConfig("clock-1", filepath.Join(dir, "agent"), b.URL())
		c.Hub.HealthInterval = config.Duration(200 * time.Millisecond)
		n := openNode(t, c)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		}()

		wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer wcancel()
		var clock *wire.ClockHealth
		err := hub.Server().Hub().Wait(wctx, func() bool {
			a, ok := hub.Server().Store().AgentState("clock-1")
			if !ok || len(a.Health) == 0 {
				return false
			}
			h, err := wire.DecodeHealth(a.Health)
			if err != nil || h.Clock == nil {
				return false
			}
			clock = h.Clock
			return true
		})
		if err != nil {
			t.Fatalf("no health with a clock section reached the hub: %v", err)
		}
		// One machine, one clock: the offset is within the exchange's
		// error bound (half its round trip) plus a margin for the
		// timestamps' rounding.
		if clock.Skewed || clock.DelayMS < 0 || abs(clock.OffsetMS) > clock.DelayMS/2+1 || clock.Measured.IsZero() {
			t.Fatalf("clock section %+v", *clock)
		}
		t.Logf("offset %.3f ms, round trip %.3f ms", clock.OffsetMS, clock.DelayMS)
		if m, ok := n.Clock.Last(); !ok || m.Skewed {
			t.Fatalf("watch: %+v %v", m, ok)
		}
	})
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
