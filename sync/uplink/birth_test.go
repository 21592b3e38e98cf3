package uplink

import (
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
)

// hasBirth reports whether a birth with bdseq bd carrying ackedThrough was
// seen.
func (w *statusWatcher) hasBirth(bd, ackedThrough uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.all {
		if s.State == wire.StateOnline && s.BdSeq == bd && s.AckedThrough == ackedThrough {
			return true
		}
	}
	return false
}

// The birth says how far a hub acked (hub-protocol.md §3): on every
// connect, and again on the same connection when acks stop coming (a hub
// that lost its store learns it from the retained birth).
func TestUplinkBirthCarriesAckedThrough(t *testing.T) {
	t.Parallel()
	broker.Each(t, func(t *testing.T, b *broker.Broker) {
		t.Parallel()
		p := startProxy(t, b.Addr())
		w := watchStatus(t, b.URL(), wire.Topics{Root: testRoot, Agent: "box-1"}.Status())
		hub := startHub(t, b.URL(), testRoot, false)
		src := newMemSource(1000)
		u, stop := newTestUplink(t, p.URL(), src, func(o *Options) { o.AckTimeout = 300 * time.Millisecond })
		defer stop()
		waitFor(t, "first birth, nothing acked yet", func() bool { return w.hasBirth(1, 0) })
		waitFor(t, "all acked", func() bool { return src.AckedThrough() == 1000 })
		// A slow run may time out while draining, which republishes too.
		if st := u.Stats(); st.AckTimeouts == 0 && st.Births != 1 {
			t.Fatalf("births %d without an ack timeout or reconnect", st.Births)
		}

		// The hub stops acking (as a hub on a fresh store would).
		hub.mu.Lock()
		hub.noAck = true
		hub.mu.Unlock()
		src.Append(500)
		waitFor(t, "birth republished on the same connection", func() bool { return w.hasBirth(1, 1000) })
		st := u.Stats()
		if st.AckTimeouts < 1 || st.Reconnects != 0 || st.Births < 2 {
			t.Fatalf("stats %+v", st)
		}
		// Once carried, further timeouts do not republish it.
		timeouts, births := st.AckTimeouts, st.Births
		waitFor(t, "more ack timeouts", func() bool { return u.Stats().AckTimeouts >= timeouts+2 })
		if u.Stats().Births != births {
			t.Fatalf("births %d after %d, acked through unchanged", u.Stats().Births, births)
		}

		p.Cut()
		waitFor(t, "birth on reconnect", func() bool { return w.hasBirth(2, 1000) })
		hub.mu.Lock()
		hub.noAck = false
		hub.mu.Unlock()
		waitFor(t, "all acked", func() bool { return src.AckedThrough() == 1500 })
	})
}
