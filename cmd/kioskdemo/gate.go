package main

// The virtual smart gate: one more agent, demo-smartgate-01, running
// cmd/internal/gate over simulated doors and Wiegand readers
// (testhw/gatesim). Its allowlist is a residents' CSV pushed through the
// code hubd uses (cmd/internal/allowpush) into the hub's list directory,
// which the gate fetches from the hub over MQTT; a hotline operator opens a
// door with a signed command (firmware-specs/hub-commands.md). A script
// plays residents swiping known, unknown and expired cards, a bad frame, a
// door held open, a delta push, a remote open and a fire alarm, and prints
// one "gate: " line per event, card numbers masked.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kioskedge/kioskedge/agent/config"
	agentgate "github.com/kioskedge/kioskedge/agent/gate"
	"github.com/kioskedge/kioskedge/agent/privacy"
	"github.com/kioskedge/kioskedge/cmd/internal/allowpush"
	"github.com/kioskedge/kioskedge/cmd/internal/gate"
	"github.com/kioskedge/kioskedge/cmd/internal/node"
	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/sync/hub/hubrun"
	"github.com/kioskedge/kioskedge/sync/hubal"
	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/gatesim"
	"github.com/kioskedge/kioskedge/testhw/gpiosim"
)

const gateID = "demo-smartgate-01"

// Timing of the demo gate's doors: short, so the demo shows a pulse ending
// and a held-open alarm within seconds.
const (
	gatePulse    = 2 * time.Second
	gateHeldOpen = 4 * time.Second
	// gateWait bounds each wait of the script: for the hub to hold a
	// record, for the gate to take a list version, for a command result.
	// It covers the demo's faults (a partition lasts 15% of -duration).
	gateWait = 30 * time.Second
)

// gateTOML is the gate agent's config; %[1]q is its directory. [hub] is
// replaced by the demo's settings (tune).
const gateTOML = `
[agent]
id = "demo-smartgate-01"
data_dir = %[1]q

[hub]
broker = "tcp://127.0.0.1:1883"
plaintext = true
root = "kioskedge/demo"

[localapi]
enabled = false

[privacy]
site_key_file = "site.key"

[gate]
command_key_file = "cmd.pub"
unlock_pulse = "2s"
held_open = "4s"

# The main gate: a maglock (released without power), with a door contact,
# an exit button and the building's fire alarm input.
[[door]]
id = "main"
groups = ["north"]
lock = "fail_safe"
relay = "sim:main-relay"
contact = "sim:main-contact"
exit = "sim:main-exit"
fire = "sim:fire"

# The side door: an electric strike (locked without power) with a contact.
[[door]]
id = "side"
groups = ["north"]
lock = "fail_secure"
relay = "sim:side-relay"
contact = "sim:side-contact"

[[wiegand]]
name = "main-in"
door = "main"
d0 = "sim:main-d0"
d1 = "sim:main-d1"
complete_at = 26

[[wiegand]]
name = "side-in"
door = "side"
d0 = "sim:side-d0"
d1 = "sim:side-d1"
complete_at = 26
`

// card is an H10301 card: facility code and card number.
type card struct{ fac, num uint32 }

// number is the card's number as the decoder gives it, and as hashed.
func (c card) number() string { return fmt.Sprintf("%03d-%05d", c.fac, c.num) }

// masked shows the facility code (the site's, shared by every card) and
// the card number's last two digits only.
func (c card) masked() string {
	return fmt.Sprintf("%03d-%s", c.fac, credential.Mask(fmt.Sprintf("%05d", c.num)))
}

// The demo's cards. Made up; the output shows them masked only.
var (
	residents = func() []card {
		cs := make([]card, 21) // residents[0] is unused: residents are numbered from 1
		for i := range cs {
			cs[i] = card{12, uint32(2000 + 137*i)}
		}
		return cs
	}()
	staffCard    = card{12, 901}
	unknownCards = []card{{12, 7777}, {99, 4242}}
)

