package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/cmd/internal/node"
	"github.com/kioskedge/kioskedge/cmd/internal/promtext"
	"github.com/kioskedge/kioskedge/sync/hub/hubrun"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
)

// runHub runs a hub with /metrics (as serve wires it) until the test ends.
func runHub(t *testing.T, url string) *hubrun.Server {
	t.Helper()
	cfg := hubrun.Config{Broker: url, AllowPlaintext: true, Backoff: fastBackoff, Root: "ke",
		DBPath: filepath.Join(t.TempDir(), "hub.db"), HTTPAddr: "127.0.0.1:0"}
	if err := lifecycleConfig(&cfg, "", 0, 0, metricsSources{AlertsFiring: func() map[string]int {
		return map[string]int{"agent_offline": 0}
	}}); err != nil {
		t.Fatal(err)
	}
	srv, err := hubrun.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	return srv
}

// runKiosk runs a node without a gate (a kiosk's spine) with the command
// key until the test ends.
func runKiosk(t *testing.T, url, id, pubKey string) *node.Node {
	t.Helper()
	dir := t.TempDir()
	c := config.Defaults()
	c.Agent = config.Agent{ID: id, DataDir: dir, Site: "test-site", Region: "460105001002"}
	c.Hub.Broker, c.Hub.Plaintext, c.Hub.Root = url, true, "ke"
	c.Hub.HealthInterval = config.Duration(time.Hour) // only connects and rebirths publish health
	c.Hub.BackoffMin, c.Hub.BackoffMax, c.Hub.BackoffStable = config.Duration(fastBackoff.Min), config.Duration(fastBackoff.Max), config.Duration(fastBackoff.StableAfter)
	c.Gate.CommandKeyFile, c.Gate.CommandSeenFile = pubKey, filepath.Join(dir, "commands.seen")
	n, _ := runNode(t, c, 0)
	return n
}

type seen struct {
	boot      string
	birthAt   time.Time
	healthAt  time.Time
	hasHealth bool
}

func agentSeen(srv *hubrun.Server, id string) (seen, bool) {
	for _, a := range srv.Hub().Agents() {
		if a.ID != id || !a.Online || a.LastBirth == nil {
			continue
		}
		var b wire.Status
		var h wire.Health
		if json.Unmarshal(a.LastBirth, &b) != nil {
			return seen{}, false
		}
		s := seen{boot: b.BootID, birthAt: b.Time}
		if a.LastHealth != nil && json.Unmarshal(a.LastHealth, &h) == nil {
			s.healthAt, s.hasHealth = h.Time, true
		}
		return s, true
	}
	return seen{}, false
}

// TestRebirthEndToEnd: hubd cmd rebirth reaches a kiosk-only agent (a node
// without a gate now runs the command executor) and the hub receives a
// new birth with the same boot id and a fresh health snapshot.
func TestRebirthEndToEnd(t *testing.T) {
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi})
	keys := t.TempDir()
	var stderr bytes.Buffer
	if err := commandRun(context.Background(), []string{"keygen", "-out", keys}, &stderr, &stderr); err != nil {
		t.Fatal(err)
	}
	srv := runHub(t, b.URL())
	runKiosk(t, b.URL(), "kiosk-01", filepath.Join(keys, "cmd.pub"))
	var before seen
	eventually(t, "the kiosk's birth and health at the hub", func() bool {
		s, ok := agentSeen(srv, "kiosk-01")
		before = s
		return ok && s.hasHealth
	})

	var out bytes.Buffer
	err := commandRun(context.Background(), []string{"rebirth", "-broker", b.URL(), "-plaintext", "-root", "ke",
		"-agent", "kiosk-01", "-key", filepath.Join(keys, "cmd.key"), "-timeout", "20s"}, &out, &stderr)
	if err != nil {
		t.Fatalf("cmd rebirth: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(out.String(), "agent.rebirth on kiosk-01: ok") {
		t.Errorf("output %q", out.String())
	}
	eventually(t, "a new birth (same boot) and a fresh health", func() bool {
		s, ok := agentSeen(srv, "kiosk-01")
		return ok && s.birthAt.After(before.birthAt) && s.healthAt.After(before.healthAt)
	})
	after, _ := agentSeen(srv, "kiosk-01")
	if after.boot != before.boot {
		t.Errorf("boot id changed from %s to %s", before.boot, after.boot)
	}
	if st := srv.Hub().Stats(); st.BootsWithoutDeath != 0 || st.StaleBirths != 0 {
		t.Errorf("a rebirth counted as a lifecycle problem: %+v", st)
	}
	// A door command to a kiosk is unknown there.
	out.Reset()
	err = commandRun(context.Background(), []string{"door-open", "-door", "d1", "-broker", b.URL(), "-plaintext", "-root", "ke",
		"-agent", "kiosk-01", "-key", filepath.Join(keys, "cmd.key"), "-timeout", "20s"}, &out, &stderr)
	if err == nil || !strings.Contains(out.String(), wire.CodeUnknownCommand) {
		t.Errorf("door-open on a kiosk: %v, %q", err, out.String())
	}
}

