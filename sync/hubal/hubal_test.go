package hubal

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/hub"
	"github.com/kioskedge/kioskedge/sync/wire"
)

func chunks(n int, tag byte) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = append([]byte("KAC1"), tag, byte(i), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	}
	return out
}

func delta(from, to uint64) *wire.Delta {
	return &wire.Delta{From: from, To: to, Upserts: []wire.DeltaUpsert{{Key: wire.DeltaKey{byte(to)}, Value: []byte{1, 0, 0, 0, 0, 0, 0}}}}
}

// publishN publishes versions 1..n, each with a delta from the one before.
func publishN(t *testing.T, d *Dir, n int) {
	t.Helper()
	for v := uint64(1); v <= uint64(n); v++ {
		p := Publication{Version: v, Chunks: chunks(3, byte(v)), Entries: 3}
		if v > 1 {
			p.Delta = delta(v-1, v)
		}
		if _, err := d.Publish(p); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDirPublishAndRead(t *testing.T) {
	path := t.TempDir()
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, d, 3)
	if vs, err := d.List(); err != nil || !slices.Equal(vs, []uint64{1, 2, 3}) {
		t.Fatalf("list %v %v", vs, err)
	}
	info, err := d.Info(3)
	if err != nil || info.Chunks != 3 || !info.HasDelta() || info.DeltaFrom != 2 || info.Upserts != 1 {
		t.Fatalf("info %+v %v", info, err)
	}
	msgs, err := d.Snapshot(3)
	if err != nil || len(msgs) != 3 {
		t.Fatal(err)
	}
	m, err := wire.DecodeAllowlistMessage(msgs[2])
	if err != nil || m.Version != 3 || m.Index != 2 || m.Total != 3 {
		t.Fatalf("%+v %v", m, err)
	}
	cs, err := d.Chunks(3)
	if err != nil || !slices.EqualFunc(cs, chunks(3, 3), func(a, b []byte) bool { return string(a) == string(b) }) {
		t.Fatal("chunks differ", err)
	}
	if _, _, ok, err := d.Delta(1); ok || err != nil {
		t.Fatalf("version 1 delta: %v %v", ok, err)
	}
	for name, p := range map[string]Publication{
		"old version": {Version: 3, Chunks: chunks(1, 0)},
		"delta from":  {Version: 4, Chunks: chunks(1, 0), Delta: delta(2, 4)},
		"delta to":    {Version: 5, Chunks: chunks(1, 0), Delta: delta(3, 4)},
	} {
		if _, err := d.Publish(p); !errors.Is(err, ErrVersion) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := d.Publish(Publication{Version: 4}); !errors.Is(err, ErrNoChunks) {
		t.Error(err)
	}
	// A crash's leftover is not a version and goes at the next Open.
	if err := os.Mkdir(filepath.Join(path, ".tmp-00000000000000000009-1"), 0o750); err != nil {
		t.Fatal(err)
	}
	if l, _ := d.Latest(); l != 3 {
		t.Fatal(l)
	}
	if _, err := Open(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(path, ".tmp-00000000000000000009-1")); !os.IsNotExist(err) {
		t.Fatal("leftover kept", err)
	}
	if _, err := d.Snapshot(1); err != nil { // cached now
		t.Fatal(err)
	}
	if err := d.Prune(2); err != nil {
		t.Fatal(err)
	}
	if vs, _ := d.List(); !slices.Equal(vs, []uint64{2, 3}) {
		t.Fatal(vs)
	}
	if _, err := d.Info(1); !errors.Is(err, ErrNoList) {
		t.Fatal(err)
	}
	if _, err := d.Snapshot(1); !errors.Is(err, ErrNoList) {
		t.Fatal("pruned snapshot still served from the cache:", err)
	}
}

func TestPlan(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if p, err := d.Plan(wire.AllowlistRequest{Want: wire.WantCatchUp}); err != nil || p.Kind != PlanNone {
		t.Fatal(p, err)
	}
	publishN(t, d, 4)
	// Version 5 was published without a delta (its schedules changed).
	if _, err := d.Publish(Publication{Version: 5, Chunks: chunks(2, 5)}); err != nil {
		t.Fatal(err)
	}
	publishN2 := func(v uint64) {
		if _, err := d.Publish(Publication{Version: v, Chunks: chunks(2, byte(v)), Delta: delta(v-1, v)}); err != nil {
			t.Fatal(err)
		}
	}
	publishN2(6)
	publishN2(7)
	for _, c := range []struct {
		have   uint64
		want   string
		kind   string
		deltas int
	}{
		{0, wire.WantCatchUp, PlanSnapshot, 0},
		{7, wire.WantCatchUp, PlanCurrent, 0},
		{7, wire.WantSnapshot, PlanSnapshot, 0},
		{6, wire.WantCatchUp, PlanDeltas, 1},
		{5, wire.WantCatchUp, PlanDeltas, 2},
		{4, wire.WantCatchUp, PlanSnapshot, 0}, // no delta 4→5
		{5, wire.WantSnapshot, PlanSnapshot, 0},
		{9, wire.WantCatchUp, PlanSnapshot, 0}, // ahead of the hub
	} {
		p, err := d.Plan(wire.AllowlistRequest{Have: c.have, Want: c.want})
		if err != nil || p.Kind != c.kind || p.Version != 7 && c.kind != PlanCurrent {
			t.Errorf("have %d want %s: %+v %v, want %s", c.have, c.want, p.Kind, err, c.kind)
			continue
		}
		if c.kind == PlanDeltas && len(p.Messages) != c.deltas {
			t.Errorf("have %d: %d deltas, want %d", c.have, len(p.Messages), c.deltas)
		}
		if c.kind == PlanSnapshot && len(p.Messages) != 2 {
			t.Errorf("have %d: snapshot of %d", c.have, len(p.Messages))
		}
	}
}

// fakeTransport records publishes and lets the test deliver requests.
type fakeTransport struct {
	mu       sync.Mutex
	handlers map[string]func(string, []byte)
	pubs     []hub.Message
	fail     bool
}

func (f *fakeTransport) Subscribe(filter string, _ byte, h func(string, []byte)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.handlers == nil {
		f.handlers = map[string]func(string, []byte){}
	}
	f.handlers[filter] = h
	return nil
}

func (f *fakeTransport) PublishAsync(m hub.Message) <-chan error {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan error, 1)
	if f.fail {
		ch <- errors.New("not connected")
		return ch
	}
	f.pubs = append(f.pubs, m)
	ch <- nil
	return ch
}

func (f *fakeTransport) handler(filter string) func(string, []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.handlers[filter]
}

func (f *fakeTransport) published() []hub.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.pubs)
}

