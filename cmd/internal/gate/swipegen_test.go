package gate_test

// The swipe generator of the acceptance tests: every swipe knows what was
// put on the wire (its ground truth), so a grant can be checked against
// the card actually sent.

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/kioskedge/kioskedge/drivers/wiegand"
	"github.com/kioskedge/kioskedge/testhw/gatesim"
	"github.com/kioskedge/kioskedge/testhw/gpiosim"
)

type category uint8

const (
	catValid         category = iota // an allowlisted, valid card, clean
	catNoisy                         // the same with jitter and glitches (pulses too short to be bits)
	catSpurious                      // the same with full-width pulses added between bits
	catDropped                       // the same with data pulses lost
	catDropSpurious                  // one pulse lost, one added: 26 pulses, wrong timing
	catTruncSpurious                 // cut to 25 bits plus one added pulse: 26 pulses
	catParity                        // an allowlisted card with one bit flipped
	catTruncated                     // an allowlisted card cut short
	catGarbage                       // random bits, fewer than 26
	catUnknown                       // a well-formed card not on the list
	catExpired                       // on the list, past its ValidTo
	catNotYet                        // on the list, before its ValidFrom
	catWrongDoor                     // on the list for another door group
	numCategories
)

var categoryNames = [numCategories]string{"valid", "noisy", "spurious", "dropped", "drop+spurious",
	"trunc+spurious", "parity", "truncated", "garbage", "unknown", "expired", "not_yet_valid", "wrong_door"}

func (c category) String() string { return categoryNames[c] }

// expect returns the decision (result/reason as in access.decision
// records) a swipe of category c must get, for the categories whose
// outcome the decoder's rules fix; ok is false for the others, where only
// "no wrong grant" is required.
func (c category) expect() (string, bool) {
	switch c {
	case catValid, catNoisy:
		return "granted/allowlist", true
	case catParity, catTruncated, catGarbage:
		return "denied/bad_frame", true
	case catUnknown:
		return "denied/unknown", true
	case catExpired:
		return "denied/expired", true
	case catNotYet:
		return "denied/not_yet_valid", true
	case catWrongDoor:
		return "denied/wrong_door", true
	}
	return "", false
}

// swipe is one presentation at the reader and its ground truth.
type swipe struct {
	cat  category
	card card   // the card whose bits were sent (zero for garbage)
	bits []bool // what the transmitter clocks out, before noise
	tx   gpiosim.TxOptions
	drop int // data pulses lost on the wire
	// grantable: the card sent is allowlisted and valid at the door, so a
	// grant for exactly this card is right; any other grant is wrong.
	grantable bool
}

// weights of the categories in a mixed run.
var mixWeights = [numCategories]int{
	catValid: 22, catNoisy: 14, catSpurious: 6, catDropped: 6, catDropSpurious: 4, catTruncSpurious: 4,
	catParity: 8, catTruncated: 8, catGarbage: 4, catUnknown: 12, catExpired: 4, catNotYet: 4, catWrongDoor: 4,
}

// deterministicWeights leave out the categories whose outcome depends on
// the order two reader watchers hand pulses over (an added pulse right
// after the last bit may or may not be seen before the frame completes).
var deterministicWeights = [numCategories]int{
	catValid: 30, catNoisy: 15, catParity: 10, catTruncated: 10, catGarbage: 5,
	catUnknown: 15, catExpired: 5, catNotYet: 5, catWrongDoor: 5,
}

// generator draws swipes from a seeded source.
type generator struct {
	rng     *rand.Rand
	pools   *cardPools
	weights [numCategories]int
	total   int
	// unique, when set, hands out each valid card once (in the order of
	// a shuffle), so a grant's hash names the one swipe it belongs to.
	unique []card
}

func newGenerator(rng *rand.Rand, pools *cardPools, weights [numCategories]int, unique bool) *generator {
	g := &generator{rng: rng, pools: pools, weights: weights}
	for _, w := range weights {
		g.total += w
	}
	if unique {
		g.unique = slices.Clone(pools.valid)
		rng.Shuffle(len(g.unique), func(i, j int) { g.unique[i], g.unique[j] = g.unique[j], g.unique[i] })
	}
	return g
}

func (g *generator) validCard() card {
	if g.unique != nil {
		if len(g.unique) == 0 {
			panic("generator: out of unique valid cards")
		}
		c := g.unique[0]
		g.unique = g.unique[1:]
		return c
	}
	return g.pools.valid[g.rng.IntN(len(g.pools.valid))]
}

func (g *generator) pick(cs []card) card { return cs[g.rng.IntN(len(cs))] }

