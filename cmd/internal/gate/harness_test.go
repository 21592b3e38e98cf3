package gate_test

// Shared harness of the acceptance tests (issue 3): a restartable agent
// over simulated hardware, allowlists with validity, the swipe generator
// with its ground truth, and readers of the agent's outbox.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/kioskedge/kioskedge/agent/allowlist"
	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/agent/privacy"
	"github.com/kioskedge/kioskedge/cmd/internal/gate"
	"github.com/kioskedge/kioskedge/cmd/internal/node"
	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/doorsim"
	"github.com/kioskedge/kioskedge/testhw/fakeclock"
	"github.com/kioskedge/kioskedge/testhw/gatesim"
	"github.com/kioskedge/kioskedge/testhw/gpiosim"
)

// agentTOML is an agent config; %[1]s is the broker URL, %[2]s the agent
// id, %[3]s extra [gate] settings and %[4]s the [[door]] and [[wiegand]]
// tables.
const agentTOML = `
[agent]
id = "%[2]s"
data_dir = "data"

[hub]
broker = "%[1]s"
plaintext = true
root = "kioskedge/test"
backoff_min = "30ms"
backoff_max = "300ms"
ack_timeout = "3s"

[localapi]
enabled = false

[privacy]
site_key_file = "site.key"

[gate]
%[3]s

%[4]s
`

// oneDoor is a fail-safe door (group north) with a reader.
const oneDoor = `
[[door]]
id = "main"
groups = ["north"]
lock = "fail_safe"
relay = "sim:relay"
contact = "sim:contact"
exit = "sim:exit"
fire = "sim:fire"

[[wiegand]]
name = "main-in"
door = "main"
d0 = "sim:d0"
d1 = "sim:d1"
complete_at = 26
`

// agent is one agent (a node and its gate) over simulated hardware that
// outlives it: stop and start it again on the same data dir and lines, as
// a restarted kioskd.
type agent struct {
	dir   string
	cfg   config.Config
	hw    *gatesim.Gate
	key   []byte           // site key
	clock *fakeclock.Clock // nil: the system clock
	lines map[string]*edgeCounter
	log   *slog.Logger

	// The running agent; nil when stopped.
	node   *node.Node
	gate   *gate.Gate
	codec  *wire.Codec
	cancel context.CancelFunc
	done   [2]chan error
}

// newAgent writes the config and a site key to a temp dir and builds the
// hardware; clock, when not nil, stamps the lines' edges and drives every
// timer of the agent. Cleanup stops the agent if it runs.
func newAgent(t *testing.T, brokerURL, id, gateExtra, doors string, clock *fakeclock.Clock) *agent {
	t.Helper()
	dir := t.TempDir()
	key, err := privacy.NewSiteKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := privacy.WriteSiteKey(filepath.Join(dir, "site.key"), key); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "kioskd.toml")
	if err := os.WriteFile(path, fmt.Appendf(nil, agentTOML, brokerURL, id, gateExtra, doors), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var now func() time.Time
	if clock != nil {
		now = clock.Now
	}
	hw, err := gatesim.New(cfg, now)
	if err != nil {
		t.Fatal(err)
	}
	a := &agent{dir: dir, cfg: cfg, hw: hw, key: key, clock: clock, lines: map[string]*edgeCounter{}}
	t.Cleanup(func() {
		if a.node != nil {
			a.stop(t)
		}
	})
	return a
}

// Lines resolves lines through the simulated hardware, counting the edges
// the watchers take from the input lines (reader data lines and door
// inputs).
func (a *agent) Lines(key, spec string) (gpio.PinIO, error) {
	p, err := a.hw.Lines(key, spec)
	if err != nil || strings.HasSuffix(key, ".relay") {
		return p, err
	}
	c := a.lines[spec]
	if c == nil {
		c = &edgeCounter{changed: make(chan struct{})}
		a.lines[spec] = c
	}
	return countedLine{Line: p.(*gpiosim.Line), c: c}, nil
}

