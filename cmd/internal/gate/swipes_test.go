package gate_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/agent/access"
	"github.com/kioskedge/kioskedge/agent/allowlist"
	agentgate "github.com/kioskedge/kioskedge/agent/gate"
	"github.com/kioskedge/kioskedge/agent/privacy"
	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/drivers/wiegand"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/fakeclock"
)

// fakeGateClock adapts fakeclock.Clock to agent/gate's Clock.
type fakeGateClock struct{ *fakeclock.Clock }

func (c fakeGateClock) AfterFunc(d time.Duration, f func()) agentgate.Timer {
	return stopper(c.Clock.AfterFunc(d, f))
}

type stopper func() bool

func (s stopper) Stop() bool { return s() }

// countingDoor is a relay that counts what it is told.
type countingDoor struct{ releases, secures, halts atomic.Int64 }

func (d *countingDoor) Release() error { d.releases.Add(1); return nil }
func (d *countingDoor) Secure() error  { d.secures.Add(1); return nil }
func (d *countingDoor) Halt() error    { d.halts.Add(1); return nil }

// countingOutbox keeps the decision records' bodies.
type countingOutbox struct {
	mu        sync.Mutex
	decisions int
	seq       uint64
}

func (o *countingOutbox) Append(_ context.Context, r wire.Record) (uint64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if r.Kind == agentgate.KindDecision {
		o.decisions++
	}
	o.seq++
	return o.seq, nil
}