func (g *generator) next() swipe {
	r := g.rng
	x := r.IntN(g.total)
	var c category
	for c = 0; c < numCategories; c++ {
		if x < g.weights[c] {
			break
		}
		x -= g.weights[c]
	}
	s := swipe{cat: c}
	jitter := func() time.Duration { return time.Duration(r.IntN(200)) * time.Microsecond }
	switch c {
	case catValid:
		s.card = g.validCard()
		s.grantable = true
	case catNoisy:
		s.card = g.validCard()
		s.grantable = true
		s.tx = gpiosim.TxOptions{Jitter: jitter(), Glitches: 1 + r.IntN(4)}
	case catSpurious:
		s.card = g.validCard()
		s.grantable = true
		s.tx = gpiosim.TxOptions{Jitter: jitter(), Spurious: 1 + r.IntN(2), Glitches: r.IntN(2)}
	case catDropped:
		s.card = g.validCard()
		s.grantable = true
		s.tx = gpiosim.TxOptions{Jitter: jitter()}
		s.drop = 1 + r.IntN(2)
	case catDropSpurious:
		s.card = g.validCard()
		s.grantable = true
		s.tx = gpiosim.TxOptions{Jitter: jitter(), Spurious: 1}
		s.drop = 1
	case catTruncSpurious:
		s.card = g.validCard()
		s.grantable = true
		s.tx = gpiosim.TxOptions{Jitter: jitter(), Spurious: 1}
	case catParity, catTruncated:
		s.card = g.validCard()
		s.tx = gpiosim.TxOptions{Jitter: jitter(), Glitches: r.IntN(2)}
	case catGarbage:
		n := 1 + r.IntN(25)
		for range n {
			s.bits = append(s.bits, r.IntN(2) == 1)
		}
		s.tx = gpiosim.TxOptions{Jitter: jitter(), Glitches: r.IntN(3)}
	case catUnknown:
		s.card = g.pools.unknown(r)
	case catExpired:
		s.card = g.pick(g.pools.expired)
	case catNotYet:
		s.card = g.pick(g.pools.notYet)
	case catWrongDoor:
		s.card = g.pick(g.pools.wrongDoor)
	}
	if s.bits == nil {
		s.bits = s.card.bits()
	}
	switch c {
	case catParity:
		i := r.IntN(len(s.bits))
		s.bits[i] = !s.bits[i] // one flip always breaks one of the two parities
	case catTruncated:
		s.bits = s.bits[:1+r.IntN(len(s.bits)-1)]
	case catTruncSpurious:
		s.bits = s.bits[:len(s.bits)-1]
	}
	if c == catGarbage || c == catParity || c == catTruncated || c == catTruncSpurious {
		s.grantable = false
	}
	return s
}

// schedule returns the swipe's edges, D0 as line 0 and D1 as line 1, the
// first bit due at the Unix epoch: the transmitter's schedule with noise,
// less the pulses of the dropped data bits.
func (s swipe) schedule(r *rand.Rand) []gpiosim.TxEdge {
	o := s.tx
	o.Rand = r
	o.Start = time.Unix(0, 0)
	ev := gpiosim.Schedule(s.bits, gatesim.DefaultPulse, gatesim.DefaultInterval, o)
	if s.drop == 0 {
		return ev
	}
	drop := map[int]bool{}
	for _, i := range r.Perm(len(s.bits))[:s.drop] {
		drop[i] = true
	}
	out := ev[:0:0]
	for i := 0; i < len(ev); i++ {
		e := ev[i]
		off := e.At.Sub(o.Start)
		bit := int((off + gatesim.DefaultInterval/2) / gatesim.DefaultInterval)
		dev := off - time.Duration(bit)*gatesim.DefaultInterval
		if e.Level == gpio.Low && drop[bit] && dev.Abs() <= o.Jitter {
			if i+1 >= len(ev) || ev[i+1].Line != e.Line || ev[i+1].Level != gpio.High {
				panic(fmt.Sprintf("swipe schedule: pulse %d is not followed by its rising edge", i))
			}
			i++ // and its rising edge
			continue
		}
		out = append(out, e)
	}
	return out
}

// timedPulse is a pulse and the time its rising edge (the end of the
// pulse, when a reader feeds it) comes.
type timedPulse struct {
	p    wiegand.Pulse
	rise time.Time
}

