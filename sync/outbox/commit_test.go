package outbox

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/outbox/outboxtest"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// TestGroupCommitGathering pins how the committer forms groups, with each
// commit held open by a hook: everything handed over while a commit runs
// joins the next group at once; a group smaller than the previous one
// lingers (here up to an hour) until it is as large; Stats counts the
// commits and the records they stored.
func TestGroupCommitGathering(t *testing.T) {
	t.Parallel()
	o, err := Open(Options{Path: filepath.Join(t.TempDir(), "o.db"), Linger: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Close() })
	entered := make(chan int)
	release := make(chan struct{})
	stop := make(chan struct{}) // frees the hook when the test ends early
	t.Cleanup(func() { close(stop) })
	lingering := make(chan int, 1)
	o.onLinger = func(n int) {
		select {
		case lingering <- n:
		case <-stop:
		}
	}
	o.beforeCommit = func(n int) {
		select {
		case entered <- n:
		case <-stop:
			return
		}
		select {
		case <-release:
		case <-stop:
		}
	}
	type result struct {
		seq uint64
		err error
	}
	var results []<-chan result
	appendAsync := func() {
		c := make(chan result, 1)
		i := len(results)
		results = append(results, c)
		go func() {
			seq, err := o.Append(bg, outboxtest.Rec(wire.ClassEvent, i, 40))
			c <- result{seq, err}
		}()
	}
	// waitQueued waits until n requests are handed over and not yet taken
	// (the committer, held in a commit, cannot take them).
	waitQueued := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for len(o.reqs) != n {
			if time.Now().After(deadline) {
				t.Fatalf("%d requests queued, want %d", len(o.reqs), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	group := func(want int) {
		t.Helper()
		select {
		case n := <-entered:
			if n != want {
				t.Fatalf("group of %d, want %d", n, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no commit of %d records started", want)
		}
	}

	appendAsync() // 1: alone, nothing to wait for (the previous group was 1)
	group(1)
	appendAsync() // 2, 3: handed over while 1 commits
	appendAsync()
	waitQueued(2)
	release <- struct{}{}
	group(2)
	appendAsync() // 4, 5: handed over while 2-3 commit; as many as before
	appendAsync()
	waitQueued(2)
	release <- struct{}{}
	group(2)
	release <- struct{}{}
	appendAsync() // 6 alone: the committer lingers for a second record
	select {
	case n := <-lingering:
		if n != 1 {
			t.Fatalf("lingering with %d records, want 1", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the committer did not linger")
	}
	appendAsync()
	group(2)
	release <- struct{}{}
	// Records handed over together may take their sequences in any order.
	want := [][2]uint64{{1, 1}, {2, 3}, {2, 3}, {4, 5}, {4, 5}, {6, 7}, {6, 7}}
	for i, ch := range results {
		select {
		case r := <-ch:
			if r.err != nil || r.seq < want[i][0] || r.seq > want[i][1] {
				t.Fatalf("append %d: seq %d, %v; want %d..%d", i, r.seq, r.err, want[i][0], want[i][1])
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("append %d did not return", i)
		}
	}
	if s := o.Stats(); s.Commits != 4 || s.Appended != 7 || s.CommitTime <= 0 {
		t.Errorf("stats: %d commits, %d appended, %v commit time; want 4, 7, > 0", s.Commits, s.Appended, s.CommitTime)
	}
}