func TestServer(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, d, 3)
	tr := &fakeTransport{}
	s, err := NewServer(ServerOptions{Dir: d, Root: "r", Transport: tr, BytesPerSec: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	filter := wire.Filter("r", wire.LeafAllowlistRequest)
	waitFor(t, func() bool { return tr.handler(filter) != nil })
	h := tr.handler(filter)
	h("r/v1/gate-1/allowlist/req", []byte(`{"have":1,"want":"catchup","reason":"start"}`))
	waitFor(t, func() bool { return s.Stats().Deltas == 2 })
	h("r/v1/gate-2/allowlist/req", []byte(`{"have":0,"want":"catchup","reason":"start"}`))
	waitFor(t, func() bool { return s.Stats().Snapshots == 1 })
	h("r/v1/gate-2/allowlist/req", []byte(`{"have":3,"want":"catchup"}`))
	h("r/v1/gate-2/allowlist/req", []byte(`{"want":"everything"}`))
	h("r/v1/$bad/allowlist/req", []byte(`{"have":3,"want":"catchup"}`))
	waitFor(t, func() bool { return s.Stats().Current == 1 })
	pubs := tr.published()
	if len(pubs) != 5 {
		t.Fatalf("%d publishes", len(pubs))
	}
	for i, want := range []struct {
		topic   string
		typ     byte
		version uint64
	}{
		{"r/v1/gate-1/allowlist", wire.AllowlistDelta, 2}, {"r/v1/gate-1/allowlist", wire.AllowlistDelta, 3},
		{"r/v1/gate-2/allowlist", wire.AllowlistChunk, 3}, {"r/v1/gate-2/allowlist", wire.AllowlistChunk, 3}, {"r/v1/gate-2/allowlist", wire.AllowlistChunk, 3},
	} {
		m, err := wire.DecodeAllowlistMessage(pubs[i].Payload)
		v := m.Version
		if m.Type == wire.AllowlistDelta {
			v = m.Delta.To
		}
		if err != nil || pubs[i].Topic != want.topic || pubs[i].QoS != 1 || pubs[i].Retained || m.Type != want.typ || v != want.version {
			t.Errorf("publish %d: %s type %d v%d (%v)", i, pubs[i].Topic, m.Type, v, err)
		}
	}
	if st := s.Stats(); st.BadRequests != 2 || st.Messages != 5 {
		t.Errorf("%+v", st)
	}
	// A failed publish cuts the response short and is counted.
	tr.mu.Lock()
	tr.fail = true
	tr.mu.Unlock()
	h("r/v1/gate-3/allowlist/req", []byte(`{"have":0,"want":"snapshot"}`))
	waitFor(t, func() bool { return s.Stats().PublishErrors == 1 })
}

func TestServerCoalescesAndBounds(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(ServerOptions{Dir: d, Root: "r", Transport: &fakeTransport{}, QueueLen: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Not running: requests wait in the queue.
	s.onRequest("r/v1/a/allowlist/req", []byte(`{"have":1,"want":"snapshot"}`))
	s.onRequest("r/v1/a/allowlist/req", []byte(`{"have":2,"want":"catchup"}`))
	s.onRequest("r/v1/b/allowlist/req", []byte(`{"have":2,"want":"catchup"}`))
	s.onRequest("r/v1/c/allowlist/req", []byte(`{"have":2,"want":"catchup"}`))
	if st := s.Stats(); st.Requests != 2 || st.Coalesced != 1 || st.Dropped != 1 {
		t.Fatalf("%+v", st)
	}
	a, r, _ := s.next()
	if a != "a" || r != (wire.AllowlistRequest{Have: 2, Want: wire.WantSnapshot}) {
		t.Fatalf("%s %+v", a, r)
	}
	if _, err := NewServer(ServerOptions{Root: "r"}); !errors.Is(err, ErrOptions) {
		t.Error(err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}