// pulsesOf turns edges into the pulses a stamped reader feeds, in the
// order their rising edges come. Like a line, it sees only changes of
// level: of two noise pulses that overlap on one line, the first rising
// edge ends both.
func pulsesOf(ev []gpiosim.TxEdge, shift time.Duration) []timedPulse {
	var fall [2]time.Time
	level := [2]gpio.Level{gpio.High, gpio.High} // idle
	var out []timedPulse
	for _, e := range ev {
		if level[e.Line] == e.Level {
			continue
		}
		level[e.Line] = e.Level
		at := e.At.Add(shift)
		if e.Level == gpio.Low {
			fall[e.Line] = at
			continue
		}
		out = append(out, timedPulse{wiegand.Pulse{Line: wiegand.Line(e.Line), Time: fall[e.Line], Width: at.Sub(fall[e.Line])}, at})
	}
	return out
}

// tally counts outcomes per category, for the log.
type tally struct {
	swipes, frames [numCategories]int
	outcomes       [numCategories]map[string]int
}

func (t *tally) add(c category, outcome string) {
	if t.outcomes[c] == nil {
		t.outcomes[c] = map[string]int{}
	}
	t.outcomes[c][outcome]++
	t.frames[c]++
}

func (t *tally) log(tb testing.TB) {
	for c := category(0); c < numCategories; c++ {
		if t.swipes[c] == 0 {
			continue
		}
		var parts []string
		for k, v := range t.outcomes[c] {
			parts = append(parts, fmt.Sprintf("%s=%d", k, v))
		}
		slices.Sort(parts)
		tb.Logf("%-15s swipes=%-6d frames=%-6d %s", c, t.swipes[c], t.frames[c], strings.Join(parts, " "))
	}
}

// feeder clocks swipes onto an agent's simulated reader at simulated
// time, one frame at a time: it sets the edges (stamped ahead of the
// agent's fake clock), waits until the reader's watchers have taken every
// one, then moves the clock past the gap so the frame is closed. Frames
// are therefore cut only by the decoder's own rules, never by a watcher
// lagging behind the other.
type feeder struct {
	a    *agent
	r    *gatesim.Reader
	c    []*edgeCounter
	sent []int
}

func newFeeder(t *testing.T, a *agent, reader string) *feeder {
	r := a.hw.Reader(reader)
	var w0, w1 string
	for _, w := range a.cfg.Wiegand {
		if w.Name == reader {
			w0, w1 = w.D0, w.D1
		}
	}
	f := &feeder{a: a, r: r, c: []*edgeCounter{a.lines[w0], a.lines[w1]}, sent: make([]int, 2)}
	if f.c[0] == nil || f.c[1] == nil {
		t.Fatalf("reader %s is not running", reader)
	}
	for i := range f.c {
		f.sent[i], _ = f.c[i].consumed()
	}
	return f
}

// chunkSpan is the stretch of a frame's edges put on the wire before the
// feeder waits for them to be read.
const chunkSpan = 10 * time.Millisecond

// maxBacklog bounds the records the feeder lets wait for the outbox.
const maxBacklog = 256

// send puts one swipe's edges (relative to the epoch) on the wire 1 ms
// after the clock's time and returns once the reader has read them and
// the clock has passed the gap after the last one.
func (f *feeder) send(t *testing.T, ev []gpiosim.TxEdge) {
	t.Helper()
	// Swipes come far faster than at a real door; let the gate's record
	// writer (one fsynced append per record) keep up, so its bounded queue
	// never drops one.
	if f.a.gate.Gate.Stats().Queued > maxBacklog {
		waitUntil(t, "the gate's record queue to drain", func() bool { return f.a.gate.Gate.Stats().Queued <= maxBacklog/2 })
	}
	clk := f.a.clock
	shift := clk.Now().Add(time.Millisecond).Sub(time.Unix(0, 0))
	lines := [2]*gpiosim.Line{f.r.D0, f.r.D1}
	var last, chunk time.Time
	for _, e := range ev {
		at := e.At.Add(shift)
		if at.Sub(chunk) >= chunkSpan {
			// Each line has its own watcher, and one may run ahead of the
			// other: with the edges of a whole frame queued at once, a
			// watcher could feed a pulse a Gap past the last one the other
			// has fed and so cut the frame, which at a real door would
			// take a watcher stalled for a Gap. The edges go out in spans
			// well below the Gap, each read before the next.
			waitConsumed(t, f.c, f.sent)
			chunk = at
		}
		if lines[e.Line].Read() != e.Level { // overlapping noise pulses make no edge
			f.sent[e.Line]++
		}
		lines[e.Line].SetAt(e.Level, at)
		last = at
	}
	waitConsumed(t, f.c, f.sent)
	clk.Set(last.Add(wiegand.DefaultGap + time.Millisecond))
}