// TestHundredThousandSwipesNoWrongGrant is the first criterion:
// 100,000 simulated swipes — allowlisted cards clean and noisy, unknown,
// expired, not yet valid and wrong-door cards, parity errors, truncated
// frames, glitches, spurious full-width pulses, lost pulses and garbage —
// each turned into timestamped edges by the transmitter's schedule and
// fed through the Wiegand decoder (CompleteAt 26) into the gate state
// machine over the access engine over a real 1,000-entry allowlist file,
// the decision path of kioskd without its GPIO goroutines. Every grant
// must be for exactly the card that swipe sent, allowlisted and valid
// (the generator's ground truth), and must release the door; the
// categories whose outcome the decoder's rules fix must get it.
//
// It keeps both cores busy for a while, so it runs alone (not parallel):
// the tests that pace swipes in real time would otherwise be starved.
func TestHundredThousandSwipesNoWrongGrant(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	const spacing = 100 * time.Millisecond // a 26-bit frame lasts 50 ms, the gap is 25 ms
	const lead = 5 * time.Millisecond      // the first bit's offset in its slot (more than any jitter)
	rng := rand.New(rand.NewPCG(2026, 3))
	pools := newPools(rng, 700, 100, 100, 100)
	key, err := privacy.NewSiteKey()
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	al, err := allowlist.Open(filepath.Join(t.TempDir(), "allowlist.db"), allowlist.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	loadSnapshot(t, al, 1, pools.entries(t, key, base))
	if al.Count() != 1000 {
		t.Fatalf("allowlist holds %d entries, want 1000", al.Count())
	}
	eng, err := access.New(access.Config{
		Hasher: access.SiteKeyHasher(key), Allowlist: allowlist.NewEngineView(al, []string{"north"}),
		Doors: []access.Door{{ID: "main", Groups: []string{"north"}, Location: time.UTC}},
	})
	if err != nil {
		t.Fatal(err)
	}
	clk := fakeclock.New(base)
	relay := &countingDoor{}
	ob := &countingOutbox{}
	g, err := agentgate.New(agentgate.Config{Engine: eng, Outbox: ob, Clock: fakeGateClock{clk}, QueueSize: 1 << 14,
		Doors: []agentgate.DoorConfig{{ID: "main", Door: relay, UnlockPulse: 50 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- g.Run(ctx) }()
	dec, err := wiegand.NewDecoder(wiegand.Config{Reader: "main-in", CompleteAt: 26})
	if err != nil {
		t.Fatal(err)
	}

	gen := newGenerator(rng, pools, mixWeights, false)
	swipes := make([]swipe, 0, n)
	outcomes := make([][]string, n) // per swipe, the decision of each frame
	var tl tally
	grants, wrong, frames := 0, 0, 0
	present := func(f wiegand.Frame, at time.Time) {
		frames++
		clk.Set(at)
		i := int(f.Start.Sub(base) / spacing)
		if i < 0 || i >= len(swipes) {
			t.Fatalf("frame at %v outside every swipe's slot", f.Start.Sub(base))
		}
		s := swipes[i]
		c, ok := f.Credential()
		if !ok {
			c = credential.Credential{Kind: credential.Wiegand, Reader: "main-in", Time: f.End}
		}
		d := g.Present("main", "main-in", c, ok)
		res := "denied/" + agentgate.Reason(d.Reason)
		if d.Granted {
			res = "granted/" + agentgate.Reason(d.Reason)
			grants++
			if !s.grantable || c.Number != s.card.cred().Number || d.CredentialHash != [16]byte(s.card.hash(t, key)) {
				wrong++
				if wrong <= 10 {
					t.Errorf("swipe %d (%s): WRONG GRANT from a %s", i, s.cat, f)
				}
			}
		}
		outcomes[i] = append(outcomes[i], res)
		tl.add(s.cat, res)
	}
	for i := range n {
		s := gen.next()
		swipes = append(swipes, s)
		tl.swipes[s.cat]++
		shift := time.Duration(i)*spacing + lead + base.Sub(time.Unix(0, 0))
		for _, p := range pulsesOf(s.schedule(rng), shift) {
			// The reader's gap timer closes an open frame Gap after its
			// latest pulse, before a later pulse comes.
			if last, ok := dec.Pending(); ok && !p.rise.Before(last.Add(wiegand.DefaultGap)) {
				if f, ok := dec.Flush(last.Add(wiegand.DefaultGap)); ok {
					present(f, last.Add(wiegand.DefaultGap))
				}
			}
			if f, ok := dec.Feed(p.p); ok {
				present(f, p.rise)
			}
		}
	}
	if last, ok := dec.Pending(); ok {
		if f, ok := dec.Flush(last.Add(wiegand.DefaultGap)); ok {
			present(f, last.Add(wiegand.DefaultGap))
		}
	}
	clk.Advance(time.Second) // every unlock pulse ends
	cancel()
	if err := <-runDone; err != nil {
		t.Fatalf("gate Run: %v", err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}

	tl.log(t)
	st := dec.Stats()
	t.Logf("%d swipes, %d frames (%d early), %d grants, %d wrong grants; decoder: good %d, raw %d, bad %d (parity %d, too short %d, irregular %d, trailing %d, both low %d), glitches %d",
		n, frames, st.Early, grants, wrong, st.Good, st.Raw, st.Bad, st.Parity, st.TooShort, st.Irregular, st.Trailing, st.BothLow, st.Glitches)
	if wrong != 0 {
		t.Fatalf("%d wrong grants in %d swipes", wrong, n)
	}
	bad := 0
	for i, s := range swipes {
		granted := 0
		for _, o := range outcomes[i] {
			if o[:7] == "granted" {
				granted++
			}
		}
		if granted > 1 {
			t.Errorf("swipe %d (%s) granted %d times", i, s.cat, granted)
		}
		want, fixed := s.cat.expect()
		if !fixed {
			continue
		}
		if len(outcomes[i]) != 1 || outcomes[i][0] != want {
			if bad++; bad <= 10 {
				t.Errorf("swipe %d (%s): decisions %v, want [%s]", i, s.cat, outcomes[i], want)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d swipes decided otherwise than their category requires", bad)
	}
	if tl.swipes[catValid] == 0 || tl.swipes[catParity] == 0 || tl.swipes[catDropSpurious] == 0 {
		t.Fatal("the mix lacks a category")
	}
	// Every grant released the door, and every release ended.
	if r, s := relay.releases.Load(), relay.secures.Load(); r != int64(grants) || s != int64(grants) {
		t.Errorf("relay released %d and secured %d times for %d grants", r, s, grants)
	}
	ob.mu.Lock()
	recorded := ob.decisions
	ob.mu.Unlock()
	if gs := g.Stats(); recorded != frames && gs.Dropped == 0 {
		t.Errorf("%d decision records for %d decisions (gate stats %+v)", recorded, frames, gs)
	} else {
		t.Logf("decision records: %d of %d (gate stats %+v)", recorded, frames, gs)
	}
}

// TestSwipesThroughGPIONoWrongGrant runs the same mix through the whole
// agent: simulated data lines, the Wiegand Reader's watcher goroutines,
// the door driver on its relay line and cmd/internal/gate, all on one
// fake clock; the edges carry their scheduled times (as gpiosim.Transmit
// with NoPace does). Every valid card is used once, so a grant's
// credential hash in its access.decision record names the swipe it
// belongs to. Checked from the agent's outbox and the relay line: no
// grant but for a card sent, allowlisted and valid, each at most once and
// in order; every clean or merely noisy valid swipe granted; listed but
// invalid cards denied with their reason; one relay release and one
// released(grant) event per grant.
//
// Not parallel, for the same reason as the test above.
func TestSwipesThroughGPIONoWrongGrant(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 300
	}
	clk := fakeclock.New(time.Now().Truncate(time.Millisecond))
	a := newAgent(t, deadBrokerURL(t), "gate-1", `unlock_pulse = "10ms"`, oneDoor, clk)
	rng := rand.New(rand.NewPCG(2026, 4))
	pools := newPools(rng, 1500, 100, 100, 100)
	a.start(t)
	loadSnapshot(t, a.gate.Allowlist, 1, pools.entries(t, a.key, clk.Now()))
	a.waitReaders(t, 1)
	door := a.hw.Door("main")
	waitUntil(t, "the door secured at start", door.Locked)
	skip := len(door.Relay.Edges())

	gen := newGenerator(rng, pools, mixWeights, true)
	f := newFeeder(t, a, "main-in")
	swipes := make([]swipe, n+1)
	var tl tally
	for i := range n {
		swipes[i] = gen.next()
		tl.swipes[swipes[i].cat]++
		f.send(t, swipes[i].schedule(rng))
	}
	// A last clean valid card: its grant is the last decision, so once it
	// is in the outbox every earlier one is too.
	swipes[n] = swipe{cat: catValid, card: gen.validCard(), grantable: true}
	swipes[n].bits = swipes[n].card.bits()
	sentinel := swipes[n].card.hexHash(t, a.key)
	f.send(t, swipes[n].schedule(rng))
	var decs []decision
	waitUntil(t, "the last swipe's grant in the outbox", func() bool {
		decs = decisions(t, outboxRecords(t, a))
		return len(decs) > 0 && decs[len(decs)-1].Cred == sentinel
	})
	clk.Advance(time.Second) // the last unlock pulse ends
	waitUntil(t, "the door secured after the last grant", door.Locked)
	waitUntil(t, "every record written", func() bool { return a.gate.Gate.Stats().Queued == 0 })
	records := outboxRecords(t, a)

	// The ground truth by credential hash.
	grantable := map[string]int{} // hash → the one swipe that sent it
	reasonOf := map[string]string{}
	for i, s := range swipes {
		h := s.card.hexHash(t, a.key)
		if s.grantable {
			grantable[h] = i
		}
	}
	for _, c := range pools.expired {
		reasonOf[c.hexHash(t, a.key)] = "expired"
	}
	for _, c := range pools.notYet {
		reasonOf[c.hexHash(t, a.key)] = "not_yet_valid"
	}
	for _, c := range pools.wrongDoor {
		reasonOf[c.hexHash(t, a.key)] = "wrong_door"
	}
	listed := map[string]bool{}
	for c := range pools.listed {
		listed[c.hexHash(t, a.key)] = true
	}

	grantedSwipe := map[int]bool{}
	last, grants, wrong := -1, 0, 0
	count := map[string]int{}
	for _, d := range decs {
		count[d.String()]++
		switch {
		case d.Result == "granted":
			grants++
			i, ok := grantable[d.Cred]
			if !ok || d.Reason != "allowlist" || grantedSwipe[i] || i <= last {
				wrong++
				t.Errorf("WRONG GRANT: %s for a credential that was not sent allowlisted and valid (or twice, or out of order)", d)
				continue
			}
			grantedSwipe[i], last = true, i
			tl.add(swipes[i].cat, "granted")
		case d.Cred == "":
			if d.Reason != "bad_frame" {
				t.Errorf("a decision without a credential has reason %s", d.Reason)
			}
		case reasonOf[d.Cred] != "":
			if d.Reason != reasonOf[d.Cred] {
				t.Errorf("a listed card denied %s, want %s", d.Reason, reasonOf[d.Cred])
			}
		case !listed[d.Cred]:
			if d.Reason != "unknown" {
				t.Errorf("an unlisted card denied %s, want unknown", d.Reason)
			}
		}
	}
	tl.log(t)
	t.Logf("%d swipes through the GPIO path: %d decisions %v, %d grants, %d wrong", n+1, len(decs), count, grants, wrong)
	for i, s := range swipes {
		if want, _ := s.cat.expect(); want == "granted/allowlist" && !grantedSwipe[i] {
			t.Errorf("swipe %d (%s) of a valid card was not granted", i, s.cat)
		}
	}
	for c, want := range map[category]string{catUnknown: "denied/unknown", catExpired: "denied/expired",
		catNotYet: "denied/not_yet_valid", catWrongDoor: "denied/wrong_door"} {
		if count[want] < tl.swipes[c] {
			t.Errorf("%d decisions %s for %d %s swipes", count[want], want, tl.swipes[c], c)
		}
	}
	if min := tl.swipes[catParity] + tl.swipes[catTruncated] + tl.swipes[catGarbage]; count["denied/bad_frame"] < min {
		t.Errorf("%d bad_frame denials for %d parity, truncated and garbage swipes", count["denied/bad_frame"], min)
	}

	// The door: released only right after a grant (a grant during an
	// unlock pulse extends it), and the relay moved for each release.
	released := 0
	prevGrant := false
	for _, r := range records {
		switch r.Kind {
		case "access.decision":
			prevGrant = decisions(t, []wire.Record{r})[0].Result == "granted"
		case "door.event":
			var e doorEvent
			if err := json.Unmarshal(r.Body, &e); err != nil {
				t.Fatal(err)
			}
			if e.Event == "released" {
				released++
				if e.By != "grant" || !prevGrant {
					t.Errorf("door released by %q, not right after a grant", e.By)
				}
			}
			prevGrant = false
		}
	}
	edges := releaseEdges(door, true, false, skip)
	t.Logf("%d released events and %d relay releases for %d grants", released, edges, grants)
	if released == 0 || released > grants || edges != released {
		t.Errorf("%d released events and %d relay releases for %d grants", released, edges, grants)
	}
}
