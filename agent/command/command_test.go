package command_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/agent/command"
	"github.com/kioskedge/kioskedge/firmware-specs/commandvectors"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/fakeclock"
)

// door records handler calls.
type door struct {
	mu    sync.Mutex
	calls []commandvectors.Exec
	fail  error
	panic bool
}

func (d *door) handlers() command.Handlers {
	return command.Handlers{
		DoorOpen: func(_ context.Context, _, dr string) error {
			return d.call(commandvectors.Exec{Name: wire.CmdDoorOpen, Door: dr})
		},
		DoorMode: func(_ context.Context, _, dr, mode string) error {
			return d.call(commandvectors.Exec{Name: wire.CmdDoorMode, Door: dr, Mode: mode})
		},
	}
}

func (d *door) call(e commandvectors.Exec) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, e)
	if d.panic {
		panic("relay driver bug")
	}
	return d.fail
}

func (d *door) n() int { d.mu.Lock(); defer d.mu.Unlock(); return len(d.calls) }

type outbox struct {
	mu   sync.Mutex
	recs []wire.Record
}

func (o *outbox) Append(_ context.Context, r wire.Record) (uint64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.recs = append(o.recs, r)
	return uint64(len(o.recs)), nil
}

type env struct {
	v    commandvectors.Vectors
	clk  *fakeclock.Clock
	door *door
	out  *outbox
	pubs []wire.CommandResult
	seen string
	priv ed25519.PrivateKey
}

func newEnv(t *testing.T) *env {
	t.Helper()
	v, err := commandvectors.Load()
	if err != nil {
		t.Fatal(err)
	}
	return &env{v: v, clk: fakeclock.New(v.Now), door: &door{}, out: &outbox{},
		seen: filepath.Join(t.TempDir(), "seen"), priv: ed25519.NewKeyFromSeed(v.Seed)}
}