const (
	expiredA, expiredB = 18, 19 // residents whose valid_to is past
	movesOut, movesIn  = 5, 20  // list version 2: one leaves, one arrives
)

// demoCards returns every card the demo uses, for the test that checks
// none is printed whole.
func demoCards() []card {
	return append(append(slices.Clone(residents[1:]), staffCard), unknownCards...)
}

// residentsCSV is the list in hubd allowlist push's CSV form
// (firmware-specs/hub-allowlist.md §7): residents 1..19 in group north,
// two of them expired last month, and one staff card; version 2 moves
// resident 5 out and resident 20 in.
func residentsCSV(version int, now time.Time) []byte {
	var b bytes.Buffer
	b.WriteString("credential,valid_from,valid_to,groups,staff\n")
	expired := now.AddDate(0, -1, 0).Format(time.DateOnly)
	for i := 1; i <= 20; i++ {
		switch {
		case version == 1 && i == movesIn, version == 2 && i == movesOut:
			continue
		}
		validTo := ""
		if i == expiredA || i == expiredB {
			validTo = expired
		}
		c := residents[i]
		fmt.Fprintf(&b, "wiegand:H10301:%d-%d,2020-01-01,%s,north,no\n", c.fac, c.num, validTo)
	}
	fmt.Fprintf(&b, "wiegand:H10301:%d-%d,,,north,yes\n", staffCard.fac, staffCard.num)
	return b.Bytes()
}

// gateFiles are what the gate and the hub share, written before either
// starts: the site key, the command key pair and the list directory with
// version 1 published.
type gateFiles struct {
	dir     string // the gate agent's directory
	listDir string // the hub's allowlist directory (hubrun.Config.AllowlistDir)
	siteKey []byte
	cmdKey  ed25519.PrivateKey
	v1      hubal.Info
}

