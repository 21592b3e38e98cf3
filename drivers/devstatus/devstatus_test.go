package devstatus

import (
	"testing"
	"time"
)

func TestTracker(t *testing.T) {
	now := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	tr := New("reader-1", "osdp", 3, func() time.Time { return now })
	if s := tr.Snapshot(); s.Connected || s.Down || s.Reconnects != 0 {
		t.Fatalf("new tracker: %+v", s)
	}
	tr.Connected(true)
	tr.Seen()
	tr.Error(ErrChecksum)
	if s := tr.Snapshot(); !s.Connected || !s.LastSeen.Equal(now) || s.Errors[ErrChecksum] != 1 || s.Reconnects != 0 {
		t.Fatalf("after first connect: %+v", s)
	}
	for i := range 2 {
		if tr.Failed(ErrTimeout) {
			t.Fatalf("down after %d failures", i+1)
		}
	}
	if !tr.Failed(ErrTimeout) || !tr.Down() {
		t.Fatal("not down after 3 failures")
	}
	if tr.Failed(ErrTimeout) {
		t.Fatal("marked down twice")
	}
	now = now.Add(time.Minute)
	tr.Seen()
	if tr.Down() || !tr.Snapshot().LastSeen.Equal(now) {
		t.Fatal("a good exchange did not bring it up")
	}
	for range 2 {
		if tr.Failed(ErrTimeout) {
			t.Fatal("the failure run was not reset by Seen")
		}
	}
	tr.Connected(false)
	tr.Connected(true)
	tr.Connected(true)
	s := tr.Snapshot()
	if s.Reconnects != 1 || s.Errors[ErrTimeout] != 6 {
		t.Fatalf("reconnects/errors: %+v", s)
	}
	s.Errors[ErrTimeout] = 99
	if tr.Snapshot().Errors[ErrTimeout] != 6 {
		t.Fatal("Snapshot shares its map")
	}
}
