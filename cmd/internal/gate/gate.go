// Package gate wires a smart gate into an agent: from the config's [gate],
// [[door]] and [[wiegand]] tables it opens the allowlist store, builds the
// decision engine over it, the door drivers on their GPIO lines, the
// Wiegand readers feeding the gate state machine (agent/gate) and the
// allowlist receiver (agent/allowsync) on the node's MQTT session, and
// plugs door.open and door.mode into the node's signed command executor
// (node.SetCommandHandlers; the node owns the executor and the cmd topic).
// It lives under cmd/ because wiring concrete parts is the mains' job
// (DESIGN.md §3); kioskd, kioskdemo and kbench share it.
//
// Lines are resolved through Options.Lines, so kioskd hands it real lines
// (drivers/gpioline) and the demo and tests simulated ones (testhw).
package gate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/kioskedge/kioskedge/agent/access"
	"github.com/kioskedge/kioskedge/agent/allowlist"
	"github.com/kioskedge/kioskedge/agent/allowsync"
	"github.com/kioskedge/kioskedge/agent/command"
	"github.com/kioskedge/kioskedge/agent/config"
	agentgate "github.com/kioskedge/kioskedge/agent/gate"
	"github.com/kioskedge/kioskedge/agent/privacy"
	"github.com/kioskedge/kioskedge/cmd/internal/node"
	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/drivers/door"
	"github.com/kioskedge/kioskedge/drivers/wiegand"
	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// KindAllowlistReset is the record raised when the allowlist file could
// not be read and was replaced by an empty one (class critical; body
// {"reason":"corrupt","error":…,"moved_to":…}).
const KindAllowlistReset = "allowlist.reset"

// Lines resolves a configured line ("gpiochip0:17", "name:DOOR_RELAY")
// to a pin; key is the config key naming it, for errors.
type Lines func(key, spec string) (gpio.PinIO, error)

// Options are what a gate needs besides the node.
type Options struct {
	Config config.Config
	Node   *node.Node // the outbox records go to and the uplink session commands come over
	Lines  Lines
	Logger *slog.Logger
	// Now is the clock of command expiry; nil means time.Now.
	Now func() time.Time
	// Clock drives the doors' debouncing, the gate's pulse and held-open
	// timers and the readers' gap timers; nil means the system clock.
	// Tests inject a fake (testhw/fakeclock.Clock); its times must be on the
	// scale the lines stamp their edges with.
	Clock Clock
	// OnDecision, when set, is called with every reader's access decision
	// after the door was actuated (kioskd counts them for /metrics); it
	// must not block.
	OnDecision func(access.Decision)
}

