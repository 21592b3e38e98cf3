package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kioskedge/kioskedge/sync/hub/hubrun"
	"github.com/kioskedge/kioskedge/sync/hubpg"
	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/pgtest"
)

// The fleet suite's row (c), fleet/ingest_2x_ratio (issue 7 item 8): the
// ingest of two hubd instances on one PostgreSQL database against one.
//
// A private PostgreSQL cluster (testhw/pgtest, in a temporary directory)
// and a real Mosquitto (Mochi when it is missing; the progress line says
// so). Six runs: one hub, two, two, one, one, two (ingestOrder). Each run
// gets a fresh database and fresh hub processes (hubrun, hubd's server,
// as children of kbench: -db postgres://…, shared-subscription group
// "ingest"; the baseline's one instance is in the same group), then the
// same agents (uplinks in kbench's process, each with an in-memory
// backlog of the same records, batches of ingestBatch records) connect
// and drain their backlog at once. A run's rate is the records stored
// per second, counted in PostgreSQL (the agents table's received counts,
// polled every 50 ms), between 10% and 90% of the total, so the agents'
// connect and the last stragglers are left out. Every record must be
// stored and acked in every run.
//
// Row: fleet/ingest_2x_ratio, value the two instances' records/s (the
// median of their three runs), baseline one instance's (likewise), ratio
// the first over the second. The target is ≥ 0.9 on one 2-core machine,
// where the hubs, PostgreSQL, the broker and the agents all share the
// two cores; on separate machines the second instance adds its own CPU.
// One hub's ingest is bound by its commit latency as much as by CPU (its
// committer waits for each PostgreSQL commit before the next; two hubs'
// commits overlap), so two can beat one even here.
//
// Sizes: 100 agents × 3,000 records (300,000 per run, 2 to 5 s of ingest
// each here, about 40 s in all); -quick: 20 agents × 5,000 (about 1 s).

// ingestSize is what row (c) measures; the test shrinks it.
type ingestSize struct {
	kind    broker.Kind
	agents  int
	records int // per agent
}

const (
	ingestRoot  = "kbench/ingest"
	ingestShare = "ingest"
	ingestBatch = 100                   // records per batch: many batches to share out
	ingestPoll  = 50 * time.Millisecond // how often the stored count is read
	// ingestDeadline bounds one run: waiting longer is a failure.
	ingestDeadline = 3 * time.Minute
	envIngestHub   = "KBENCH_INGEST_HUB" // set: run as an ingest hub child (JSON ingestHubArgs)
)

// ingestOrder is the hubs of each run, interleaved so a drift over the
// runs (the database's size, the machine's other load) weighs on both
// alike; each one's median is kept, so one run disturbed by another
// process does not decide the row.
var ingestOrder = []int{1, 2, 2, 1, 1, 2}

type ingestHubArgs struct {
	Broker, DSN, ClientID string
}

func init() {
	if js := os.Getenv(envIngestHub); js != "" {
		os.Exit(runIngestHubChild(js))
	}
}

// withIngest appends row (c) to the rows the rest of the fleet suite
// returned, measured even when those failed (its error is joined).
func withIngest(ctx context.Context, cfg Config) func([]Row, error) ([]Row, error) {
	return func(rows []Row, err error) ([]Row, error) {
		if ctx.Err() != nil {
			return rows, err
		}
		sz := ingestSize{kind: broker.Mosquitto, agents: 100, records: 3000}
		if cfg.Quick {
			sz.agents, sz.records = 20, 5000
		}
		if _, merr := broker.MosquittoPath(); merr != nil {
			cfg.progressf("fleet: ingest: %v; row c runs against Mochi here", merr)
			sz.kind = broker.Mochi
		}
		row, ierr := runIngest(ctx, cfg, sz)
		if ierr != nil {
			return rows, errors.Join(err, fmt.Errorf("ingest: %w", ierr))
		}
		return append(rows, row), err
	}
}