func (a *agent) start(t *testing.T) {
	t.Helper()
	if a.node != nil {
		t.Fatal("agent already running")
	}
	codec, err := wire.NewCodec(wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(node.Options{Config: a.cfg, Version: "test", Codec: codec})
	if err != nil {
		codec.Close()
		t.Fatal(err)
	}
	o := gate.Options{Config: a.cfg, Node: n, Lines: a.Lines, Logger: a.log}
	if a.clock != nil {
		o.Clock = a.clock
	}
	g, err := gate.Open(o)
	if err != nil {
		n.Close()
		codec.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.node, a.gate, a.codec, a.cancel = n, g, codec, cancel
	a.done = [2]chan error{make(chan error, 1), make(chan error, 1)}
	go func() { a.done[0] <- n.Run(ctx) }()
	go func() { a.done[1] <- g.Run(ctx) }()
}

// stop stops the agent as kioskd does on SIGTERM: Run's context ends, then
// the gate (halting the doors) and the node are closed.
func (a *agent) stop(t *testing.T) {
	t.Helper()
	a.cancel()
	for i, name := range []string{"node", "gate"} {
		select {
		case err := <-a.done[i]:
			if err != nil {
				t.Errorf("%s Run: %v", name, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s Run did not return", name)
		}
	}
	if err := a.gate.Close(); err != nil {
		t.Errorf("gate Close: %v", err)
	}
	if err := a.node.Close(); err != nil {
		t.Errorf("node Close: %v", err)
	}
	a.codec.Close()
	a.node, a.gate, a.codec = nil, nil, nil
}

// waitReaders waits until every reader's Run has set up its data lines,
// so edges sent from now on are seen.
func (a *agent) waitReaders(t *testing.T, ins int) {
	t.Helper()
	waitUntil(t, "the readers watching their lines", func() bool {
		for _, w := range a.cfg.Wiegand {
			for _, spec := range []string{w.D0, w.D1} {
				if c := a.lines[spec]; c == nil || c.ins() < ins {
					return false
				}
			}
		}
		return true
	})
}

// waitInput waits until the input line spec has been set up as an input
// ins times in all (once per start of its door or reader).
func (a *agent) waitInput(t *testing.T, spec string, ins int) {
	t.Helper()
	waitUntil(t, "the line "+spec+" watched", func() bool {
		c := a.lines[spec]
		return c != nil && c.ins() >= ins
	})
}

// countedLine is an input line that counts the edges its watcher
// has handled, so a test knows when a frame has been read in full. An edge
// counts once the watcher asks for the next one: by then it has fed the
// pulse to the decoder (and delivered the frame it completed).
type countedLine struct {
	*gpiosim.Line
	c *edgeCounter
}

func (l countedLine) WaitForEdge(timeout time.Duration) bool {
	l.c.handled()
	ok := l.Line.WaitForEdge(timeout)
	if ok {
		l.c.mu.Lock()
		l.c.pending = true
		l.c.mu.Unlock()
	}
	return ok
}

// In counts configurations for edges: the watcher's, not the one-off
// level read gate.Open makes of a fire input.
func (l countedLine) In(pull gpio.Pull, edge gpio.Edge) error {
	err := l.Line.In(pull, edge)
	if edge != gpio.NoEdge {
		l.c.add(1, 0)
	}
	return err
}

type edgeCounter struct {
	mu       sync.Mutex
	in, took int
	pending  bool // the last WaitForEdge returned an edge not yet counted
	changed  chan struct{}
}

// handled counts the edge the last WaitForEdge returned, if any.
func (c *edgeCounter) handled() {
	c.mu.Lock()
	p := c.pending
	c.pending = false
	c.mu.Unlock()
	if p {
		c.add(0, 1)
	}
}

func (c *edgeCounter) add(in, took int) {
	c.mu.Lock()
	c.in += in
	c.took += took
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

func (c *edgeCounter) ins() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.in
}

// consumed returns how many edges the watcher took and a channel closed
// at the next change.
func (c *edgeCounter) consumed() (int, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.took, c.changed
}

// waitConsumed waits (bounded) until the counters of lines have taken
// want[i] edges in all.
func waitConsumed(t *testing.T, cs []*edgeCounter, want []int) {
	t.Helper()
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	for i, c := range cs {
		for {
			n, ch := c.consumed()
			if n >= want[i] {
				break
			}
			select {
			case <-ch:
			case <-deadline.C:
				t.Fatalf("reader line %d took %d edges, want %d", i, n, want[i])
			}
		}
	}
}

// deadBrokerURL returns a loopback URL nothing listens on.
func deadBrokerURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return "tcp://" + addr
}

// card is a synthetic H10301 card.
type card struct{ fc, num uint32 }

func (c card) cred() credential.Credential {
	return credential.Credential{Kind: credential.Wiegand, Encoding: "H10301", Number: fmt.Sprintf("%03d-%05d", c.fc, c.num)}
}

func (c card) bits() []bool { return gpiosim.H10301(c.fc, c.num) }

// hash returns the card's keyed hash under key, as records carry it.
func (c card) hash(t testing.TB, key []byte) allowlist.Key {
	k, err := allowlist.ParseKey(privacy.KeyedHash(key, c.cred()))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// hexHash returns the card's keyed hash as records carry it.
func (c card) hexHash(t testing.TB, key []byte) string {
	k := c.hash(t, key)
	return k.String()
}

// cardPools are the cards of an allowlist by what they are good for at
// the door "main" (group north) at the test's time, and unknown cards.
type cardPools struct {
	valid, expired, notYet, wrongDoor []card
	listed                            map[card]bool
}

// newPools draws distinct cards; now is the time decisions are made
// around (entries stay in their class for a day either side).
func newPools(rng *rand.Rand, nValid, nExpired, nNotYet, nWrongDoor int) *cardPools {
	p := &cardPools{listed: map[card]bool{}}
	draw := func(n int) []card {
		var cs []card
		for len(cs) < n {
			c := card{uint32(rng.IntN(256)), uint32(rng.IntN(65536))}
			if !p.listed[c] {
				p.listed[c] = true
				cs = append(cs, c)
			}
		}
		return cs
	}
	p.valid, p.expired, p.notYet, p.wrongDoor = draw(nValid), draw(nExpired), draw(nNotYet), draw(nWrongDoor)
	return p
}

// unknown draws a card not on the list.
func (p *cardPools) unknown(rng *rand.Rand) card {
	for {
		c := card{uint32(rng.IntN(256)), uint32(rng.IntN(65536))}
		if !p.listed[c] {
			return c
		}
	}
}

// entries returns the allowlist entries of the pools under site key key.
func (p *cardPools) entries(t testing.TB, key []byte, now time.Time) []allowlist.Entry {
	north, south := []uint32{allowlist.GroupID("north")}, []uint32{allowlist.GroupID("south")}
	var es []allowlist.Entry
	add := func(cs []card, e allowlist.Entry) {
		for _, c := range cs {
			e.Key = c.hash(t, key)
			es = append(es, e)
		}
	}
	day := 24 * time.Hour
	add(p.valid, allowlist.Entry{DoorGroups: north, ValidFrom: now.Add(-day), ValidTo: now.Add(day)})
	add(p.expired, allowlist.Entry{DoorGroups: north, ValidFrom: now.Add(-3 * day), ValidTo: now.Add(-day)})
	add(p.notYet, allowlist.Entry{DoorGroups: north, ValidFrom: now.Add(day), ValidTo: now.Add(3 * day)})
	add(p.wrongDoor, allowlist.Entry{DoorGroups: south})
	return es
}

// loadSnapshot commits es as allowlist version version, as the allowlist
// receiver would.
func loadSnapshot(t testing.TB, a *allowlist.Allowlist, version uint64, es []allowlist.Entry) {
	t.Helper()
	chunks, err := allowlist.EncodeSnapshot(sortedEntries(es), nil, 500)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.BeginSnapshot(version, uint64(len(chunks)), sum(chunks)); err != nil {
		t.Fatal(err)
	}
	for i, c := range chunks {
		if err := a.PutChunk(uint64(i), c); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.CommitSnapshot(); err != nil {
		t.Fatal(err)
	}
}

// decision is an access.decision record's body.
type decision struct {
	Door, Reader, Cred, Result, Reason string
}

func (d decision) String() string { return d.Result + "/" + d.Reason }

// doorEvent is a door.event record's body.
type doorEvent struct {
	Door, Event, By string
	CommandID       string `json:"command_id"`
}

// outboxRecords returns the records in the agent's outbox not yet acked
// (all of them while the hub is unreachable), in order.
func outboxRecords(t *testing.T, a *agent) []wire.Record {
	t.Helper()
	var out []wire.Record
	after := uint64(0)
	for {
		es, err := a.node.Outbox.Read(after, 1000, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			return out
		}
		for _, e := range es {
			r, err := wire.UnmarshalRecord(e.Seq, a.cfg.Agent.ID, e.Raw)
			if err != nil {
				t.Fatalf("record %d: %v", e.Seq, err)
			}
			out = append(out, r)
			after = e.Seq
		}
	}
}

// decisions returns the access.decision bodies among rs, in order.
func decisions(t *testing.T, rs []wire.Record) []decision {
	t.Helper()
	var out []decision
	for _, r := range rs {
		if r.Kind != "access.decision" {
			continue
		}
		var d decision
		if err := json.Unmarshal(r.Body, &d); err != nil {
			t.Fatalf("decision %d: %v", r.Seq, err)
		}
		out = append(out, d)
	}
	return out
}

// releaseEdges counts the relay edges that released door d (the relay
// moving to the level at which the lock does not hold), after the first
// skip edges.
func releaseEdges(d *doorsim.Door, failSafe, relayActiveLow bool, skip int) int {
	released := gpio.Level(!failSafe != relayActiveLow) // energised for a strike, de-energised for a maglock
	n := 0
	for i, e := range d.Relay.Edges() {
		if i >= skip && e.Level == released {
			n++
		}
	}
	return n
}