func (e *env) open(t *testing.T) *command.Executor {
	t.Helper()
	x, err := command.New(command.Options{
		PublicKey: ed25519.PublicKey(e.v.PublicKey), Agent: e.v.Agent, SeenFile: e.seen, Now: e.clk.Now,
		MaxHorizon: e.v.MaxHorizon(), Skew: e.v.Skew(), Handlers: e.door.handlers(), Outbox: e.out,
		Publish: func(r wire.CommandResult) { e.pubs = append(e.pubs, r) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := x.Close(); err != nil {
			t.Error(err)
		}
	})
	return x
}

// cmd builds a command signed with the vector key, issued now.
func (e *env) cmd(t *testing.T, nonce string, mutate func(*wire.Command)) []byte {
	t.Helper()
	now := e.clk.Now()
	c := wire.Command{ID: "c-" + nonce[:4], Agent: e.v.Agent, Name: wire.CmdDoorOpen, Args: json.RawMessage(`{"door":"d1"}`),
		Issued: now, Expires: now.Add(time.Minute), Nonce: nonce}
	if mutate != nil {
		mutate(&c)
	}
	wire.SignCommand(e.priv, &c)
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCorpus is the acceptance corpus: every rejected payload gets its
// code and a message, no rejected payload reaches a handler, and every
// valid one runs exactly once.
func TestCorpus(t *testing.T) {
	e := newEnv(t)
	x := e.open(t)
	var want []commandvectors.Exec
	for _, tc := range e.v.Sequence {
		before := e.door.n()
		r := x.Handle(context.Background(), tc.Bytes())
		if r.Code != tc.Code || r.OK != (tc.Code == wire.CodeOK) {
			t.Errorf("%s: code %q ok=%v, want %q", tc.Name, r.Code, r.OK, tc.Code)
		}
		if !r.OK && r.Message == "" {
			t.Errorf("%s: rejected without a reason", tc.Name)
		}
		if tc.Executes != nil {
			want = append(want, *tc.Executes)
		} else if e.door.n() != before {
			t.Errorf("%s: rejected but a handler ran", tc.Name)
		}
	}
	// Garbage at the size bound and beyond.
	huge := append(bytes.Repeat([]byte(" "), wire.MaxControlMessage), e.v.Sequence[0].Bytes()...)
	if r := x.Handle(context.Background(), huge); r.Code != wire.CodeMalformed {
		t.Errorf("huge payload: %q", r.Code)
	}
	if len(e.door.calls) != len(want) {
		t.Fatalf("handlers ran %d times, want %d: %+v", len(e.door.calls), len(want), e.door.calls)
	}
	for i := range want {
		if e.door.calls[i] != want[i] {
			t.Errorf("call %d: %+v, want %+v", i, e.door.calls[i], want[i])
		}
	}
	// Every payload gave one critical record and one published result.
	n := len(e.v.Sequence) + 1
	if len(e.out.recs) != n || len(e.pubs) != n {
		t.Errorf("%d records and %d results for %d payloads", len(e.out.recs), len(e.pubs), n)
	}
	for _, rec := range e.out.recs {
		if rec.Kind != wire.KindCommandResult || rec.Class != wire.ClassCritical {
			t.Errorf("record %s/%v", rec.Kind, rec.Class)
		}
		if _, err := wire.DecodeCommandResult(rec.Body); err != nil {
			t.Errorf("record body: %v", err)
		}
	}
	c := x.Counters()
	if c[wire.CodeOK] != uint64(len(want)) || c[wire.CodeUnsigned] == 0 || c[wire.CodeMalformed] == 0 {
		t.Errorf("counters %v", c)
	}
}

// A restart (reopening the seen file) still refuses every nonce accepted
// before it, and a fresh command still runs.
func TestReplayAfterRestart(t *testing.T) {
	e := newEnv(t)
	x := e.open(t)
	a := e.cmd(t, "aaaa-0123456789abcdef", nil)
	if r := x.Handle(context.Background(), a); !r.OK {
		t.Fatalf("first: %+v", r)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(5 * time.Second)
	x = e.open(t)
	if r := x.Handle(context.Background(), a); r.Code != wire.CodeReplayed {
		t.Errorf("replay after restart: %+v", r)
	}
	if r := x.Handle(context.Background(), e.cmd(t, "bbbb-0123456789abcdef", nil)); !r.OK {
		t.Errorf("fresh command after restart: %+v", r)
	}
	if e.door.n() != 2 {
		t.Errorf("%d handler calls, want 2", e.door.n())
	}
}

// The nonce is durable before the handler runs: a handler that fails or
// panics (standing in for a crash mid-command) leaves the command refused
// as a replay, also after a restart.
func TestNonceRecordedBeforeExecution(t *testing.T) {
	for _, mode := range []string{"error", "panic"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			e.door.fail, e.door.panic = errors.New("relay stuck"), mode == "panic"
			x := e.open(t)
			a := e.cmd(t, "cccc-0123456789abcdef", nil)
			if r := x.Handle(context.Background(), a); r.Code != wire.CodeFailed || r.Message == "" {
				t.Fatalf("failing handler: %+v", r)
			}
			b, err := os.ReadFile(e.seen)
			if err != nil || !strings.Contains(string(b), "cccc-0123456789abcdef") {
				t.Fatalf("nonce not in the seen file: %v", err)
			}
			e.door.fail, e.door.panic = nil, false
			if err := x.Close(); err != nil {
				t.Fatal(err)
			}
			x = e.open(t)
			if r := x.Handle(context.Background(), a); r.Code != wire.CodeReplayed {
				t.Errorf("after restart: %+v", r)
			}
			if e.door.n() != 1 {
				t.Errorf("%d handler calls, want 1", e.door.n())
			}
		})
	}
}

// A torn tail or a corrupt file never crashes New; commands issued before
// the loss are refused for the quarantine, also across another restart;
// commands issued later run; after the quarantine everything is normal.
func TestDamagedSeenFile(t *testing.T) {
	for name, damage := range map[string]func(b []byte) []byte{
		"torn tail":    func(b []byte) []byte { return b[:len(b)-3] },
		"flipped byte": func(b []byte) []byte { b[len(b)-20] ^= 0x55; return b },
		"no header":    func(b []byte) []byte { return append([]byte("garbage"), b...) },
		"binary":       func([]byte) []byte { return []byte{0, 1, 2, 0xff} },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			x := e.open(t)
			old := e.cmd(t, "dddd-0123456789abcdef", nil)
			unseen := e.cmd(t, "eeee-0123456789abcdef", nil) // issued before the loss, never delivered
			if r := x.Handle(context.Background(), old); !r.OK {
				t.Fatal(r)
			}
			if err := x.Close(); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(e.seen)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(e.seen, damage(b), 0o600); err != nil {
				t.Fatal(err)
			}
			e.clk.Advance(time.Second)
			x = e.open(t)
			c := x.Counters()
			if c["seen_truncated"]+c["seen_replaced"] != 1 {
				t.Errorf("repair counters %v", c)
			}
			for _, p := range [][]byte{old, unseen} {
				if r := x.Handle(context.Background(), p); r.OK || (r.Code != wire.CodeSeenLost && r.Code != wire.CodeReplayed) {
					t.Errorf("pre-loss command: %+v", r)
				}
			}
			// Restart inside the quarantine: still refused.
			if err := x.Close(); err != nil {
				t.Fatal(err)
			}
			e.clk.Advance(10 * time.Second)
			x = e.open(t)
			if r := x.Handle(context.Background(), unseen); r.Code != wire.CodeSeenLost {
				t.Errorf("pre-loss command after a second restart: %+v", r)
			}
			// Issued after loss+skew: runs.
			e.clk.Advance(e.v.Skew())
			if r := x.Handle(context.Background(), e.cmd(t, "ffff-0123456789abcdef", nil)); !r.OK {
				t.Errorf("post-loss command: %+v", r)
			}
			if e.door.n() != 2 {
				t.Errorf("%d handler calls, want 2", e.door.n())
			}
		})
	}
}

