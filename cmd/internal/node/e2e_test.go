package node_test

// End-to-end no-loss tests (issue 2, "What it must reach"): a real outbox
// and uplink per agent, a real broker (mochi and Mosquitto), the hub with
// its bbolt store, and faults: SIGKILL of the agent process, broker
// restart, a partition and a black hole through the fault proxy, and a hub
// restart. In every case the hub must end holding every record whose
// Append returned, with no missing range.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/cmd/internal/node"
	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/faultproxy"
	"github.com/kioskedge/kioskedge/testhw/hubtest"
	"github.com/kioskedge/kioskedge/testhw/synth"
)

const root = "kioskedge/e2e"

var fast = uplink.Backoff{Min: 30 * time.Millisecond, Max: 300 * time.Millisecond, StableAfter: time.Second}

// Environment of the re-executed child agent.
const (
	envChild  = "KIOSKEDGE_E2E_AGENT"
	envBroker = "KIOSKEDGE_E2E_BROKER"
	envDir    = "KIOSKEDGE_E2E_DIR"
	envMode   = "KIOSKEDGE_E2E_MODE" // "produce" or "drain"
)

func TestMain(m *testing.M) {
	if id := os.Getenv(envChild); id != "" {
		os.Exit(childAgent(id))
	}
	os.Exit(m.Run())
}

func agentConfig(id, dir, brokerURL string) config.Config {
	c := config.Defaults()
	c.Agent = config.Agent{ID: id, DataDir: dir}
	c.Hub.Broker, c.Hub.Plaintext, c.Hub.Root = brokerURL, true, root
	c.Hub.AckTimeout = config.Duration(2 * time.Second)
	c.Hub.KeepAlive = config.Duration(2 * time.Second)
	c.Hub.BatchRecords = 500
	c.Hub.BackoffMin, c.Hub.BackoffMax, c.Hub.BackoffStable = config.Duration(fast.Min), config.Duration(fast.Max), config.Duration(fast.StableAfter)
	return c
}

