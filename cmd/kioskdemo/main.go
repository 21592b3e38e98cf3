// Command kioskdemo runs KioskEdge's store-and-forward spine on one machine:
// an MQTT broker (in-process, or a real Mosquitto), the hub, and a few agents
// behind a TCP fault proxy, each fed by a synthetic community of residents
// swiping at its gates. Midway it restarts the broker, cuts every agent
// connection and partitions the agents for a while; then it stops the
// residents, waits for the hub to hold everything and prints
//
//	summary: agents=N produced=P delivered=D duplicates=U lost=L
//
// where lost counts records whose Append returned but which the hub does not
// hold. It exits 1 if anything was lost or did not arrive in time.
//
// With -kiosk (the default) one more agent, demo-kiosk-01, is a virtual
// kiosk: the local API (cmd/internal/kiosk) over simulated ID-card and
// social security card readers, a QR scanner and a receipt printer on pty
// pairs, and a demo kiosk page on its own loopback port that uses the API.
// A scripted resident walks through the kiosk flow a few times; its
// transactions count as produced records, and the demo prints
//
//	kiosk: transactions=K printed=R events=E
//
// before the summary.
//
// With -gate (the default) one more agent, demo-smartgate-01, is a virtual
// smart gate (gate.go): two doors and two Wiegand readers simulated from
// its config, an allowlist of residents pushed from the hub, scripted
// residents with known, unknown and expired cards, a door held open, a
// signed remote open and a fire alarm. It prints a "gate: " line per event
// (card numbers masked) and
//
//	gate: summary swipes=S granted=G denied=D bad_frames=B alarms=A remote_opens=R decisions_at_hub=H
//
// before the kiosk line; its records count in the summary like any agent's.
//
// Once the hub has seen every agent online the demo prints
//
//	kioskdemo: fleet dashboard lists all N agents: http://127.0.0.1:PORT/ui/
//
// and with -open (off by default, so the demo runs headless) opens that
// page in a browser: xdg-open, else chromium.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/cmd/internal/node"
	"github.com/kioskedge/kioskedge/sync/hub/hubrun"
	"github.com/kioskedge/kioskedge/sync/sealed"
	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/faultproxy"
	"github.com/kioskedge/kioskedge/testhw/synth"
)

const root = "kioskedge/demo"

type flags struct {
	duration     time.Duration
	agents       int
	rate         int
	brokerKind   string
	faults       bool
	dir          string
	drainTimeout time.Duration
	verbose      bool
	kiosk        bool
	gate         bool
	open         bool
	// openURL opens the dashboard for -open; nil means openInBrowser.
	openURL func(url string) error
}

