package uplink

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/faultproxy"
)

// startProxy puts a testhw/faultproxy between a client and target, closed
// with the test.
func startProxy(t testing.TB, target string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(target, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// memSource is an in-memory Source.
type memSource struct {
	mu      sync.Mutex
	recs    []wire.Entry // seq order, unacked only
	next    uint64
	acked   uint64
	ackCall int
	notify  chan struct{}
}

func newMemSource(n int) *memSource {
	s := &memSource{next: 1, notify: make(chan struct{}, 1)}
	s.Append(n)
	return s
}

func (s *memSource) Append(n int) {
	s.mu.Lock()
	for range n {
		raw, _ := wire.MarshalRecord(wire.Record{Kind: wire.KindAccess, Class: wire.ClassCritical,
			Time: time.UnixMilli(1700000000000 + int64(s.next)), Body: []byte(`{"door":"d1","granted":true}`)})
		s.recs = append(s.recs, wire.Entry{Seq: s.next, Raw: raw})
		s.next++
	}
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *memSource) Read(after uint64, maxRecords, maxBytes int) ([]wire.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []wire.Entry
	size := 0
	for _, e := range s.recs {
		if e.Seq <= after {
			continue
		}
		if len(out) >= maxRecords || (len(out) > 0 && size+len(e.Raw) > maxBytes) {
			break
		}
		out = append(out, e)
		size += len(e.Raw)
	}
	return out, nil
}

func (s *memSource) Ack(through uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ackCall++
	if through <= s.acked {
		return nil
	}
	s.acked = through
	i := 0
	for i < len(s.recs) && s.recs[i].Seq <= through {
		i++
	}
	s.recs = s.recs[i:]
	return nil
}

func (s *memSource) AckedThrough() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked
}

func (s *memSource) Notify() <-chan struct{} { return s.notify }

// fakeHub subscribes to events of one root, decodes batches, records every
// sequence it saw, and (unless noAck) publishes the retained ack "stored
// through the highest contiguous sequence".
type fakeHub struct {
	t      testing.TB
	sess   *Session
	codec  *wire.Codec
	root   string
	noAck  bool
	mu     sync.Mutex
	seen   map[uint64]int
	order  []uint64 // first..last of each batch in arrival order
	contig uint64
	bad    int
	stop   func() // ends the hub's session (also at cleanup)
}

func startHub(t testing.TB, url, root string, noAck bool) *fakeHub {
	t.Helper()
	codec, err := wire.NewCodec(wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	h := &fakeHub{t: t, codec: codec, root: root, noAck: noAck, seen: map[uint64]int{}}
	h.sess, err = NewSession(SessionOptions{Broker: url, ClientID: "hub-" + t.Name(), AllowPlaintext: true,
		Backoff: Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.sess.Subscribe(wire.Filter(root, wire.LeafEvents), 1, h.onBatch); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.sess.Run(ctx) }()
	h.stop = func() { cancel(); <-done }
	t.Cleanup(func() { h.stop(); codec.Close() })
	waitFor(t, "hub connected", h.sess.Connected)
	return h
}

func (h *fakeHub) onBatch(topic string, payload []byte) {
	b, err := h.codec.DecodeBatch(payload)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.bad++
		return
	}
	h.order = append(h.order, b.First, b.Last)
	for _, e := range b.Entries {
		h.seen[e.Seq]++
	}
	// Gaps declared by the range count as covered only when contiguous.
	if b.First <= h.contig+1 && b.Last > h.contig {
		h.contig = b.Last
	}
	if h.noAck {
		return
	}
	ack, _ := json.Marshal(wire.Ack{Agent: b.Agent, Through: h.contig})
	h.sess.PublishAsync(Message{Topic: wire.Topics{Root: h.root, Agent: b.Agent}.Ack(), QoS: 1, Retained: true, Payload: ack})
}

func (h *fakeHub) distinct() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seen)
}

func (h *fakeHub) contiguous() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.contig
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	// A generous bound, not a speed assertion: the 2-core CI machine may be
	// running every package's tests at once.
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// statusWatcher records every status message published on a topic.
type statusWatcher struct {
	mu  sync.Mutex
	all []wire.Status
}

func watchStatus(t testing.TB, url, topic string) *statusWatcher {
	t.Helper()
	w := &statusWatcher{}
	s, err := NewSession(SessionOptions{Broker: url, ClientID: "watch-" + t.Name(), AllowPlaintext: true,
		Backoff: Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	s.Subscribe(topic, 1, func(_ string, p []byte) {
		st, err := wire.DecodeStatus(p)
		if err != nil {
			return
		}
		w.mu.Lock()
		w.all = append(w.all, st)
		w.mu.Unlock()
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "watcher connected", s.Connected)
	return w
}

func (w *statusWatcher) has(state, reason string, bd uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.all {
		if s.State == state && s.Reason == reason && s.BdSeq == bd {
			return true
		}
	}
	return false
}

func (w *statusWatcher) last() (wire.Status, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.all) == 0 {
		return wire.Status{}, false
	}
	return w.all[len(w.all)-1], true
}
