package hubalert

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	secret := []byte("0123456789abcdef")
	body := []byte(`{"id":"x"}`)
	now := time.Unix(1_700_000_000, 0)
	ts := "1700000000"
	sig := Sign(secret, ts, body)
	if err := Verify(secret, ts, sig, body, now, DefaultReplayWindow); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		secret  []byte
		ts, sig string
		body    []byte
		want    error
	}{
		"other secret":  {[]byte("fedcba9876543210"), ts, sig, body, ErrSignature},
		"changed body":  {secret, ts, sig, []byte(`{"id":"y"}`), ErrSignature},
		"changed stamp": {secret, "1700000001", sig, body, ErrSignature},
		"no signature":  {secret, ts, "", body, ErrSignature},
		"replayed late": {secret, "1699999000", Sign(secret, "1699999000", body), body, ErrStale},
	} {
		if err := Verify(c.secret, c.ts, c.sig, c.body, now, DefaultReplayWindow); err != c.want {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

func TestBackoffCappedWithJitter(t *testing.T) {
	w := &webhook{cfg: Webhook{BackoffMin: Duration(time.Second), BackoffMax: Duration(time.Minute)}}
	for _, j := range []struct {
		name   string
		jitter func(int64) int64
	}{{"none", func(int64) int64 { return 0 }}, {"all", func(n int64) int64 { return n - 1 }}} {
		w.jitter = j.jitter
		prev := time.Duration(0)
		for n := 1; n <= 70; n++ {
			d := w.backoff(n)
			base := min(time.Minute, time.Second<<min(n-1, 10))
			if d < base/2 || d > base {
				t.Fatalf("jitter %s, attempt %d: %s outside [%s, %s]", j.name, n, d, base/2, base)
			}
			if d < prev {
				t.Fatalf("jitter %s, attempt %d: %s shorter than the one before (%s)", j.name, n, d, prev)
			}
			prev = d
		}
	}
}

// receiver is a test webhook endpoint: it verifies every request and
// answers with the next status of codes (the last one repeats).
type receiver struct {
	t      *testing.T
	secret []byte
	now    func() time.Time
	codes  []int

	mu     sync.Mutex
	got    []string // X-KioskEdge-Event of every verified request
	bodies [][]byte
	ch     chan string
}

func newReceiver(t *testing.T, secret string, now func() time.Time, codes ...int) (*receiver, *httptest.Server) {
	r := &receiver{t: t, secret: []byte(secret), now: now, codes: codes, ch: make(chan string, 100)}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		r.t.Errorf("receiver: %v", err)
		return
	}
	if err := Verify(r.secret, req.Header.Get(HeaderTimestamp), req.Header.Get(HeaderSignature), body, r.now(), DefaultReplayWindow); err != nil {
		r.t.Errorf("receiver: %v", err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	r.mu.Lock()
	code := r.codes[min(len(r.got), len(r.codes)-1)]
	ev := req.Header.Get(HeaderEvent)
	r.got = append(r.got, ev)
	r.bodies = append(r.bodies, body)
	r.mu.Unlock()
	w.WriteHeader(code)
	r.ch <- ev
}

func (r *receiver) next(t *testing.T) string {
	t.Helper()
	select {
	case ev := <-r.ch:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("the webhook receiver got nothing")
		return ""
	}
}

func TestWebhookRetriesWithBackoff(t *testing.T) {
	clk := newFakeClock(time.Unix(1_700_000_000, 0))
	secret := "0123456789abcdef-hotline"
	rcv, srv := newReceiver(t, secret, clk.Now, 500, 503, 200)
	cfg := Webhook{Name: "hotline", URL: srv.URL, Secret: secret, Timeout: Duration(5 * time.Second), Queue: 8,
		BackoffMin: Duration(time.Second), BackoffMax: Duration(time.Minute), MaxAttempts: 5}
	w := newWebhook(cfg, srv.Client(), clk.Now, clk.After, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	w.offer(delivery{event: "e1:firing", id: "e1", body: []byte(`{"id":"e1"}`)})
	w.offer(delivery{event: "e1:resolved", id: "e1", body: []byte(`{"id":"e1","state":"resolved"}`)})
	if ev := rcv.next(t); ev != "e1:firing" {
		t.Fatalf("first attempt %q", ev)
	}
	// The 500 makes it wait 0.5–1 s of the fake clock, then 1–2 s for the 503.
	for i, span := range [][2]time.Duration{{500 * time.Millisecond, time.Second}, {time.Second, 2 * time.Second}} {
		d := <-clk.waits
		if d < span[0] || d > span[1] {
			t.Fatalf("wait %d: %s outside [%s, %s]", i, d, span[0], span[1])
		}
		select {
		case ev := <-rcv.ch:
			t.Fatalf("retried (%q) before its back-off passed", ev)
		default:
		}
		clk.Advance(d)
		if ev := rcv.next(t); ev != "e1:firing" {
			t.Fatalf("retry %d delivered %q", i, ev)
		}
	}
	// In order: the resolved transition only after the firing one got its 200.
	if ev := rcv.next(t); ev != "e1:resolved" {
		t.Fatalf("then %q", ev)
	}
	deadline := time.Now().Add(10 * time.Second)
	for w.Stats().Delivered != 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if s := w.Stats(); s.Delivered != 2 || s.Attempts != 4 || s.Failures != 2 || s.GaveUp != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestWebhookGivesUp(t *testing.T) {
	clk := newFakeClock(time.Unix(1_700_000_000, 0))
	secret := "0123456789abcdef-hotline"
	rcv, srv := newReceiver(t, secret, clk.Now, 500)
	cfg := Webhook{Name: "dead", URL: srv.URL, Secret: secret, Timeout: Duration(5 * time.Second), Queue: 8,
		BackoffMin: Duration(time.Second), BackoffMax: Duration(4 * time.Second), MaxAttempts: 3}
	w := newWebhook(cfg, srv.Client(), clk.Now, clk.After, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	w.offer(delivery{event: "e1:firing", id: "e1", body: []byte(`{}`)})
	w.offer(delivery{event: "e2:firing", id: "e2", body: []byte(`{}`)})
	for range 2 {
		rcv.next(t)
		clk.Advance(<-clk.waits)
	}
	rcv.next(t) // the third and last attempt for e1
	if ev := rcv.next(t); ev != "e2:firing" {
		t.Fatalf("after giving up on e1: %q", ev)
	}
	if s := w.Stats(); s.GaveUp != 1 {
		t.Fatalf("stats %+v", s)
	}
}
