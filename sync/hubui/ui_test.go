package hubui_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/hub"
	"github.com/kioskedge/kioskedge/sync/hubui"
	"github.com/kioskedge/kioskedge/sync/sealed"
	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/hubtest"
)

const (
	hostileSite = `<script>alert("x")</script> & "Gate"`
	// Made-up personal data that must never reach a page.
	rawIDNumber = "110101199003077777"
	rawCard     = "0004433221"
	cred        = "3f0c5e8a9b7d11aa22bb33cc44dd55ee"
)

var t0 = time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)

// fixture is a hub (with its HTTP listener, so the dashboard is mounted
// as hubd mounts it) and an MQTT client publishing as the agents.
type fixture struct {
	t    *testing.T
	hub  *hubtest.Hub
	pub  *uplink.Session
	base string
	pubK *sealed.PublicKey
	key  *sealed.PrivateKey
}

func start(t *testing.T) *fixture {
	t.Helper()
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi})
	h := hubtest.Start(t, b.URL(), hubtest.Options{HTTPAddr: "127.0.0.1:0"})
	pub, err := uplink.NewSession(uplink.SessionOptions{Broker: b.URL(), ClientID: "hubui-test-agents", AllowPlaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := pub.Run(ctx); err != nil {
			t.Errorf("publisher: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		// Closing after Run returned has nothing left to report.
		_ = pub.Close(nil)
	})
	// The session has no connect notification; poll as hubtest does.
	deadline := time.Now().Add(10 * time.Second)
	for !pub.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("publisher did not connect")
		}
		time.Sleep(5 * time.Millisecond)
	}
	key, pubK, err := sealed.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, hub: h, pub: pub, base: "http://" + h.Server().HTTPAddr(), key: key, pubK: pubK}
}

