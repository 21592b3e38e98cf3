package serialport

import (
	"errors"
	"testing"
	"time"
)

func TestBackoffFullJitterCapped(t *testing.T) {
	const lo, hi = 100 * time.Millisecond, 1 * time.Second
	top := func(n int64) int64 { return n - 1 }
	zero := func(int64) int64 { return 0 }
	for attempt, want := range []time.Duration{lo, 2 * lo, 4 * lo, 8 * lo, hi, hi, hi} {
		if got := backoff(attempt, lo, hi, top); got != want {
			t.Errorf("attempt %d: ceiling %v, want %v", attempt, got, want)
		}
		if got := backoff(attempt, lo, hi, zero); got != 0 {
			t.Errorf("attempt %d: floor %v, want 0", attempt, got)
		}
	}
	if got := backoff(1000, lo, hi, top); got != hi {
		t.Errorf("huge attempt: %v, want %v (no overflow)", got, hi)
	}
}

// fakeClock hands every After request to the test, which fires it.
type fakeClock struct{ reqs chan clockReq }

type clockReq struct {
	d  time.Duration
	ch chan time.Time
}

func (c fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.reqs <- clockReq{d, ch}
	return ch
}

// nopPort is an always-open Port whose Read blocks until Close.
type nopPort struct{ closed chan struct{} }

func (p nopPort) Read([]byte) (int, error) {
	<-p.closed
	return 0, &Error{Code: Closed}
}
func (nopPort) Write(b []byte) (int, error)        { return len(b), nil }
func (nopPort) SetReadTimeout(time.Duration) error { return nil }
func (nopPort) ResetInputBuffer() error            { return nil }
func (p nopPort) Close() error {
	select {
	case <-p.closed:
	default:
		close(p.closed)
	}
	return nil
}

func TestReconnectingBacksOffOnTheInjectedClock(t *testing.T) {
	clock := fakeClock{reqs: make(chan clockReq)}
	const fails = 5
	opens := 0
	states := make(chan bool, 4)
	r, err := OpenReconnecting("/dev/fake", Mode{}, ReconnectOptions{
		MinBackoff: time.Second, MaxBackoff: 4 * time.Second, PathCheck: -1,
		Clock: clock,
		Rand:  func(n int64) int64 { return n - 1 }, // always the ceiling
		Opener: func(string, Mode) (Port, error) {
			opens++ // only the loop goroutine calls after the first
			if opens <= fails {
				return nil, &Error{Code: NotFound, Err: errors.New("absent")}
			}
			return nopPort{closed: make(chan struct{})}, nil
		},
		OnState: func(up bool) { states <- up },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// First open in OpenReconnecting failed; then fails-1 more failures, each
	// followed by a wait whose ceiling doubles up to MaxBackoff.
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second}
	for i, w := range want {
		select {
		case req := <-clock.reqs:
			if req.d != w {
				t.Fatalf("wait %d: %v, want %v", i, req.d, w)
			}
			req.ch <- time.Time{}
		case <-time.After(10 * time.Second):
			t.Fatalf("no back-off wait %d requested", i)
		}
	}
	select {
	case up := <-states:
		if !up {
			t.Fatal("first state is down")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("never came up")
	}
	if !r.Up() || r.Reconnects() != 0 {
		t.Fatalf("Up=%v Reconnects=%d", r.Up(), r.Reconnects())
	}
	r.Close()
	if up := <-states; up {
		t.Fatal("Close did not report down")
	}
}
