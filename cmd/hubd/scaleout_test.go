package main

// Scale-out end to end (issue 7 items 6 and the "two hubd instances"
// target): two hubd processes share one PostgreSQL database (a private
// pgtest cluster) and the agents' batches (a shared subscription, one
// -share group) on a real broker. Agents, each an outbox drained by an
// uplink as on a box, publish a few thousand records while the test
// SIGKILLs one hubd once about a third is stored; the batches it had
// taken and not acked are resent by the agents (ack timeout) and stored
// by the other. Then, in SQL (psql): every (agent, seq) 1..N is stored
// exactly once; every outbox is acked through its last record; the
// surviving hubd's metrics show it stored records after the kill.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/outbox"
	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/uplink/uplinktest"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/pgtest"
)

const (
	envScaleOutHub = "KIOSKEDGE_SCALEOUT_HUB_ARGS" // JSON list of hubd flags
	scaleOutRoot   = "kioskedge/scaleout"
)

// TestScaleOutHubChild is one hubd of TestScaleOutSIGKILL, run as a
// re-executed test binary through the real flag parsing and serve; in a
// normal run it does nothing.
func TestScaleOutHubChild(t *testing.T) {
	js := os.Getenv(envScaleOutHub)
	if js == "" {
		return // not the child
	}
	var args []string
	if err := json.Unmarshal([]byte(js), &args); err != nil {
		t.Fatal(err)
	}
	if err := run(args, os.Stderr); err != nil {
		t.Fatal(err)
	}
}

// hubProc is a hubd child process.
type hubProc struct {
	name string
	cmd  *exec.Cmd
	addr chan string // the HTTP address, once logged
	done chan struct{}
	mu   sync.Mutex
	tail []string // its last log lines
}

func startHubProc(t *testing.T, name string, args []string) *hubProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	h := &hubProc{name: name, addr: make(chan string, 1), done: make(chan struct{})}
	h.cmd = exec.Command(exe, "-test.run=^TestScaleOutHubChild$")
	h.cmd.Env = append(os.Environ(), envScaleOutHub+"="+string(js))
	stderr, err := h.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	h.cmd.Stdout = io.Discard
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(h.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			var m struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &m) == nil && m.Msg == "hub http api listening" {
				h.addr <- m.Addr
			}
			h.mu.Lock()
			h.tail = append(h.tail, line)
			if len(h.tail) > 40 {
				h.tail = h.tail[len(h.tail)-40:]
			}
			h.mu.Unlock()
		}
		// Wait reaps the process; a killed one's error is expected.
		_ = h.cmd.Wait()
	}()
	t.Cleanup(func() {
		// A process still running when the test ends is killed.
		_ = h.cmd.Process.Kill()
		<-h.done
		if t.Failed() {
			h.mu.Lock()
			t.Logf("%s: last log lines:\n%s", name, strings.Join(h.tail, "\n"))
			h.mu.Unlock()
		}
	})
	return h
}

// waitAddr returns the hub's HTTP address once it logged it.
func (h *hubProc) waitAddr(t *testing.T) string {
	t.Helper()
	select {
	case a := <-h.addr:
		h.addr <- a
		return a
	case <-h.done:
		t.Fatalf("%s exited before listening", h.name)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not listen within 30 s", h.name)
	}
	return ""
}

// metric reads one unlabelled metric from the hub's /metrics.
func metric(addr, name string) (float64, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", addr, name)
}

