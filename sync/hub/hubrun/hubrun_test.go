package hubrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/hub"
	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
)

const root = "kioskedge/it"

var fast = uplink.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond, StableAfter: time.Second}

type running struct {
	srv  *Server
	stop func()
}

// runHub builds a hub from cfg and runs it until the test ends (or stop).
func runHub(t *testing.T, cfg Config) *running {
	t.Helper()
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var once sync.Once
	r := &running{srv: srv, stop: func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
			if err := srv.Close(); err != nil {
				t.Error(err)
			}
		})
	}}
	t.Cleanup(r.stop)
	return r
}

func startHub(t *testing.T, url, db string) *running {
	t.Helper()
	return runHub(t, Config{Broker: url, AllowPlaintext: true, Backoff: fast, ClientID: "hub-" + filepath.Base(filepath.Dir(db)),
		Root: root, DBPath: db, HTTPAddr: "127.0.0.1:0"})
}

// agent is the agent's side of the protocol, by hand: a session that
// publishes encoded batches and follows the acks.
type agent struct {
	s       *uplink.Session
	mu      sync.Mutex
	through uint64
	cancel  func()
	done    chan error
}

func startAgent(t *testing.T, url, id string) *agent {
	t.Helper()
	s, err := uplink.NewSession(uplink.SessionOptions{Broker: url, ClientID: id, AllowPlaintext: true, Backoff: fast})
	if err != nil {
		t.Fatal(err)
	}
	a := &agent{s: s, done: make(chan error, 1)}
	err = s.Subscribe(wire.Topics{Root: root, Agent: id}.Ack(), 1, func(_ string, p []byte) {
		ack, err := wire.DecodeAck(p)
		if err != nil {
			return
		}
		a.mu.Lock()
		a.through = max(a.through, ack.Through)
		a.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go func() { a.done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-a.done; err != nil {
			t.Error(err)
		}
	})
	return a
}

func (a *agent) acked() uint64 { a.mu.Lock(); defer a.mu.Unlock(); return a.through }

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within 20s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func publish(t *testing.T, a *agent, m uplink.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		err := a.s.Publish(ctx, m)
		if err == nil {
			return
		}
		if !errors.Is(err, uplink.ErrNotConnected) || ctx.Err() != nil {
			t.Fatalf("publish %s: %v", m.Topic, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestThroughBroker(t *testing.T) {
	codec, err := wire.NewCodec(wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer codec.Close()
	broker.Each(t, func(t *testing.T, b *broker.Broker) {
		t.Parallel()
		db := filepath.Join(t.TempDir(), "hub.db")
		h := startHub(t, b.URL(), db)
		a := startAgent(t, b.URL(), "gate-7")
		topics := wire.Topics{Root: root, Agent: "gate-7"}

		// A retained birth reaches the hub whenever it subscribes; once it
		// has, the events subscription is in place too.
		publish(t, a, uplink.Message{Topic: topics.Status(), QoS: 1, Retained: true,
			Payload: []byte(`{"state":"online","agent":"gate-7","boot_id":"b1","bdseq":1}`)})
		eventually(t, "hub saw the birth", func() bool { return h.srv.Hub().Stats().Statuses >= 1 })

		const per, batches = 500, 8
		msgs := make([][]byte, batches)
		for i := range msgs {
			first := uint64(i*per + 1)
			var es []wire.Entry
			for s := first; s < first+per; s++ {
				raw, err := wire.MarshalRecord(wire.Record{Kind: wire.KindAccess, Class: wire.ClassCritical,
					Time: time.Unix(1_700_000_000, 0), Body: fmt.Appendf(nil, `{"n":%d}`, s)})
				if err != nil {
					t.Fatal(err)
				}
				es = append(es, wire.Entry{Seq: s, Raw: raw})
			}
			msg, _, err := codec.EncodeBatch("gate-7", "b1", first, first+per-1, es, nil)
			msgs[i] = msg
			if err != nil {
				t.Fatal(err)
			}
		}
		// Out of order, with resends.
		for _, i := range []int{1, 0, 3, 2, 2, 5, 4, 7, 6, 0} {
			publish(t, a, uplink.Message{Topic: topics.Events(), QoS: 1, Payload: msgs[i]})
		}
		eventually(t, "agent acked through the end", func() bool { return a.acked() == per*batches })

		var rec hub.Received
		resp, err := http.Get("http://" + h.srv.HTTPAddr() + "/api/agents/gate-7/received")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&rec)
		resp.Body.Close()
		if err != nil || rec.Count != per*batches || len(rec.Missing) != 0 || rec.DuplicatesDropped != 2*per {
			t.Fatalf("received %+v, %v", rec, err)
		}

		// Restart the hub on the same file: nothing acked is lost, and a
		// late resend is dropped and acked again.
		h.stop()
		h = startHub(t, b.URL(), db)
		if r, ok := h.srv.Hub().AgentReceived("gate-7"); !ok || r.Count != per*batches || r.HighestContiguous != per*batches {
			t.Fatalf("after restart %+v", r)
		}
		if ag := h.srv.Hub().Agents(); len(ag) != 1 || !ag[0].Online {
			t.Fatalf("agents after restart %+v", ag)
		}
		eventually(t, "hub resubscribed", func() bool { return h.srv.Hub().Stats().Statuses >= 1 })
		// The birth shows the status subscription is in place, but not
		// that the events one is: a subscription made while the session is
		// connecting goes out on the connect's renewal, one made just after
		// goes out at once and can overtake it. Resend until the hub has
		// it, as an agent does on its ack timeout.
		last := time.Time{}
		eventually(t, "resend acked", func() bool {
			if s := h.srv.Hub().Stats(); s.Batches >= 1 && s.AcksConfirmed >= 1 {
				return true
			}
			if time.Since(last) > 500*time.Millisecond {
				publish(t, a, uplink.Message{Topic: topics.Events(), QoS: 1, Payload: msgs[7]})
				last = time.Now()
			}
			return false
		})
		if s := h.srv.Hub().Stats(); s.Duplicates != s.Batches*per {
			t.Fatalf("resends after the restart: %d batches, %d duplicates; every record should be a duplicate", s.Batches, s.Duplicates)
		}
		if r, _ := h.srv.Hub().AgentReceived("gate-7"); r.Count != per*batches {
			t.Fatalf("after the resend the hub holds %d records, want %d", r.Count, per*batches)
		}
	})
}