// A missing file is a first start: no quarantine.
func TestFirstStart(t *testing.T) {
	e := newEnv(t)
	x := e.open(t)
	if r := x.Handle(context.Background(), e.cmd(t, "gggg-0123456789abcdef", nil)); !r.OK {
		t.Errorf("first command: %+v", r)
	}
}

// The file is compacted: after many commands it holds about the live set,
// and a nonce still inside its window survives compaction and restart.
func TestCompaction(t *testing.T) {
	e := newEnv(t)
	x := e.open(t)
	var last []byte
	for i := range 600 {
		n := strings.Repeat("h", 12) + string(rune('a'+i%26)) + "-" + time.Duration(i).String() + "-nonce"
		n = strings.ReplaceAll(n, "µ", "u")
		last = e.cmd(t, n, func(c *wire.Command) { c.Expires = c.Issued.Add(20 * time.Second) })
		if r := x.Handle(context.Background(), last); !r.OK {
			t.Fatalf("command %d: %+v", i, r)
		}
		e.clk.Advance(time.Second)
	}
	st, err := os.Stat(e.seen)
	if err != nil {
		t.Fatal(err)
	}
	// 600 lines of ~50 bytes uncompacted; live set is ~50 nonces.
	if st.Size() > 300*60 {
		t.Errorf("seen file %d bytes after 600 short-lived commands; not compacted", st.Size())
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	x = e.open(t)
	if r := x.Handle(context.Background(), last); r.Code != wire.CodeReplayed {
		t.Errorf("last nonce after compaction and restart: %+v", r)
	}
}

func TestSubmitRun(t *testing.T) {
	e := newEnv(t)
	got := make(chan wire.CommandResult, 1)
	x, err := command.New(command.Options{PublicKey: ed25519.PublicKey(e.v.PublicKey), Agent: e.v.Agent,
		SeenFile: e.seen, Now: e.clk.Now, Handlers: e.door.handlers(),
		Publish: func(r wire.CommandResult) { got <- r }})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- x.Run(ctx) }()
	if !x.Submit(e.cmd(t, "iiii-0123456789abcdef", nil)) {
		t.Fatal("queue full")
	}
	if r := <-got; !r.OK {
		t.Errorf("%+v", r)
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

func TestOptions(t *testing.T) {
	e := newEnv(t)
	for name, o := range map[string]command.Options{
		"no key":   {Agent: "a", SeenFile: e.seen},
		"no agent": {PublicKey: ed25519.PublicKey(e.v.PublicKey), SeenFile: e.seen},
		"no file":  {PublicKey: ed25519.PublicKey(e.v.PublicKey), Agent: "a"},
	} {
		if _, err := command.New(o); !errors.Is(err, command.ErrOptions) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzHandle: no payload panics the Executor, and nothing runs without a
// valid signature (the fuzzer cannot sign; seeds that are validly signed
// may run once each).
func FuzzHandle(f *testing.F) {
	v, err := commandvectors.Load()
	if err != nil {
		f.Fatal(err)
	}
	valid := map[string]bool{}
	for _, tc := range v.Sequence {
		f.Add(tc.Bytes())
		if tc.Code == wire.CodeOK {
			valid[string(tc.Bytes())] = true
		}
	}
	x, err := command.New(command.Options{PublicKey: ed25519.PublicKey(v.PublicKey), Agent: v.Agent,
		SeenFile: filepath.Join(f.TempDir(), "seen"), Now: func() time.Time { return v.Now },
		MaxHorizon: v.MaxHorizon(), Skew: v.Skew(),
		Handlers: command.Handlers{
			DoorOpen: func(context.Context, string, string) error { return nil },
			DoorMode: func(context.Context, string, string, string) error { return nil },
		}})
	if err != nil {
		f.Fatal(err)
	}
	defer x.Close()
	f.Fuzz(func(t *testing.T, b []byte) {
		r := x.Handle(context.Background(), b)
		if r.OK && !valid[string(b)] {
			c, err := wire.ParseCommand(b)
			if err != nil || wire.VerifyCommand(ed25519.PublicKey(v.PublicKey), &c) != nil {
				t.Fatalf("executed without a valid signature: %q", b)
			}
		}
		if r.Code == "" {
			t.Fatal("no code")
		}
	})
}

// TestRebirth: agent.rebirth takes no args (absent or {}), runs only where
// a Rebirth handler is set (SetHandlers can add it), and anything in its
// args is bad_args.
func TestRebirth(t *testing.T) {
	e := newEnv(t)
	x := e.open(t)
	rebirth := func(args string) func(*wire.Command) {
		return func(c *wire.Command) {
			c.Name, c.Args = wire.CmdRebirth, nil
			if args != "" {
				c.Args = json.RawMessage(args)
			}
		}
	}
	if r := x.Handle(context.Background(), e.cmd(t, "rebirth-nonce-0000", rebirth(""))); r.Code != wire.CodeUnknownCommand {
		t.Fatalf("without a Rebirth handler: %+v, want unknown_command", r)
	}
	var calls int
	h := e.door.handlers()
	h.Rebirth = func(context.Context, string) error { calls++; return nil }
	x.SetHandlers(h)
	for _, tt := range []struct {
		nonce, args, code string
	}{
		{"rebirth-nonce-0001", "", wire.CodeOK},
		{"rebirth-nonce-0002", "{}", wire.CodeOK},
		{"rebirth-nonce-0003", `{"door":"d1"}`, wire.CodeBadArgs},
	} {
		if r := x.Handle(context.Background(), e.cmd(t, tt.nonce, rebirth(tt.args))); r.Code != tt.code {
			t.Errorf("args %q: %+v, want %s", tt.args, r, tt.code)
		}
	}
	if calls != 2 {
		t.Errorf("Rebirth ran %d times, want 2", calls)
	}
	// The door handlers still run after SetHandlers.
	if r := x.Handle(context.Background(), e.cmd(t, "rebirth-nonce-0004", nil)); r.Code != wire.CodeOK || e.door.n() != 1 {
		t.Errorf("door.open after SetHandlers: %+v, door calls %d", r, e.door.n())
	}
}
