package main

// The gate's share of /metrics and /v1/status, in-process over simulated
// GPIO (testhw/gatesim): decisions by door, result and reason through
// gate.Options.OnDecision, the allowlist version, door alarms and the
// door and reader as devices.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/agent/privacy"
	"github.com/kioskedge/kioskedge/cmd/internal/gate"
	"github.com/kioskedge/kioskedge/cmd/internal/kiosk"
	"github.com/kioskedge/kioskedge/cmd/internal/node"
	"github.com/kioskedge/kioskedge/cmd/internal/promtext"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/gatesim"
	"github.com/kioskedge/kioskedge/testhw/gpiosim"
	"github.com/kioskedge/kioskedge/testhw/hubtest"
)

const gateTOML = `
[agent]
id = "lab-gate-31"
data_dir = "data"

[hub]
broker = "%s"
plaintext = true
root = "kioskedge/lab"
backoff_min = "30ms"
backoff_max = "300ms"

[localapi]
enabled = false

[admin]
enabled = false

[privacy]
site_key_file = "site.key"

[[door]]
id = "main"
lock = "fail_safe"
relay = "sim:relay"
contact = "sim:contact"
fire = "sim:fire"

[[wiegand]]
name = "main-in"
door = "main"
d0 = "sim:d0"
d1 = "sim:d1"
complete_at = 26
`

func scrape(t *testing.T, s *service) map[string]*promtext.Family {
	t.Helper()
	var b strings.Builder
	w := promtext.NewWriter(&b)
	s.writeMetrics(w)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	fams, err := promtext.Parse(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	return fams
}

func TestGateMetricsAndStatus(t *testing.T) {
	t.Parallel()
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi})
	h := hubtest.Start(t, b.URL(), hubtest.Options{Root: labRoot})
	path := writeConfig(t, fmt.Sprintf(gateTOML, b.URL()))
	key, err := privacy.NewSiteKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := privacy.WriteSiteKey(filepath.Join(filepath.Dir(path), "site.key"), key); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	hw, err := gatesim.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	codec, err := wire.NewCodec(wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(codec.Close)
	n, err := node.Open(node.Options{Config: cfg, Version: "test", Codec: codec})
	if err != nil {
		t.Fatal(err)
	}
	svc := newService(cfg.Agent.ID, n, nil, nil)
	g, err := gate.Open(gate.Options{Config: cfg, Node: n, Lines: hw.Lines, OnDecision: svc.countDecision})
	if err != nil {
		n.Close()
		t.Fatal(err)
	}
	svc.g = g
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runAll(ctx, &kiosk.Kiosk{Node: n}, g) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		if err := g.Close(); err != nil {
			t.Error(err)
		}
		n.Close()
	})

	// Swipes on the simulator run on the real clock, so a swipe racing
	// the reader's start or the previous frame's gap may decode as a bad
	// frame rather than an unknown card: the test counts decisions of any
	// reason, then checks the counters against the access.decision records
	// the hub got, and that none was a grant (the allowlist is empty).
	total := func(f *promtext.Family) (n float64) {
		for _, s := range f.Samples {
			n += s.Value
		}
		return n
	}
	var fams map[string]*promtext.Family
	waitMetrics := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(waitFor)
		for {
			fams = scrape(t, svc)
			if cond() {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s in /metrics; decisions %+v, alarms %+v", what,
					fams["kioskedge_access_decisions_total"], fams["kioskedge_door_alarm_active"])
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for i := 1; i <= 2; i++ {
		if _, err := hw.Swipe("main-in", gpiosim.H10301(12, 9999), gpiosim.TxOptions{}); err != nil {
			t.Fatal(err)
		}
		waitMetrics(fmt.Sprintf("decision %d", i), func() bool { return total(fams["kioskedge_access_decisions_total"]) >= float64(i) })
	}
	hw.Door("main").SetFire(true)
	waitMetrics("fire alarm", func() bool {
		_, fire := fams["kioskedge_door_alarm_active"].Get("door", "main", "alarm", "fire")
		return fire
	})
	for _, s := range fams["kioskedge_access_decisions_total"].Samples {
		if s.Labels["door"] != "main" || s.Labels["result"] != "denied" || s.Labels["reason"] == "" {
			t.Errorf("decision sample %v; want door main denied with a reason", s.Labels)
		}
	}
	// The counters match the records: same count per door/result/reason.
	want := map[string]float64{}
	for _, s := range fams["kioskedge_access_decisions_total"].Samples {
		want[s.Labels["door"]+"/"+s.Labels["result"]+"/"+s.Labels["reason"]] = s.Value
	}
	deadline := time.Now().Add(waitFor)
	for {
		got := map[string]float64{}
		for _, r := range h.Records(t, cfg.Agent.ID) {
			if r.Kind != wire.KindAccess {
				continue
			}
			var d struct{ Door, Result, Reason string }
			if err := json.Unmarshal(r.Body, &d); err != nil {
				t.Fatal(err)
			}
			got[d.Door+"/"+d.Result+"/"+d.Reason]++
		}
		if maps.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("decision records at the hub %v, counters %v", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v, ok := fams["kioskedge_allowlist_version"].Get(); !ok || v != 0 {
		t.Errorf("allowlist version %v %v, want 0", v, ok)
	}
	if _, ok := fams["kioskedge_allowlist_entries"].Get(); !ok {
		t.Error("no allowlist entries gauge")
	}
	for _, dev := range [][2]string{{"main", "door"}, {"main-in", "wiegand"}} {
		if _, ok := fams["kioskedge_device_up"].Get("device", dev[0], "kind", dev[1]); !ok {
			t.Errorf("no kioskedge_device_up for %s (%s)", dev[0], dev[1])
		}
	}
	for _, k := range []string{"gate_records_dropped", "gate_append_errors", "uplink_bad_acks"} {
		if _, ok := fams["kioskedge_errors_total"].Get("kind", k); !ok {
			t.Errorf("no kioskedge_errors_total{kind=%q}", k)
		}
	}

	st := svc.status()
	if st.Health.Allowlist == nil || len(st.Health.Doors) != 1 || !slices.Contains(st.Health.Doors[0].Alarms, "fire") {
		t.Errorf("status: allowlist %+v doors %+v; want the allowlist and door main with a fire alarm", st.Health.Allowlist, st.Health.Doors)
	}
	if !strings.Contains(svc.statusLine(), "allowlist v0") {
		t.Errorf("status line %q lacks the allowlist version", svc.statusLine())
	}
}
