package outbox

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/outbox/outboxtest"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// TestCloseWhileAppending closes the outbox while many producers are
// blocked in Append (the request channel full): every Append returns, with
// a seq or ErrClosed, and every returned seq is in the file after reopen.
func TestCloseWhileAppending(t *testing.T) {
	for round := range 3 {
		dir := t.TempDir()
		o := openT(t, dir, 0)
		var mu sync.Mutex
		var got []uint64
		var wg sync.WaitGroup
		for p := range 300 {
			wg.Go(func() {
				for i := 0; ; i++ {
					seq, err := o.Append(bg, outboxtest.Rec(wire.ClassEvent, p, 100))
					if errors.Is(err, ErrClosed) {
						return
					}
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					got = append(got, seq)
					mu.Unlock()
				}
			})
		}
		time.Sleep(time.Duration(20+30*round) * time.Millisecond)
		if err := o.Close(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("Appends still blocked 30 s after Close")
		}
		o = openT(t, dir, 0)
		present := map[uint64]bool{}
		for _, e := range outboxtest.ReadAll(t, o, 0) {
			present[e.Seq] = true
		}
		for _, seq := range got {
			if !present[seq] {
				t.Fatalf("seq %d returned by Append before Close is missing", seq)
			}
		}
		if len(got) == 0 {
			t.Fatal("no Append succeeded before Close")
		}
		if err := o.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