func (f *fixture) publish(topic string, v any) {
	f.t.Helper()
	b, ok := v.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(v); err != nil {
			f.t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.pub.Publish(ctx, uplink.Message{Topic: topic, QoS: 1, Retained: true, Payload: b}); err != nil {
		f.t.Fatalf("publish %s: %v", topic, err)
	}
}

func (f *fixture) topics(agent string) wire.Topics {
	return wire.Topics{Root: f.hub.Root(), Agent: agent}
}

func (f *fixture) status(agent, site, region string, online bool, bdseq uint64) {
	st := wire.Status{State: wire.StateOnline, Agent: agent, BootID: "boot-" + agent, BdSeq: bdseq, Time: t0,
		Version: "1.4.0", Site: site, Region: region}
	if !online {
		st.State, st.Reason, st.Time = wire.StateOffline, "will", t0.Add(time.Hour)
	}
	f.publish(f.topics(agent).Status(), st)
}

func (f *fixture) health(agent string, reader bool, alarms ...string) {
	h := wire.Health{Agent: agent, BootID: "boot-" + agent, Time: t0.Add(time.Minute), Version: "1.4.1",
		Outbox:    wire.OutboxHealth{Depth: 12, OldestUnsentS: 90, NextSeq: 5},
		Uplink:    wire.UplinkHealth{Connected: true, Reconnects: 3},
		Devices:   []wire.DeviceHealth{{Name: "reader-in", Connected: reader, Errors: 41}, {Name: "printer", Connected: true, Errors: 0}},
		Allowlist: &wire.AllowlistHealth{Version: 17, Entries: 200},
		Doors:     []wire.DoorHealth{{ID: "d1", Mode: "normal", Alarms: alarms}},
		Counters:  map[string]uint64{"wiegand_bad_frames": 6},
		Clock:     &wire.ClockHealth{OffsetMS: -6250, DelayMS: 8, Measured: t0, Skewed: true},
	}
	f.publish(f.topics(agent).Health(), h)
}

// records publishes one batch of agent's records with the given kinds and
// bodies, from sequence 1.
func (f *fixture) records(agent string, kindBodies ...string) {
	f.t.Helper()
	codec, err := wire.NewCodec(wire.Limits{})
	if err != nil {
		f.t.Fatal(err)
	}
	defer codec.Close()
	var es []wire.Entry
	for i := 0; i < len(kindBodies); i += 2 {
		raw, err := wire.MarshalRecord(wire.Record{Kind: kindBodies[i], Class: wire.ClassCritical,
			Time: t0.Add(time.Duration(i) * time.Second), Body: []byte(kindBodies[i+1])})
		if err != nil {
			f.t.Fatal(err)
		}
		es = append(es, wire.Entry{Seq: uint64(i/2 + 1), Raw: raw})
	}
	msg, _, err := codec.EncodeBatch(agent, "boot-"+agent, 1, uint64(len(es)), es, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	f.publish(f.topics(agent).Events(), msg)
	f.hub.WaitHolds(f.t, agent, uint64(len(es)), 10*time.Second)
}

// waitRow waits until the fleet's row of agent satisfies cond.
func (f *fixture) waitRow(agent string, cond func(online bool, faults []string) bool) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv := f.hub.Server()
	err := srv.Hub().Wait(ctx, func() bool {
		r, ok := srv.Fleet().Row(agent)
		return ok && cond(r.Online, r.Faults)
	})
	if err != nil {
		r, _ := srv.Fleet().Row(agent)
		f.t.Fatalf("row of %s never matched: %+v", agent, r)
	}
}

// fleet publishes three agents: gate-1 (hostile site name, online, a
// forced door), kiosk-2 (offline) and kiosk-3 (online, reader down).
func (f *fixture) fleet() {
	f.status("gate-1", hostileSite, "330106001001", true, 1)
	f.health("gate-1", true, "forced_open")
	f.status("kiosk-2", "West Kiosk", "320101002001", true, 1)
	f.status("kiosk-2", "West Kiosk", "320101002001", false, 1)
	f.status("kiosk-3", "North Kiosk", "330205001001", true, 1)
	f.health("kiosk-3", false)
	f.waitRow("gate-1", func(_ bool, faults []string) bool { return len(faults) == 1 })
	f.waitRow("kiosk-2", func(online bool, _ []string) bool { return !online })
	f.waitRow("kiosk-3", func(_ bool, faults []string) bool { return len(faults) == 1 })
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func rowIDs(body string) []string {
	var out []string
	for _, id := range []string{"gate-1", "kiosk-2", "kiosk-3"} {
		if strings.Contains(body, `id="row-`+id+`"`) {
			out = append(out, id)
		}
	}
	return out
}

func TestAgentsTable(t *testing.T) {
	t.Parallel()
	f := start(t)
	f.fleet()

	for _, tc := range []struct {
		query string
		want  string
	}{
		{"", "[gate-1 kiosk-2 kiosk-3]"},
		{"?region=33", "[gate-1 kiosk-3]"},
		{"?region=330106", "[gate-1]"},
		{"?status=offline", "[kiosk-2]"},
		{"?status=online", "[gate-1 kiosk-3]"},
		{"?fault=1", "[gate-1 kiosk-3]"},
		{"?fault=1&region=3302", "[kiosk-3]"},
		{"?q=west", "[kiosk-2]"},
		{"?q=KIOSK-3", "[kiosk-3]"},
		{"?per=1&page=2", "[kiosk-2]"},
		{"?per=2&page=2", "[kiosk-3]"},
		{"?sort=status&desc=1&per=1", "[kiosk-2]"},
		{"?page=x&per=-4&status=bogus&sort=nope", "[gate-1 kiosk-2 kiosk-3]"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			code, body := get(t, f.base+"/ui/"+tc.query)
			if code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			if got := fmt.Sprint(rowIDs(body)); got != tc.want {
				t.Fatalf("rows %s, want %s", got, tc.want)
			}
		})
	}

	_, body := get(t, f.base+"/ui/?per=1&page=2&region=3")
	for _, want := range []string{`href="/ui/?per=1&amp;region=3" rel="prev"`, `href="/ui/?page=3&amp;per=1&amp;region=3" rel="next"`,
		"第 Page 2 / 3 页", "在线 Online"} {
		if !strings.Contains(body, want) {
			t.Errorf("paged page lacks %q", want)
		}
	}
	_, body = get(t, f.base+"/ui/?q=kiosk-3")
	for _, want := range []string{"device reader-in", "1.4.1", "boot-kiosk-3", ">12<", "1m30s", ">17<", "330205001001", `fault" title="hub clock minus agent clock 中心时钟减设备时钟">-6.25 s<`} {
		if !strings.Contains(body, want) {
			t.Errorf("row lacks %q", want)
		}
	}

	// / leads to the dashboard.
	resp, err := http.Get(f.base + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/ui/" || resp.StatusCode != http.StatusOK {
		t.Fatalf("/ ended at %s with %d", resp.Request.URL, resp.StatusCode)
	}
	if code, _ := get(t, f.base+"/ui/assets/ui.js"); code != http.StatusOK {
		t.Fatalf("ui.js: %d", code)
	}
}

func TestHostileSiteEscaped(t *testing.T) {
	t.Parallel()
	f := start(t)
	f.fleet()
	for _, path := range []string{"/ui/", "/ui/agents/gate-1", "/ui/?q=" + "%3Cscript%3E"} {
		_, body := get(t, f.base+path)
		if strings.Contains(body, "<script>alert") || strings.Contains(body, `"Gate"`) {
			t.Errorf("%s: hostile site name not escaped", path)
		}
		if !strings.Contains(body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#34;Gate&#34;") {
			t.Errorf("%s: escaped site name missing", path)
		}
	}
}

// agentRecords publishes gate-1's records: alarms, access decisions with
// a credential hash, and personal data both sealed and (wrongly) plain.
func (f *fixture) agentRecords() {
	sealedID, err := sealed.Seal(f.pubK, []byte(rawIDNumber))
	if err != nil {
		f.t.Fatal(err)
	}
	f.records("gate-1",
		"access.decision", `{"door":"d1","reader":"in","cred":"`+cred+`","result":"granted","reason":"allowlist"}`,
		"door.event", `{"door":"d1","event":"released","by":"grant"}`,
		"door.alarm", `{"door":"d1","alarm":"forced_open","active":true}`,
		"device.down", `{"name":"reader-in","kind":"wiegand","connected":false,"errors":41}`,
		"health.sample", `{"cpu":3}`,
		"idcard.read", `{"number_sealed":"`+sealedID+`","card_number":"`+rawCard+`"}`,
		"access.decision", `{"door":"d1","id_number":"`+rawIDNumber+`","number_sealed":"`+sealedID+`","result":"denied"}`,
	)
}

func checkNoPersonalData(t *testing.T, body string) {
	t.Helper()
	for _, raw := range []string{rawIDNumber, rawCard, cred, "v1."} {
		if strings.Contains(body, raw) {
			t.Errorf("agent page shows %q", raw[:4]+"…")
		}
	}
}

func TestAgentPage(t *testing.T) {
	t.Parallel()
	f := start(t)
	f.fleet()
	f.agentRecords()

	code, body := get(t, f.base+"/ui/agents/gate-1")
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	for _, want := range []string{
		"reader-in", ">41<", "printer", // devices and error counters
		"d1", "forced_open", // doors
		"wiegand_bad_frames", // counters
		"待发 Depth <b>12</b>", "重连 Reconnects 3",
		"door.alarm", "device.down", "door.event", "access.decision",
		"cred=" + cred[:8] + "…", "result=granted",
		"number_sealed=(sealed 已加密)", "id_number=********",
		"在线 Online",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("agent page lacks %q", want)
		}
	}
	if strings.Contains(body, "health.sample") || strings.Contains(body, "idcard.read") {
		t.Error("agent page lists records outside its sections")
	}
	checkNoPersonalData(t, body)
	// Newest first: the denied decision (seq 7) before the granted one.
	if strings.Index(body, "result=denied") > strings.Index(body, "result=granted") {
		t.Error("access records not newest first")
	}

	if code, _ := get(t, f.base+"/ui/agents/nobody"); code != http.StatusNotFound {
		t.Fatalf("unknown agent: %d", code)
	}
}

