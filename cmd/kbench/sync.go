package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"

	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/cmd/internal/node"
	"github.com/kioskedge/kioskedge/sync/hub/hubrun"
	"github.com/kioskedge/kioskedge/sync/outbox"
	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/faultproxy"
	"github.com/kioskedge/kioskedge/testhw/synth"
)

// The sync suite (issue 2 part 8): drain a pre-filled outbox of cfg.N
// synthetic records through a real Mosquitto to the hub, which stores and
// acks them, until the agent's outbox is empty and the hub holds them all.
//
// The agent runs as a child process (kbench re-executes itself), so its
// anonymous memory and start-up time are its own, not the hub's or the
// broker's. Its traffic goes through a pass-through faultproxy, which counts
// the bytes on the wire. Baselines, from the same run:
//   - sync/drain: one QoS 1 message per record, waiting for each PUBACK,
//     no hub storage (the naive uplink) through the same broker;
//   - sync/startup_ready_ms: the same start-up with an empty outbox;
//   - sync/peak_rss_anon_mb: the child's RssAnon when ready, before draining;
//   - sync/wire_bytes_per_record: the stored (uncompressed) record size.
//
// -cold drains a second, equal backlog after dropping the page cache.

const (
	envAgentChild = "KBENCH_AGENT_CHILD" // set: run as the draining agent
	envAgentDir   = "KBENCH_AGENT_DIR"
	envAgentURL   = "KBENCH_AGENT_BROKER"
	syncRoot      = "kbench/sync"
	syncAgent     = "bench-agent"
)

func syncSuite(ctx context.Context, cfg Config) ([]Row, error) {
	n, naiveN := cfg.N, 20_000
	if cfg.Quick {
		n, naiveN = min(n, 100_000), 5_000
	}
	if _, err := broker.MosquittoPath(); err != nil {
		return nil, fmt.Errorf("the sync suite drains through a real Mosquitto: %w (apt-get install -y mosquitto)", err)
	}
	dir, err := cfg.tempDir("sync")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	b, err := broker.Start(broker.Options{Kind: broker.Mosquitto})
	if err != nil {
		return nil, err
	}
	defer b.Close()

	sample, err := sampleRecords(1000)
	if err != nil {
		return nil, err
	}
	cfg.progressf("sync: naive baseline, %d records one QoS 1 message each", naiveN)
	naive, err := naiveRate(ctx, b.URL(), sample, naiveN)
	if err != nil {
		return nil, fmt.Errorf("naive baseline: %w", err)
	}

	cfg.progressf("sync: start-up baseline with an empty outbox")
	empty, err := drainOnce(ctx, cfg, b, filepath.Join(dir, "empty"), 0, false)
	if err != nil {
		return nil, fmt.Errorf("empty start-up: %w", err)
	}
	warm, err := drainOnce(ctx, cfg, b, filepath.Join(dir, "warm"), n, false)
	if err != nil {
		return nil, err
	}
	var rawPerRecord float64
	for _, r := range sample {
		rawPerRecord += float64(len(r))
	}
	rawPerRecord /= float64(len(sample))

	rows := []Row{
		newRow("sync", "drain", warm.rate(), "records/s", naive, "one QoS 1 message per record, waiting for each PUBACK"),
		newRow("sync", "peak_rss_anon_mb", warm.peakAnonMB, "MB", warm.readyAnonMB, "the agent's RssAnon when ready, before draining"),
		newRow("sync", "startup_ready_ms", warm.readyMs, "ms", empty.readyMs, "start-up with an empty outbox"),
		newRow("sync", "wire_bytes_per_record", float64(warm.wireBytes)/float64(n), "bytes", rawPerRecord, "the stored record, uncompressed"),
	}
	if cfg.Cold {
		cold, err := drainOnce(ctx, cfg, b, filepath.Join(dir, "cold"), n, true)
		if err != nil {
			return rows, err
		}
		rows = append(rows, newRow("sync", "drain_cold", cold.rate(), "records/s", naive, "one QoS 1 message per record, waiting for each PUBACK"))
	}
	return rows, nil
}

