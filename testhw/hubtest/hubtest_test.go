package hubtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/hubtest"
)

// publish publishes m from s, retrying while s is not yet connected, for
// at most 10 s.
func publish(t *testing.T, s *uplink.Session, m uplink.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		err := s.Publish(ctx, m)
		if err == nil {
			return
		}
		if !errors.Is(err, uplink.ErrNotConnected) || ctx.Err() != nil {
			t.Fatalf("publish %s: %v", m.Topic, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitView waits (bounded) until cond holds for the hub's view of id.
func waitView(t *testing.T, h *hubtest.Hub, id string, cond func(hubtest.AgentView) bool) hubtest.AgentView {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var v hubtest.AgentView
	if err := h.Server().Hub().Wait(ctx, func() bool { v = h.View(t, id); return cond(v) }); err != nil {
		t.Fatalf("hub view of %s never matched; last %+v", id, v)
	}
	return v
}

func TestHubStoresRecordsAndSurvivesRestart(t *testing.T) {
	t.Parallel()
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi})
	h := hubtest.Start(t, b.URL(), hubtest.Options{})
	const id = "gate-1"
	topics := wire.Topics{Root: h.Root(), Agent: id}

	if v := h.View(t, id); v.Known || v.Status != nil || v.Health != nil {
		t.Fatalf("view of an unknown agent %+v", v)
	}
	if _, ok := h.Received(id); ok {
		t.Fatal("Received reports an agent the hub never heard of")
	}

	s, err := uplink.NewSession(uplink.SessionOptions{Broker: b.URL(), ClientID: id, AllowPlaintext: true, Backoff: hubtest.DefaultBackoff})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})

	birth, err := json.Marshal(wire.Status{State: wire.StateOnline, Agent: id, BootID: "b1", BdSeq: 1, Time: time.Unix(1_700_000_000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	publish(t, s, uplink.Message{Topic: topics.Status(), QoS: 1, Retained: true, Payload: birth})
	health, err := json.Marshal(wire.Health{Agent: id, BootID: "b1", Time: time.Unix(1_700_000_001, 0), Uplink: wire.UplinkHealth{Connected: true}})
	if err != nil {
		t.Fatal(err)
	}
	publish(t, s, uplink.Message{Topic: topics.Health(), QoS: 1, Payload: health})
	v := waitView(t, h, id, func(v hubtest.AgentView) bool { return v.Status != nil && v.Health != nil })
	if !v.Known || !v.Online || v.Status.BootID != "b1" || v.Status.BdSeq != 1 || v.Health.Agent != id || !v.Health.Uplink.Connected {
		t.Fatalf("view %+v, status %+v, health %+v", v, v.Status, v.Health)
	}

	// One batch of 1..n.
	codec, err := wire.NewCodec(wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer codec.Close()
	const n = 50
	var es []wire.Entry
	for seq := uint64(1); seq <= n; seq++ {
		raw, err := wire.MarshalRecord(wire.Record{Kind: wire.KindAccess, Class: wire.ClassCritical,
			Time: time.Unix(1_700_000_000, 0), Body: fmt.Appendf(nil, `{"n":%d}`, seq)})
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, wire.Entry{Seq: seq, Raw: raw})
	}
	msg, _, err := codec.EncodeBatch(id, "b1", 1, n, es, nil)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, s, uplink.Message{Topic: topics.Events(), QoS: 1, Payload: msg})
	h.WaitHolds(t, id, n, 15*time.Second)

	check := func(when string) {
		t.Helper()
		if r, ok := h.Received(id); !ok || r.Count != n || r.HighestContiguous != n || len(r.Missing) != 0 {
			t.Fatalf("%s: received %+v (known %v)", when, r, ok)
		}
		rs := h.Records(t, id)
		if len(rs) != n {
			t.Fatalf("%s: %d records, want %d", when, len(rs), n)
		}
		for i, r := range rs {
			if want := uint64(i + 1); r.Seq != want || r.Agent != id || r.Kind != wire.KindAccess || string(r.Body) != fmt.Sprintf(`{"n":%d}`, want) {
				t.Fatalf("%s: record %d is %+v", when, i, r)
			}
		}
	}
	check("first run")

	// Restart on the same file: everything is still there, through a new server.
	before := h.Server()
	h.Restart()
	if h.Server() == before {
		t.Fatal("Restart kept the old server")
	}
	check("after restart")
	h.Stop()
	h.Stop() // idempotent
}
