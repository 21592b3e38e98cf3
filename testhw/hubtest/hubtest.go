package hubtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/hub"
	"github.com/kioskedge/kioskedge/sync/hub/hubrun"
	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// DefaultRoot is the topic root used when Options.Root is empty.
const DefaultRoot = "kioskedge/test"

// DefaultBackoff is the hub's reconnect back-off when Options.Backoff is
// zero: short, so a hub meets a restarted broker quickly.
var DefaultBackoff = uplink.Backoff{Min: 50 * time.Millisecond, Max: 500 * time.Millisecond, StableAfter: time.Second}

// Options configures Start. Every field is optional.
type Options struct {
	// Root is the topic root; "" means DefaultRoot.
	Root string
	// DBPath is the hubstore file; "" means hub.db in a fresh t.TempDir().
	DBPath string
	// ClientID is the hub's MQTT client id; "" picks a random one on every
	// start (Start and each Restart).
	ClientID string
	// Backoff is the reconnect back-off; the zero value means DefaultBackoff.
	Backoff uplink.Backoff
	// HTTPAddr is where the JSON API listens ("127.0.0.1:0" for a free
	// port); "" serves no HTTP.
	HTTPAddr string
	// Logger receives the hub's logs; nil discards them.
	Logger *slog.Logger
}

// Hub is a hubrun.Server running in the test process. Its methods are
// safe for concurrent use.
type Hub struct {
	t   testing.TB
	cfg hubrun.Config
	// fixedID is Options.ClientID; "" draws a new id per start.
	fixedID string

	mu  sync.Mutex
	cur *run
}

