package hubpg_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kioskedge/kioskedge/sync/hubpg"
	"github.com/kioskedge/kioskedge/testhw/pgtest"
)

// candidate runs one Leader with a fast retry, counting its waits (each
// a try for the lock or a check of its connection) and the terms it led.
type candidate struct {
	name   string
	l      *hubpg.Leader
	waits  atomic.Int64
	cancel context.CancelFunc
	done   chan struct{}
}

// field is what every candidate's lead reports to: how many lead at
// once, and the most that ever did.
type field struct {
	mu           sync.Mutex
	active, most int
	terms        []int64
}

func (f *field) lead(ctx context.Context, term int64) {
	f.mu.Lock()
	f.active++
	f.most = max(f.most, f.active)
	f.terms = append(f.terms, term)
	f.mu.Unlock()
	<-ctx.Done()
	f.mu.Lock()
	f.active--
	f.mu.Unlock()
}

func (f *field) snapshot() (most int, terms []int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.most, append([]int64(nil), f.terms...)
}

func startCandidate(t *testing.T, dsn, name string, f *field) *candidate {
	t.Helper()
	c := &candidate{name: name, done: make(chan struct{})}
	var err error
	c.l, err = hubpg.NewLeader(dsn, hubpg.LeaderOptions{Name: "kioskedge/leader-test", Retry: 50 * time.Millisecond,
		After: func(d time.Duration) <-chan time.Time { c.waits.Add(1); return time.After(d) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go func() {
		defer close(c.done)
		if err := c.l.Run(ctx, f.lead); err != nil {
			t.Errorf("%s: run: %v", name, err)
		}
	}()
	t.Cleanup(c.stop)
	return c
}

func (c *candidate) stop() {
	c.cancel()
	<-c.done
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// leaderOf waits until exactly one of cs leads and returns it.
func leaderOf(t *testing.T, cs ...*candidate) (leader, other *candidate) {
	t.Helper()
	eventually(t, "one leader", func() bool { return cs[0].l.Leading() != cs[1].l.Leading() })
	if cs[0].l.Leading() {
		return cs[0], cs[1]
	}
	return cs[1], cs[0]
}

// waitTries waits until c made n more waits (tries for the lock).
func waitTries(t *testing.T, c *candidate, n int64) {
	t.Helper()
	from := c.waits.Load()
	eventually(t, "the follower's tries", func() bool { return c.waits.Load() >= from+n })
}

// Two instances on one database: exactly one leads while the other keeps
// trying; the leader's session terminated by the server (as when its
// process is SIGKILLed) hands the lead over with a newer term; a leader
// that stops gives it up at once.
func TestLeaderElectsOneAndHandsOver(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.DSN("postgres")
	var f field
	a, b := startCandidate(t, dsn, "a", &f), startCandidate(t, dsn, "b", &f)
	first, second := leaderOf(t, a, b)
	eventually(t, "the first term's lead", func() bool { _, terms := f.snapshot(); return len(terms) == 1 })
	waitTries(t, second, 5)
	if most, terms := f.snapshot(); most != 1 || len(terms) != 1 || terms[0] != 1 || second.l.Leading() {
		t.Fatalf("while the first leads: most leading at once %d, terms %v, follower leading %v", most, terms, second.l.Leading())
	}

	// The server ends the leader's session: its lock goes with it.
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("terminated %d lock holders (%v)", n, err)
	}
	eventually(t, "the other to take over", func() bool { return second.l.Leading() })
	eventually(t, "the first to notice", func() bool { return first.l.Stats().Lost == 1 })
	if st := second.l.Stats(); st.Term != 2 || st.Elected != 1 {
		t.Fatalf("new leader stats %+v", st)
	}
	waitTries(t, first, 5) // it reconnected and campaigns again, in vain
	if first.l.Leading() || !second.l.Leading() {
		t.Fatalf("after the handover: first leading %v, second %v", first.l.Leading(), second.l.Leading())
	}

	// A clean stop releases the lock.
	second.stop()
	if second.l.Leading() {
		t.Fatal("stopped but leading")
	}
	eventually(t, "the first to lead again", func() bool { return first.l.Leading() })
	if st := first.l.Stats(); st.Term != 3 || st.Elected != 2 || st.Lost != 1 {
		t.Fatalf("first's stats %+v", st)
	}
	first.stop()
	if _, terms := f.snapshot(); len(terms) != 3 {
		t.Fatalf("terms led %v", terms)
	}
}

// A lead function that returns gives the lead up: another instance
// takes it.
func TestLeaderLeadReturningGivesUp(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.DSN("postgres")
	var quit atomic.Bool
	var f field
	lead := func(ctx context.Context, term int64) {
		if quit.CompareAndSwap(true, false) {
			return
		}
		f.lead(ctx, term)
	}
	quit.Store(true)
	mk := func() *candidate {
		c := &candidate{done: make(chan struct{})}
		var err error
		c.l, err = hubpg.NewLeader(dsn, hubpg.LeaderOptions{Name: "x", Retry: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		c.cancel = cancel
		go func() { defer close(c.done); _ = c.l.Run(ctx, lead) }()
		t.Cleanup(c.stop)
		return c
	}
	a, b := mk(), mk()
	eventually(t, "two elections", func() bool { return a.l.Stats().Elected+b.l.Stats().Elected == 2 })
	leaderOf(t, a, b)
	eventually(t, "the second term's lead", func() bool { _, terms := f.snapshot(); return len(terms) == 1 })
	if most, terms := f.snapshot(); most != 1 || len(terms) != 1 || terms[0] != 2 {
		t.Fatalf("most %d, terms %v", most, terms)
	}
}

func TestLeaderOptions(t *testing.T) {
	if _, err := hubpg.NewLeader("postgres://127.0.0.1/x", hubpg.LeaderOptions{}); !errors.Is(err, hubpg.ErrLeaderOptions) {
		t.Errorf("no name: %v", err)
	}
	if _, err := hubpg.NewLeader("postgres://%zz", hubpg.LeaderOptions{Name: "x"}); !errors.Is(err, hubpg.ErrLeaderOptions) {
		t.Errorf("bad dsn: %v", err)
	}
	if hubpg.LockKey("a") == hubpg.LockKey("b") {
		t.Error("lock keys")
	}
}

// An unreachable database is retried until ctx ends; Run then returns nil.
func TestLeaderUnreachable(t *testing.T) {
	l, err := hubpg.NewLeader("postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=1",
		hubpg.LeaderOptions{Name: "x", Retry: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := l.Run(ctx, func(context.Context, int64) { t.Error("led without a database") }); err != nil {
		t.Fatal(err)
	}
	if l.Leading() {
		t.Fatal("leading")
	}
}