func main() {
	var f flags
	flag.DurationVar(&f.duration, "duration", 20*time.Second, "how long the residents keep swiping")
	flag.IntVar(&f.agents, "agents", 3, "number of agents (gates)")
	flag.IntVar(&f.rate, "rate", 200, "records per second per agent")
	flag.StringVar(&f.brokerKind, "broker", "mochi", "broker: mochi (in-process) or mosquitto (a real subprocess)")
	flag.BoolVar(&f.faults, "faults", true, "restart the broker, cut connections and partition the agents midway")
	flag.StringVar(&f.dir, "dir", "", "data directory (default: a temporary one, removed at exit)")
	flag.DurationVar(&f.drainTimeout, "drain-timeout", 60*time.Second, "how long to wait for the hub to hold everything")
	flag.BoolVar(&f.verbose, "v", false, "log the components' info lines to stderr")
	flag.BoolVar(&f.kiosk, "kiosk", true, "run a virtual kiosk agent with simulated devices and a demo kiosk page")
	flag.BoolVar(&f.gate, "gate", true, "run a virtual smart gate agent with simulated doors and Wiegand readers, an allowlist from the hub and a scripted day")
	flag.BoolVar(&f.open, "open", false, "open the fleet dashboard in a browser (xdg-open, else chromium) once the hub sees every agent")
	flag.Parse()
	if f.agents < 1 || f.rate < 1 || f.duration <= 0 {
		fmt.Fprintln(os.Stderr, "kioskdemo: -agents, -rate and -duration must be positive")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, f, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kioskdemo:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// agent is one demo gate: its node, its residents and what they produced.
type agent struct {
	id       string
	node     *node.Node
	produced atomic.Uint64 // Appends that returned without error
	lastSeq  atomic.Uint64 // highest sequence an Append returned
	errs     atomic.Uint64
}

func run(ctx context.Context, f flags, out io.Writer) (int, error) {
	// The progress loop and the fault injector both write to out.
	out = &lockedWriter{w: out}
	// The demo narrates faults itself; the components' warnings about the
	// connections it breaks on purpose would only bury the progress lines.
	level := slog.LevelError
	if f.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	dir := f.dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "kioskdemo-")
		if err != nil {
			return 1, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}

	brk, err := broker.Start(broker.Options{Kind: broker.Kind(f.brokerKind), Logger: log.With("component", "broker")})
	if err != nil {
		return 1, fmt.Errorf("broker: %w", err)
	}
	defer brk.Close()
	proxy, err := faultproxy.New(brk.Addr(), log.With("component", "faultproxy"))
	if err != nil {
		return 1, err
	}
	defer proxy.Close()

	// The kiosk's keys: the site key for credential hashes, and the hub's
	// key pair, so the hub opens sealed values and shows them masked.
	var sealKey *sealed.PrivateKey
	var mask func(field, value string) string
	if f.kiosk {
		if sealKey, err = hubKeys(dir); err != nil {
			return 1, fmt.Errorf("keys: %w", err)
		}
		mask = maskPersonal
	}

	// The smart gate's keys and list, and the hub's list directory.
	var gf *gateFiles
	alDir := ""
	if f.gate {
		if gf, err = writeGateFiles(dir); err != nil {
			return 1, fmt.Errorf("gate: %w", err)
		}
		alDir = gf.listDir
	}

	fast := uplink.Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second, StableAfter: 3 * time.Second}
	hubSrv, err := hubrun.New(hubrun.Config{
		Broker: brk.URL(), AllowPlaintext: true, Backoff: fast,
		Root: root, DBPath: filepath.Join(dir, "hub.db"), HTTPAddr: "127.0.0.1:0",
		Logger: log.With("component", "hub"), SealKey: sealKey, Mask: mask, AllowlistDir: alDir,
	})
	if err != nil {
		return 1, fmt.Errorf("hub: %w", err)
	}
	defer hubSrv.Close()
	hubCtx, stopHub := context.WithCancel(context.Background())
	var hubDone sync.WaitGroup
	hubDone.Go(func() {
		if err := hubSrv.Run(hubCtx); err != nil {
			log.Error("hub stopped", "err", err)
		}
	})
	defer func() { stopHub(); hubDone.Wait() }()

	codec, err := wire.NewCodec(wire.Limits{})
	if err != nil {
		return 1, err
	}
	defer codec.Close()
	agents := make([]*agent, f.agents)
	agentCtx, stopAgents := context.WithCancel(context.Background())
	var agentsDone sync.WaitGroup
	defer func() { stopAgents(); agentsDone.Wait() }()
	tune := func(cfg *config.Config) {
		cfg.Hub.Broker, cfg.Hub.Plaintext, cfg.Hub.Root = proxy.URL(), true, root
		if cfg.Agent.Site == "" && cfg.Agent.Region == "" {
			cfg.Agent.Site, cfg.Agent.Region = demoSite, demoRegion
		}
		cfg.Hub.AckTimeout = config.Duration(3 * time.Second)
		cfg.Hub.HealthInterval = config.Duration(5 * time.Second)
		cfg.Hub.BackoffMin, cfg.Hub.BackoffMax, cfg.Hub.BackoffStable = config.Duration(fast.Min), config.Duration(fast.Max), config.Duration(fast.StableAfter)
	}
	for i := range agents {
		a := &agent{id: fmt.Sprintf("demo-gate-%02d", i+1)}
		cfg := config.Defaults()
		cfg.Agent = config.Agent{ID: a.id, DataDir: filepath.Join(dir, a.id)}
		tune(&cfg)
		a.node, err = node.Open(node.Options{Config: cfg, Version: "demo", Codec: codec, Logger: log})
		if err != nil {
			return 1, fmt.Errorf("agent %s: %w", a.id, err)
		}
		defer a.node.Close()
		agents[i] = a
		agentsDone.Go(func() {
			if err := a.node.Run(agentCtx); err != nil {
				log.Error("agent stopped", "agent", a.id, "err", err)
			}
		})
	}
	var vk *virtualKiosk
	if f.kiosk {
		vk, err = openKiosk(dir, proxy.URL(), codec, log, tune)
		if err != nil {
			return 1, fmt.Errorf("kiosk %s: %w", kioskID, err)
		}
		defer vk.close()
		defer vk.k.Close()
		agents = append(agents, vk.agent)
		agentsDone.Go(func() {
			if err := vk.k.Run(agentCtx); err != nil {
				log.Error("kiosk stopped", "agent", kioskID, "err", err)
			}
		})
		vk.servePage()
	}
	var vg *virtualGate
	if f.gate {
		if vg, err = openGate(gf, codec, log, tune); err != nil {
			return 1, fmt.Errorf("gate %s: %w", gateID, err)
		}
		defer vg.close()
		agents = append(agents, vg.agent)
		vg.start(agentCtx, &agentsDone, log)
	}
	fmt.Fprintf(out, "kioskdemo: broker=%s hub API http://%s/api/agents agents=%d rate=%d/s each for %s (data in %s)\n",
		brk.Kind(), hubSrv.HTTPAddr(), len(agents), f.rate, f.duration, dir)
	fmt.Fprintf(out, "kioskdemo: fleet dashboard http://%s/ui/\n", hubSrv.HTTPAddr())
	if vk != nil {
		fmt.Fprintf(out, "kiosk: demo kiosk page %s/ (local API %s; hub records, masked: http://%s/api/agents/%s/records)\n",
			vk.page, vk.api, hubSrv.HTTPAddr(), kioskID)
	}

	// Residents swipe until the duration is up.
	prodCtx, stopProducers := context.WithTimeout(ctx, f.duration)
	defer stopProducers()
	ids := make([]string, len(agents))
	for i, a := range agents {
		ids[i] = a.id
	}
	var dashboard sync.WaitGroup
	dashboard.Go(func() { showDashboard(prodCtx, hubSrv, ids, f, out) })
	defer func() { stopProducers(); dashboard.Wait() }() // before the hub stops
	var producers sync.WaitGroup
	for i, a := range agents[:f.agents] {
		producers.Go(func() { produce(prodCtx, a, synth.NewCommunity(uint64(i+1), 5000, 4, time.Now()), f.rate) })
	}
	if vk != nil {
		// A few residents at the kiosk, scripted through the local API.
		producers.Go(func() { vk.resident(prodCtx, min(max(f.duration/5, 500*time.Millisecond), 5*time.Second), out) })
	}
	if vg != nil {
		// The gate's script runs to its end, past -duration if need be.
		producers.Go(func() { vg.script(ctx, hubSrv, brk.URL(), out) })
	}
	var faultsDone sync.WaitGroup
	if f.faults {
		faultsDone.Go(func() { injectFaults(prodCtx, f.duration, brk, proxy, out) })
	}

	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for prodCtx.Err() == nil {
		select {
		case <-tick.C:
			progress(out, time.Since(start), agents, hubSrv)
		case <-prodCtx.Done():
		}
	}
	producers.Wait()
	faultsDone.Wait()
	proxy.SetRefuse(false)
	proxy.SetBlackHole(false)
	if ctx.Err() != nil {
		return 1, errors.New("interrupted")
	}

	// Wait for the hub to hold everything the residents produced.
	fmt.Fprintf(out, "kioskdemo: residents stopped; waiting for the hub to hold every record\n")
	deadline := time.Now().Add(f.drainTimeout)
	for !allDelivered(agents, hubSrv) && time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case <-tick.C:
			progress(out, time.Since(start), agents, hubSrv)
		case <-ctx.Done():
		}
	}
	stopAgents()
	agentsDone.Wait()

	var produced, delivered, lost uint64
	for _, a := range agents[:f.agents] {
		produced += a.produced.Load()
		d, l := accounted(a, hubSrv)
		delivered += d
		lost += l
	}
	var gateErr error
	if vg != nil {
		produced += vg.agent.produced.Load()
		var d, l uint64
		d, l, gateErr = vg.summary(out, hubSrv)
		delivered += d
		lost += l
	}
	if vk != nil {
		produced += vk.agent.produced.Load()
		r, ok := hubSrv.Hub().AgentReceived(kioskID)
		d, l := vk.accounted(receivedView{highest: r.Highest, missing: r.Missing}, ok)
		delivered += d
		lost += l
		fmt.Fprintf(out, "kiosk: transactions=%d printed=%d events=%d\n", vk.transactions(), vk.printed.Load(), vk.events.Load())
	}
	dups := hubSrv.Hub().Stats().Duplicates
	fmt.Fprintf(out, "summary: agents=%d produced=%d delivered=%d duplicates=%d lost=%d\n",
		len(agents), produced, delivered, dups, lost)
	if lost > 0 {
		return 1, fmt.Errorf("%d records lost", lost)
	}
	if gateErr != nil {
		return 1, gateErr
	}
	return 0, nil
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// produce appends about rate records per second until ctx ends.
func produce(ctx context.Context, a *agent, c *synth.Community, rate int) {
	const step = 20 * time.Millisecond
	per := max(1, rate*int(step)/int(time.Second))
	t := time.NewTicker(step)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for range per {
			seq, err := a.node.Append(context.Background(), c.Next())
			if err != nil {
				a.errs.Add(1)
				continue
			}
			a.produced.Add(1)
			a.lastSeq.Store(seq)
		}
	}
}

