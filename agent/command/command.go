package command

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"sync"
	"time"

	"github.com/kioskedge/kioskedge/sync/wire"
)

// Defaults applied by New to zero Options fields.
const (
	DefaultMaxHorizon = 10 * time.Minute
	DefaultSkew       = 30 * time.Second
	queueLen          = 16
)

// ErrOptions wraps every Options validation error from New.
var ErrOptions = errors.New("command: invalid options")

// Outbox is where the durable command.result records go.
type Outbox interface {
	Append(ctx context.Context, r wire.Record) (uint64, error)
}

// Handlers run accepted commands. A nil handler makes its command
// "unknown_command". Each is called at most once per command id and nonce,
// after the nonce is recorded durably; an error or a panic gives the result
// "failed" (the command is not retried).
type Handlers struct {
	// DoorOpen gives door one unlock pulse.
	DoorOpen func(ctx context.Context, commandID, door string) error
	// DoorMode sets door's mode: wire.DoorModeNormal, DoorModeLockedDown or
	// DoorModeFreePassage.
	DoorMode func(ctx context.Context, commandID, door, mode string) error
	// Rebirth publishes the agent's birth and health again (agent.rebirth,
	// no args); the node wires it to the uplink.
	Rebirth func(ctx context.Context, commandID string) error
}

// Options configures an Executor.
type Options struct {
	// PublicKey is the hub's command key (cmd.pub; LoadPublicKey); required.
	PublicKey ed25519.PublicKey
	// Agent is this agent's id; commands for another id are refused.
	Agent string
	// SeenFile is the path of the durable nonce set; required.
	SeenFile string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxHorizon refuses a command expiring more than MaxHorizon+Skew ahead
	// ("too_far"); it bounds how long a nonce must be remembered. Default 10m.
	MaxHorizon time.Duration
	// Skew is the clock difference allowed between hub and agent: a command
	// is accepted until its expiry plus Skew. An agent whose clock is behind
	// the hub's accepts a command for longer than the hub meant, by the
	// difference. Default 30s.
	Skew     time.Duration
	Handlers Handlers
	// Outbox, when set, receives a command.result record (class critical)
	// for every payload handled.
	Outbox Outbox
	// Publish, when set, is called with every result (for cmd/result). It
	// must not block; use uplink's PublishAsync.
	Publish func(wire.CommandResult)
	Logger  *slog.Logger // nil discards
}

// Executor verifies signed commands and runs the accepted ones exactly once
// (hub-commands.md §5, §6).
//
// After New finds the seen file torn, corrupt or unreadable (not merely
// missing), nonces it held may be gone, so for MaxHorizon+Skew after that
// moment it refuses, with "seen_lost", every command issued no later than
// that moment plus Skew: any command seen before the loss was issued then
// (given the clocks agree within Skew), and after the quarantine every such
// command is expired anyway. The moment is recorded in the new file, so a
// restart keeps the quarantine. A missing file is a first start and starts
// no quarantine.
type Executor struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time
	q    chan []byte

	hmu      sync.Mutex // guards opts.Handlers (SetHandlers)
	mu       sync.Mutex // guards seen and counters
	seen     *seenSet
	counters map[string]uint64

	closeOnce sync.Once
	closeErr  error
}