// run is one start of the server, stopped once.
type run struct {
	srv    *hubrun.Server
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Start builds a hubrun.Server for brokerURL (plaintext allowed) and runs
// it until the test ends: t.Cleanup stops it, waits for Run and closes it.
// It fails t at once (t.Fatal) if the server cannot be built; a Run or
// Close error later is reported with t.Errorf.
func Start(t testing.TB, brokerURL string, opts Options) *Hub {
	t.Helper()
	if opts.Root == "" {
		opts.Root = DefaultRoot
	}
	if opts.DBPath == "" {
		opts.DBPath = filepath.Join(t.TempDir(), "hub.db")
	}
	if opts.Backoff == (uplink.Backoff{}) {
		opts.Backoff = DefaultBackoff
	}
	h := &Hub{t: t, fixedID: opts.ClientID, cfg: hubrun.Config{
		Broker:         brokerURL,
		AllowPlaintext: true,
		Backoff:        opts.Backoff,
		Root:           opts.Root,
		DBPath:         opts.DBPath,
		HTTPAddr:       opts.HTTPAddr,
		Logger:         opts.Logger,
	}}
	h.start()
	t.Cleanup(h.Stop)
	return h
}

// start builds and runs a server on h.cfg; t.Fatal on a build error.
func (h *Hub) start() {
	h.t.Helper()
	cfg := h.cfg
	cfg.ClientID = h.fixedID
	if cfg.ClientID == "" {
		cfg.ClientID = fmt.Sprintf("hubtest-%d", rand.Uint32())
	}
	srv, err := hubrun.New(cfg)
	if err != nil {
		h.t.Fatalf("hubtest: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{srv: srv, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := srv.Run(ctx); err != nil {
			h.t.Errorf("hub run: %v", err)
		}
	}()
	h.mu.Lock()
	h.cur = r
	h.mu.Unlock()
	// Return only once the hub's MQTT session is up: a batch published
	// before the hub subscribes reaches no hub (clean session) and waits
	// for the agent's ack timeout, making tests slow or flaky for no
	// reason. The hub subscribes right after the session connects, so a
	// window of microseconds remains; agents started by tests take far
	// longer than that to connect and publish.
	deadline := time.Now().Add(10 * time.Second)
	for !srv.Session().Connected() {
		if time.Now().After(deadline) {
			h.t.Fatalf("hubtest: the hub did not connect to %s within 10s", cfg.Broker)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Stop stops the running server: it ends Run (which commits and acks what
// is queued and disconnects), waits for it, and closes the store. It is
// idempotent; a Close error is reported with t.Errorf. After Stop the
// Server and the helpers that read the store must not be used until
// Restart.
func (h *Hub) Stop() {
	h.mu.Lock()
	r := h.cur
	h.mu.Unlock()
	r.once.Do(func() {
		r.cancel()
		<-r.done
		if err := r.srv.Close(); err != nil {
			h.t.Errorf("hub close: %v", err)
		}
	})
}

// Restart stops the server if it runs (as Stop) and starts a new one on
// the same database file, broker and root. It fails t at once if the new
// server cannot be built.
func (h *Hub) Restart() {
	h.t.Helper()
	h.Stop()
	h.start()
}

// Server returns the current server (the one started last).
func (h *Hub) Server() *hubrun.Server {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cur.srv
}

// DBPath returns the hubstore file.
func (h *Hub) DBPath() string { return h.cfg.DBPath }

// Root returns the topic root.
func (h *Hub) Root() string { return h.cfg.Root }

// Received returns the hub's summary of what it holds of agent, and false
// if it knows no such agent.
func (h *Hub) Received(agent string) (hub.Received, bool) {
	return h.Server().Hub().AgentReceived(agent)
}

// Records returns every record the hub stored for agent, in sequence
// order, decoded; nil if none. A store or decoding error fails t
// (t.Fatal), so call it from the test's goroutine.
func (h *Hub) Records(t testing.TB, agent string) []wire.Record {
	t.Helper()
	var rs []wire.Record
	err := h.Server().Store().ForEach(agent, 1, func(seq uint64, raw []byte) error {
		// raw lives in the store's transaction; the record must outlive it.
		r, err := wire.UnmarshalRecord(seq, agent, bytes.Clone(raw))
		if err != nil {
			return fmt.Errorf("record %d: %w", seq, err)
		}
		rs = append(rs, r)
		return nil
	})
	if err != nil {
		t.Fatalf("hubtest: records of %s: %v", agent, err)
	}
	return rs
}

// WaitHolds waits until the hub holds every sequence 1..last of agent
// (highest contiguous ≥ last). It fails t if the hub then reports missing
// ranges, or if that is not reached within timeout, with what the hub
// reports. It follows Restart: each check asks the current server.
func (h *Hub) WaitHolds(t testing.TB, agent string, last uint64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r, ok := h.Received(agent)
		if ok && r.HighestContiguous >= last {
			if len(r.Missing) != 0 {
				t.Fatalf("hub reports missing ranges %v with highest contiguous %d", r.Missing, r.HighestContiguous)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v the hub holds %+v of agent %s, want all through %d", timeout, r, agent, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// AgentView is what the hub holds about one agent, decoded.
type AgentView struct {
	Known  bool         // the hub knows the agent
	Online bool         // its last status says online
	Status *wire.Status // last status; nil: none yet
	Health *wire.Health // last health snapshot; nil: none yet
}

// View returns the hub's view of agent id; the zero AgentView if the hub
// does not know it. A status or health the hub holds that does not decode
// is reported with t.Errorf (not Fatal, so View may be called inside a
// hub.Hub.Wait condition) and left nil.
func (h *Hub) View(t testing.TB, id string) AgentView {
	t.Helper()
	for _, a := range h.Server().Hub().Agents() {
		if a.ID != id {
			continue
		}
		v := AgentView{Known: true, Online: a.Online}
		if len(a.LastStatus) > 0 && string(a.LastStatus) != "null" {
			var s wire.Status
			if err := json.Unmarshal(a.LastStatus, &s); err != nil {
				t.Errorf("hub last_status %s: %v", a.LastStatus, err)
			} else {
				v.Status = &s
			}
		}
		if len(a.LastHealth) > 0 && string(a.LastHealth) != "null" {
			var hl wire.Health
			if err := json.Unmarshal(a.LastHealth, &hl); err != nil {
				t.Errorf("hub last_health %s: %v", a.LastHealth, err)
			} else {
				v.Health = &hl
			}
		}
		return v
	}
	return AgentView{}
}