// injectFaults restarts the broker at 30% of the run, cuts every agent
// connection at 50%, and partitions the agents from 65% to 80%.
func injectFaults(ctx context.Context, d time.Duration, brk *broker.Broker, proxy *faultproxy.Proxy, out io.Writer) {
	at := func(frac float64) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Duration(frac * float64(d))):
			return true
		}
	}
	if !at(0.30) {
		return
	}
	fmt.Fprintln(out, "fault: restarting the broker")
	if err := brk.Restart(); err != nil {
		fmt.Fprintln(out, "fault: broker restart failed:", err)
	}
	if !at(0.20) {
		return
	}
	fmt.Fprintln(out, "fault: cutting every agent connection")
	proxy.Cut()
	if !at(0.15) {
		return
	}
	fmt.Fprintln(out, "fault: partition — agents cannot reach the broker")
	proxy.SetRefuse(true)
	proxy.Cut()
	at(0.15)
	fmt.Fprintln(out, "fault: partition healed")
	proxy.SetRefuse(false)
}

func progress(out io.Writer, elapsed time.Duration, agents []*agent, srv *hubrun.Server) {
	var produced, delivered, backlog uint64
	online := 0
	for _, a := range agents {
		produced += a.produced.Load()
		backlog += a.node.Outbox.Stats().Depth
		if r, ok := srv.Hub().AgentReceived(a.id); ok {
			delivered += r.Count
		}
		if a.node.Uplink.Stats().Connected {
			online++
		}
	}
	fmt.Fprintf(out, "[%5.1fs] produced=%8d delivered=%8d backlog=%7d connected=%d/%d duplicates=%d\n",
		elapsed.Seconds(), produced, delivered, backlog, online, len(agents), srv.Hub().Stats().Duplicates)
}

func allDelivered(agents []*agent, srv *hubrun.Server) bool {
	for _, a := range agents {
		r, ok := srv.Hub().AgentReceived(a.id)
		if a.lastSeq.Load() > 0 && (!ok || r.HighestContiguous < a.lastSeq.Load()) {
			return false
		}
	}
	return true
}

// accounted returns how many of a's produced sequences the hub holds, and how
// many it does not (the lost ones): holes in its coverage up to lastSeq,
// plus everything above what it has seen.
func accounted(a *agent, srv *hubrun.Server) (delivered, lost uint64) {
	last := a.lastSeq.Load()
	r, ok := srv.Hub().AgentReceived(a.id)
	if !ok {
		return 0, a.produced.Load()
	}
	for _, m := range r.Missing {
		if m[0] <= last {
			lost += min(m[1], last) - m[0] + 1
		}
	}
	if r.Highest < last {
		lost += last - r.Highest
	}
	return r.Count, lost
}