// TestAgentPageOpensSealedMasked serves the page with a hub that holds the
// seal key: sealed values are opened and masked, never shown raw.
func TestAgentPageOpensSealedMasked(t *testing.T) {
	t.Parallel()
	f := start(t)
	f.fleet()
	f.agentRecords()
	srv := f.hub.Server()
	opener, err := hub.New(hub.Options{Root: f.hub.Root(), Store: srv.Store(), Transport: nopTransport{}, SealKey: f.key,
		Mask: func(_, v string) string { return "MASKED-" + v[len(v)-2:] }})
	if err != nil {
		t.Fatal(err)
	}
	defer opener.Close()
	ui, err := hubui.New(hubui.Options{Fleet: srv.Fleet(), Records: opener, States: srv.Store(),
		Links: []hubui.Link{{Href: "/ui/alerts", Label: "告警 Alerts"}}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(ui.Handler())
	defer ts.Close()
	_, body := get(t, ts.URL+"/ui/agents/gate-1")
	if !strings.Contains(body, `<a href="/ui/alerts">告警 Alerts</a>`) {
		t.Error("header lacks the alerts link")
	}
	if !strings.Contains(body, "number_sealed=MASKED-77") {
		t.Error("sealed field not shown as the hub masks it")
	}
	checkNoPersonalData(t, body)
}

type nopTransport struct{}

func (nopTransport) Subscribe(string, byte, func(string, []byte)) error { return nil }
func (nopTransport) PublishAsync(hub.Message) <-chan error {
	c := make(chan error, 1)
	c <- nil
	return c
}

// sse is an open event stream.
type sse struct {
	events chan [2]string // name, data
	ended  chan struct{}  // closed when the server ends the stream
}

func openSSE(t *testing.T, url string) *sse {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	s := &sse{events: make(chan [2]string, 64), ended: make(chan struct{})}
	opened := make(chan struct{})
	done := s.ended
	go func() {
		defer close(done)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var name string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == ": open":
				close(opened)
			case strings.HasPrefix(line, "event: "):
				name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				s.events <- [2]string{name, line[len("data: "):]}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-done
	})
	select {
	case <-opened:
	case <-time.After(10 * time.Second):
		t.Fatal("event stream did not open")
	}
	return s
}

// next waits for an event named name about agent whose HTML contains want.
func (s *sse) next(t *testing.T, name, agent, want string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-s.events:
			var d struct{ ID, HTML string }
			if err := json.Unmarshal([]byte(e[1]), &d); err != nil {
				t.Fatalf("event data: %v", err)
			}
			if e[0] == name && d.ID == agent && strings.Contains(d.HTML, want) {
				return
			}
		case <-timeout:
			t.Fatalf("no %s event for %s with %q", name, agent, want)
		}
	}
}