// New validates opts and opens the seen file (see Executor for what a
// damaged file does). It returns an error wrapping ErrOptions for a missing
// key, agent or seen file, or the error opening the seen file.
func New(opts Options) (*Executor, error) {
	switch {
	case len(opts.PublicKey) != ed25519.PublicKeySize:
		return nil, fmt.Errorf("%w: PublicKey must be %d bytes", ErrOptions, ed25519.PublicKeySize)
	case wire.ValidateID("agent", opts.Agent) != nil:
		return nil, fmt.Errorf("%w: %v", ErrOptions, wire.ValidateID("agent", opts.Agent))
	case opts.SeenFile == "":
		return nil, fmt.Errorf("%w: SeenFile is required", ErrOptions)
	case opts.MaxHorizon < 0 || opts.Skew < 0:
		return nil, fmt.Errorf("%w: negative MaxHorizon or Skew", ErrOptions)
	}
	if opts.MaxHorizon == 0 {
		opts.MaxHorizon = DefaultMaxHorizon
	}
	if opts.Skew == 0 {
		opts.Skew = DefaultSkew
	}
	e := &Executor{opts: opts, now: opts.Now, log: opts.Logger, q: make(chan []byte, queueLen),
		counters: map[string]uint64{}}
	if e.now == nil {
		e.now = time.Now
	}
	if e.log == nil {
		e.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	e.log = e.log.With("component", "command")
	s, err := openSeen(opts.SeenFile, e.now(), opts.Skew)
	if err != nil {
		return nil, err
	}
	e.seen = s
	if s.truncated > 0 || s.replaced > 0 {
		e.log.Warn("seen file damaged; commands issued before now are refused for the quarantine",
			"truncated", s.truncated, "replaced", s.replaced, "quarantine", opts.MaxHorizon+opts.Skew)
	}
	e.counters["seen_truncated"] = s.truncated
	e.counters["seen_replaced"] = s.replaced
	return e, nil
}

// LoadPublicKey reads a cmd.pub file (hub-commands.md §7). It returns the
// read error or one wrapping wire.ErrCommandKey.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("command: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4<<10))
	if err != nil {
		return nil, fmt.Errorf("command: reading %s: %w", path, err)
	}
	return wire.ParseCommandPublicKey(b)
}

// Submit queues payload for Run without blocking; payload then belongs to
// the Executor. It returns false (and counts "dropped") when the queue is
// full. It is safe to call from an MQTT delivery goroutine.
func (e *Executor) Submit(payload []byte) bool {
	select {
	case e.q <- payload:
		return true
	default:
		e.mu.Lock()
		e.counters["dropped"]++
		e.mu.Unlock()
		return false
	}
}

// Run handles submitted payloads in order until ctx ends, then returns nil.
func (e *Executor) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case p := <-e.q:
			e.Handle(ctx, p)
		}
	}
}

// Handle checks payload in the order of hub-commands.md §5 — parse,
// signature, agent, expiry, name and args, replay — then records the nonce
// durably and runs the handler. Nothing is executed unless every check
// passes and the nonce is on disk. The result is also appended to the
// Outbox and given to Publish, when set. Handle blocks for the handler's
// duration; calls are safe from several goroutines.
func (e *Executor) Handle(ctx context.Context, payload []byte) wire.CommandResult {
	r, run := e.check(payload)
	if run != nil && r.Code == "" {
		r = e.execute(ctx, r, run)
	}
	r.OK = r.Code == wire.CodeOK
	r.Time = e.now()
	e.finish(ctx, r)
	return r
}

