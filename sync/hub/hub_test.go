package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/hubstore"
	"github.com/kioskedge/kioskedge/sync/wire"
)

const root = "kioskedge/test"

// fakeTransport is an in-memory Transport: Deliver calls the handler
// subscribed for the topic's leaf, PublishAsync records the message and
// confirms it at once. onPublish, if set, runs inside PublishAsync.
type fakeTransport struct {
	mu        sync.Mutex
	subs      map[string]func(string, []byte)
	filters   []string
	published []Message
	onPublish func(Message)
	fail      error
}

func (f *fakeTransport) Subscribe(filter string, qos byte, h func(string, []byte)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.subs == nil {
		f.subs = map[string]func(string, []byte){}
	}
	f.filters = append(f.filters, filter)
	f.subs[filter[strings.LastIndex(filter, "/")+1:]] = h
	return nil
}

func (f *fakeTransport) PublishAsync(m Message) <-chan error {
	f.mu.Lock()
	f.published = append(f.published, m)
	cb, fail := f.onPublish, f.fail
	f.mu.Unlock()
	if cb != nil {
		cb(m)
	}
	done := make(chan error, 1)
	done <- fail
	return done
}

func (f *fakeTransport) Deliver(t *testing.T, topic string, payload []byte) {
	t.Helper()
	f.mu.Lock()
	h := f.subs[topic[strings.LastIndex(topic, "/")+1:]]
	f.mu.Unlock()
	if h == nil {
		t.Fatalf("no subscription for %s", topic)
	}
	h(topic, payload)
}

// acks returns the acks published so far, decoded.
func (f *fakeTransport) acks(t *testing.T) []wire.Ack {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []wire.Ack
	for _, m := range f.published {
		a, err := wire.DecodeAck(m.Payload)
		if err != nil {
			t.Fatalf("published ack %q: %v", m.Payload, err)
		}
		if !m.Retained || m.QoS != 1 || m.Topic != (wire.Topics{Root: root, Agent: a.Agent}).Ack() {
			t.Fatalf("ack message %+v", m)
		}
		out = append(out, a)
	}
	return out
}

var codec = func() *wire.Codec {
	c, err := wire.NewCodec(wire.Limits{MaxMessage: 1 << 20})
	if err != nil {
		panic(err)
	}
	return c
}()

var t0 = time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)

