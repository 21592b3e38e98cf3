package gate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/agent/access"
	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// fakeClock is a manual clock: Advance runs due timers in time order from
// the calling goroutine, with Now at each timer's due time.
type fakeClock struct {
	mu     sync.Mutex
	cond   *sync.Cond
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c             *fakeClock
	at            time.Time
	f             func()
	done, stopped bool
}

func newFakeClock(t0 time.Time) *fakeClock {
	c := &fakeClock{now: t0}
	c.cond = sync.NewCond(&c.mu)
	return c
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	c.cond.Broadcast()
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.done || t.stopped {
		return false
	}
	t.stopped = true
	return true
}

// Advance moves the clock by d, running every timer due on the way.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var next *fakeTimer
		for _, t := range c.timers {
			if !t.done && !t.stopped && !t.at.After(target) && (next == nil || t.at.Before(next.at)) {
				next = t
			}
		}
		if next == nil {
			c.now = target
			c.mu.Unlock()
			return
		}
		next.done = true
		if next.at.After(c.now) {
			c.now = next.at
		}
		c.mu.Unlock()
		next.f()
	}
}

func (c *fakeClock) pendingLocked() int {
	n := 0
	for _, t := range c.timers {
		if !t.done && !t.stopped {
			n++
		}
	}
	return n
}

// WaitPending blocks until at least n timers are pending (a goroutine
// under test armed its back-off), or fails the test after 10 s.
func (c *fakeClock) WaitPending(t *testing.T, n int) {
	t.Helper()
	stop := time.AfterFunc(10*time.Second, func() { c.mu.Lock(); c.cond.Broadcast(); c.mu.Unlock() })
	defer stop.Stop()
	deadline := time.Now().Add(10 * time.Second)
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.pendingLocked() < n {
		if time.Now().After(deadline) {
			t.Fatalf("waited for %d pending timers, have %d", n, c.pendingLocked())
		}
		c.cond.Wait()
	}
}

// fakeDoor logs every relay call with the clock's time since t0.
type fakeDoor struct {
	clk  *fakeClock
	t0   time.Time
	mu   sync.Mutex
	log  []string
	fail error
	boom bool // panic in Release
}

func (d *fakeDoor) rec(op string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.log = append(d.log, fmt.Sprintf("%s@%v", op, d.clk.Now().Sub(d.t0)))
	if d.boom && op == "release" {
		panic("relay driver bug")
	}
	return d.fail
}

func (d *fakeDoor) Release() error { return d.rec("release") }
func (d *fakeDoor) Secure() error  { return d.rec("secure") }
func (d *fakeDoor) Halt() error    { return d.rec("halt") }

func (d *fakeDoor) calls() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.log...)
}

// fakeOutbox keeps records; fail makes the next Appends fail.
type fakeOutbox struct {
	mu       sync.Mutex
	recs     []wire.Record
	fail     int // failures left
	attempts int
	panicky  bool
	block    bool // every Append waits for its context to end
	tried    chan struct{}
}

var errDiskFull = errors.New("fake outbox: disk full")

func newFakeOutbox() *fakeOutbox { return &fakeOutbox{tried: make(chan struct{}, 1000)} }

func (o *fakeOutbox) Append(ctx context.Context, r wire.Record) (uint64, error) {
	o.mu.Lock()
	if o.block {
		o.mu.Unlock()
		<-ctx.Done()
		return 0, ctx.Err()
	}
	defer func() {
		select {
		case o.tried <- struct{}{}:
		default:
		}
	}()
	defer o.mu.Unlock()
	o.attempts++
	if o.panicky {
		panic("outbox bug")
	}
	if o.fail > 0 {
		o.fail--
		return 0, errDiskFull
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	o.recs = append(o.recs, r)
	return uint64(len(o.recs)), nil
}

func (o *fakeOutbox) records() []wire.Record {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]wire.Record(nil), o.recs...)
}

// mapAllowlist is an in-memory allowlist.
type mapAllowlist map[[16]byte]access.Entry

func (m mapAllowlist) Lookup(h [16]byte) (access.Entry, bool, error) {
	e, ok := m[h]
	return e, ok, nil
}
func (m mapAllowlist) Schedule(uint32) (access.Schedule, bool) { return access.Schedule{}, false }

var (
	t0     = time.Date(2026, 5, 1, 8, 30, 0, 0, time.UTC)
	hasher = access.SiteKeyHasher([]byte("test site key"))
)

func card(number string, at time.Time) credential.Credential {
	return credential.Credential{Kind: credential.Wiegand, Reader: "in", Time: at, Encoding: "H10301", Number: number}
}

// rig is a gate of two doors, d1 and d2, both with contacts, and card
// "1-100" allowed at both.
type rig struct {
	g     *Gate
	clk   *fakeClock
	eng   *access.Engine
	doors map[string]*fakeDoor
	out   *fakeOutbox
}

func newRig(t testing.TB, tweak func(*Config)) *rig {
	t.Helper()
	clk := newFakeClock(t0)
	al := mapAllowlist{hasher.Hash(card("1-100", t0)): {DoorGroups: []string{"g"}}}
	eng, err := access.New(access.Config{Hasher: hasher, Allowlist: al, Doors: []access.Door{
		{ID: "d1", Groups: []string{"g"}}, {ID: "d2", Groups: []string{"g"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{clk: clk, eng: eng, doors: map[string]*fakeDoor{}, out: newFakeOutbox()}
	cfg := Config{Engine: eng, Outbox: r.out, Clock: clk}
	for _, id := range []string{"d1", "d2"} {
		fd := &fakeDoor{clk: clk, t0: t0}
		r.doors[id] = fd
		cfg.Doors = append(cfg.Doors, DoorConfig{ID: id, Door: fd, HasContact: true})
	}
	if tweak != nil {
		tweak(&cfg)
	}
	r.g, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.g.Close() })
	return r
}

func (r *rig) present(door, number string, frameOK bool) access.Decision {
	return r.g.Present(door, "", card(number, r.clk.Now()), frameOK)
}

func (r *rig) input(door string, in Input, active bool) {
	r.g.Input(InputEvent{Door: door, Input: in, Active: active})
}

// taken pops every queued record, formatted "kind body".
func (r *rig) taken() []string {
	var out []string
	for {
		e, ok := r.g.q.peek()
		if !ok {
			return out
		}
		r.g.q.pop(true)
		rec := record(e)
		out = append(out, rec.Kind+" "+string(rec.Body))
	}
}