// runIngest measures one hub, then two, and returns the row.
func runIngest(ctx context.Context, cfg Config, sz ingestSize) (Row, error) {
	if _, err := pgtest.Find(); err != nil {
		return Row{}, fmt.Errorf("%w (apt-get install -y postgresql)", err)
	}
	// Not under cfg.Dir: as root the server runs as postgres, which must
	// reach the directory (pgtest.ErrRootDir).
	pgDir, err := os.MkdirTemp("", "kbench-ingest-pg-")
	if err != nil {
		return Row{}, err
	}
	defer os.RemoveAll(pgDir)
	pg, err := pgtest.New(pgDir, pgtest.Options{})
	if err != nil {
		return Row{}, err
	}
	defer func() {
		if err := pg.Stop(); err != nil {
			cfg.progressf("fleet: ingest: stop PostgreSQL: %v", err)
		}
	}()
	b, err := broker.Start(broker.Options{Kind: sz.kind})
	if err != nil {
		return Row{}, err
	}
	defer b.Close()
	var runs [2][]float64 // records/s of each run, by hubs-1
	for i, hubs := range ingestOrder {
		db := fmt.Sprintf("ingest_%d_%dx", i, hubs)
		if err := pg.CreateDatabase(db); err != nil {
			return Row{}, err
		}
		r, err := ingestOnce(ctx, cfg, b, pg.DSN(db), hubs, sz)
		if err != nil {
			return Row{}, fmt.Errorf("%d hub(s): %w", hubs, err)
		}
		runs[hubs-1] = append(runs[hubs-1], r)
	}
	rates := [2]float64{percentile(runs[0], 0.5), percentile(runs[1], 0.5)}
	against := fmt.Sprintf("one hub instance: same shared-subscription group, database, broker (%s), %d agents × %d records; "+
		"median of 3 runs each, run 1-2-2-1-1-2; every process on the same 2 cores", sz.kind, sz.agents, sz.records)
	cfg.progressf("fleet: ingest: one hub %.0f records/s, two hubs %.0f records/s: %.2f×", rates[0], rates[1], rates[1]/rates[0])
	return newRow("fleet", "ingest_2x_ratio", rates[1], "records/s", rates[0], against), nil
}

// ingestOnce starts n hub children on dsn, drains the agents' backlogs
// through them and returns the records stored per second.
func ingestOnce(ctx context.Context, cfg Config, b *broker.Broker, dsn string, n int, sz ingestSize) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, ingestDeadline)
	defer cancel()
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Signal(syscall.SIGTERM) // a child already gone is fine
			_ = p.Wait()                          // its errors went to stderr
		}
	}()
	for i := range n {
		p, err := startIngestHub(ctx, ingestHubArgs{Broker: b.URL(), DSN: dsn, ClientID: fmt.Sprintf("kbench-ingest-hub-%d", i)})
		if p != nil {
			procs = append(procs, p)
		}
		if err != nil {
			return 0, err
		}
	}
	store, err := hubpg.Open(ctx, dsn, hubpg.Options{})
	if err != nil {
		return 0, err
	}
	defer store.Close()

	codec, err := wire.NewCodec(wire.Limits{})
	if err != nil {
		return 0, err
	}
	defer codec.Close()
	dir, err := cfg.tempDir("ingest")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	srcs := make([]*backlogSource, sz.agents)
	ups := make([]*uplink.Uplink, sz.agents)
	for i := range ups {
		if srcs[i], err = newBacklogSource(sz.records); err != nil {
			return 0, err
		}
		id := fmt.Sprintf("ingest-%04d", i)
		ups[i], err = uplink.New(uplink.Options{
			Session: uplink.SessionOptions{Broker: b.URL(), AllowPlaintext: true},
			Root:    ingestRoot, Agent: id, BootID: "kbench", Version: "kbench",
			BatchRecords: ingestBatch, Window: 8, HealthInterval: time.Hour,
			BdSeqPath: filepath.Join(dir, id+".bdseq"), Codec: codec,
		}, srcs[i])
		if err != nil {
			return 0, err
		}
	}
	total := uint64(sz.agents * sz.records)
	upCtx, stopUp := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopUp(); wg.Wait() }()
	start := time.Now()
	for _, u := range ups {
		wg.Go(func() { _ = u.Run(upCtx) }) // nil when stopped; progress is read in PostgreSQL
	}
	var (
		t10, t90 time.Time
		n10, n90 uint64
	)
	for {
		var got uint64
		for _, a := range store.Agents() {
			got += a.Received
		}
		now := time.Now()
		if t10.IsZero() && got >= total/10 {
			t10, n10 = now, got
		}
		if got >= total*9/10 {
			t90, n90 = now, got
			if got >= total {
				break
			}
		}
		if err := sleepCtx(ctx, ingestPoll); err != nil {
			return 0, fmt.Errorf("%d of %d records stored: %w", got, total, err)
		}
	}
	all := time.Since(start)
	for _, s := range srcs {
		for s.AckedThrough() < uint64(sz.records) {
			if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
				return 0, fmt.Errorf("an agent acked through %d of %d: %w", s.AckedThrough(), sz.records, err)
			}
		}
	}
	rate := float64(n90-n10) / t90.Sub(t10).Seconds()
	if t90.Equal(t10) {
		rate = float64(total) / all.Seconds() // too fast to tell 10% from 90%
	}
	cfg.progressf("fleet: ingest: %d hub(s): %d records stored in %v, %.0f records/s between 10%% and 90%%",
		n, total, all.Round(time.Millisecond), rate)
	return rate, nil
}

