package hubalert_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/hubalert"
	"github.com/kioskedge/kioskedge/sync/hubalert/hubalerttest"
	"github.com/kioskedge/kioskedge/sync/hubstore"
	"github.com/kioskedge/kioskedge/sync/wire"
)

func TestFileStateContract(t *testing.T) {
	hubalerttest.StateStoreContract(t, func(t *testing.T) (hubalert.StateStore, hubalert.StateStore) {
		p := filepath.Join(t.TempDir(), "alerts.json")
		return hubalert.FileState(p), hubalert.FileState(p)
	})
}

func TestMemContract(t *testing.T) {
	hubalerttest.StateStoreContract(t, func(t *testing.T) (hubalert.StateStore, hubalert.StateStore) {
		m := &hubalerttest.Mem{}
		return m, m
	})
}

func TestFileStateModeAndErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "alerts.json")
	if err := hubalert.FileState(p).Save([]byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode: %v %v", st, err)
	}
	if _, err := hubalert.FileState(dir).Load(); err == nil {
		t.Error("loading a directory succeeded")
	}
	if err := hubalert.FileState(filepath.Join(dir, "missing", "a.json")).Save([]byte(`{}`)); err == nil {
		t.Error("saving into a missing directory succeeded")
	}
}

func status(agent, state string, bd uint64) hubstore.Write {
	return hubstore.Write{Statuses: []hubstore.StatusUpdate{{Status: wire.Status{
		State: state, Agent: agent, BdSeq: bd, Region: "460105", Site: "s1"}}}}
}

// running runs s until stop; stop returns once Run returned.
func running(t *testing.T, s *hubalert.Service) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func newService(t *testing.T, st hubalert.StateStore) *hubalert.Service {
	t.Helper()
	rules := hubalert.DefaultRules()
	rules.Offline.After = 0
	rules.StateFile = filepath.Join(t.TempDir(), "ignored.json") // Options.State wins
	s, err := hubalert.New(hubalert.Options{Rules: rules, State: st})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Two services on one store, as two hub instances of which one leads at
// a time: the follower's Reload shows what the leader saved, the
// follower becomes leader and carries the episode on (its birth resolves
// the alert the other fired), and the first, reloaded, sees that.
func TestServicesShareStateThroughAStore(t *testing.T) {
	store := &hubalerttest.Mem{}
	a, b := newService(t, store), newService(t, store)
	stopA := running(t, a)
	a.Offer(status("a1", wire.StateOnline, 1))
	a.Offer(status("a1", wire.StateOffline, 1))
	waitUntil(t, "the offline alert", func() bool { return a.Stats().Fired == 1 })
	stopA() // Run saves when it ends
	if store.Saves() == 0 {
		t.Fatal("the leader saved nothing")
	}
	if f := b.Firing(); len(f) != 0 {
		t.Fatalf("the follower shows %+v before Reload", f)
	}
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	if f := b.Firing(); len(f) != 1 || f[0].Rule != hubalert.RuleOffline || f[0].Agent != "a1" {
		t.Fatalf("the follower shows %+v after Reload", f)
	}
	if h := b.History(0); len(h) != 1 {
		t.Fatalf("follower history %+v", h)
	}

	stopB := running(t, b)
	b.Offer(status("a1", wire.StateOffline, 1)) // the retained death again: nothing new
	b.Offer(status("a1", wire.StateOnline, 2))
	waitUntil(t, "the resolution", func() bool { return b.Stats().Resolved == 1 })
	if st := b.Stats(); st.Fired != 0 {
		t.Fatalf("the new leader fired again: %+v", st)
	}
	stopB()

	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if f, h := a.Firing(), a.History(0); len(f) != 0 || len(h) != 2 || h[0].State != hubalert.StateResolved {
		t.Fatalf("after the second term: firing %+v, history %+v", f, h)
	}
	// Run again after Reload: a third term on the first service.
	stopA = running(t, a)
	a.Offer(status("a1", wire.StateOffline, 2))
	waitUntil(t, "the second episode", func() bool { return a.Stats().Fired == 2 })
	stopA()
}

func TestReloadWhileRunningAndQueuedCommits(t *testing.T) {
	store := &hubalerttest.Mem{}
	s := newService(t, store)
	// Queued while not leading: Reload drops them.
	s.Offer(status("a1", wire.StateOnline, 1))
	s.Offer(status("a1", wire.StateOffline, 1))
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	stop := running(t, s)
	s.Offer(status("a2", wire.StateOnline, 1))
	waitUntil(t, "the marker evaluated", func() bool { return s.Stats().Commits >= 1 })
	if err := s.Reload(); !errors.Is(err, hubalert.ErrOptions) {
		t.Errorf("Reload while running: %v", err)
	}
	if st := s.Stats(); st.Commits != 1 || st.Fired != 0 {
		t.Fatalf("commits queued before Reload were evaluated: %+v", st)
	}
	stop()
}

func TestStateSaveFailsThenRetries(t *testing.T) {
	store := &hubalerttest.Mem{}
	store.FailSaves(true)
	s := newService(t, store)
	stop := running(t, s)
	s.Offer(status("a1", wire.StateOnline, 1))
	s.Offer(status("a1", wire.StateOffline, 1))
	waitUntil(t, "the offline alert", func() bool { return s.Stats().Fired == 1 })
	stop()
	if st := s.Stats(); st.SaveError == 0 {
		t.Fatalf("a refused save was not counted: %+v", st)
	}
	store.FailSaves(false)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if store.Saves() != 1 {
		t.Fatalf("saves after the store recovered: %d", store.Saves())
	}
	again := newService(t, store)
	if f := again.Firing(); len(f) != 1 {
		t.Fatalf("a new service loads %+v", f)
	}
}

func TestBadSavedState(t *testing.T) {
	for _, tc := range []struct{ name, doc string }{
		{"not json", "{"},
		{"other version", `{"version":99}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := &hubalerttest.Mem{}
			if _, err := hubalert.New(hubalert.Options{State: store}); err != nil {
				t.Fatalf("empty store: %v", err)
			}
			good := newService(t, store)
			stop := running(t, good)
			good.Offer(status("a1", wire.StateOffline, 1))
			waitUntil(t, "the alert", func() bool { return good.Stats().Fired == 1 })
			stop()
			if err := store.Save([]byte(tc.doc)); err != nil {
				t.Fatal(err)
			}
			if _, err := hubalert.New(hubalert.Options{State: store}); err == nil {
				t.Fatal("New accepted a bad state")
			}
			if err := good.Reload(); err == nil {
				t.Fatal("Reload accepted a bad state")
			}
			if f := good.Firing(); len(f) != 1 {
				t.Fatalf("a failed Reload changed the state: %+v", f)
			}
		})
	}
}
