// Package node wires one agent's store-and-forward spine from its config:
// the outbox file in the data directory, the uplink that drains it to
// the hub, and the configured serial devices (cmd/internal/devices) with
// the device Monitor that records their transitions in the outbox and
// reports their health to the hub, and, when [gate] command_key_file is
// set, the signed command executor (agent/command) on the agent's cmd
// topic: every agent runs agent.rebirth, and a gate plugs its door
// commands in with SetCommandHandlers. cmd/kioskd, cmd/kioskdemo and cmd/kbench share it so the three
// run the same wiring; it lives under cmd/ because wiring concrete parts is
// the mains' job (DESIGN.md §3).
package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kioskedge/kioskedge/agent/command"
	"github.com/kioskedge/kioskedge/agent/config"
	agentdevices "github.com/kioskedge/kioskedge/agent/devices"
	"github.com/kioskedge/kioskedge/cmd/internal/clockwatch"
	"github.com/kioskedge/kioskedge/cmd/internal/devices"
	"github.com/kioskedge/kioskedge/sync/outbox"
	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// Options are what a node needs besides its config.
type Options struct {
	Config  config.Config
	Version string
	Codec   *wire.Codec // shared by every node of a process; required
	Logger  *slog.Logger
	Now     func() time.Time
	// OnDeviceEvent receives the devices' events for the kiosk UI
	// (devices.Options.OnEvent); nil drops them.
	OnDeviceEvent func(devices.Event)
}

// Node is one agent's outbox, uplink and devices.
type Node struct {
	Outbox  *outbox.Outbox
	Uplink  *uplink.Uplink
	Monitor *agentdevices.Monitor // the configured devices' health and transitions
	Devices *devices.Set          // the running drivers
	BootID  string
	// Commands runs signed commands from the hub; nil when no
	// [gate] command_key_file is configured (the cmd topic is then not
	// subscribed, so every command goes unanswered).
	Commands *command.Executor
	// Clock measures the box's clock offset from the hub's ([hub]
	// clock_check_interval) for the health snapshot and records a
	// clock.skew alarm beyond [hub] clock_max_skew.
	Clock *clockwatch.Watch
	cfg   config.Config
	now   func() time.Time
	log   *slog.Logger

	decorate atomic.Pointer[func(*wire.Health)]
}

// DecorateHealth makes f add its sections (a gate's allowlist and doors) to
// every health snapshot from now on; see uplink.Options.Decorate.
func (n *Node) DecorateHealth(f func(*wire.Health)) { n.decorate.Store(&f) }

func (n *Node) decorateHealth(h *wire.Health) {
	if f := n.decorate.Load(); f != nil {
		(*f)(h)
	}
	if n.Clock != nil {
		h.Clock = n.Clock.Health()
	}
	if n.Commands != nil {
		if h.Counters == nil {
			h.Counters = map[string]uint64{}
		}
		for k, v := range n.Commands.Counters() {
			h.Counters["command_"+k] = v
		}
	}
}

// SetCommandHandlers plugs h's command handlers (a gate's door.open and
// door.mode) into the executor; agent.rebirth always stays the node's, so
// h.Rebirth is ignored. Call it before Run. Without an executor (no
// command key configured) it does nothing.
func (n *Node) SetCommandHandlers(h command.Handlers) {
	if n.Commands == nil {
		return
	}
	h.Rebirth = n.rebirth
	n.Commands.SetHandlers(h)
}

// rebirth runs agent.rebirth: the uplink publishes the birth and health
// again and resends what the hub has not acked.
func (n *Node) rebirth(context.Context, string) error {
	n.Uplink.Rebirth()
	return nil
}

// publishResult sends a command's result on cmd/result at once; the
// durable copy is the command.result record in the outbox.
func (n *Node) publishResult(r wire.CommandResult) {
	b, err := json.Marshal(r)
	if err != nil {
		n.log.Error("encode command result", "err", err)
		return
	}
	topics := wire.Topics{Root: n.cfg.Hub.Root, Agent: n.cfg.Agent.ID}
	n.Uplink.Session().PublishAsync(uplink.Message{Topic: topics.CmdResult(), QoS: 1, Payload: b})
}