func TestLiveUpdates(t *testing.T) {
	t.Parallel()
	f := start(t)
	f.fleet()
	table := openSSE(t, f.base+"/ui/events?rows=gate-1,kiosk-3")
	page := openSSE(t, f.base+"/ui/events?agent=gate-1")

	// A device goes down.
	f.health("gate-1", false, "forced_open")
	table.next(t, "row", "gate-1", "device reader-in")
	page.next(t, "agent", "gate-1", "✗ 否 no")

	// The agent goes offline (its will).
	f.status("gate-1", hostileSite, "330106001001", false, 1)
	table.next(t, "row", "gate-1", "离线 Offline")
	page.next(t, "agent", "gate-1", "离线 Offline")

	// Rows outside ?rows= are not sent.
	f.health("kiosk-2", true)
	f.health("kiosk-3", true)
	table.next(t, "row", "kiosk-3", "在线 Online")
	select {
	case e := <-table.events:
		t.Fatalf("unexpected event %v", e)
	default:
	}
}

// TestStopEndsStreams: stopping the hub ends open event streams, so hubd
// does not wait for open dashboards to shut down.
func TestStopEndsStreams(t *testing.T) {
	t.Parallel()
	f := start(t)
	s := openSSE(t, f.base+"/ui/events")
	f.hub.Stop()
	select {
	case <-s.ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the event stream outlived the hub")
	}
}

// TestStableHooks checks the element ids and data attributes scripts and
// the browser test (cmd/hubd) rely on, rendered as plain values (a data-on…
// attribute would be escaped as JavaScript by html/template).
func TestStableHooks(t *testing.T) {
	t.Parallel()
	f := start(t)
	f.fleet()
	_, body := get(t, f.base+"/ui/?region=3")
	for _, want := range []string{
		`<table id="agents" data-rows="gate-1,kiosk-2,kiosk-3" data-region="3" data-status="" data-fault="">`,
		`data-region="320101002001" data-status="offline" data-faults="0">`,
		`data-region="330205001001" data-status="online" data-faults="1">`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("agents table lacks %s", want)
		}
	}
	if _, faulty := get(t, f.base+"/ui/?fault=1&status=online"); !strings.Contains(faulty, `data-status="online" data-fault="1">`) {
		t.Error(`a faults page lacks data-fault="1" on its table`)
	}
	_, body = get(t, f.base+"/ui/agents/kiosk-3")
	for _, want := range []string{
		`<div id="agent" data-agent="kiosk-3">`,
		`id="agent-status" class="st on" data-status="online">`,
		`data-device="reader-in" data-connected="false">`,
		`data-device="printer" data-connected="true">`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("agent page lacks %s", want)
		}
	}
}