func mustMetric(t *testing.T, addr, name string) float64 {
	t.Helper()
	v, err := metric(addr, name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// scaleAgent is one box's store-and-forward path: an outbox drained by an
// uplink.
type scaleAgent struct {
	id string
	ob *outbox.Outbox
	u  *uplink.Uplink
}

func startScaleAgent(t *testing.T, url, id string) *scaleAgent {
	t.Helper()
	ob, u := uplinktest.Agent(t, uplink.Options{
		Session: uplink.SessionOptions{Broker: url, AllowPlaintext: true,
			Backoff: uplink.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond, StableAfter: time.Second}},
		Root: scaleOutRoot, Agent: id, BootID: "boot-" + id, Version: "scaleout",
		// Small batches, a small window: many batches for the shared
		// subscription to split, and some in flight at the kill. The ack
		// timeout is what brings the killed hub's batches back.
		BatchRecords: 25, Window: 4, AckTimeout: 2 * time.Second, HealthInterval: time.Hour,
	}, nil)
	return &scaleAgent{id: id, ob: ob, u: u}
}

func (a *scaleAgent) append(n int) error {
	for range n {
		_, err := a.ob.Append(context.Background(), wire.Record{Kind: wire.KindAccess, Class: wire.ClassCritical,
			Time: time.Unix(1_700_000_000, 0), Body: []byte(`{"door":"d1","granted":true}`)})
		if err != nil {
			return err
		}
	}
	return nil
}

// psql runs one query on dsn with psql (unaligned, tuples only, fields
// separated by tabs) and returns its output lines.
func psql(t *testing.T, dsn, query string) []string {
	t.Helper()
	tool := "psql"
	if bin, err := pgtest.Find(); err == nil {
		if p := filepath.Join(bin, "psql"); fileExists(p) {
			tool = p
		}
	}
	out, err := exec.Command(tool, "-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", query).CombinedOutput()
	if err != nil {
		t.Fatalf("psql %q: %v\n%s", query, err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		return strings.Split(s, "\n")
	}
	return nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func until(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestScaleOutSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("runs PostgreSQL, a broker and two hubd processes")
	}
	start := time.Now()
	pg := pgtest.Start(t)
	if err := pg.CreateDatabase("scaleout"); err != nil {
		t.Fatal(err)
	}
	dsn := pg.DSN("scaleout")
	kind := broker.Mosquitto
	if _, err := broker.MosquittoPath(); errors.Is(err, broker.ErrMosquittoNotFound) {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v; CI must install it: apt-get install -y mosquitto", err)
		}
		t.Log("mosquitto not installed: running against Mochi (CI runs Mosquitto)")
		kind = broker.Mochi
	}
	b := broker.ForTest(t, broker.Options{Kind: kind})

	hubArgs := func(name string) []string {
		return []string{"-broker", b.URL(), "-plaintext", "-root", scaleOutRoot, "-db", dsn,
			"-share", "ingest", "-client-id", "hubd-" + name, "-http", "127.0.0.1:0", "-log-level", "info"}
	}
	hubs := []*hubProc{startHubProc(t, "hubd-a", hubArgs("a")), startHubProc(t, "hubd-b", hubArgs("b"))}
	addrs := []string{hubs[0].waitAddr(t), hubs[1].waitAddr(t)}
	for i, a := range addrs {
		until(t, hubs[i].name+" connected to the broker", 30*time.Second, func() bool {
			v, err := metric(a, "kioskedge_hub_mqtt_connected")
			return err == nil && v == 1
		})
	}

	const agents, perAgent, backlog = 6, 600, 100
	total := float64(agents * perAgent)
	as := make([]*scaleAgent, agents)
	for i := range as {
		as[i] = startScaleAgent(t, b.URL(), fmt.Sprintf("scale-%02d", i))
		if err := as[i].append(backlog); err != nil {
			t.Fatal(err)
		}
	}
	// The rest arrives while the hubs ingest: 10 records per agent every
	// 40 ms, so the kill falls mid-ingest.
	feedCtx, stopFeed := context.WithCancel(context.Background())
	feedDone := make(chan error, 1)
	go func() {
		for left := perAgent - backlog; left > 0; left -= 10 {
			for _, a := range as {
				if err := a.append(min(10, left)); err != nil {
					feedDone <- err
					return
				}
			}
			select {
			case <-feedCtx.Done():
				feedDone <- feedCtx.Err()
				return
			case <-time.After(40 * time.Millisecond):
			}
		}
		feedDone <- nil
	}()
	defer stopFeed()

	stored := func(i int) float64 { return mustMetric(t, addrs[i], "kioskedge_hub_records_total") }
	until(t, "a third of the records stored", 60*time.Second, func() bool { return stored(0)+stored(1) >= total/3 })
	victim, survivor := 0, 1
	if stored(0) == 0 {
		victim, survivor = 1, 0
	}
	byVictim, bySurvivor := stored(victim), stored(survivor)
	if err := hubs[victim].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-hubs[victim].done
	killedAt := time.Since(start)
	t.Logf("SIGKILLed %s at %v having stored %.0f records (%s: %.0f) of %.0f", hubs[victim].name,
		killedAt.Round(time.Millisecond), byVictim, hubs[survivor].name, bySurvivor, total)
	if byVictim == 0 {
		t.Fatalf("%s stored nothing before the kill: the shared subscription did not split the ingest", hubs[victim].name)
	}

	if err := <-feedDone; err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		until(t, a.id+" acked through its last record", 60*time.Second, func() bool {
			return a.ob.AckedThrough() == perAgent
		})
		if d := a.ob.Stats().Depth; d != 0 {
			t.Fatalf("%s: outbox depth %d after the last ack", a.id, d)
		}
	}
	after := stored(survivor)
	var rewinds uint64
	for _, a := range as {
		rewinds += a.u.Stats().AckTimeouts
	}
	t.Logf("%s stored %.0f records after the kill (%.0f in all); the agents' ack timeouts: %d; all acked at %v",
		hubs[survivor].name, after-bySurvivor, after, rewinds, time.Since(start).Round(time.Millisecond))
	if after <= bySurvivor {
		t.Fatalf("%s stored nothing after the kill (%.0f before, %.0f after)", hubs[survivor].name, bySurvivor, after)
	}

	// In SQL: every (agent, seq) 1..N once, no other row.
	rows := psql(t, dsn, `SELECT agent, count(*), count(DISTINCT seq), min(seq), max(seq) FROM records GROUP BY agent ORDER BY agent`)
	if len(rows) != agents {
		t.Fatalf("records of %d agents, want %d: %q", len(rows), agents, rows)
	}
	for i, r := range rows {
		want := fmt.Sprintf("scale-%02d\t%d\t%d\t1\t%d", i, perAgent, perAgent, perAgent)
		if r != want {
			t.Errorf("agent row %q, want %q (agent, rows, distinct seqs, min, max)", r, want)
		}
	}
	agentsRows := psql(t, dsn, `SELECT agent, received, contiguous FROM agents ORDER BY agent`)
	for i, r := range agentsRows {
		if want := fmt.Sprintf("scale-%02d\t%d\t%d", i, perAgent, perAgent); r != want {
			t.Errorf("agents row %q, want %q", r, want)
		}
	}

	// The survivor stops cleanly.
	if err := hubs[survivor].cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-hubs[survivor].done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not stop within 30 s of SIGTERM", hubs[survivor].name)
	}
	if code := hubs[survivor].cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("%s exited %d after SIGTERM", hubs[survivor].name, code)
	}
	t.Logf("scale-out test took %v", time.Since(start).Round(time.Millisecond))
}
