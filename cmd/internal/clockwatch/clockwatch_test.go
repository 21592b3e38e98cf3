package clockwatch

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// fakeHub is a Session whose "hub" answers clock requests with its own
// clock, skew ahead of the agent's, after a one-way delay of oneWay each
// way (the agent's clock advances while the exchange is in flight).
type fakeHub struct {
	mu        sync.Mutex
	agent     time.Time // the agent's clock
	skew      time.Duration
	oneWay    time.Duration
	silent    bool // answer nothing
	connected bool
	h         func(string, []byte)
	requests  int
}

func (f *fakeHub) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.agent
}

func (f *fakeHub) Connected() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.connected
}

func (f *fakeHub) Subscribe(_ string, _ byte, h func(string, []byte)) error {
	f.mu.Lock()
	f.h = h
	f.mu.Unlock()
	return nil
}

func (f *fakeHub) Publish(_ context.Context, m uplink.Message) error {
	req, err := wire.DecodeClockRequest(m.Payload)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.requests++
	if f.silent {
		f.mu.Unlock()
		return nil
	}
	f.agent = f.agent.Add(f.oneWay)
	hubNow := f.agent.Add(f.skew)
	rep := wire.ClockReply{ID: req.ID, Sent: req.Sent, Received: hubNow, Replied: hubNow}
	f.agent = f.agent.Add(f.oneWay)
	h := f.h
	f.mu.Unlock()
	b, _ := json.Marshal(rep)
	h("reply", b)
	return nil
}

func (f *fakeHub) set(skew time.Duration) {
	f.mu.Lock()
	f.skew = skew
	f.mu.Unlock()
}

func newWatch(t *testing.T, f *fakeHub, onSkew func(Measurement)) *Watch {
	t.Helper()
	w, err := New(Options{
		Session: f, Topics: wire.Topics{Root: "kioskedge/test", Agent: "box-1"},
		MaxSkew: 5 * time.Second, OnSkew: onSkew, Now: f.now,
		// The fake answers inside Publish, so an exchange's timeout only
		// matters for a silent hub: there it fires at once.
		After: func(time.Duration) <-chan time.Time {
			c := make(chan time.Time, 1)
			f.mu.Lock()
			if f.silent {
				c <- time.Time{}
			}
			f.mu.Unlock()
			return c
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Run is not started in most tests: subscribe as Run does.
	if err := w.subscribe(); err != nil {
		t.Fatal(err)
	}
	return w
}

func TestCheckMeasuresOffsetAndReportsCrossings(t *testing.T) {
	f := &fakeHub{agent: time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC), oneWay: 20 * time.Millisecond, connected: true}
	var crossings []Measurement
	w := newWatch(t, f, func(m Measurement) { crossings = append(crossings, m) })
	if _, ok := w.Last(); ok || w.Health() != nil {
		t.Fatal("a measurement before any check")
	}
	ctx := context.Background()
	steps := []struct {
		skew      time.Duration
		skewed    bool
		crossings int
	}{
		{1500 * time.Millisecond, false, 0}, // within the bound: nothing to say
		{-7 * time.Second, true, 1},         // the agent runs 7 s ahead
		{-8 * time.Second, true, 1},         // still skewed: no second alarm
		{300 * time.Millisecond, false, 2},  // back within: said once
	}
	for i, s := range steps {
		f.set(s.skew)
		m, err := w.Check(ctx)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		// Symmetric legs: the NTP estimate is exact.
		if m.Offset != s.skew || m.Delay != 40*time.Millisecond || m.Skewed != s.skewed {
			t.Fatalf("step %d: offset %v delay %v skewed %v, want %v 40ms %v", i, m.Offset, m.Delay, m.Skewed, s.skew, s.skewed)
		}
		if len(crossings) != s.crossings {
			t.Fatalf("step %d: %d crossings reported, want %d", i, len(crossings), s.crossings)
		}
		h := w.Health()
		if h == nil || h.OffsetMS != float64(s.skew.Milliseconds()) || h.DelayMS != 40 || h.Skewed != s.skewed {
			t.Fatalf("step %d: health %+v", i, h)
		}
	}
	if f.requests != 3*len(steps) {
		t.Fatalf("%d requests, want %d (three exchanges per check)", f.requests, 3*len(steps))
	}
}

func TestFirstCheckSkewedIsReported(t *testing.T) {
	f := &fakeHub{agent: time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC), skew: time.Minute, connected: true}
	n := 0
	w := newWatch(t, f, func(Measurement) { n++ })
	if _, err := w.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d reports of a skewed first check, want 1", n)
	}
}

func TestSilentHubIsNoReply(t *testing.T) {
	f := &fakeHub{agent: time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC), silent: true, connected: true}
	w := newWatch(t, f, nil)
	if _, err := w.Check(context.Background()); !errors.Is(err, ErrNoReply) {
		t.Fatalf("err %v, want ErrNoReply", err)
	}
	if _, ok := w.Last(); ok {
		t.Fatal("a measurement from a silent hub")
	}
}

func TestStaleReplyIgnored(t *testing.T) {
	f := &fakeHub{agent: time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC), skew: 2 * time.Second, connected: true}
	w := newWatch(t, f, nil)
	// A late reply to some earlier request is waiting in the queue.
	old, _ := json.Marshal(wire.ClockReply{ID: "earlier", Sent: f.agent, Received: f.agent.Add(time.Hour), Replied: f.agent.Add(time.Hour)})
	w.replies <- old
	w.replies <- []byte("{not json")
	m, err := w.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if m.Offset != 2*time.Second {
		t.Fatalf("offset %v: a stale or bad reply was used", m.Offset)
	}
}

func TestRunChecksWhenConnected(t *testing.T) {
	f := &fakeHub{agent: time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC), skew: time.Second}
	checked := make(chan struct{})
	var once sync.Once
	w, err := New(Options{
		Session: f, Topics: wire.Topics{Root: "kioskedge/test", Agent: "box-1"}, Now: f.now,
		After: func(time.Duration) <-chan time.Time {
			// Each wait: connect the session the first time, and stop
			// the loop once a measurement exists.
			c := make(chan time.Time, 1)
			f.mu.Lock()
			f.connected = true
			f.mu.Unlock()
			c <- time.Time{}
			return c
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	go func() {
		for {
			if _, ok := w.Last(); ok {
				once.Do(func() { close(checked) })
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	select {
	case <-checked:
	case <-time.After(10 * time.Second):
		t.Fatal("Run made no measurement")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
	if m, _ := w.Last(); m.Offset != time.Second {
		t.Fatalf("offset %v", m.Offset)
	}
}

func TestNewNeedsSessionAndTopics(t *testing.T) {
	if _, err := New(Options{}); !errors.Is(err, ErrOptions) {
		t.Fatalf("err %v", err)
	}
}
