package uplink

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/wire"
)

const testRoot = "kioskedge/test"

func newTestUplink(t *testing.T, url string, src Source, mod func(*Options)) (*Uplink, func()) {
	t.Helper()
	o := Options{
		Session: SessionOptions{Broker: url, AllowPlaintext: true,
			Backoff: Backoff{Min: 20 * time.Millisecond, Max: 100 * time.Millisecond, StableAfter: time.Second}},
		Root: testRoot, Agent: "box-1", BootID: "boot-1", Version: "1.2.3",
		BatchRecords: 100, Window: 4, BdSeqPath: filepath.Join(t.TempDir(), "bdseq"),
		Health: func() wire.OutboxHealth { return wire.OutboxHealth{Depth: 7} },
	}
	if mod != nil {
		mod(&o)
	}
	u, err := New(o, src)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	return u, stop
}

func TestUplinkDrainsInOrderAndDeletesOnHubAck(t *testing.T) {
	t.Parallel()
	broker.Each(t, func(t *testing.T, b *broker.Broker) {
		t.Parallel()
		hub := startHub(t, b.URL(), testRoot, false)
		src := newMemSource(5000)
		u, stop := newTestUplink(t, b.URL(), src, nil)
		defer stop()
		waitFor(t, "all acked", func() bool { return src.AckedThrough() == 5000 })
		src.Append(1234) // woken by Notify
		waitFor(t, "appended acked", func() bool { return src.AckedThrough() == 6234 })
		hub.mu.Lock()
		defer hub.mu.Unlock()
		for seq := uint64(1); seq <= 6234; seq++ {
			if hub.seen[seq] == 0 {
				t.Fatalf("seq %d never reached the hub", seq)
			}
		}
		// Batches cover contiguous ranges in order (no reconnect happened).
		for i := 2; i < len(hub.order); i += 2 {
			if hub.order[i] != hub.order[i-1]+1 {
				t.Fatalf("batch %d starts at %d after a batch ending at %d", i/2, hub.order[i], hub.order[i-1])
			}
		}
		if st := u.Stats(); st.BatchesSent < 63 || st.Acks == 0 || st.BadAcks != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestUplinkWindowAndNoDeletionWithoutHubAck(t *testing.T) {
	t.Parallel()
	broker.Each(t, func(t *testing.T, b *broker.Broker) {
		t.Parallel()
		hub := startHub(t, b.URL(), testRoot, true) // never acks
		src := newMemSource(2000)
		u, stop := newTestUplink(t, b.URL(), src, func(o *Options) { o.AckTimeout = 400 * time.Millisecond })
		defer stop()
		waitFor(t, "window full", func() bool { return hub.distinct() == 400 })
		waitFor(t, "ack timeout rewind", func() bool { return u.Stats().AckTimeouts >= 2 })
		st := u.Stats()
		if hub.distinct() != 400 {
			t.Fatalf("hub saw %d distinct records; the window of 4x100 was exceeded", hub.distinct())
		}
		if src.AckedThrough() != 0 || st.AckedThrough != 0 {
			t.Fatalf("records deleted without a hub ack (acked through %d)", src.AckedThrough())
		}
		if st.InFlight > 4 || st.Rewinds < 2 || st.BatchesSent < 8 {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestUplinkBadAcks(t *testing.T) {
	t.Parallel()
	broker.Each(t, func(t *testing.T, b *broker.Broker) {
		t.Parallel()
		hub := startHub(t, b.URL(), testRoot, true)
		src := newMemSource(50)
		u, stop := newTestUplink(t, b.URL(), src, nil)
		defer stop()
		waitFor(t, "sent", func() bool { return hub.distinct() == 50 })
		ack := wire.Topics{Root: testRoot, Agent: "box-1"}.Ack()
		for _, p := range []string{
			"garbage", `{"agent":"box-1","through":0}`, `{"agent":"box-2","through":10}`,
			`{"agent":"box-1","through":` + strings.Repeat("9", 70000) + `}`,
		} {
			if err := hub.sess.Publish(context.Background(), Message{Topic: ack, QoS: 1, Payload: []byte(p)}); err != nil {
				t.Fatal(err)
			}
		}
		beyond, _ := json.Marshal(wire.Ack{Agent: "box-1", Through: 51})
		hub.sess.Publish(context.Background(), Message{Topic: ack, QoS: 1, Payload: beyond})
		waitFor(t, "bad acks counted", func() bool { st := u.Stats(); return st.BadAcks == 4 && st.AcksBeyond == 1 })
		if src.AckedThrough() != 0 {
			t.Fatal("a bad ack deleted records")
		}
		good, _ := json.Marshal(wire.Ack{Agent: "box-1", Through: 50})
		hub.sess.Publish(context.Background(), Message{Topic: ack, QoS: 1, Payload: good})
		waitFor(t, "good ack applied", func() bool { return src.AckedThrough() == 50 })
	})
}

func TestUplinkBirthWillAndShutdown(t *testing.T) {
	t.Parallel()
	broker.Each(t, func(t *testing.T, b *broker.Broker) {
		t.Parallel()
		p := startProxy(t, b.Addr())
		status := wire.Topics{Root: testRoot, Agent: "box-1"}.Status()
		w := watchStatus(t, b.URL(), status)
		hub := startHub(t, b.URL(), testRoot, false)
		src := newMemSource(3000)
		bdPath := filepath.Join(t.TempDir(), "bdseq")
		os.WriteFile(bdPath, []byte("41\n"), 0o600) // from an earlier run
		u, stop := newTestUplink(t, p.URL(), src, func(o *Options) {
			o.BdSeqPath = bdPath
			o.BatchRecords = 50
			o.AckTimeout = 3 * time.Second // an ack lost in the cut is recovered by the rewind, well inside waitFor
		})
		waitFor(t, "birth 42", func() bool { return w.has(wire.StateOnline, "", 42) })
		waitFor(t, "some acked", func() bool { return src.AckedThrough() > 0 })
		p.Cut() // abrupt: no DISCONNECT, the broker publishes the Will
		waitFor(t, "will 42", func() bool { return w.has(wire.StateOffline, "will", 42) })
		waitFor(t, "birth 43", func() bool { return w.has(wire.StateOnline, "", 43) })
		waitFor(t, "all acked after reconnect", func() bool { return src.AckedThrough() == 3000 })
		if hub.distinct() != 3000 {
			t.Fatalf("hub has %d distinct records", hub.distinct())
		}
		if st := u.Stats(); st.Reconnects < 1 || st.BdSeq != 43 {
			t.Fatalf("stats %+v", st)
		}
		if b, _ := os.ReadFile(bdPath); strings.TrimSpace(string(b)) != "43" {
			t.Fatalf("bdseq file holds %q", b)
		}
		stop()
		waitFor(t, "shutdown death", func() bool { return w.has(wire.StateOffline, "shutdown", 43) })
		if last, _ := w.last(); last.State != wire.StateOffline || last.Reason != "shutdown" {
			t.Fatalf("last status %+v", last)
		}
	})
}

func TestUplinkRepublishesBirthOverOldWill(t *testing.T) {
	t.Parallel()
	broker.Each(t, func(t *testing.T, b *broker.Broker) {
		t.Parallel()
		status := wire.Topics{Root: testRoot, Agent: "box-1"}.Status()
		w := watchStatus(t, b.URL(), status)
		hub := startHub(t, b.URL(), testRoot, false)
		u, stop := newTestUplink(t, b.URL(), newMemSource(10), nil)
		defer stop()
		waitFor(t, "birth", func() bool { return w.has(wire.StateOnline, "", 1) })
		// A late Will of an earlier connection lands after our birth.
		old, _ := json.Marshal(wire.Status{State: wire.StateOffline, Agent: "box-1", BdSeq: 0, Reason: "will"})
		if err := hub.sess.Publish(context.Background(), Message{Topic: status, QoS: 1, Retained: true, Payload: old}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "birth republished", func() bool { return u.Stats().Births >= 2 })
		waitFor(t, "online again", func() bool { l, _ := w.last(); return l.State == wire.StateOnline && l.BdSeq == 1 })
	})
}

func TestUplinkBrokerRestartMidDrainLosesNothing(t *testing.T) {
	t.Parallel()
	broker.Each(t, func(t *testing.T, b *broker.Broker) {
		t.Parallel()
		hub := startHub(t, b.URL(), testRoot, false)
		src := newMemSource(20000)
		u, stop := newTestUplink(t, b.URL(), src, func(o *Options) { o.BatchRecords = 200; o.AckTimeout = 2 * time.Second })
		defer stop()
		waitFor(t, "drain started", func() bool { return src.AckedThrough() > 0 })
		if err := b.Restart(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "all acked", func() bool { return src.AckedThrough() == 20000 })
		if hub.distinct() != 20000 || hub.contiguous() != 20000 {
			t.Fatalf("hub has %d distinct, contiguous through %d", hub.distinct(), hub.contiguous())
		}
		if u.Stats().Reconnects < 1 {
			t.Fatal("no reconnect recorded")
		}
	})
}

func TestUplinkHealthRetained(t *testing.T) {
	t.Parallel()
	broker.Each(t, func(t *testing.T, b *broker.Broker) {
		t.Parallel()
		startHub(t, b.URL(), testRoot, false)
		got := make(chan wire.Health, 16)
		s, err := NewSession(SessionOptions{Broker: b.URL(), ClientID: "hw", AllowPlaintext: true})
		if err != nil {
			t.Fatal(err)
		}
		s.Subscribe(wire.Topics{Root: testRoot, Agent: "box-1"}.Health(), 1, func(_ string, p []byte) {
			if h, err := wire.DecodeHealth(p); err == nil {
				select {
				case got <- h:
				default:
				}
			}
		})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go s.Run(ctx)
		devs := []wire.DeviceHealth{{Name: "qr-1", Connected: true, Errors: 2, Detail: "qrscan"}}
		_, stop := newTestUplink(t, b.URL(), newMemSource(10), func(o *Options) {
			o.HealthInterval = 100 * time.Millisecond
			o.Devices = func() []wire.DeviceHealth { return devs }
			o.Decorate = func(h *wire.Health) { h.Allowlist = &wire.AllowlistHealth{Version: 9, Entries: 1200} }
		})
		defer stop()
		for range 2 { // on connect, then periodic
			select {
			case h := <-got:
				if h.Agent != "box-1" || h.Version != "1.2.3" || h.Outbox.Depth != 7 {
					t.Fatalf("health %+v", h)
				}
				if len(h.Devices) != 1 || h.Devices[0] != devs[0] {
					t.Fatalf("health devices %+v, want %+v", h.Devices, devs)
				}
				if h.Allowlist == nil || *h.Allowlist != (wire.AllowlistHealth{Version: 9, Entries: 1200}) {
					t.Fatalf("health allowlist %+v, want what Decorate added", h.Allowlist)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no health snapshot")
			}
		}
	})
}

func TestNewValidation(t *testing.T) {
	base := func() Options {
		return Options{Session: SessionOptions{Broker: "tcp://127.0.0.1:1", AllowPlaintext: true},
			Root: "a/b", Agent: "box", BootID: "b", BdSeqPath: filepath.Join(t.TempDir(), "bd")}
	}
	garbled := filepath.Join(t.TempDir(), "bd")
	os.WriteFile(garbled, []byte("x1"), 0o600)
	for _, tc := range []struct {
		name string
		mod  func(*Options)
		want error
	}{
		{"ok", func(*Options) {}, nil},
		{"plaintext", func(o *Options) { o.Session.AllowPlaintext = false }, ErrPlaintext},
		{"bad agent", func(o *Options) { o.Agent = "a/b" }, ErrOptions},
		{"bad root", func(o *Options) { o.Root = "a/+" }, ErrOptions},
		{"no boot", func(o *Options) { o.BootID = "" }, ErrOptions},
		{"no bdseq path", func(o *Options) { o.BdSeqPath = "" }, ErrOptions},
		{"garbled bdseq", func(o *Options) { o.BdSeqPath = garbled }, ErrOptions},
		{"negative window", func(o *Options) { o.Window = -1 }, ErrOptions},
	} {
		o := base()
		tc.mod(&o)
		_, err := New(o, newMemSource(0))
		if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// The hub's ack for a batch can reach onAck (on paho's goroutine) before
// the drain goroutine gets past PublishAsync. That ack must count: if it
// were dropped as "beyond what was sent", the last batch of a backlog would
// sit unacked until the ack timeout.
func TestUplinkAckBeforePublishReturns(t *testing.T) {
	t.Parallel()
	broker.Each(t, func(t *testing.T, b *broker.Broker) {
		t.Parallel()
		startHub(t, b.URL(), testRoot, false)
		src := newMemSource(50)
		u, err := New(Options{
			Session: SessionOptions{Broker: b.URL(), AllowPlaintext: true,
				Backoff: Backoff{Min: 20 * time.Millisecond, Max: 100 * time.Millisecond}},
			Root: testRoot, Agent: "box-1", BootID: "boot-1", BdSeqPath: filepath.Join(t.TempDir(), "bdseq"),
			AckTimeout: time.Hour,
		}, src)
		if err != nil {
			t.Fatal(err)
		}
		// The drain is descheduled right after handing the batch over,
		// until the hub's ack has been handled one way or the other.
		u.afterPublish = func(uint64) {
			waitFor(t, "ack handled", func() bool { return u.ackThrough.Load() > 0 || u.beyond.Load() > 0 })
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- u.Run(ctx) }()
		defer func() { cancel(); <-done }()
		waitFor(t, "acked or dropped as beyond", func() bool {
			st := u.Stats()
			return st.AckedThrough == 50 || st.AcksBeyond > 0
		})
		if st := u.Stats(); st.AcksBeyond != 0 || st.AckedThrough != 50 {
			t.Fatalf("the hub's ack was dropped: %+v", st)
		}
	})
}

// The OnConnect of connection 1 may finish (its birth failing with the lost
// connection) after connection 2's OnConnect: the drain's generation must
// stay at 2, or it would never send on connection 2.
func TestUplinkGenerationNeverGoesBack(t *testing.T) {
	t.Parallel()
	u, err := New(Options{
		Session: SessionOptions{Broker: "tcp://127.0.0.1:1", AllowPlaintext: true},
		Root:    testRoot, Agent: "box-1", BootID: "boot-1", BdSeqPath: filepath.Join(t.TempDir(), "bdseq"),
	}, newMemSource(0))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	u.sess.connects.Store(2)
	u.onConnect(ctx, u.sess) // connection 2 (birth fails: not connected)
	u.sess.connects.Store(1)
	u.onConnect(ctx, u.sess) // connection 1's, late
	if g := u.gen.Load(); g != 2 {
		t.Fatalf("generation %d after connection 2 was up", g)
	}
}

func TestUplinkOnConnectHooksRunAfterEachConnect(t *testing.T) {
	t.Parallel()
	broker.Each(t, func(t *testing.T, b *broker.Broker) {
		t.Parallel()
		startHub(t, b.URL(), testRoot, false)
		u, err := New(Options{
			Session: SessionOptions{Broker: b.URL(), AllowPlaintext: true,
				Backoff: Backoff{Min: 20 * time.Millisecond, Max: 100 * time.Millisecond, StableAfter: time.Second}},
			Root: testRoot, Agent: "box-hook", BootID: "boot-1", BdSeqPath: filepath.Join(t.TempDir(), "bdseq"),
		}, newMemSource(0))
		if err != nil {
			t.Fatal(err)
		}
		var calls atomic.Int64
		var birthsAtCall atomic.Uint64
		u.OnConnect(func() { birthsAtCall.Store(u.Stats().Births); calls.Add(1) })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- u.Run(ctx) }()
		defer func() { cancel(); <-done }()
		waitFor(t, "hook after the first connect", func() bool { return calls.Load() == 1 })
		if birthsAtCall.Load() != 1 {
			t.Errorf("hook ran with %d births published, want the birth first", birthsAtCall.Load())
		}
		if err := b.Restart(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "hook after the reconnect", func() bool { return calls.Load() >= 2 })
	})
}