// writeGateFiles writes the gate's keys and config under dir and publishes
// the residents' list as version 1 into dir/allowlists, as "hubd allowlist
// push" does.
func writeGateFiles(dir string) (*gateFiles, error) {
	gf := &gateFiles{dir: filepath.Join(dir, gateID), listDir: filepath.Join(dir, "allowlists")}
	if err := os.MkdirAll(gf.dir, 0o700); err != nil {
		return nil, err
	}
	var err error
	if gf.siteKey, err = privacy.NewSiteKey(); err != nil {
		return nil, err
	}
	if err := privacy.WriteSiteKey(filepath.Join(gf.dir, "site.key"), gf.siteKey); err != nil {
		return nil, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	gf.cmdKey = priv
	if err := os.WriteFile(filepath.Join(gf.dir, "cmd.pub"), wire.MarshalCommandPublicKey(pub), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(gf.dir, "kioskd.toml"), fmt.Appendf(nil, gateTOML, gf.dir), 0o600); err != nil {
		return nil, err
	}
	if gf.v1, err = gf.push(1); err != nil {
		return nil, err
	}
	return gf, nil
}

// push writes the list of the given version as CSV and publishes it into
// the list directory through allowpush, the core of "hubd allowlist push".
func (gf *gateFiles) push(version int) (hubal.Info, error) {
	path := filepath.Join(gf.dir, fmt.Sprintf("residents-v%d.csv", version))
	if err := os.WriteFile(path, residentsCSV(version, time.Now()), 0o600); err != nil {
		return hubal.Info{}, err
	}
	f, err := os.Open(path)
	if err != nil {
		return hubal.Info{}, err
	}
	entries, err := allowpush.ParseEntries(f, path, gf.siteKey, time.Local, nil)
	// A read-only file's close error changes nothing.
	_ = f.Close()
	if err != nil {
		return hubal.Info{}, err
	}
	dir, err := hubal.Open(gf.listDir)
	if err != nil {
		return hubal.Info{}, err
	}
	return allowpush.Publish(dir, uint64(version), entries, nil, 10000)
}

// virtualGate is the gate agent over simulated hardware, and the script's
// tallies.
type virtualGate struct {
	files *gateFiles
	agent *agent
	hw    *gatesim.Gate
	g     *gate.Gate

	cancel context.CancelFunc
	done   chan struct{} // closed when run returns; nil before run

	seen map[uint64]bool // hub records the script has matched

	swipes, granted, denied, badFrames, remoteOpens atomic.Uint64
	failed                                          atomic.Bool
}

// openGate opens the gate agent (not yet running) from gf's config; tune
// sets its [hub].
func openGate(gf *gateFiles, codec *wire.Codec, log *slog.Logger, tune func(*config.Config)) (*virtualGate, error) {
	cfg, err := config.Load(filepath.Join(gf.dir, "kioskd.toml"))
	if err != nil {
		return nil, err
	}
	tune(&cfg)
	hw, err := gatesim.New(cfg, nil)
	if err != nil {
		return nil, err
	}
	n, err := node.Open(node.Options{Config: cfg, Version: "demo", Codec: codec, Logger: log})
	if err != nil {
		return nil, err
	}
	g, err := gate.Open(gate.Options{Config: cfg, Node: n, Lines: hw.Lines, Logger: log})
	if err != nil {
		// The open error is the one to report.
		_ = n.Close()
		return nil, err
	}
	return &virtualGate{files: gf, agent: &agent{id: gateID, node: n}, hw: hw, g: g, seen: map[uint64]bool{}}, nil
}

// start runs the node and the gate in wg until ctx ends or close is
// called.
func (v *virtualGate) start(ctx context.Context, wg *sync.WaitGroup, log *slog.Logger) {
	ctx, v.cancel = context.WithCancel(ctx)
	v.done = make(chan struct{})
	var mine sync.WaitGroup
	mine.Go(func() {
		if err := v.agent.node.Run(ctx); err != nil {
			log.Error("agent stopped", "agent", gateID, "err", err)
		}
	})
	mine.Go(func() {
		if err := v.g.Run(ctx); err != nil {
			log.Error("gate stopped", "agent", gateID, "err", err)
		}
	})
	wg.Go(func() {
		mine.Wait()
		close(v.done)
	})
}

// close stops what start started, if it did, then closes the gate and its node.
func (v *virtualGate) close() {
	if v.cancel != nil {
		v.cancel()
		<-v.done
	}
	// Errors closing a stopped demo gate change nothing the demo reports.
	_ = v.g.Close()
	_ = v.agent.node.Close()
}

// syncCounts makes the gate agent's produced and lastSeq what its outbox
// has taken: the summary's accounting for the gate.
func (v *virtualGate) syncCounts() {
	last := v.agent.node.Outbox.Stats().NextSeq - 1
	v.agent.produced.Store(last)
	v.agent.lastSeq.Store(last)
}

// script plays the residents, the hotline operator and the fire alarm
// against the gate, printing a line per event. It returns when done or
// when a step fails (printed, and reported by the summary).
func (v *virtualGate) script(ctx context.Context, hub *hubrun.Server, broker string, out io.Writer) {
	say := func(format string, args ...any) {
		fmt.Fprintf(out, "gate: "+format+"\n", args...)
		v.syncCounts() // for the progress lines
	}
	if err := v.steps(ctx, hub, broker, say); err != nil {
		v.failed.Store(true)
		say("script stopped: %v", err)
	}
	// Every record of the script is in the outbox before the counts are
	// taken: no pulse or held-open timer is left running by the script.
	// Should the queue not empty, the records left out are not counted as
	// produced, and the summary's decision count shows any missing one.
	_ = waitFor(ctx, 5*time.Second, func() bool { return v.g.Gate.Stats().Queued == 0 })
	v.syncCounts()
}

func (v *virtualGate) steps(ctx context.Context, hub *hubrun.Server, broker string, say func(string, ...any)) error {
	start := time.Now()
	fl := v.files.v1
	if err := v.waitVersion(ctx, fl.Version); err != nil {
		return err
	}
	say("allowlist v%d pushed by the hub (%d entries, %d chunk(s), %d bytes) → the gate fetched it over MQTT in %v",
		fl.Version, fl.Entries, fl.Chunks, fl.Bytes, time.Since(start).Round(time.Millisecond))

	// Residents walk through.
	for _, s := range []struct {
		reader string
		c      card
	}{{"main-in", residents[1]}, {"side-in", residents[2]}, {"main-in", residents[3]}, {"side-in", staffCard}} {
		if err := v.walkThrough(ctx, hub, s.reader, s.c, say); err != nil {
			return err
		}
	}
	// Unknown and expired cards, and a frame garbled on the cable.
	for _, s := range []struct {
		reader string
		c      card
	}{{"main-in", unknownCards[0]}, {"side-in", unknownCards[1]}, {"main-in", residents[expiredA]}, {"side-in", residents[expiredB]}} {
		if _, err := v.swipe(ctx, hub, s.reader, s.c, false, nil, say); err != nil {
			return err
		}
	}
	if _, err := v.swipe(ctx, hub, "main-in", residents[4], true, nil, say); err != nil {
		return err
	}

	// A resident props the main door open.
	if err := v.heldOpen(ctx, hub, residents[6], say); err != nil {
		return err
	}

	// Version 2: a resident moves out, another moves in.
	if err := v.pushV2(ctx, hub, say); err != nil {
		return err
	}
	if err := v.walkThrough(ctx, hub, "main-in", residents[movesIn], say); err != nil {
		return err
	}
	if _, err := v.swipe(ctx, hub, "main-in", residents[movesOut], false, nil, say); err != nil {
		return err
	}

	// A visitor calls the hotline; the operator opens the side door.
	if err := v.hotline(ctx, broker, "side", say); err != nil {
		return err
	}

	// The fire alarm.
	return v.fire(ctx, say)
}

// waitVersion waits for the gate to have allowlist version ver, asking the
// hub again now and then (as after a reconnect) in case a push was lost.
func (v *virtualGate) waitVersion(ctx context.Context, ver uint64) error {
	deadline := time.Now().Add(gateWait)
	nextAsk := time.Now().Add(3 * time.Second)
	for v.g.Sync.Stats().Version != ver {
		if time.Now().After(deadline) {
			return fmt.Errorf("the gate did not get allowlist v%d within %v (it has v%d)", ver, gateWait, v.g.Sync.Stats().Version)
		}
		if time.Now().After(nextAsk) {
			v.g.Sync.Resync()
			nextAsk = time.Now().Add(3 * time.Second)
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// decision is an access.decision record's body (firmware-specs/gate-records.md).
type decision struct {
	Door      string `json:"door"`
	Reader    string `json:"reader"`
	Cred      string `json:"cred"`
	Result    string `json:"result"`
	Reason    string `json:"reason"`
	LatencyUS *int64 `json:"latency_us"`
}

// swipe presents c at reader (with its even parity bit flipped when bad)
// and waits for the decision to reach the hub. When the door releases for
// it, then (if not nil) runs at once, while the door is released, and
// says what happened next for the line printed.
func (v *virtualGate) swipe(ctx context.Context, hub *hubrun.Server, reader string, c card, bad bool,
	then func(ctx context.Context, doorID string) (string, error), say func(string, ...any)) (decision, error) {
	bits := gpiosim.H10301(c.fac, c.num)
	if bad {
		bits[0] = !bits[0]
	}
	doorID := v.hw.Reader(reader).Door
	door := v.hw.Door(doorID)
	// The frame's edges are set at once, stamped with their times on the
	// wire from now on, rather than paced by sleeps, which a loaded machine
	// could stretch past the reader's frame gap and so split the frame.
	// The reader completes a good 26-bit frame at its last bit.
	if _, err := v.hw.Swipe(reader, bits, gpiosim.TxOptions{NoPace: true}); err != nil {
		return decision{}, err
	}
	sent := time.Now()
	v.swipes.Add(1)
	// The gate releases a door within a millisecond of reading a granted
	// card; a denied card leaves it locked.
	released := false
	for time.Since(sent) < 500*time.Millisecond && ctx.Err() == nil {
		if !door.Locked() {
			released = true
			break
		}
		time.Sleep(50 * time.Microsecond)
	}
	releasedIn := time.Since(sent)
	next := ""
	if released && then != nil {
		var err error
		if next, err = then(ctx, doorID); err != nil {
			return decision{}, err
		}
	}
	raw, err := v.waitRecord(ctx, hub, agentgate.KindDecision, nil)
	if err != nil {
		return decision{}, fmt.Errorf("card %s at %s: %w", c.masked(), reader, err)
	}
	var d decision
	if err := json.Unmarshal(raw, &d); err != nil {
		return decision{}, fmt.Errorf("decision at the hub: %w", err)
	}
	// The hub holds the credential's keyed hash, never the number: it must
	// be the hash of the card presented.
	want := ""
	if !bad {
		want = privacy.KeyedHash(v.files.siteKey, credential.Credential{
			Kind: credential.Wiegand, Encoding: "H10301", Number: c.number()})
	}
	if d.Cred != want || d.Reader != reader {
		return d, fmt.Errorf("decision at the hub for card %s is for another credential or reader (%s at %s: %s/%s)",
			c.masked(), shortHash(d.Cred), d.Reader, d.Result, d.Reason)
	}
	what := "card " + c.masked()
	if bad {
		what = "garbled frame (parity) of card " + c.masked()
	}
	lat := ""
	if d.LatencyUS != nil && *d.LatencyUS > 0 {
		lat = fmt.Sprintf(" %v after the frame", time.Duration(*d.LatencyUS)*time.Microsecond)
	}
	if next != "" {
		next = "; " + next
	}
	switch {
	case d.Result == "granted":
		v.granted.Add(1)
		if !released {
			return d, fmt.Errorf("%s granted but door %s not released", what, doorID)
		}
		say("%s at %s → granted (%s), door %s released in %v%s", what, reader, d.Reason, doorID,
			releasedIn.Round(10*time.Microsecond), next)
		return d, nil
	case d.Reason == "bad_frame":
		v.badFrames.Add(1)
	default:
		v.denied.Add(1)
	}
	if released {
		return d, fmt.Errorf("door %s released for a denied card", doorID)
	}
	say("%s at %s → denied (%s)%s, door %s stays locked", what, reader, d.Reason, lat, doorID)
	return d, nil
}

// walkThrough swipes c; on a grant the resident opens the door, walks
// through and closes it, and the gate relocks at once.
func (v *virtualGate) walkThrough(ctx context.Context, hub *hubrun.Server, reader string, c card, say func(string, ...any)) error {
	_, err := v.swipe(ctx, hub, reader, c, false, func(ctx context.Context, doorID string) (string, error) {
		return "walked through, door secured on closing", v.passThrough(ctx, doorID, "the resident")
	}, say)
	return err
}

// passThrough opens the released door, walks through and closes it, and
// waits for the gate to lock it again.
func (v *virtualGate) passThrough(ctx context.Context, doorID, who string) error {
	door := v.hw.Door(doorID)
	if !door.Push() {
		return fmt.Errorf("%s could not open door %s: locked again already", who, doorID)
	}
	if err := sleepCtx(ctx, 300*time.Millisecond); err != nil {
		return err
	}
	door.Close()
	if err := waitFor(ctx, time.Second, door.Locked); err != nil {
		return fmt.Errorf("door %s not locked again after %s closed it", doorID, who)
	}
	return nil
}

// heldOpen: c opens the main door and leaves it open past held_open.
func (v *virtualGate) heldOpen(ctx context.Context, hub *hubrun.Server, c card, say func(string, ...any)) error {
	door := v.hw.Door("main")
	var opened time.Time
	d, err := v.swipe(ctx, hub, "main-in", c, false, func(context.Context, string) (string, error) {
		if !door.Push() {
			return "", errors.New("the resident could not open door main")
		}
		opened = time.Now()
		return "the resident props it open", nil
	}, say)
	if err != nil {
		return err
	}
	if d.Result != "granted" {
		return fmt.Errorf("card %s: %s, want granted", c.masked(), d.Reason)
	}
	if err := waitFor(ctx, gateHeldOpen+2*time.Second, func() bool { return v.alarmActive("main", agentgate.AlarmHeldOpen) }); err != nil {
		return errors.New("no held_open alarm at door main")
	}
	after := time.Since(opened).Round(100 * time.Millisecond)
	if _, err := v.waitRecord(ctx, hub, agentgate.KindAlarm, alarmIs("held_open", true)); err != nil {
		return err
	}
	say("door main still open after %v → held_open alarm (at the hub)", after)
	if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
		return err
	}
	door.Close()
	if err := waitFor(ctx, time.Second, func() bool { return door.Locked() && !v.alarmActive("main", agentgate.AlarmHeldOpen) }); err != nil {
		return errors.New("door main closed but the alarm did not clear or the door did not lock")
	}
	if _, err := v.waitRecord(ctx, hub, agentgate.KindAlarm, alarmIs("held_open", false)); err != nil {
		return err
	}
	say("door main closed → held_open cleared (at the hub), door main secured")
	return nil
}

// pushV2 publishes version 2 of the list into the hub's list directory
// and has the hub push it to the gate at once (its delta), as "hubd
// allowlist push -broker … -agent …" does.
func (v *virtualGate) pushV2(ctx context.Context, hub *hubrun.Server, say func(string, ...any)) error {
	info, err := v.files.push(2)
	if err != nil {
		return err
	}
	dir, err := hubal.Open(v.files.listDir)
	if err != nil {
		return err
	}
	msgs, what, err := allowpush.Messages(dir, info)
	if err != nil {
		return err
	}
	start := time.Now()
	sendCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	// A push that fails (the broker restarting) is caught up by the gate's
	// next request; waitVersion asks again too.
	_ = hub.Allowlist().Send(sendCtx, gateID, msgs)
	cancel()
	if err := v.waitVersion(ctx, info.Version); err != nil {
		return err
	}
	say("allowlist v%d (one resident moved out, one moved in) pushed by the hub as a %s (%d upserts, %d deletes) → gate on v%d in %v",
		info.Version, what, info.Upserts, info.Deletes, info.Version, time.Since(start).Round(time.Millisecond))
	return nil
}

// hotline signs a door.open command for doorID with the hub's command key,
// publishes it on the gate's cmd topic from the operator's own MQTT
// session and waits for the result on cmd/result; a fresh command is sent
// if no result comes within a few seconds (a clean session misses
// messages sent while the gate is cut off). The visitor then walks in.
func (v *virtualGate) hotline(ctx context.Context, broker, doorID string, say func(string, ...any)) error {
	topics := wire.Topics{Root: root, Agent: gateID}
	results := make(chan wire.CommandResult, 4)
	connected := make(chan struct{}, 1)
	s, err := uplink.NewSession(uplink.SessionOptions{
		Broker: broker, ClientID: "demo-hotline", AllowPlaintext: true, MaxMessage: wire.MaxControlMessage,
		Backoff: uplink.Backoff{Min: 100 * time.Millisecond, Max: time.Second, StableAfter: 3 * time.Second},
		OnConnect: func(context.Context, *uplink.Session) {
			select {
			case connected <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		return err
	}
	if err := s.Subscribe(topics.CmdResult(), 1, func(_ string, p []byte) {
		if r, err := wire.DecodeCommandResult(p); err == nil {
			select {
			case results <- r:
			default:
			}
		}
	}); err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		// Run returns ctx's error when stopped; nothing to report.
		_ = s.Run(runCtx)
	}()
	defer func() {
		stop()
		<-runDone
		// The session is stopped; closing it can only report that.
		_ = s.Close(nil)
	}()
	select {
	case <-connected:
	case <-time.After(gateWait):
		return errors.New("the hotline could not reach the broker")
	case <-ctx.Done():
		return ctx.Err()
	}

	args, err := json.Marshal(wire.DoorOpenArgs{Door: doorID})
	if err != nil {
		return err
	}
	ids := map[string]bool{}
	var sent time.Time
	var r wire.CommandResult
	deadline := time.Now().Add(gateWait)
	for r.ID == "" {
		if time.Now().After(deadline) {
			return fmt.Errorf("no result for the hotline's door.open within %v", gateWait)
		}
		now := time.Now()
		c := wire.Command{ID: "hotline-" + randomHex(4), Agent: gateID, Name: wire.CmdDoorOpen, Args: args,
			Issued: now, Expires: now.Add(time.Minute), Nonce: randomHex(16)}
		wire.SignCommand(v.files.cmdKey, &c)
		payload, err := json.Marshal(c)
		if err != nil {
			return err
		}
		ids[c.ID] = true
		sent = now
		pubCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
		// A failed publish is retried with a fresh command below.
		_ = s.Publish(pubCtx, uplink.Message{Topic: topics.Cmd(), QoS: 1, Payload: payload})
		cancel()
		retry := time.After(4 * time.Second)
	wait:
		for {
			select {
			case got := <-results:
				if ids[got.ID] {
					r = got
					break wait
				}
			case <-retry:
				break wait
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	if !r.OK {
		return fmt.Errorf("door.open %s refused: %s", r.ID, r.Code)
	}
	v.remoteOpens.Add(1)
	door := v.hw.Door(doorID)
	if err := waitFor(ctx, gatePulse, func() bool { return !door.Locked() }); err != nil {
		return fmt.Errorf("door.open %s ok but door %s not released", r.ID, doorID)
	}
	say("hotline operator opened door %s remotely (door.open %s, Ed25519-signed) → %s in %v, door %s released",
		doorID, r.ID, r.Code, time.Since(sent).Round(time.Millisecond), doorID)
	if err := v.passThrough(ctx, doorID, "the visitor"); err != nil {
		return err
	}
	say("the visitor walked in, door %s secured", doorID)
	return nil
}

// fire sets the building's fire alarm input: every door releases; when it
// clears, every door is secured again.
func (v *virtualGate) fire(ctx context.Context, say func(string, ...any)) error {
	doors := []string{"main", "side"}
	all := func(locked bool) func() bool {
		return func() bool {
			for _, id := range doors {
				if v.hw.Door(id).Locked() != locked {
					return false
				}
			}
			return true
		}
	}
	start := time.Now()
	v.hw.Door("main").SetFire(true)
	if err := waitFor(ctx, time.Second, all(false)); err != nil {
		return errors.New("fire alarm: not every door released")
	}
	say("FIRE ALARM → every door released (%s) in %v", strings.Join(doors, ", "), time.Since(start).Round(time.Millisecond))
	if err := sleepCtx(ctx, time.Second); err != nil {
		return err
	}
	start = time.Now()
	v.hw.Door("main").SetFire(false)
	if err := waitFor(ctx, time.Second, all(true)); err != nil {
		return errors.New("fire alarm cleared: not every door secured")
	}
	say("fire alarm cleared → every door secured in %v", time.Since(start).Round(time.Millisecond))
	return nil
}

func (v *virtualGate) alarmActive(doorID string, a agentgate.Alarm) bool {
	for _, s := range v.g.Gate.Status() {
		if s.ID == doorID {
			return slices.Contains(s.Alarms, a)
		}
	}
	return false
}

// alarmIs matches a door.alarm body.
func alarmIs(name string, active bool) func([]byte) bool {
	return func(b []byte) bool {
		var a struct {
			Alarm  string `json:"alarm"`
			Active bool   `json:"active"`
		}
		return json.Unmarshal(b, &a) == nil && a.Alarm == name && a.Active == active
	}
}

// waitRecord waits for the hub to hold a record of kind from the gate,
// matching match (nil: any), that the script has not matched before, and
// returns its body. The gate writes its records in order, so the first
// unmatched one is the newest event's.
func (v *virtualGate) waitRecord(ctx context.Context, hub *hubrun.Server, kind string, match func([]byte) bool) ([]byte, error) {
	deadline := time.Now().Add(gateWait)
	for {
		var body []byte
		found := errors.New("found")
		err := hub.Store().ForEach(gateID, 1, func(seq uint64, raw []byte) error {
			if v.seen[seq] {
				return nil
			}
			r, err := wire.UnmarshalRecord(seq, gateID, raw)
			if err != nil || r.Kind != kind || (match != nil && !match(r.Body)) {
				return nil
			}
			v.seen[seq] = true
			body = bytes.Clone(r.Body) // raw lives in the store's read transaction
			return found
		})
		if errors.Is(err, found) {
			return body, nil
		}
		if err != nil {
			return nil, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the hub holds no new %s record from %s after %v", kind, gateID, gateWait)
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// gateSummary counts what the hub holds from the gate: access.decision
// records and active alarms by name.
type gateSummary struct {
	decisions int
	alarms    map[string]int
}

func hubGateSummary(hub *hubrun.Server) (gateSummary, error) {
	s := gateSummary{alarms: map[string]int{}}
	err := hub.Store().ForEach(gateID, 1, func(seq uint64, raw []byte) error {
		r, err := wire.UnmarshalRecord(seq, gateID, raw)
		if err != nil {
			return err
		}
		switch r.Kind {
		case agentgate.KindDecision:
			s.decisions++
		case agentgate.KindAlarm:
			var a struct {
				Alarm  string `json:"alarm"`
				Active bool   `json:"active"`
			}
			if err := json.Unmarshal(r.Body, &a); err != nil {
				return err
			}
			if a.Active {
				s.alarms[a.Alarm]++
			}
		}
		return nil
	})
	return s, err
}

// summary prints the gate's summary line and returns the gate's part of
// the demo's accounting: of the sequences its outbox gave up to lastSeq,
// how many the hub holds and how many it does not.
func (v *virtualGate) summary(out io.Writer, hub *hubrun.Server) (delivered, lost uint64, err error) {
	_, lost = accounted(v.agent, hub)
	delivered = v.agent.lastSeq.Load() - min(lost, v.agent.lastSeq.Load())
	s, err := hubGateSummary(hub)
	if err != nil {
		return delivered, lost, err
	}
	var alarms []string
	for _, name := range slices.Sorted(maps.Keys(s.alarms)) {
		alarms = append(alarms, fmt.Sprintf("%s:%d", name, s.alarms[name]))
	}
	if len(alarms) == 0 {
		alarms = []string{"none"}
	}
	fmt.Fprintf(out, "gate: summary swipes=%d granted=%d denied=%d bad_frames=%d alarms=%s remote_opens=%d decisions_at_hub=%d\n",
		v.swipes.Load(), v.granted.Load(), v.denied.Load(), v.badFrames.Load(), strings.Join(alarms, ","), v.remoteOpens.Load(), s.decisions)
	switch {
	case v.failed.Load():
		err = errors.New("gate: the script did not finish")
	case uint64(s.decisions) != v.swipes.Load():
		err = fmt.Errorf("gate: the hub holds %d decisions for %d swipes", s.decisions, v.swipes.Load())
	}
	return delivered, lost, err
}

// shortHash shortens a credential's keyed hash for a message.
func shortHash(h string) string {
	if len(h) > 8 {
		return h[:8] + "…"
	}
	return h
}

// waitFor polls cond until it holds, for at most d.
func waitFor(ctx context.Context, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	// crypto/rand.Read does not fail on supported platforms.
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