func scrape(t *testing.T, srv *hubrun.Server) map[string]*promtext.Family {
	t.Helper()
	resp, err := http.Get("http://" + srv.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != promtext.ContentType {
		t.Fatalf("GET /metrics: %s, %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	fams, err := promtext.Parse(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

func value(t *testing.T, fams map[string]*promtext.Family, name string, labels ...string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no family %s", name)
	}
	v, ok := f.Get(labels...)
	if !ok {
		t.Fatalf("%s%v: no sample", name, labels)
	}
	return v
}

// TestMetrics: /metrics parses, counts the kiosk online in its city, and
// its ingest counters move after records are appended and acked.
func TestMetrics(t *testing.T) {
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi})
	srv := runHub(t, b.URL())
	fams := scrape(t, srv)
	if v := value(t, fams, "kioskedge_hub_records_total"); v != 0 {
		t.Errorf("records before ingest: %v", v)
	}
	if v := value(t, fams, "kioskedge_hub_alerts_firing", "rule", "agent_offline"); v != 0 {
		t.Errorf("alerts firing: %v", v)
	}
	keys := t.TempDir()
	var stderr bytes.Buffer
	if err := commandRun(context.Background(), []string{"keygen", "-out", keys}, &stderr, &stderr); err != nil {
		t.Fatal(err)
	}
	n := runKiosk(t, b.URL(), "kiosk-02", filepath.Join(keys, "cmd.pub"))
	for i := range 5 {
		if _, err := n.Append(context.Background(), wire.Record{Kind: "kiosk.test", Class: wire.ClassCritical,
			Time: time.Now(), Body: []byte(`{"i":` + string(rune('0'+i)) + `}`)}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "records acked", func() bool { return n.Outbox.Stats().AckedThrough >= 5 })
	fams = scrape(t, srv)
	if v := value(t, fams, "kioskedge_hub_records_total"); v < 5 {
		t.Errorf("records_total %v, want ≥ 5", v)
	}
	if v := value(t, fams, "kioskedge_hub_agents_online", "region", "4601"); v != 1 {
		t.Errorf("agents online in 4601: %v", v)
	}
	if v := value(t, fams, "kioskedge_hub_ack_latency_seconds_count"); v < 1 {
		t.Errorf("ack latency count %v", v)
	}
	if v := value(t, fams, "kioskedge_hub_acks_total", "result", "published"); v < 1 {
		t.Errorf("acks published %v", v)
	}
	if v := value(t, fams, "kioskedge_hub_mqtt_connected"); v != 1 {
		t.Errorf("mqtt connected %v", v)
	}
}

func TestRegionOf(t *testing.T) {
	for _, tt := range []struct{ birth, want string }{
		{`{"region":"460105001002"}`, "4601"},
		{`{"region":"46"}`, "unknown"},
		{`{"region":"46ab00"}`, "unknown"},
		{`{}`, "unknown"},
		{``, "unknown"},
	} {
		if got := regionOf(json.RawMessage(tt.birth)); got != tt.want {
			t.Errorf("regionOf(%s) = %s, want %s", tt.birth, got, tt.want)
		}
	}
}