func openNode(t testing.TB, c config.Config) *node.Node {
	t.Helper()
	codec, err := wire.NewCodec(wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(codec.Close)
	n, err := node.Open(node.Options{Config: c, Version: "e2e", Codec: codec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// childAgent runs one agent until killed: in "produce" mode it appends
// synthetic records as fast as it can (four producers) and prints
// "appended <seq>" after each Append returned; in "drain" mode it only
// drains. SIGTERM stops it cleanly.
func childAgent(id string) int {
	c := agentConfig(id, os.Getenv(envDir), os.Getenv(envBroker))
	codec, err := wire.NewCodec(wire.Limits{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	n, err := node.Open(node.Options{Config: c, Version: "e2e", Codec: codec})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	defer n.Close()
	ctx, stop := signalContext()
	defer stop()
	fmt.Println("ready") // the parent may signal from now on
	var wg sync.WaitGroup
	if os.Getenv(envMode) == "produce" {
		var mu sync.Mutex
		out := bufio.NewWriter(os.Stdout)
		for p := range 4 {
			wg.Go(func() {
				comm := synth.NewCommunity(uint64(os.Getpid()*8+p), 500, 2, time.Now())
				for ctx.Err() == nil {
					seq, err := n.Append(ctx, comm.Next())
					if err != nil {
						continue
					}
					mu.Lock()
					fmt.Fprintf(out, "appended %d\n", seq)
					out.Flush() // the line must be out before the next Append
					mu.Unlock()
					time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
				}
			})
		}
	}
	err = n.Run(ctx)
	wg.Wait()
	if err != nil {
		fmt.Fprintln(os.Stderr, "child run:", err)
		return 1
	}
	return 0
}

func signalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signalNotify(ch)
	go func() {
		select {
		case <-ch:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func TestAgentSIGKILLMidStreamLosesNothing(t *testing.T) {
	broker.Each(t, func(t *testing.T, b *broker.Broker) {
		dir := t.TempDir()
		hub := hubtest.Start(t, b.URL(), hubtest.Options{Root: root, DBPath: filepath.Join(dir, "hub.db"), Backoff: fast})
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		agentDir := filepath.Join(dir, "agent")
		run := func(mode string) (*exec.Cmd, *acked) {
			cmd := exec.Command(exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), envChild+"=kill-me", envBroker+"="+b.URL(), envDir+"="+agentDir, envMode+"="+mode)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			a := &acked{ready: make(chan struct{})}
			a.wg.Go(func() { a.read(stdout) })
			select {
			case <-a.ready:
			case <-time.After(30 * time.Second):
				t.Fatal("child agent never became ready")
			}
			return cmd, a
		}
		var maxAcked uint64
		const rounds = 6
		for i := range rounds {
			cmd, a := run("produce")
			time.Sleep(time.Duration(200+rand.IntN(500)) * time.Millisecond)
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait() // killed: the exit status says so, nothing to check
			a.wg.Wait()
			if a.count == 0 {
				t.Fatalf("round %d: the child acknowledged no append before the kill", i)
			}
			if a.min <= maxAcked {
				t.Fatalf("round %d: sequence %d handed out again (a previous run acked up to %d)", i, a.min, maxAcked)
			}
			maxAcked = max(maxAcked, a.max)
			t.Logf("round %d: %d appends acknowledged, through seq %d", i, a.count, a.max)
		}
		// A last run only drains, and is stopped cleanly once the hub has all.
		cmd, a := run("drain")
		hub.WaitHolds(t, "kill-me", maxAcked, 60*time.Second)
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("drain child did not stop cleanly: %v", err)
		}
		a.wg.Wait()
	})
}

// acked collects "appended N" lines from a child.
type acked struct {
	wg              sync.WaitGroup
	ready           chan struct{} // closed at the child's "ready" line
	count, min, max uint64
}

func (a *acked) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if sc.Text() == "ready" {
			close(a.ready)
			continue
		}
		s, ok := strings.CutPrefix(sc.Text(), "appended ")
		if !ok {
			continue
		}
		seq, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			continue // a line cut short by the kill
		}
		if a.count == 0 || seq < a.min {
			a.min = seq
		}
		a.max = max(a.max, seq)
		a.count++
	}
}

// produceFor appends records from one goroutine until ctx ends and returns
// the last sequence handed out.
func produceFor(ctx context.Context, t testing.TB, n *node.Node, rate time.Duration) *atomic.Uint64 {
	var last atomic.Uint64
	comm := synth.NewCommunity(rand.Uint64(), 1000, 2, time.Now())
	go func() {
		for ctx.Err() == nil {
			seq, err := n.Append(context.Background(), comm.Next())
			if err != nil {
				t.Errorf("append: %v", err)
				return
			}
			last.Store(seq)
			time.Sleep(rate)
		}
	}()
	return &last
}

// scenario runs one agent in-process through a fault, then checks the hub
// holds everything.
func scenario(t *testing.T, b *broker.Broker, viaProxy bool, prefill int, fault func(t *testing.T, env *scenarioEnv)) {
	dir := t.TempDir()
	env := &scenarioEnv{b: b}
	env.hub = hubtest.Start(t, b.URL(), hubtest.Options{Root: root, DBPath: filepath.Join(dir, "hub.db"), Backoff: fast})
	url := b.URL()
	if viaProxy {
		p, err := faultproxy.New(b.Addr(), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		env.proxy, url = p, p.URL()
	}
	n := openNode(t, agentConfig("agent-1", filepath.Join(dir, "agent"), url))
	// Prefill from concurrent producers, so appends share commits.
	var pre sync.WaitGroup
	const producers = 32
	for p := range producers {
		pre.Go(func() {
			comm := synth.NewCommunity(uint64(p), 1000, 2, time.Now())
			for range prefill / producers {
				if _, err := n.Append(context.Background(), comm.Next()); err != nil {
					t.Errorf("prefill: %v", err)
					return
				}
			}
		})
	}
	pre.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	prodCtx, stopProd := context.WithCancel(context.Background())
	last := produceFor(prodCtx, t, n, time.Millisecond)
	fault(t, env)
	stopProd()
	time.Sleep(10 * time.Millisecond) // let an Append in progress return
	env.hub.WaitHolds(t, "agent-1", last.Load(), 60*time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("uplink run: %v", err)
	}
	if d := n.Outbox.Stats().Depth; d > uint64(n.Outbox.Stats().NextSeq) {
		t.Errorf("outbox depth %d", d)
	}
}

type scenarioEnv struct {
	b     *broker.Broker
	proxy *faultproxy.Proxy
	hub   *hubtest.Hub // Stop and Restart keep its database file
}

// waitSome waits until the hub holds at least n records of agent-1.
func (e *scenarioEnv) waitSome(t *testing.T, n uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if r, ok := e.hub.Received("agent-1"); ok && r.Count >= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("hub never reached %d records", n)
}

func TestBrokerRestartMidDrainLosesNothing(t *testing.T) {
	broker.Each(t, func(t *testing.T, b *broker.Broker) {
		scenario(t, b, false, 20_000, func(t *testing.T, e *scenarioEnv) {
			e.waitSome(t, 2000)
			if err := e.b.Restart(); err != nil {
				t.Fatal(err)
			}
		})
	})
}

func TestPartitionAndBlackHoleLoseNothing(t *testing.T) {
	broker.Each(t, func(t *testing.T, b *broker.Broker) {
		scenario(t, b, true, 5_000, func(t *testing.T, e *scenarioEnv) {
			e.waitSome(t, 1000)
			e.proxy.SetRefuse(true)
			e.proxy.Cut()
			time.Sleep(time.Second) // records keep being appended offline
			e.proxy.SetRefuse(false)
			e.waitSome(t, 6000)
			e.proxy.SetBlackHole(true)
			time.Sleep(3 * time.Second) // past the keepalive: the agent notices
			e.proxy.SetBlackHole(false)
		})
	})
}

func TestHubRestartMidDrainLosesNothing(t *testing.T) {
	broker.Each(t, func(t *testing.T, b *broker.Broker) {
		scenario(t, b, false, 20_000, func(t *testing.T, e *scenarioEnv) {
			e.waitSome(t, 2000)
			e.hub.Stop()
			time.Sleep(500 * time.Millisecond) // the agent's batches meet no hub
			e.hub.Restart()
		})
	})
}