// Open creates the data directory if needed, opens (or recovers) the outbox,
// opens the configured devices and builds the uplink. A device that cannot
// be opened for a reason waiting will not fix (bad path, permission, key
// file) is an error naming it; an absent device is not. On error
// everything opened so far is closed.
func Open(o Options) (*Node, error) {
	if o.Codec == nil {
		return nil, errors.New("node: Codec is required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := o.Config
	log := o.Logger.With("agent", c.Agent.ID)
	if err := os.MkdirAll(c.Agent.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("node: data dir: %w", err)
	}
	ob, err := outbox.Open(outbox.Options{
		Path:         filepath.Join(c.Agent.DataDir, "outbox.db"),
		BudgetBytes:  int64(c.Outbox.Budget),
		ReclaimAbove: int64(c.Outbox.ReclaimAbove),
		Now:          o.Now,
		Logger:       log.With("component", "outbox"),
	})
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	n := &Node{Outbox: ob, BootID: newBootID(), cfg: c, now: o.Now, log: log}
	password := ""
	if c.Hub.PasswordFile != "" {
		b, err := os.ReadFile(c.Hub.PasswordFile)
		if err != nil {
			_ = ob.Close() // the read error is the one worth returning
			return nil, fmt.Errorf("node: hub.password_file: %w", err)
		}
		password = strings.TrimSpace(string(b))
	}
	n.Monitor, err = agentdevices.NewMonitor(agentdevices.Options{Outbox: ob, Now: o.Now, Logger: log})
	if err != nil {
		_ = ob.Close() // the monitor error is the one worth returning
		return nil, fmt.Errorf("node: %w", err)
	}
	n.Devices, err = devices.Open(devices.Options{Devices: c.Devices, Monitor: n.Monitor, OnEvent: o.OnDeviceEvent, Logger: log})
	if err != nil {
		_ = ob.Close() // the device error is the one worth returning
		return nil, fmt.Errorf("node: %w", err)
	}
	var tlsFiles *uplink.TLSFiles
	if c.Hub.CertFile != "" || c.Hub.CAFile != "" {
		tlsFiles = &uplink.TLSFiles{CAFile: c.Hub.CAFile, CertFile: c.Hub.CertFile, KeyFile: c.Hub.KeyFile}
	}
	n.Uplink, err = uplink.New(uplink.Options{
		Session: uplink.SessionOptions{
			Broker:         c.Hub.Broker,
			ClientID:       c.Agent.ID,
			TLS:            tlsFiles,
			AllowPlaintext: c.Hub.Plaintext,
			Username:       c.Hub.Username,
			Password:       password,
			KeepAlive:      c.Hub.KeepAlive.D(),
			Backoff: uplink.Backoff{Min: c.Hub.BackoffMin.D(), Max: c.Hub.BackoffMax.D(), StableAfter: c.Hub.BackoffStable.D(),
				Spread: c.Hub.ReconnectSpread.D()},
			Logger: log.With("component", "mqtt"),
		},
		Root:           c.Hub.Root,
		Agent:          c.Agent.ID,
		BootID:         n.BootID,
		Version:        o.Version,
		ConfigHash:     configHash(c),
		Inventory:      inventory(c.Devices),
		Site:           c.Agent.Site,
		Region:         c.Agent.Region,
		BatchRecords:   c.Hub.BatchRecords,
		BatchBytes:     int(c.Hub.BatchBytes),
		Window:         c.Hub.Window,
		AckTimeout:     c.Hub.AckTimeout.D(),
		HealthInterval: c.Hub.HealthInterval.D(),
		Health:         n.outboxHealth,
		Devices:        n.Monitor.Health,
		Decorate:       n.decorateHealth,
		BdSeqPath:      filepath.Join(c.Agent.DataDir, "bdseq"),
		Codec:          o.Codec,
		Now:            o.Now,
		Logger:         log.With("component", "uplink"),
	}, ob)
	if err != nil {
		// The uplink error is the one worth returning.
		_ = n.Devices.Close()
		_ = ob.Close()
		return nil, fmt.Errorf("node: %w", err)
	}
	n.Clock, err = clockwatch.New(clockwatch.Options{
		Session:  n.Uplink.Session(),
		Topics:   wire.Topics{Root: c.Hub.Root, Agent: c.Agent.ID},
		Interval: c.Hub.ClockCheckInterval.D(),
		MaxSkew:  c.Hub.ClockMaxSkew.D(),
		OnSkew:   n.recordSkew,
		Now:      o.Now,
		Logger:   log.With("component", "clock"),
	})
	if err != nil {
		// Only a programming error: the session and topics are set.
		_ = n.Devices.Close()
		_ = ob.Close()
		return nil, fmt.Errorf("node: %w", err)
	}
	if c.Gate.CommandKeyFile != "" {
		if err := n.openCommands(o); err != nil {
			// The command error is the one worth returning.
			_ = n.Devices.Close()
			_ = ob.Close()
			return nil, err
		}
	}
	return n, nil
}

func (n *Node) openCommands(o Options) error {
	c := o.Config
	pub, err := command.LoadPublicKey(c.Gate.CommandKeyFile)
	if err != nil {
		return fmt.Errorf("node: gate.command_key_file: %w", err)
	}
	n.Commands, err = command.New(command.Options{
		PublicKey: pub, Agent: c.Agent.ID, SeenFile: c.Gate.CommandSeenFile, Now: o.Now,
		Handlers: command.Handlers{Rebirth: n.rebirth},
		Outbox:   n, Publish: n.publishResult, Logger: n.log,
	})
	if err != nil {
		return fmt.Errorf("node: gate.command_seen_file: %w", err)
	}
	return nil
}

// inventory lists the configured devices for the birth message; an OSDP
// bus lists each reader.
func inventory(ds []config.Device) []wire.Device {
	var inv []wire.Device
	for _, d := range ds {
		if d.Kind == config.KindOSDP && d.OSDP != nil {
			for _, r := range d.OSDP.Readers {
				inv = append(inv, wire.Device{Name: r.Name, Kind: d.Kind, Port: d.Path})
			}
			continue
		}
		inv = append(inv, wire.Device{Name: d.Name, Kind: d.Kind, Port: d.Path})
	}
	return inv
}

// Append stores r durably; see outbox.Outbox.Append.
func (n *Node) Append(ctx context.Context, r wire.Record) (uint64, error) {
	return n.Outbox.Append(ctx, r)
}

// Run runs the devices and their Monitor and drains the outbox to the hub
// until ctx ends, then publishes the death message and disconnects; it
// returns after the device goroutines have stopped. It returns nil on a
// clean stop, or the uplink's error (the devices are stopped then too).
func (n *Node) Run(ctx context.Context) error {
	devCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = n.Devices.Run(devCtx) }) // returns nil; driver failures are logged
	wg.Go(func() { _ = n.Monitor.Run(devCtx) }) // returns nil; append failures are logged and retried
	if n.Commands != nil {
		wg.Go(func() { _ = n.Commands.Run(devCtx) }) // returns nil at ctx end
		topic := wire.Topics{Root: n.cfg.Hub.Root, Agent: n.cfg.Agent.ID}.Cmd()
		// Not connected yet, Subscribe only remembers the topic (renewed on
		// every connect); a refusal now is retried on the next connect.
		if err := n.Uplink.Session().Subscribe(topic, 1, func(_ string, p []byte) {
			if !n.Commands.Submit(append([]byte(nil), p...)) {
				n.log.Warn("command queue full; command dropped (the hub sees no result)")
			}
		}); err != nil {
			n.log.Warn("subscribe to the command topic", "err", err)
		}
	}
	wg.Go(func() { _ = n.Clock.Run(devCtx) }) // returns at ctx end; failed checks are logged and retried
	err := n.Uplink.Run(ctx)
	stop()
	wg.Wait()
	return err
}