// sampleRecords returns the stored form of n synthetic records.
func sampleRecords(n int) ([][]byte, error) {
	c := synth.NewCommunity(42, 5000, 4, time.Now())
	out := make([][]byte, n)
	for i := range out {
		b, err := wire.MarshalRecord(c.Next())
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

// naiveRate publishes n records one per QoS 1 message, each waiting for its
// PUBACK, and returns records/s.
func naiveRate(ctx context.Context, url string, sample [][]byte, n int) (float64, error) {
	s, err := uplink.NewSession(uplink.SessionOptions{Broker: url, ClientID: "kbench-naive", AllowPlaintext: true})
	if err != nil {
		return 0, err
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.Run(runCtx) }) // ends with runCtx; errors surface as publish errors
	defer func() { stop(); wg.Wait() }()
	for !s.Connected() {
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return 0, err
		}
	}
	topic := wire.Topics{Root: syncRoot, Agent: "naive"}.Events()
	start := time.Now()
	for i := range n {
		if err := s.Publish(ctx, uplink.Message{Topic: topic, QoS: 1, Payload: sample[i%len(sample)]}); err != nil {
			return 0, err
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

type drainResult struct {
	n           int
	elapsed     time.Duration
	readyMs     float64
	readyAnonMB float64
	peakAnonMB  float64
	wireBytes   int64
}

func (d drainResult) rate() float64 { return float64(d.n) / d.elapsed.Seconds() }

// drainOnce pre-fills an outbox with n records, optionally drops the page
// cache, starts the agent child and a fresh hub, and measures until the hub
// holds all n and the child's outbox is empty.
func drainOnce(ctx context.Context, cfg Config, b *broker.Broker, dir string, n int, cold bool) (drainResult, error) {
	res := drainResult{n: n}
	agentDir := filepath.Join(dir, "agent")
	if err := os.MkdirAll(agentDir, 0o700); err != nil {
		return res, err
	}
	if n > 0 {
		cfg.progressf("sync: pre-filling %d records", n)
		if err := prefill(ctx, filepath.Join(agentDir, "outbox.db"), n); err != nil {
			return res, fmt.Errorf("prefill: %w", err)
		}
	}
	if cold {
		if err := dropPageCache(); err != nil {
			return res, fmt.Errorf("-cold: %w", err)
		}
	}
	proxy, err := faultproxy.New(b.Addr(), nil)
	if err != nil {
		return res, err
	}
	defer proxy.Close()
	srv, err := hubrun.New(hubrun.Config{Broker: b.URL(), AllowPlaintext: true, Root: syncRoot,
		DBPath: filepath.Join(dir, "hub.db"), ClientID: "kbench-hub-" + filepath.Base(dir)})
	if err != nil {
		return res, err
	}
	defer srv.Close()
	hubCtx, stopHub := context.WithCancel(ctx)
	var hubWG sync.WaitGroup
	hubWG.Go(func() { _ = srv.Run(hubCtx) }) // returns nil when stopped; ingest errors are counted in its stats
	defer func() { stopHub(); hubWG.Wait() }()

	exe, err := os.Executable()
	if err != nil {
		return res, err
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), envAgentChild+"=1", envAgentDir+"="+agentDir, envAgentURL+"="+proxy.URL())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return res, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return res, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // a child already gone is fine
		_ = cmd.Wait()                          // its exit status says nothing about the figures
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return res, fmt.Errorf("agent child: %w", err)
	}
	ready, ok := strings.CutPrefix(strings.TrimSpace(line), "ready ")
	if !ok {
		return res, fmt.Errorf("agent child said %q", line)
	}
	if res.readyMs, err = strconv.ParseFloat(ready, 64); err != nil {
		return res, fmt.Errorf("agent child said %q", line)
	}
	res.readyAnonMB, _ = procStatusMB(cmd.Process.Pid, "RssAnon:") // zero if /proc is not readable; reported as such
	res.peakAnonMB = res.readyAnonMB
	if n == 0 {
		return res, nil
	}
	cfg.progressf("sync: draining %d records (cold=%v)", n, cold)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	lastReport := time.Now()
	for {
		if a, err := procStatusMB(cmd.Process.Pid, "RssAnon:"); err == nil {
			res.peakAnonMB = max(res.peakAnonMB, a)
		}
		r, ok := srv.Hub().AgentReceived(syncAgent)
		if ok && r.HighestContiguous >= uint64(n) {
			break
		}
		if time.Since(lastReport) > 2*time.Second {
			cfg.progressf("sync: hub holds %d of %d", r.Count, n)
			lastReport = time.Now()
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-tick.C:
		}
	}
	res.elapsed = time.Since(start)
	res.wireBytes = proxy.Stats().BytesUp
	return res, nil
}

// prefill appends n synthetic records to a fresh outbox from 64 producers.
func prefill(ctx context.Context, path string, n int) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	ob, err := outbox.Open(outbox.Options{Path: path})
	if err != nil {
		return err
	}
	const producers = 64
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for p := range producers {
		wg.Go(func() {
			c := synth.NewCommunity(uint64(p), 5000, 4, time.Now())
			for i := p; i < n; i += producers {
				if _, err := ob.Append(ctx, c.Next()); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return errors.Join(<-errs, ob.Close())
}

// runAgentChild is the draining agent: it opens the node, prints
// "ready <ms>" and drains until SIGTERM.
func runAgentChild() int {
	start := time.Now()
	c := config.Defaults()
	c.Agent = config.Agent{ID: syncAgent, DataDir: os.Getenv(envAgentDir)}
	c.Hub.Broker, c.Hub.Plaintext, c.Hub.Root = os.Getenv(envAgentURL), true, syncRoot
	c.Outbox.ReclaimAbove = -1 // the figure is the drain, not the file swap after it
	codec, err := wire.NewCodec(wire.Limits{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "kbench agent:", err)
		return 1
	}
	defer codec.Close()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	nd, err := node.Open(node.Options{Config: c, Version: "kbench", Codec: codec, Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "kbench agent:", err)
		return 1
	}
	defer nd.Close()
	fmt.Printf("ready %.3f\n", float64(time.Since(start).Microseconds())/1000)
	ctx, stop := signalCtx()
	defer stop()
	if err := nd.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "kbench agent:", err)
		return 1
	}
	return 0
}

// procStatusMB reads a kB field of /proc/<pid>/status, in MB.
func procStatusMB(pid int, field string) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, field); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc status", field)
}

// dropPageCache flushes dirty pages and drops the page cache (needs root).
func dropPageCache() error {
	syscall.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		return fmt.Errorf("dropping the page cache: %w", err)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func signalCtx() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
}