// startIngestHub starts one hub child and waits for its "ready" line.
func startIngestHub(ctx context.Context, args ingestHubArgs) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	js, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envIngestHub+"="+string(js))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "ready" {
			err = fmt.Errorf("hub child said %q", line)
		}
		ready <- err
	}()
	select {
	case err = <-ready:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return cmd, fmt.Errorf("ingest hub child: %w", err)
	}
	return cmd, nil
}

// runIngestHubChild is one ingest hub: hubrun on PostgreSQL in the
// shared-subscription group, as hubd serve -db postgres://… -share
// ingest runs it. It prints "ready" once subscribed and runs until
// SIGTERM.
func runIngestHubChild(js string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "kbench ingest hub:", err)
		return 1
	}
	var a ingestHubArgs
	if err := json.Unmarshal([]byte(js), &a); err != nil {
		return fail(err)
	}
	srv, err := hubrun.New(hubrun.Config{Broker: a.Broker, AllowPlaintext: true, Root: ingestRoot, DB: a.DSN,
		ShareGroup: ingestShare, ClientID: a.ClientID, NoClock: true, Backoff: hubBackoff})
	if err != nil {
		return fail(err)
	}
	defer srv.Close()
	ctx, stop, err := runChildHub(srv)
	defer stop()
	if err != nil {
		return fail(err)
	}
	fmt.Println("ready")
	<-ctx.Done()
	return 0
}

// backlogSource is an agent's backlog held in memory: records 1..n, all
// there from the start.
type backlogSource struct {
	recs   []wire.Entry
	acked  atomic.Uint64
	notify chan struct{}
}

func newBacklogSource(n int) (*backlogSource, error) {
	s := &backlogSource{notify: make(chan struct{}, 1)}
	raw, err := wire.MarshalRecord(wire.Record{Kind: wire.KindAccess, Class: wire.ClassCritical,
		Time: time.Now(), Body: []byte(`{"door":"d1","granted":true}`)})
	if err != nil {
		return nil, err
	}
	for i := range n {
		s.recs = append(s.recs, wire.Entry{Seq: uint64(i + 1), Raw: raw})
	}
	s.notify <- struct{}{}
	return s, nil
}

func (s *backlogSource) Read(after uint64, maxRecords, maxBytes int) ([]wire.Entry, error) {
	if after >= uint64(len(s.recs)) {
		return nil, nil
	}
	out := s.recs[after:]
	size := 0
	for i, e := range out {
		if i >= maxRecords || (i > 0 && size+len(e.Raw) > maxBytes) {
			return out[:i], nil
		}
		size += len(e.Raw)
	}
	return out, nil
}

func (s *backlogSource) Ack(through uint64) error {
	for {
		cur := s.acked.Load()
		if through <= cur || s.acked.CompareAndSwap(cur, through) {
			return nil
		}
	}
}

func (s *backlogSource) AckedThrough() uint64    { return s.acked.Load() }
func (s *backlogSource) Notify() <-chan struct{} { return s.notify }