func (e *Executor) check(payload []byte) (wire.CommandResult, func(context.Context) error) {
	r := wire.CommandResult{Agent: e.opts.Agent}
	c, err := wire.ParseCommand(payload)
	if err != nil {
		r.ID, r.Code, r.Message = wire.CommandID(payload), wire.CodeMalformed, trim(err.Error())
		return r, nil
	}
	r.ID = c.ID
	if err := wire.VerifyCommand(e.opts.PublicKey, &c); err != nil {
		r.Code, r.Message = wire.CodeUnsigned, err.Error()
		return r, nil
	}
	r.Name = c.Name
	now := e.now()
	if c.Agent != e.opts.Agent {
		r.Code, r.Message = wire.CodeWrongAgent, "command is for agent "+c.Agent
		return r, nil
	}
	if now.After(c.Expires.Add(e.opts.Skew)) {
		r.Code, r.Message = wire.CodeExpired, "expired at "+c.Expires.UTC().Format(time.RFC3339Nano)
		return r, nil
	}
	if c.Expires.Sub(now) > e.opts.MaxHorizon+e.opts.Skew {
		r.Code, r.Message = wire.CodeTooFar, fmt.Sprintf("expires more than %v ahead", e.opts.MaxHorizon+e.opts.Skew)
		return r, nil
	}
	run, err := e.bind(c)
	if err != nil {
		r.Code, r.Message = wire.CodeBadArgs, trim(err.Error())
		if errors.Is(err, errUnknown) {
			r.Code = wire.CodeUnknownCommand
		}
		return r, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.seen.seen(c.Nonce) {
		r.Code, r.Message = wire.CodeReplayed, "nonce seen before"
		return r, nil
	}
	if lost := e.seen.lostAt; !lost.IsZero() && now.Before(lost.Add(e.opts.MaxHorizon+e.opts.Skew)) &&
		!c.Issued.After(lost.Add(e.opts.Skew)) {
		r.Code, r.Message = wire.CodeSeenLost, "replay record lost at "+lost.UTC().Format(time.RFC3339)+"; issue the command again"
		return r, nil
	}
	if err := e.seen.add(c.Nonce, c.Expires, now, e.opts.MaxHorizon+e.opts.Skew); err != nil && !e.seen.seen(c.Nonce) {
		e.log.Error("recording nonce failed; command not run", "id", c.ID, "err", err)
		r.Code, r.Message = wire.CodeFailed, "replay record not durable"
		return r, nil
	} else if err != nil {
		e.log.Warn("seen file compaction failed", "err", err)
	}
	return r, run
}

var errUnknown = errors.New("unknown command")

// SetHandlers replaces the handlers for the commands handled from now on
// (a gate plugs its door handlers into the node's executor before Run).
// It is safe to call while Run is running.
func (e *Executor) SetHandlers(h Handlers) {
	e.hmu.Lock()
	defer e.hmu.Unlock()
	e.opts.Handlers = h
}

// bind checks c's name and args and returns the call that runs it.
func (e *Executor) bind(c wire.Command) (func(context.Context) error, error) {
	e.hmu.Lock()
	h := e.opts.Handlers
	e.hmu.Unlock()
	switch {
	case c.Name == wire.CmdDoorOpen && h.DoorOpen != nil:
		a, err := wire.ParseDoorOpenArgs(c.Args)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) error { return h.DoorOpen(ctx, c.ID, a.Door) }, nil
	case c.Name == wire.CmdDoorMode && h.DoorMode != nil:
		a, err := wire.ParseDoorModeArgs(c.Args)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) error { return h.DoorMode(ctx, c.ID, a.Door, a.Mode) }, nil
	case c.Name == wire.CmdRebirth && h.Rebirth != nil:
		if err := wire.ParseNoArgs(c.Args); err != nil {
			return nil, err
		}
		return func(ctx context.Context) error { return h.Rebirth(ctx, c.ID) }, nil
	}
	return nil, fmt.Errorf("%w %q", errUnknown, c.Name)
}

func (e *Executor) execute(ctx context.Context, r wire.CommandResult, run func(context.Context) error) (out wire.CommandResult) {
	out = r
	defer func() {
		if p := recover(); p != nil {
			e.log.Error("command handler panicked", "id", r.ID, "name", r.Name, "panic", fmt.Sprint(p))
			out.Code, out.Message = wire.CodeFailed, "handler panicked"
		}
	}()
	if err := run(ctx); err != nil {
		out.Code, out.Message = wire.CodeFailed, trim(err.Error())
		return out
	}
	out.Code = wire.CodeOK
	return out
}

func (e *Executor) finish(ctx context.Context, r wire.CommandResult) {
	e.mu.Lock()
	e.counters[r.Code]++
	e.mu.Unlock()
	lv := slog.LevelInfo
	if !r.OK {
		lv = slog.LevelWarn
	}
	e.log.Log(ctx, lv, "command result", "id", r.ID, "name", r.Name, "code", r.Code, "message", r.Message)
	if e.opts.Outbox != nil {
		body, err := json.Marshal(r)
		if err == nil {
			_, err = e.opts.Outbox.Append(ctx, wire.Record{Kind: wire.KindCommandResult, Class: wire.ClassCritical,
				Time: r.Time, Body: body})
		}
		if err != nil {
			e.mu.Lock()
			e.counters["outbox_errors"]++
			e.mu.Unlock()
			e.log.Error("command result not recorded", "id", r.ID, "err", err)
		}
	}
	if e.opts.Publish != nil {
		e.opts.Publish(r)
	}
}

// Counters returns a copy of the counters: one per result code, plus
// "dropped" (Submit queue full), "outbox_errors", "seen_truncated" and
// "seen_replaced" (seen-file repairs at New).
func (e *Executor) Counters() map[string]uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.counters)
}

// Close closes the seen file. It is idempotent; handled commands are
// already durable.
func (e *Executor) Close() error {
	e.closeOnce.Do(func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.closeErr = e.seen.close()
	})
	return e.closeErr
}

// trim bounds a message (decoder errors may quote input).
func trim(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