// Clock is a time source with timers (drivers/door.Clock's shape).
type Clock interface {
	Now() time.Time
	// AfterFunc runs f once d has passed and returns a function that
	// cancels it, reporting whether it was still pending.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// gateClock adapts a Clock to agent/gate's.
type gateClock struct{ c Clock }

func (g gateClock) Now() time.Time { return g.c.Now() }
func (g gateClock) AfterFunc(d time.Duration, f func()) agentgate.Timer {
	return stopFunc(g.c.AfterFunc(d, f))
}

type stopFunc func() bool

func (s stopFunc) Stop() bool { return s() }

// readerClock adapts a Clock to drivers/wiegand's.
type readerClock struct{ c Clock }

func (r readerClock) Now() time.Time { return r.c.Now() }
func (r readerClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	r.c.AfterFunc(d, func() { ch <- r.c.Now() })
	return ch
}

// Gate is a running smart gate.
type Gate struct {
	Gate      *agentgate.Gate
	Engine    *access.Engine
	Allowlist *allowlist.Allowlist
	// Sync receives allowlist snapshots and deltas from the hub.
	Sync *allowsync.Syncer

	doors   []*door.Door
	readers []*wiegand.Reader
	names   []string // reader names, for health
	session *uplink.Session
	topics  wire.Topics
	log     *slog.Logger

	pins []gpio.PinIO // every line Lines gave, closed last
	// allowlistTopics: the agent's own and its groups'.
	allowlistTopics []string

	onDecision func(access.Decision) // Options.OnDecision

	closeOnce sync.Once
	closeErr  error
}

// Open builds the gate from o.Config. It fails, naming the config key, when
// the site key or command key cannot be loaded, a line cannot be resolved,
// or a driver refuses its configuration; everything opened so far is
// closed then. Doors start secured; the fire inputs' first reports release
// them again within the debounce time when a fire alarm is on.
func Open(o Options) (_ *Gate, err error) {
	c := o.Config
	if len(c.Doors) == 0 {
		return nil, errors.New("gate: no [[door]] configured")
	}
	if o.Lines == nil || o.Node == nil {
		return nil, errors.New("gate: Lines and Node are required")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "gate")
	siteKey, err := privacy.LoadSiteKey(c.Privacy.SiteKeyFile)
	if err != nil {
		return nil, fmt.Errorf("gate: privacy.site_key_file: %w", err)
	}
	g := &Gate{log: log, session: o.Node.Uplink.Session(), topics: wire.Topics{Root: c.Hub.Root, Agent: c.Agent.ID},
		onDecision: o.OnDecision}
	lines := o.Lines
	o.Lines = func(key, spec string) (gpio.PinIO, error) {
		p, err := lines(key, spec)
		if err == nil {
			g.pins = append(g.pins, p)
		}
		return p, err
	}
	defer func() {
		if err != nil {
			g.Close()
		}
	}()
	var reset *allowlist.Reset
	if g.Allowlist, reset, err = allowlist.OpenOrReset(c.Gate.AllowlistFile, allowlist.Options{}); err != nil {
		return nil, fmt.Errorf("gate: gate.allowlist_file: %w", err)
	}
	if reset != nil {
		// The gate starts with an empty list and asks the hub for a
		// snapshot; the alarm tells the hub why this gate denies for now.
		log.Error("allowlist file unreadable; moved aside, starting empty until the hub's snapshot arrives",
			"moved_to", reset.MovedTo, "err", reset.Err)
		// Marshalling a map of strings cannot fail.
		body, _ := json.Marshal(map[string]string{"reason": "corrupt", "error": reset.Err.Error(), "moved_to": reset.MovedTo})
		now := time.Now
		if o.Now != nil {
			now = o.Now
		}
		if _, err := o.Node.Append(context.Background(), wire.Record{Kind: KindAllowlistReset, Class: wire.ClassCritical,
			Time: now(), Body: body}); err != nil {
			return nil, fmt.Errorf("gate: recording the allowlist reset: %w", err)
		}
	}

	var groups []string
	var doors []access.Door
	for _, d := range c.Doors {
		ad, err := engineDoor(d)
		if err != nil {
			return nil, err
		}
		doors = append(doors, ad)
		groups = append(groups, d.Groups...)
		if d.AntiPassbackGroup != "" {
			groups = append(groups, d.AntiPassbackGroup)
		}
	}
	g.Engine, err = access.New(access.Config{
		Hasher: access.SiteKeyHasher(siteKey), Allowlist: allowlist.NewEngineView(g.Allowlist, groups), Doors: doors,
		AntiPassbackTimeout: c.Gate.AntiPassbackTimeout.D(), DenialThreshold: c.Gate.DenialThreshold, DenialWindow: c.Gate.DenialWindow.D(),
	})
	if err != nil {
		return nil, fmt.Errorf("gate: %w", err)
	}

	var gdoors []agentgate.DoorConfig
	fireAtStart := false
	for i, d := range c.Doors {
		dd, fire, err := openDoor(fmt.Sprintf("door[%d]", i), d, c.Gate.Debounce.D(), o.Lines, o.Clock, log)
		if err != nil {
			return nil, err
		}
		g.doors = append(g.doors, dd)
		if fire != nil && fireActive(fire, d.FireActiveLow) {
			fireAtStart = true
		}
		if err := o.Node.Monitor.Add(d.ID, "door", dd); err != nil {
			return nil, fmt.Errorf("gate: door[%d].id: %w", i, err)
		}
		gdoors = append(gdoors, agentgate.DoorConfig{ID: d.ID, Door: dd, UnlockPulse: d.UnlockPulse.D(),
			HeldOpen: d.HeldOpen.D(), HasContact: d.Contact != ""})
	}
	var gclock agentgate.Clock
	if o.Clock != nil {
		gclock = gateClock{o.Clock}
	}
	if g.Gate, err = agentgate.New(agentgate.Config{Engine: g.Engine, Doors: gdoors, Outbox: o.Node, Clock: gclock, Logger: log}); err != nil {
		return nil, fmt.Errorf("gate: %w", err)
	}
	// The door drivers start in their safe state (Halt), which releases a
	// fail-safe door; the gate's normal state is secured. But with a fire
	// input already active (an agent restarted during a fire) every door is
	// released now, so an escape route never relocks between here and the
	// fire input's first report in Run, which makes the gate hold them.
	for i, d := range g.doors {
		act := d.Secure
		if fireAtStart {
			act = d.Release
		}
		if err := act(); err != nil {
			return nil, fmt.Errorf("gate: door[%d].relay: %w", i, err)
		}
	}
	if fireAtStart {
		log.Warn("fire alarm active at start: every door released")
	}

	for i, w := range c.Wiegand {
		r, err := g.openReader(fmt.Sprintf("wiegand[%d]", i), w, o.Lines, o.Clock, log)
		if err != nil {
			return nil, err
		}
		g.readers = append(g.readers, r)
		if err := o.Node.Monitor.Add(w.Name, "wiegand", r); err != nil {
			return nil, fmt.Errorf("gate: wiegand[%d].name: %w", i, err)
		}
		g.names = append(g.names, w.Name)
	}

	g.Sync, err = allowsync.New(allowsync.Options{Store: g.Allowlist, Request: g.requestAllowlist, Now: o.Now, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("gate: %w", err)
	}
	o.Node.Uplink.OnConnect(g.Sync.Resync)
	g.allowlistTopics = []string{g.topics.Allowlist()}
	for _, grp := range c.Gate.AllowlistGroups {
		g.allowlistTopics = append(g.allowlistTopics, wire.GroupAllowlistTopic(c.Hub.Root, grp))
	}

	o.Node.SetCommandHandlers(command.Handlers{DoorOpen: g.doorOpen, DoorMode: g.doorMode})
	o.Node.DecorateHealth(g.Decorate)
	return g, nil
}

func engineDoor(d config.Door) (access.Door, error) {
	ad := access.Door{ID: d.ID, Groups: d.Groups, AntiPassbackGroup: d.AntiPassbackGroup}
	switch d.Mode {
	case config.ModeLockedDown:
		ad.Mode = access.LockedDownMode
	case config.ModeFreePassage:
		ad.Mode = access.FreePassageMode
	}
	switch d.Direction {
	case "in":
		ad.Direction = access.In
	case "out":
		ad.Direction = access.Out
	}
	if d.Timezone != "" {
		loc, err := time.LoadLocation(d.Timezone)
		if err != nil {
			return ad, fmt.Errorf("gate: door %s timezone: %w", d.ID, err)
		}
		ad.Location = loc
	} else {
		ad.Location = time.Local
	}
	return ad, nil
}

// openDoor opens one door's driver; fire is its fire input's pin, nil when
// none is fitted.
func openDoor(key string, d config.Door, debounce time.Duration, lines Lines, clock Clock, log *slog.Logger) (dd *door.Door, fire gpio.PinIn, err error) {
	relay, err := lines(key+".relay", d.Relay)
	if err != nil {
		return nil, nil, fmt.Errorf("gate: %s.relay: %w", key, err)
	}
	input := func(name, spec string, activeLow bool) (*door.Input, error) {
		if spec == "" {
			return nil, nil
		}
		pin, err := lines(key+"."+name, spec)
		if err != nil {
			return nil, fmt.Errorf("gate: %s.%s: %w", key, name, err)
		}
		return &door.Input{Pin: pin, ActiveLow: activeLow, Pull: gpio.PullNoChange, Debounce: debounce}, nil
	}
	dc := door.Config{Name: d.ID, Relay: relay, RelayActiveLow: d.RelayActiveLow, FailSafe: d.Lock == config.LockFailSafe,
		Logger: log.With("door", d.ID)}
	if clock != nil {
		dc.Clock = clock
	}
	if dc.Contact, err = input("contact", d.Contact, d.ContactActiveLow); err != nil {
		return nil, nil, err
	}
	if dc.Exit, err = input("exit", d.Exit, d.ExitActiveLow); err != nil {
		return nil, nil, err
	}
	if dc.Fire, err = input("fire", d.Fire, d.FireActiveLow); err != nil {
		return nil, nil, err
	}
	if dc.Tamper, err = input("tamper", d.Tamper, d.TamperActiveLow); err != nil {
		return nil, nil, err
	}
	if dc.Fire != nil {
		fire = dc.Fire.Pin
	}
	if dd, err = door.New(dc); err != nil {
		return nil, nil, fmt.Errorf("gate: %s: %w", key, err)
	}
	return dd, fire, nil
}

func (g *Gate) openReader(key string, w config.Wiegand, lines Lines, clock Clock, log *slog.Logger) (*wiegand.Reader, error) {
	d0, err := lines(key+".d0", w.D0)
	if err != nil {
		return nil, fmt.Errorf("gate: %s.d0: %w", key, err)
	}
	d1, err := lines(key+".d1", w.D1)
	if err != nil {
		return nil, fmt.Errorf("gate: %s.d1: %w", key, err)
	}
	doorID, name := w.Door, w.Name
	var rclock wiegand.Clock
	if clock != nil {
		rclock = readerClock{clock}
	}
	r, err := wiegand.NewReader(d0, d1, wiegand.ReaderConfig{
		Clock:  rclock,
		Config: wiegand.Config{Reader: name, Gap: w.Gap.D(), RawBits: w.RawBits, CompleteAt: w.CompleteAt},
		OnFrame: func(f wiegand.Frame) {
			c, ok := f.Credential()
			if !ok {
				c = credential.Credential{Kind: credential.Wiegand, Reader: name, Time: f.End}
			}
			dec := g.Gate.Present(doorID, name, c, ok)
			if g.onDecision != nil {
				g.onDecision(dec)
			}
		},
		Logger: log.With("reader", name),
	})
	if err != nil {
		return nil, fmt.Errorf("gate: %s: %w", key, err)
	}
	return r, nil
}

// fireActive reads a fire input's level once, before the door driver's Run
// configures it for edges. A line that cannot be read counts as active:
// releasing doors that should stay locked is the safe mistake here.
func fireActive(pin gpio.PinIn, activeLow bool) bool {
	if err := pin.In(gpio.PullNoChange, gpio.NoEdge); err != nil {
		return true
	}
	return (pin.Read() == gpio.High) != activeLow
}

// doorInput maps a driver event to the gate's.
func doorInput(e door.Event) agentgate.InputEvent {
	var in agentgate.Input
	switch e.Input {
	case door.Contact:
		in = agentgate.InputContact
	case door.Exit:
		in = agentgate.InputExit
	case door.Fire:
		in = agentgate.InputFire
	case door.Tamper:
		in = agentgate.InputTamper
	}
	return agentgate.InputEvent{Door: e.Door, Input: in, Active: e.Active, At: e.At}
}

func (g *Gate) doorOpen(_ context.Context, commandID, doorID string) error {
	return g.Gate.RemoteOpen(doorID, commandID)
}

func (g *Gate) doorMode(_ context.Context, commandID, doorID, mode string) error {
	var m access.Mode
	switch mode {
	case wire.DoorModeNormal:
		m = access.Normal
	case wire.DoorModeLockedDown:
		m = access.LockedDownMode
	case wire.DoorModeFreePassage:
		m = access.FreePassageMode
	default:
		return fmt.Errorf("gate: unknown mode %q", mode)
	}
	return g.Gate.SetMode(doorID, m, commandID)
}

// requestAllowlist asks the hub for allowlist updates; the syncer asks
// again after the next connect if this one is lost.
func (g *Gate) requestAllowlist(r wire.AllowlistRequest) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	g.session.PublishAsync(uplink.Message{Topic: g.topics.AllowlistRequest(), QoS: 1, Payload: b})
	return nil
}

// Run subscribes to the allowlist topics, runs the doors, the readers, the
// gate's record writer and the allowlist syncer until ctx ends, then
// halts every door. It returns after every goroutine it started has
// stopped: nil on a clean stop, or the first component's error.
func (g *Gate) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 4+len(g.doors)+len(g.readers))
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- fmt.Errorf("gate: %s: %w", name, err)
				cancel()
			}
		}()
	}
	run("records", g.Gate.Run)
	// The doors and readers first: a subscription waits for the broker,
	// and the fire inputs must not.
	for _, d := range g.doors {
		run("door", func(ctx context.Context) error {
			return d.Run(ctx, func(e door.Event) { g.Gate.Input(doorInput(e)) })
		})
	}
	for i, r := range g.readers {
		run("reader "+g.names[i], r.Run)
	}
	run("allowlist", g.Sync.Run)
	for _, topic := range g.allowlistTopics {
		if err := g.session.Subscribe(topic, 1, func(_ string, p []byte) {
			g.Sync.Handle(append([]byte(nil), p...))
		}); err != nil {
			cancel()
			wg.Wait()
			return fmt.Errorf("gate: subscribe %s: %w", topic, err)
		}
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// Decorate adds the gate's allowlist and doors to a health snapshot
// (uplink.Options.Decorate). The door drivers and readers are devices of
// the node's Monitor, so they are in the devices section already.
func (g *Gate) Decorate(h *wire.Health) {
	ah := g.Sync.Stats().Health()
	h.Allowlist = &ah
	for _, s := range g.Gate.Status() {
		dh := wire.DoorHealth{ID: s.ID, Mode: s.Mode.String(), Released: s.Released, Open: s.Open}
		for _, a := range s.Alarms {
			dh.Alarms = append(dh.Alarms, string(a))
		}
		h.Doors = append(h.Doors, dh)
	}
}

// Close halts every door, closes the allowlist, and then
// the lines that can be closed. It is idempotent; call it after Run has
// returned.
func (g *Gate) Close() error {
	g.closeOnce.Do(func() {
		var errs []error
		if g.Gate != nil {
			errs = append(errs, g.Gate.Close())
		}
		for _, d := range g.doors {
			errs = append(errs, d.Halt())
		}
		if g.Allowlist != nil {
			errs = append(errs, g.Allowlist.Close())
		}
		for _, p := range g.pins {
			if c, ok := p.(interface{ Close() error }); ok {
				errs = append(errs, c.Close())
			}
		}
		g.closeErr = errors.Join(errs...)
	})
	return g.closeErr
}