// recordSkew records the clock crossing its bound (either way) as a
// clock.skew alarm record (hub-protocol.md §4.3), class critical like the
// other alarms. A failed append is logged: the health snapshot still says
// skewed.
func (n *Node) recordSkew(m clockwatch.Measurement) {
	state := "ok"
	if m.Skewed {
		state = "skewed"
	}
	body, _ := json.Marshal(struct { // numbers and a string always encode
		State    string  `json:"state"`
		OffsetMS float64 `json:"offset_ms"`
		DelayMS  float64 `json:"delay_ms"`
		BoundMS  int64   `json:"bound_ms"`
	}{state, float64(m.Offset.Microseconds()) / 1000, float64(m.Delay.Microseconds()) / 1000, n.cfg.Hub.ClockMaxSkew.D().Milliseconds()})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := n.Outbox.Append(ctx, wire.Record{Kind: wire.KindClockSkew, Class: wire.ClassCritical, Time: n.now(), Body: body}); err != nil {
		n.log.Error("record clock skew", "err", err)
	}
}

// Close closes the command executor, the devices and then the outbox.
// Call it after Run has returned; it is idempotent.
func (n *Node) Close() error {
	var cerr error
	if n.Commands != nil {
		cerr = n.Commands.Close()
	}
	return errors.Join(cerr, n.Devices.Close(), n.Outbox.Close())
}

func (n *Node) outboxHealth() wire.OutboxHealth {
	s := n.Outbox.Stats()
	h := wire.OutboxHealth{
		Depth:        s.Depth,
		DiskBytes:    s.FileBytes,
		BudgetBytes:  s.BudgetBytes,
		NextSeq:      s.NextSeq,
		AckedThrough: s.AckedThrough,
		Evicted:      s.Evicted,
	}
	if !s.Oldest.IsZero() {
		h.OldestUnsentS = n.now().Sub(s.Oldest).Seconds()
	}
	return h
}

func newBootID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error on Linux (Go ≥ 1.24 panics instead)
	return hex.EncodeToString(b)
}

// configHash lets the hub tell which boxes run which configuration.
func configHash(c config.Config) string {
	b, err := json.Marshal(c)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
