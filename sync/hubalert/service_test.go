package hubalert

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/hub"
	"github.com/kioskedge/kioskedge/sync/hubstore"
	"github.com/kioskedge/kioskedge/sync/wire"
)

const testRoot = "kioskedge/alerts"

type published struct {
	mu   sync.Mutex
	msgs []struct {
		topic    string
		retained bool
		payload  []byte
	}
}

func (p *published) publish(topic string, _ byte, retained bool, payload []byte) <-chan error {
	p.mu.Lock()
	p.msgs = append(p.msgs, struct {
		topic    string
		retained bool
		payload  []byte
	}{topic, retained, payload})
	p.mu.Unlock()
	ch := make(chan error, 1)
	ch <- nil
	return ch
}

func (p *published) on(topic string) [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out [][]byte
	for _, m := range p.msgs {
		if m.topic == topic {
			out = append(out, m.payload)
		}
	}
	return out
}

// started runs s until the test ends.
func started(t *testing.T, s *Service) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Run(ctx); err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
			if err := s.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func statusWrite(st wire.Status) hubstore.Write {
	return hubstore.Write{Statuses: []hubstore.StatusUpdate{{Status: st}}}
}

func TestServiceDeliversPublishesAndRemembers(t *testing.T) {
	clk := newFakeClock(time.Now())
	secret := "0123456789abcdef-hotline"
	rcv, srv := newReceiver(t, secret, clk.Now, 200)
	rules := DefaultRules()
	rules.Offline.After = 0
	rules.StateFile = filepath.Join(t.TempDir(), "alerts.json")
	rules.Webhooks = []Webhook{{Name: "hotline", URL: srv.URL, Secret: secret, Timeout: Duration(5 * time.Second), Queue: 8,
		BackoffMin: Duration(time.Second), BackoffMax: Duration(time.Minute), MaxAttempts: 3}}
	var pub published
	newService := func() *Service {
		s, err := New(Options{Rules: rules, Root: testRoot, Publish: pub.publish, Now: clk.Now, After: clk.After, HTTPClient: srv.Client()})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := newService()
	stop := started(t, s)
	s.Offer(statusWrite(birth("a1", 1)))
	s.Offer(statusWrite(death("a1", 1)))
	ev := rcv.next(t)
	if !strings.HasSuffix(ev, ":firing") {
		t.Fatalf("webhook got %q", ev)
	}
	var a Alert
	rcv.mu.Lock()
	err := json.Unmarshal(rcv.bodies[0], &a)
	rcv.mu.Unlock()
	if err != nil || a.Rule != RuleOffline || a.Agent != "a1" || a.State != StateFiring || a.Labels.Region != "460105" {
		t.Fatalf("webhook body %+v (%v)", a, err)
	}
	if f := s.FiringByRule(); f[RuleOffline] != 1 || f[RuleFire] != 0 || len(f) != len(ruleNames) {
		t.Fatalf("firing by rule %v", f)
	}
	transitions, firing := Topics(testRoot)
	if transitions != "kioskedge/alerts/v1/$hub/alerts" {
		t.Fatalf("topic %s", transitions)
	}
	waitFor(t, "the MQTT transition and summary", func() bool {
		return len(pub.on(transitions)) == 1 && len(pub.on(firing)) >= 2
	})
	if f := pub.on(firing); !strings.Contains(string(f[len(f)-1]), `"count":1`) {
		t.Fatalf("firing summary %s", f[len(f)-1])
	}

	// The JSON API and the page.
	h := s.Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/alerts", nil))
	var page Page
	if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil || len(page.Firing) != 1 || len(page.History) != 1 {
		t.Fatalf("/api/alerts: %s (%v)", rec.Body, err)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/ui/alerts", nil))
	if body := rec.Body.String(); rec.Code != http.StatusOK || !strings.Contains(body, "告警 Alerts") || !strings.Contains(body, "a1") {
		t.Fatalf("/ui/alerts: %d %s", rec.Code, body)
	}

	// A restart: the retained death arrives again and fires nothing; the
	// birth resolves the episode fired before the restart.
	stop()
	s = newService()
	started(t, s)
	s.Offer(statusWrite(death("a1", 1)))
	waitFor(t, "the death evaluated", func() bool { return s.Stats().Commits == 1 })
	if st := s.Stats(); st.Fired != 0 || st.Firing != 1 {
		t.Fatalf("after restart: %+v", st)
	}
	s.Offer(statusWrite(birth("a1", 2)))
	if ev2 := rcv.next(t); ev2 != strings.TrimSuffix(ev, "firing")+"resolved" {
		t.Fatalf("after restart the webhook got %q, want the resolution of %q", ev2, ev)
	}
	if len(s.History(0)) != 2 {
		t.Fatalf("history %+v", s.History(0))
	}
}

func TestServiceTicksFireDelayedOffline(t *testing.T) {
	clk := newFakeClock(time.Now())
	rules := DefaultRules()
	rules.Offline.After = Duration(time.Minute)
	var pub published
	s, err := New(Options{Rules: rules, Root: testRoot, Publish: pub.publish, Now: clk.Now, After: clk.After, Tick: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	started(t, s)
	s.Offer(statusWrite(death("a1", 1)))
	waitFor(t, "the death evaluated", func() bool { return s.Stats().Commits == 1 })
	for range 59 {
		tickAfter(t, clk, time.Second)
	}
	if st := s.Stats(); st.Fired != 0 {
		t.Fatalf("fired before a minute: %+v", st)
	}
	tickAfter(t, clk, time.Second)
	waitFor(t, "the offline alert", func() bool { return s.Stats().Fired == 1 })
}

// fakeTransport is the smallest hub.Transport: Deliver calls the handler
// subscribed for the topic's leaf; publishes are confirmed at once.
type fakeTransport struct {
	mu   sync.Mutex
	subs map[string]func(string, []byte)
}

func (f *fakeTransport) Subscribe(filter string, _ byte, h func(string, []byte)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.subs == nil {
		f.subs = map[string]func(string, []byte){}
	}
	f.subs[filter[strings.LastIndex(filter, "/")+1:]] = h
	return nil
}

func (f *fakeTransport) PublishAsync(hub.Message) <-chan error {
	ch := make(chan error, 1)
	ch <- nil
	return ch
}

func (f *fakeTransport) deliver(t *testing.T, topic string, payload []byte) {
	f.mu.Lock()
	h := f.subs[topic[strings.LastIndex(topic, "/")+1:]]
	f.mu.Unlock()
	if h == nil {
		t.Fatalf("no subscription for %s", topic)
	}
	h(topic, payload)
}

// A webhook that never answers must not slow ingest: the hub commits
// every batch while the webhook holds its first request and its queue
// overflows.
func TestBlockedWebhookNeverBlocksIngest(t *testing.T) {
	hang := make(chan struct{})
	blocked := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // only holding the request matters
		<-hang
	}))
	t.Cleanup(func() { close(hang); blocked.Close() })

	st, err := hubstore.Open(filepath.Join(t.TempDir(), "hub.db"), hubstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rules := DefaultRules()
	rules.Webhooks = []Webhook{{Name: "dead", URL: blocked.URL, Secret: "0123456789abcdef", Timeout: Duration(time.Hour), Queue: 4,
		BackoffMin: Duration(time.Second), BackoffMax: Duration(time.Minute), MaxAttempts: 3}}
	svc, err := New(Options{Rules: rules, HTTPClient: blocked.Client(), Queue: 4096})
	if err != nil {
		t.Fatal(err)
	}
	started(t, svc)
	tr := &fakeTransport{}
	h, err := hub.New(hub.Options{Root: testRoot, Store: st, Transport: tr, OnCommit: svc.Offer, EnqueueWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the hub's subscriptions", func() bool { tr.mu.Lock(); defer tr.mu.Unlock(); return len(tr.subs) == 3 })

	codec, err := wire.NewCodec(wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer codec.Close()
	const batches = 300
	topic := wire.Topics{Root: testRoot, Agent: "a1"}.Events()
	for seq := uint64(1); seq <= batches; seq++ {
		// Each batch toggles a forced-open alarm: one transition each.
		body, _ := json.Marshal(map[string]any{"door": "d1", "alarm": "forced_open", "active": seq%2 == 1})
		raw, err := wire.MarshalRecord(wire.Record{Kind: "door.alarm", Class: wire.ClassCritical, Time: t0.Add(time.Duration(seq) * time.Second), Body: body})
		if err != nil {
			t.Fatal(err)
		}
		msg, _, err := codec.EncodeBatch("a1", "boot", seq, seq, []wire.Entry{{Seq: seq, Raw: raw}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		tr.deliver(t, topic, msg)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	if err := h.Wait(wctx, func() bool { return h.Stats().Batches == batches }); err != nil {
		t.Fatalf("the hub committed %d of %d batches while the webhook hung: %v", h.Stats().Batches, batches, err)
	}
	if bad := h.Stats().Bad; bad[hub.DropQueueFull] != 0 {
		t.Fatalf("the hub dropped batches: %v", bad)
	}
	waitFor(t, "every commit evaluated", func() bool { return svc.Stats().Fired+svc.Stats().Resolved == batches })
	ws := svc.Stats().Webhooks[0]
	if ws.Delivered != 0 || ws.Attempts != 0 || ws.Dropped == 0 {
		t.Fatalf("webhook stats %+v: want it stuck on its first request with its queue overflowing", ws)
	}
	t.Logf("hub committed %d batches; webhook stuck, %d transitions queued, %d dropped", batches, ws.Queued, ws.Dropped)
}

// The retained summary published at start while the session is down is
// published again at the next tick.
func TestServiceRepublishesALostSummary(t *testing.T) {
	clk := newFakeClock(time.Now())
	var pub published
	var mu sync.Mutex
	fails := 1
	publish := func(topic string, qos byte, retained bool, payload []byte) <-chan error {
		mu.Lock()
		defer mu.Unlock()
		if fails > 0 {
			fails--
			ch := make(chan error, 1)
			ch <- io.ErrClosedPipe
			return ch
		}
		return pub.publish(topic, qos, retained, payload)
	}
	s, err := New(Options{Rules: DefaultRules(), Root: testRoot, Publish: publish, Now: clk.Now, After: clk.After})
	if err != nil {
		t.Fatal(err)
	}
	started(t, s)
	waitFor(t, "the failed summary counted", func() bool { return s.Stats().MQTTError == 1 })
	_, firing := Topics(testRoot)
	tickAfter(t, clk, time.Second)
	waitFor(t, "the summary published again", func() bool { return len(pub.on(firing)) == 1 })
	if got := string(pub.on(firing)[0]); !strings.Contains(got, `"count":0`) || !strings.Contains(got, `"alerts":[]`) {
		t.Fatalf("summary %s", got)
	}
}

// tickAfter advances clk by d once the service waits for its next tick.
func tickAfter(t *testing.T, clk *fakeClock, d time.Duration) {
	t.Helper()
	waitFor(t, "the service waiting for its tick", func() bool { return clk.pending() > 0 })
	clk.Advance(d)
}

// A death whose commit was dropped (full queue) is found in the store's
// state at the next reconciliation.
func TestServiceReconcilesDroppedDeath(t *testing.T) {
	clk := newFakeClock(time.Now())
	rules := DefaultRules()
	rules.Offline.After = 0
	raw, err := json.Marshal(death("a1", 4))
	if err != nil {
		t.Fatal(err)
	}
	var stored atomic.Bool // the death is committed (and its commit dropped) after the start
	states := func() []hubstore.AgentState {
		if !stored.Load() {
			return []hubstore.AgentState{{ID: "a2"}}
		}
		return []hubstore.AgentState{{ID: "a1", HasStatus: true, BdSeq: 4, Status: raw}, {ID: "a2"}}
	}
	s, err := New(Options{Rules: rules, Now: clk.Now, After: clk.After, States: states, Reconcile: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	started(t, s)
	// Run's first wait on the clock comes after its start reconciliation.
	waitFor(t, "the service waiting for its tick", func() bool { return clk.pending() > 0 })
	stored.Store(true)
	tickAfter(t, clk, time.Second)
	tickAfter(t, clk, time.Second)
	if st := s.Stats(); st.Fired != 0 {
		t.Fatalf("reconciled too early: %+v", st)
	}
	tickAfter(t, clk, time.Second)
	waitFor(t, "the offline alert from the store", func() bool { return s.Stats().Fired == 1 })
	for range 3 {
		tickAfter(t, clk, time.Second)
	}
	tickAfter(t, clk, time.Second) // the second reconciliation changes nothing
	if st := s.Stats(); st.Fired != 1 || st.Firing != 1 {
		t.Fatalf("after a second reconciliation: %+v", st)
	}
}

// Run starts by applying what the store holds: a death committed while
// no service ran (another hub instance led, or none) fires at once.
func TestServiceReconcilesAtStart(t *testing.T) {
	clk := newFakeClock(time.Now())
	rules := DefaultRules()
	rules.Offline.After = 0
	raw, err := json.Marshal(death("a1", 4))
	if err != nil {
		t.Fatal(err)
	}
	states := func() []hubstore.AgentState {
		return []hubstore.AgentState{{ID: "a1", HasStatus: true, BdSeq: 4, Status: raw}}
	}
	s, err := New(Options{Rules: rules, Now: clk.Now, After: clk.After, States: states})
	if err != nil {
		t.Fatal(err)
	}
	started(t, s)
	waitFor(t, "the offline alert from the store", func() bool { return s.Stats().Fired == 1 })
}
