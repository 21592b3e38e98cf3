package hubrun

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"

	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/faultproxy"
)

// watchHubStatus subscribes, directly on the broker, to the hub's retained
// status and returns the latest one seen.
func watchHubStatus(t *testing.T, url, id string) func() HubStatus {
	t.Helper()
	var mu sync.Mutex
	var last HubStatus
	s, err := uplink.NewSession(uplink.SessionOptions{Broker: url, ClientID: id, AllowPlaintext: true, Backoff: fast})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Subscribe(HubStatusTopic(root), 1, func(_ string, p []byte) {
		var st HubStatus
		if json.Unmarshal(p, &st) != nil {
			return
		}
		mu.Lock()
		last = st
		mu.Unlock()
	}); err != nil {
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
	return func() HubStatus { mu.Lock(); defer mu.Unlock(); return last }
}

// TestHubStatus: the hub's retained status is online once it is
// connected, turns offline by the Will when its connection dies (cut
// through the fault proxy, reconnects refused), online again when it
// returns, and offline "shutdown" on a clean stop.
func TestHubStatus(t *testing.T) {
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi})
	p, err := faultproxy.New(b.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	stop := runHub(t, Config{Broker: p.URL(), AllowPlaintext: true, Backoff: fast, ClientID: "hub-status",
		Root: root, DBPath: filepath.Join(t.TempDir(), "hub.db"), Version: "v-test"}).stop

	latest := watchHubStatus(t, b.URL(), "watcher-1")
	eventually(t, "hub status online", func() bool {
		st := latest()
		return st.State == wire.StateOnline && st.Version == "v-test" && !st.Time.IsZero()
	})
	p.SetRefuse(true)
	p.Cut()
	eventually(t, "hub status offline by the Will", func() bool {
		st := latest()
		return st.State == wire.StateOffline && st.Reason == "will"
	})
	p.SetRefuse(false)
	eventually(t, "hub status online again", func() bool { return latest().State == wire.StateOnline })
	stop()
	eventually(t, "hub status offline at shutdown", func() bool {
		st := latest()
		return st.State == wire.StateOffline && st.Reason == "shutdown"
	})
	// Retained: a client arriving later still sees it.
	late := watchHubStatus(t, b.URL(), "watcher-2")
	eventually(t, "retained status for a late subscriber", func() bool { return late().State == wire.StateOffline })
}

// TestHubStatusTwoInstances: of two hubs sharing the status topic, when
// one's connection dies (its Will says offline), the other says online
// again, so the retained status keeps telling agents a hub is up; the
// survivor's own clean stop still leaves "shutdown".
func TestHubStatusTwoInstances(t *testing.T) {
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi})
	p, err := faultproxy.New(b.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	start := func(url, id string) (*Server, func()) {
		r := runHub(t, Config{Broker: url, AllowPlaintext: true, Backoff: fast, ClientID: id, ShareGroup: "hubs",
			Root: root, DBPath: filepath.Join(t.TempDir(), "hub.db"), Version: "v-test"})
		return r.srv, r.stop
	}
	a, _ := start(p.URL(), "hub-a")
	bsrv, stopB := start(b.URL(), "hub-b")
	latest := watchHubStatus(t, b.URL(), "watcher-2i")
	eventually(t, "both hubs online", func() bool {
		return a.session.Connected() && bsrv.session.Connected() && latest().State == wire.StateOnline
	})

	p.SetRefuse(true)
	p.Cut() // hub-a's connection dies: the broker publishes its Will
	eventually(t, "hub-b says online again after hub-a's Will", func() bool {
		st := latest()
		return bsrv.hubStatusRepublished.Load() > 0 && st.State == wire.StateOnline && st.Instance == bsrv.instance
	})
	if a.hubStatusRepublished.Load() != 0 {
		t.Fatalf("hub-a (cut off) republished %d times", a.hubStatusRepublished.Load())
	}
	stopB()
	eventually(t, "hub-b's clean stop leaves shutdown", func() bool {
		st := latest()
		return st.State == wire.StateOffline && st.Reason == "shutdown" && st.Instance == bsrv.instance
	})
}
