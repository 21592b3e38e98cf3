package uplink

import (
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
)

// births counts the births with bdseq bd seen.
func (w *statusWatcher) births(bd uint64) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, s := range w.all {
		if s.State == wire.StateOnline && s.BdSeq == bd {
			n++
		}
	}
	return n
}

// Rebirth (the agent.rebirth command) publishes the birth again with the
// same bdseq on the same connection and resends what the hub has not
// acked, without waiting for an ack timeout.
func TestUplinkRebirth(t *testing.T) {
	t.Parallel()
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi})
	w := watchStatus(t, b.URL(), wire.Topics{Root: testRoot, Agent: "box-1"}.Status())
	hub := startHub(t, b.URL(), testRoot, true) // never acks
	src := newMemSource(100)
	u, stop := newTestUplink(t, b.URL(), src, func(o *Options) { o.AckTimeout = time.Hour })
	defer stop()
	waitFor(t, "first birth", func() bool { return w.births(1) == 1 })
	waitFor(t, "every record sent once", func() bool { return hub.distinct() == 100 })
	sent := u.Stats().BatchesSent
	u.Rebirth()
	waitFor(t, "a second birth with the same bdseq", func() bool { return w.births(1) == 2 })
	waitFor(t, "the unacked records resent", func() bool { return u.Stats().BatchesSent > sent })
	st := u.Stats()
	if st.Reconnects != 0 || st.AckTimeouts != 0 || st.Rewinds < 1 || st.BdSeq != 1 {
		t.Fatalf("stats %+v", st)
	}
	// Sent is not yet received: wait for the resend to reach the hub.
	waitFor(t, "sequence 1 at the hub a second time", func() bool {
		hub.mu.Lock()
		defer hub.mu.Unlock()
		return hub.seen[1] >= 2
	})
}