func rec(t testing.TB, kind string, body string) []byte {
	b, err := wire.MarshalRecord(wire.Record{Kind: kind, Class: wire.ClassCritical, Time: t0, Body: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// encode builds an events message of agent covering [first, last] with
// every sequence present except those in skip.
func encode(t testing.TB, agent string, first, last uint64, skip ...uint64) []byte {
	t.Helper()
	var es []wire.Entry
	for s := first; s <= last; s++ {
		if !slices.Contains(skip, s) {
			es = append(es, wire.Entry{Seq: s, Raw: rec(t, wire.KindAccess, fmt.Sprintf(`{"n":%d}`, s))})
		}
	}
	msg, _, err := codec.EncodeBatch(agent, "boot-1", first, last, es, nil)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

type fixture struct {
	t      *testing.T
	path   string
	store  *hubstore.Store
	tr     *fakeTransport
	hub    *Hub
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, path string, mod func(*Options)) *fixture {
	t.Helper()
	st, err := hubstore.Open(path, hubstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, path: path, store: st, tr: &fakeTransport{}}
	opts := Options{Root: root, Store: st, Transport: f.tr, Codec: codec}
	if mod != nil {
		mod(&opts)
	}
	f.hub, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan error, 1)
	go func() { f.done <- f.hub.Run(ctx) }()
	t.Cleanup(f.stop)
	// Run subscribes first; wait until it has.
	f.wait(func() bool { f.tr.mu.Lock(); defer f.tr.mu.Unlock(); return len(f.tr.subs) == 3 })
	return f
}

// wait polls cond (cheap, in-memory) until it holds, failing after 10 s.
func (f *fixture) wait(cond func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			f.t.Fatal("condition not reached within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// waitHub waits on the hub's commits.
func (f *fixture) waitHub(cond func() bool) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.hub.Wait(ctx, cond); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) stop() {
	if f.cancel == nil {
		return
	}
	f.cancel()
	f.cancel = nil
	if err := <-f.done; err != nil {
		f.t.Error(err)
	}
	if err := f.hub.Close(); err != nil {
		f.t.Error(err)
	}
	if err := f.store.Close(); err != nil {
		f.t.Error(err)
	}
}

func (f *fixture) events(agent string, payload []byte) {
	f.t.Helper()
	f.tr.Deliver(f.t, wire.Topics{Root: root, Agent: agent}.Events(), payload)
}

func (f *fixture) received(agent string) Received {
	f.t.Helper()
	r, ok := f.hub.AgentReceived(agent)
	if !ok {
		f.t.Fatalf("agent %s unknown", agent)
	}
	return r
}

func TestIngestDedupAndAck(t *testing.T) {
	f := start(t, filepath.Join(t.TempDir(), "hub.db"), nil)
	if want := []string{root + "/v1/+/events", root + "/v1/+/status", root + "/v1/+/health"}; !slices.Equal(f.tr.filters, want) {
		t.Fatalf("filters %v", f.tr.filters)
	}
	f.events("a1", encode(t, "a1", 1, 100))
	f.events("a1", encode(t, "a1", 1, 100)) // resend
	f.events("a1", encode(t, "a1", 51, 150))
	f.waitHub(func() bool { return f.hub.Stats().Batches == 3 })
	r := f.received("a1")
	if r.Count != 150 || r.HighestContiguous != 150 || len(r.Missing) != 0 || r.DuplicatesDropped != 150 {
		t.Fatalf("received %+v", r)
	}
	acks := f.tr.acks(t)
	if len(acks) == 0 || acks[len(acks)-1] != (wire.Ack{Agent: "a1", Through: 150}) {
		t.Fatalf("acks %v", acks)
	}
	// Every batch, even a full duplicate, gets its agent acked again.
	before := len(acks)
	f.events("a1", encode(t, "a1", 1, 10))
	f.waitHub(func() bool { return f.hub.Stats().Batches == 4 })
	if acks := f.tr.acks(t); len(acks) != before+1 || acks[before].Through != 150 {
		t.Fatalf("acks after resend %v", acks)
	}
	s := f.hub.Stats()
	if s.Records != 150 || s.Duplicates != 160 || s.AcksPublished != uint64(before+1) {
		t.Fatalf("stats %+v", s)
	}
	f.wait(func() bool { return f.hub.Stats().AcksConfirmed == s.AcksPublished })
}

func TestOutOfOrderMissingThenFilled(t *testing.T) {
	f := start(t, filepath.Join(t.TempDir(), "hub.db"), nil)
	f.events("a", encode(t, "a", 201, 300))
	f.events("a", encode(t, "a", 101, 150))
	f.waitHub(func() bool { return f.hub.Stats().Batches == 2 })
	r := f.received("a")
	if want := [][2]uint64{{1, 100}, {151, 200}}; !slices.Equal(r.Missing, want) || r.HighestContiguous != 0 {
		t.Fatalf("received %+v", r)
	}
	if acks := f.tr.acks(t); len(acks) != 0 {
		t.Fatalf("acked without sequence 1: %v", acks)
	}
	if f.hub.Stats().Unackable == 0 {
		t.Fatal("unackable not counted")
	}
	// 1..100 arrives; 151..200 arrives with 160..169 dropped by the agent
	// and declared by a gap record at 170.
	f.events("a", encode(t, "a", 1, 100))
	gap := rec(t, wire.KindGap, `{"reason":"budget","class":"health","ranges":[[160,169]],"count":10,"bytes":3000}`)
	var es []wire.Entry
	for s := uint64(151); s <= 200; s++ {
		switch {
		case s >= 160 && s < 170:
		case s == 170:
			es = append(es, wire.Entry{Seq: s, Raw: gap})
		default:
			es = append(es, wire.Entry{Seq: s, Raw: rec(t, wire.KindAccess, `{}`)})
		}
	}
	msg, _, err := codec.EncodeBatch("a", "boot-1", 151, 200, es, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.events("a", msg)
	f.waitHub(func() bool { return f.hub.Stats().Batches == 4 })
	r = f.received("a")
	if len(r.Missing) != 0 || r.HighestContiguous != 300 || r.DeclaredDropped != 10 || r.Count != 290 {
		t.Fatalf("received %+v", r)
	}
	if acks := f.tr.acks(t); acks[len(acks)-1].Through != 300 {
		t.Fatalf("acks %v", acks)
	}
}

func TestAckOnlyAfterCommit(t *testing.T) {
	f := start(t, filepath.Join(t.TempDir(), "hub.db"), nil)
	var bad []string
	var mu sync.Mutex
	f.tr.mu.Lock()
	f.tr.onPublish = func(m Message) {
		a, err := wire.DecodeAck(m.Payload)
		// The store's memory changes only after a successful commit.
		st, ok := f.store.AgentState(a.Agent)
		if err != nil || !ok || st.Contiguous < a.Through {
			mu.Lock()
			bad = append(bad, fmt.Sprintf("ack %+v before commit (state %+v)", a, st))
			mu.Unlock()
		}
	}
	f.tr.mu.Unlock()
	for i := uint64(0); i < 40; i++ {
		f.events("a", encode(t, "a", i*50+1, i*50+50))
		f.events("b", encode(t, "b", i*10+1, i*10+10))
	}
	f.waitHub(func() bool { return f.hub.Stats().Batches == 80 })
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Fatal(bad)
	}
	s := f.hub.Stats()
	if s.Commits > 80 || s.Records != 2400 {
		t.Fatalf("stats %+v", s)
	}
	t.Logf("80 batches in %d commits", s.Commits)
}

func TestBadInputCounted(t *testing.T) {
	f := start(t, filepath.Join(t.TempDir(), "hub.db"), nil)
	big := make([]byte, 2<<20)
	copy(big, "KB")
	good := encode(t, "a", 1, 5)
	vers := slices.Clone(good)
	vers[2] = 9
	cases := []struct {
		topic   string
		payload []byte
		reason  string
	}{
		{root + "/v1/a/events", []byte("garbage"), BadBatch},
		{root + "/v1/a/events", nil, BadBatch},
		{root + "/v1/a/events", big, BadTooBig},
		{root + "/v1/a/events", vers, BadVersion},
		{root + "/v1/a/events", good[:len(good)-3], BadBatch},
		{root + "/v1/b/events", good, BadAgentMismatch},
		{"other/v1/a/events", good, BadTopic},
		{root + "/v1/a/status", []byte("{"), BadStatus},
		{root + "/v1/a/status", []byte(`{"state":"sleeping","agent":"a"}`), BadStatus},
		{root + "/v1/a/status", []byte(`{"state":"online","agent":"b"}`), BadAgentMismatch},
		{root + "/v1/a/health", []byte("[1,2]"), BadHealth},
	}
	want := map[string]uint64{}
	for _, c := range cases {
		f.tr.Deliver(t, c.topic, c.payload)
		want[c.reason]++
	}
	f.events("a", good) // still works after all that
	f.waitHub(func() bool { return f.hub.Stats().Batches == 1 })
	if got := f.hub.Stats().Bad; !mapsEqual(got, want) {
		t.Fatalf("bad = %v, want %v", got, want)
	}
	if r := f.received("a"); r.Count != 5 {
		t.Fatalf("received %+v", r)
	}
}

func mapsEqual(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestRestartKeepsStateAndAcks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	f := start(t, path, nil)
	f.events("a", encode(t, "a", 1, 500))
	f.events("a", encode(t, "a", 601, 700))
	f.tr.Deliver(t, root+"/v1/a/status", []byte(`{"state":"online","agent":"a","bdseq":4}`))
	f.waitHub(func() bool { r, _ := f.hub.AgentReceived("a"); return r.Count == 600 && f.hub.Stats().Statuses == 1 })
	f.stop()

	g := start(t, path, nil)
	r := g.received("a")
	if r.Count != 600 || r.HighestContiguous != 500 || !slices.Equal(r.Missing, [][2]uint64{{501, 600}}) {
		t.Fatalf("after restart %+v", r)
	}
	// The agent resends what it has not seen acked: duplicates, re-acked.
	g.events("a", encode(t, "a", 401, 600))
	g.waitHub(func() bool { return g.hub.Stats().Batches == 1 })
	r = g.received("a")
	if r.Count != 700 || r.HighestContiguous != 700 || r.DuplicatesDropped != 100 {
		t.Fatalf("after resend %+v", r)
	}
	if acks := g.tr.acks(t); !slices.Equal(acks, []wire.Ack{{Agent: "a", Through: 700}}) {
		t.Fatalf("acks %v", acks)
	}
	if ag := g.hub.Agents(); len(ag) != 1 || !ag[0].Online {
		t.Fatalf("agents %+v", ag)
	}
}

func TestStaleBdSeqIgnored(t *testing.T) {
	f := start(t, filepath.Join(t.TempDir(), "hub.db"), nil)
	status := func(state string, bd int) {
		f.tr.Deliver(t, root+"/v1/a/status", fmt.Appendf(nil, `{"state":%q,"agent":"a","bdseq":%d}`, state, bd))
	}
	status("online", 7)
	status("offline", 6) // an old Will arriving late
	f.waitHub(func() bool { return f.hub.Stats().Statuses == 2 })
	ag := f.hub.Agents()
	if len(ag) != 1 || !ag[0].Online || f.hub.Stats().StaleStatuses != 1 {
		t.Fatalf("agents %+v stats %+v", ag, f.hub.Stats())
	}
	status("offline", 7)
	f.waitHub(func() bool { return f.hub.Stats().Statuses == 3 })
	if ag := f.hub.Agents(); ag[0].Online || !strings.Contains(string(ag[0].LastBirth), `"online"`) {
		t.Fatalf("agents %+v", ag)
	}
}

func TestQueueFullBlocksThenDrops(t *testing.T) {
	st, err := hubstore.Open(filepath.Join(t.TempDir(), "hub.db"), hubstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tr := &fakeTransport{}
	// Not running: nothing drains the queue.
	h, err := New(Options{Root: root, Store: st, Transport: tr, Codec: codec, QueueLen: 2, EnqueueWait: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for i := uint64(0); i < 3; i++ {
		h.onEvents(root+"/v1/a/events", encode(t, "a", i+1, i+1))
	}
	if got := h.Stats().Bad[DropQueueFull]; got != 1 {
		t.Fatalf("queue_full = %d", got)
	}
	// Once running, the two queued batches commit.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := h.Wait(wctx, func() bool { return h.Stats().Batches == 2 }); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := h.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Run: %v", err)
	}
	h.onEvents(root+"/v1/a/events", encode(t, "a", 9, 9))
	if h.Stats().Bad[DropStopped] != 1 {
		t.Fatalf("stats %+v", h.Stats())
	}
}

func TestSharedSubscription(t *testing.T) {
	f := start(t, filepath.Join(t.TempDir(), "hub.db"), func(o *Options) { o.ShareGroup = "hubs" })
	want := []string{"$share/hubs/" + root + "/v1/+/events", root + "/v1/+/status", root + "/v1/+/health"}
	if !slices.Equal(f.tr.filters, want) {
		t.Fatalf("filters %v", f.tr.filters)
	}
}

func TestNewValidates(t *testing.T) {
	st, err := hubstore.Open(filepath.Join(t.TempDir(), "hub.db"), hubstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for name, o := range map[string]Options{
		"no store":     {Root: root, Transport: &fakeTransport{}},
		"no transport": {Root: root, Store: st},
		"no root":      {Store: st, Transport: &fakeTransport{}},
		"wildcard":     {Root: "a/+", Store: st, Transport: &fakeTransport{}},
		"empty seg":    {Root: "a//b", Store: st, Transport: &fakeTransport{}},
		"bad group":    {Root: root, Store: st, Transport: &fakeTransport{}, ShareGroup: "a/b"},
	} {
		if _, err := New(o); !errors.Is(err, ErrOptions) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestAckErrorsCounted(t *testing.T) {
	f := start(t, filepath.Join(t.TempDir(), "hub.db"), nil)
	f.tr.mu.Lock()
	f.tr.fail = errors.New("not connected")
	f.tr.mu.Unlock()
	f.events("a", encode(t, "a", 1, 3))
	f.wait(func() bool { return f.hub.Stats().AckErrors == 1 })
	if r := f.received("a"); r.Count != 3 {
		t.Fatalf("received %+v", r)
	}
}

func TestHTTPAPI(t *testing.T) {
	f := start(t, filepath.Join(t.TempDir(), "hub.db"), nil)
	f.events("a", encode(t, "a", 1, 10, 4)) // 4 absent but covered: the batch says so
	f.events("a", encode(t, "a", 21, 30))
	f.events("a", encode(t, "a", 21, 25))
	f.tr.Deliver(t, root+"/v1/a/status", []byte(`{"state":"online","agent":"a","bdseq":1}`))
	f.tr.Deliver(t, root+"/v1/a/health", []byte(`{"agent":"a","uptime_s":5}`))
	f.waitHub(func() bool { return f.hub.Stats().Health == 1 && f.hub.Stats().Batches == 3 })
	srv := httptest.NewServer(f.hub.Handler())
	defer srv.Close()

	get := func(path string, wantCode int, v any) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != wantCode || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, body)
		}
	}
	var agents []map[string]any
	get("/api/agents", 200, &agents)
	if len(agents) != 1 || agents[0]["id"] != "a" || agents[0]["online"] != true ||
		agents[0]["received"] != float64(19) || agents[0]["highest_contiguous"] != float64(10) {
		t.Fatalf("agents %v", agents)
	}
	if h, _ := agents[0]["last_health"].(map[string]any); h["uptime_s"] != float64(5) {
		t.Fatalf("last_health %v", agents[0]["last_health"])
	}
	if b, _ := agents[0]["last_birth"].(map[string]any); b["bdseq"] != float64(1) {
		t.Fatalf("last_birth %v", agents[0]["last_birth"])
	}
	var r Received
	get("/api/agents/a/received", 200, &r)
	want := Received{Count: 19, HighestContiguous: 10, Highest: 30, Missing: [][2]uint64{{11, 20}}, DuplicatesDropped: 5}
	if fmt.Sprint(r) != fmt.Sprint(want) {
		t.Fatalf("received %+v, want %+v", r, want)
	}
	var e map[string]string
	get("/api/agents/nobody/received", 404, &e)
	if e["error"] == "" {
		t.Fatalf("404 body %v", e)
	}
	var s Stats
	get("/api/stats", 200, &s)
	if s.Records != 19 {
		t.Fatalf("stats %+v", s)
	}
	// missing is [] rather than null when there are no holes.
	f.events("a", encode(t, "a", 11, 20))
	f.waitHub(func() bool { return f.hub.Stats().Batches == 4 })
	resp, err := http.Get(srv.URL + "/api/agents/a/received")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"missing":[]`) {
		t.Fatalf("body %s", body)
	}
}
