package hub

import (
	"crypto/ed25519"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/wire"
)

// lcClock is a settable clock for the lifecycle detector.
type lcClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *lcClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *lcClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// rebirths returns the agent.rebirth commands published, verified with pub.
func (f *fakeTransport) rebirths(t *testing.T, pub ed25519.PublicKey) []wire.Command {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []wire.Command
	for _, m := range f.published {
		if m.Topic[len(m.Topic)-4:] != "/cmd" {
			continue
		}
		c, err := wire.ParseCommand(m.Payload)
		if err != nil || wire.VerifyCommand(pub, &c) != nil || c.Name != wire.CmdRebirth || m.Retained || m.QoS != 1 {
			t.Fatalf("rebirth message %+v: %v", m, err)
		}
		if m.Topic != (wire.Topics{Root: root, Agent: c.Agent}).Cmd() {
			t.Fatalf("rebirth for %s on %s", c.Agent, m.Topic)
		}
		out = append(out, c)
	}
	return out
}

func status(t *testing.T, st wire.Status) []byte {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGapTriggersRebirth: a missing range is marked at once, counts as a
// gap only after GapAge, and sends one signed agent.rebirth per
// RebirthInterval however often the agent is seen with it; once filled
// the gap is cleared. Without a command key the gap is only recorded.
func TestGapTriggersRebirth(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, withKey := range []bool{true, false} {
		t.Run(map[bool]string{true: "key", false: "nokey"}[withKey], func(t *testing.T) {
			clk := &lcClock{t: t0}
			f := start(t, filepath.Join(t.TempDir(), "hub.db"), func(o *Options) {
				o.GapAge, o.RebirthInterval, o.Now = time.Minute, 10*time.Minute, clk.Now
				if withKey {
					o.CommandKey = priv
				}
			})
			commits := func() uint64 { return f.hub.Stats().Commits }
			send := func(first, last uint64) {
				t.Helper()
				n := commits()
				f.events("a1", encode(t, "a1", first, last))
				f.waitHub(func() bool { return commits() > n })
			}
			send(1, 3)
			send(6, 10)
			lc := f.hub.Lifecycle()
			if len(lc) != 1 || lc[0].Agent != "a1" || !lc[0].GapSince.Equal(t0) || len(lc[0].Missing) != 1 ||
				lc[0].Missing[0] != [2]uint64{4, 5} || lc[0].Gaps != 0 {
				t.Fatalf("young gap: %+v", lc)
			}
			clk.Advance(59 * time.Second)
			send(11, 12)
			if s := f.hub.Stats(); s.Gaps != 0 || s.RebirthsSent != 0 {
				t.Fatalf("gap younger than GapAge counted: %+v", s)
			}
			// Past GapAge: counted once, however many commits see it.
			for range 3 {
				clk.Advance(2 * time.Second)
				send(13, 13)
			}
			want := uint64(0)
			if withKey {
				want = 1
			}
			s := f.hub.Stats()
			if s.Gaps != 1 || s.RebirthsSent != want || uint64(len(f.tr.rebirths(t, pub))) != want {
				t.Fatalf("after GapAge: gaps %d, rebirths %d (%d published), want 1, %d", s.Gaps, s.RebirthsSent, len(f.tr.rebirths(t, pub)), want)
			}
			if withKey {
				c := f.tr.rebirths(t, pub)[0]
				if c.Agent != "a1" || c.Args != nil || !c.Expires.After(c.Issued) {
					t.Errorf("rebirth command %+v", c)
				}
			}
			// A second hole while the first still stands is the same gap.
			send(14, 16)
			send(18, 20)
			clk.Advance(2 * time.Minute)
			send(21, 21)
			if s := f.hub.Stats(); s.Gaps != 1 || s.RebirthsSent != want {
				t.Fatalf("same standing gap: %+v", s)
			}
			// Still standing a RebirthInterval after the rebirth: asked
			// again, not counted again.
			clk.Advance(10 * time.Minute)
			send(22, 22)
			send(23, 23)
			if s := f.hub.Stats(); s.Gaps != 1 || s.RebirthsSent != 2*want || uint64(len(f.tr.rebirths(t, pub))) != 2*want {
				t.Fatalf("standing gap after RebirthInterval: %+v", s)
			}
			// Fill every hole: the gap clears.
			send(4, 5)
			send(17, 17)
			lc = f.hub.Lifecycle()
			if len(lc) != 1 || !lc[0].GapSince.IsZero() || len(lc[0].Missing) != 0 || lc[0].LastEvent != EventGap {
				t.Fatalf("after filling: %+v", lc)
			}
			// A new gap after RebirthInterval sends again (with a key).
			clk.Advance(10 * time.Minute)
			send(24, 24)
			send(26, 30)
			clk.Advance(2 * time.Minute)
			send(31, 31)
			s = f.hub.Stats()
			if s.Gaps != 2 || s.RebirthsSent != 3*want || uint64(len(f.tr.rebirths(t, pub))) != 3*want {
				t.Fatalf("second gap: %+v", s)
			}
		})
	}
}

// TestGapAgesWhileAgentSilent: a missing range is counted as a gap (and a
// rebirth asked for) once it outlives GapAge even if the agent publishes
// nothing more: the committer's sweep looks again.
func TestGapAgesWhileAgentSilent(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	clk := &lcClock{t: t0}
	f := start(t, filepath.Join(t.TempDir(), "hub.db"), func(o *Options) {
		o.GapAge, o.RebirthInterval, o.Now, o.CommandKey = time.Minute, 10*time.Minute, clk.Now, priv
		o.GapSweep = 5 * time.Millisecond
	})
	for _, r := range [][2]uint64{{1, 3}, {6, 10}} {
		n := f.hub.Stats().Commits
		f.events("a1", encode(t, "a1", r[0], r[1]))
		f.waitHub(func() bool { return f.hub.Stats().Commits > n })
	}
	if s := f.hub.Stats(); s.Gaps != 0 {
		t.Fatalf("a young gap counted: %+v", s)
	}
	clk.Advance(61 * time.Second)
	f.wait(func() bool { return f.hub.Stats().Gaps == 1 && len(f.tr.rebirths(t, pub)) == 1 })
	if lc := f.hub.Lifecycle(); len(lc) != 1 || lc[0].LastEvent != EventGap || lc[0].Rebirths != 1 {
		t.Fatalf("lifecycle after the sweep: %+v", lc)
	}
}

// TestStaleStatusAndBootWithoutDeath: a status with a lower bdseq than the
// stored one, and a birth with a new boot id over a birth, are recorded
// and (with a key) answered with one rebirth per interval; the hub's own
// status topic is not an agent's.
func TestStaleStatusAndBootWithoutDeath(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	clk := &lcClock{t: t0}
	f := start(t, filepath.Join(t.TempDir(), "hub.db"), func(o *Options) {
		o.CommandKey, o.RebirthInterval, o.Now = priv, 10*time.Minute, clk.Now
	})
	topic := wire.Topics{Root: root, Agent: "a1"}.Status()
	deliver := func(st wire.Status) {
		t.Helper()
		n := f.hub.Stats().Statuses
		f.tr.Deliver(t, topic, status(t, st))
		f.waitHub(func() bool { return f.hub.Stats().Statuses > n })
	}
	birth := wire.Status{State: wire.StateOnline, Agent: "a1", BootID: "boot-1", BdSeq: 5, Time: t0}
	deliver(birth)
	deliver(birth) // a retained replay: the same birth is no event
	if s := f.hub.Stats(); s.StaleBirths+s.BootsWithoutDeath+s.RebirthsSent != 0 {
		t.Fatalf("events from a plain birth: %+v", s)
	}
	old := birth
	old.BdSeq = 4
	deliver(old)
	if s := f.hub.Stats(); s.StaleBirths != 1 || s.RebirthsSent != 1 || len(f.tr.rebirths(t, pub)) != 1 {
		t.Fatalf("stale birth: %+v", s)
	}
	reboot := birth
	reboot.BootID, reboot.BdSeq = "boot-2", 6
	deliver(reboot)
	s := f.hub.Stats()
	if s.BootsWithoutDeath != 1 || s.RebirthsSent != 1 {
		t.Fatalf("boot without death (rebirth rate-limited): %+v", s)
	}
	lc := f.hub.Lifecycle()
	if len(lc) != 1 || lc[0].StaleStatuses != 1 || lc[0].BootNoDeath != 1 || lc[0].Rebirths != 1 ||
		lc[0].LastEvent != EventBootNoDeath {
		t.Fatalf("lifecycle row %+v", lc)
	}
	// A death and then a new boot is a normal restart.
	death := reboot
	death.State, death.BdSeq = wire.StateOffline, 7
	deliver(death)
	again := reboot
	again.BootID, again.BdSeq = "boot-3", 8
	deliver(again)
	if s := f.hub.Stats(); s.BootsWithoutDeath != 1 || s.StaleBirths != 1 {
		t.Fatalf("restart after a death counted: %+v", s)
	}
	// The hub's own status is skipped, not counted as bad.
	f.tr.Deliver(t, root+"/v1/"+wire.HubSegment+"/status", []byte(`{"state":"online"}`))
	if s := f.hub.Stats(); s.Bad[BadTopic] != 0 || s.Bad[BadStatus] != 0 {
		t.Fatalf("hub status counted as bad: %+v", s.Bad)
	}
}

// TestMayCommandVetoesRebirth: a hub told it may not command agents (not
// the leader of several) records the gap but sends no rebirth; once it
// may, the standing gap's next look sends one.
func TestMayCommandVetoesRebirth(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	var may sync.Mutex
	allowed := false
	clk := &lcClock{t: t0}
	f := start(t, filepath.Join(t.TempDir(), "hub.db"), func(o *Options) {
		o.GapAge, o.RebirthInterval, o.Now, o.CommandKey = time.Minute, 10*time.Minute, clk.Now, priv
		o.GapSweep = 5 * time.Millisecond
		o.MayCommand = func() bool { may.Lock(); defer may.Unlock(); return allowed }
	})
	for _, r := range [][2]uint64{{1, 3}, {6, 10}} {
		n := f.hub.Stats().Commits
		f.events("a1", encode(t, "a1", r[0], r[1]))
		f.waitHub(func() bool { return f.hub.Stats().Commits > n })
	}
	clk.Advance(61 * time.Second)
	f.wait(func() bool { return f.hub.Stats().Gaps == 1 })
	if s := f.hub.Stats(); s.RebirthsSent != 0 || len(f.tr.rebirths(t, pub)) != 0 {
		t.Fatalf("a hub that may not command sent a rebirth: %+v", s)
	}
	may.Lock()
	allowed = true
	may.Unlock()
	f.wait(func() bool { return len(f.tr.rebirths(t, pub)) == 1 })
	if s := f.hub.Stats(); s.Gaps != 1 {
		t.Fatalf("the same gap counted again: %+v", s)
	}
}
