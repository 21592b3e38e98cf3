package main

// kioskd as a systemd service, the real process (this test binary
// re-executed) with NOTIFY_SOCKET and WATCHDOG_USEC set, a QR scanner on
// a pty and the hub in-process: READY=1 once the outbox, devices and
// admin endpoint are open, watchdog pings, /metrics, /v1/status behind
// the token, POST /v1/records reaching the hub, SIGHUP reloads, and
// STOPPING=1 on SIGTERM.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/cmd/internal/admin"
	"github.com/kioskedge/kioskedge/cmd/internal/promtext"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/hubtest"
	"github.com/kioskedge/kioskedge/testhw/pty"
	"github.com/kioskedge/kioskedge/testhw/qrscansim"
)

// notifySocket is a unixgram socket standing in for systemd's.
type notifySocket struct {
	path string
	mu   sync.Mutex
	msgs []string // datagrams in arrival order
	// onReady, when set, runs in the reader as READY=1 arrives, so the
	// test sees the state at that moment.
	onReady func()
	ready   []bool // onReady's verdicts
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	dir, err := os.MkdirTemp("", "kd") // sun_path is 108 bytes: t.TempDir() may be too long
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ns := &notifySocket{path: filepath.Join(dir, "notify")}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: ns.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := make([]byte, 4096)
		for {
			n, err := c.Read(b)
			if err != nil {
				return // closed by the cleanup
			}
			msg := string(b[:n])
			ns.mu.Lock()
			f := ns.onReady
			ns.mu.Unlock()
			if strings.HasPrefix(msg, "READY=1\n") && f != nil {
				f()
			}
			ns.mu.Lock()
			ns.msgs = append(ns.msgs, msg)
			ns.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	return ns
}

// count returns how many datagrams start with prefix.
func (ns *notifySocket) count(prefix string) int {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	n := 0
	for _, m := range ns.msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

func (ns *notifySocket) all() []string {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return append([]string(nil), ns.msgs...)
}

// waitUntil polls cond (every 20 ms, up to waitFor), failing t with what
// if it never holds or d exits.
func waitUntil(t *testing.T, d *daemon, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if isClosed(d.exited) {
			t.Fatalf("kioskd exited (%v) before %s", d.err, what)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, waitFor)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func httpDo(t *testing.T, method, url, token, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func TestDaemonAsSystemdService(t *testing.T) {
	t.Parallel()
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi})
	h := hubtest.Start(t, b.URL(), hubtest.Options{Root: labRoot})

	dir := t.TempDir()
	qrPair, err := pty.New(filepath.Join(dir, "qr0"))
	if err != nil {
		t.Fatal(err)
	}
	qrSim := qrscansim.New(qrscansim.Options{})
	simCtx, stopSim := context.WithCancel(context.Background())
	simDone := make(chan struct{})
	go func() {
		defer close(simDone)
		_ = qrSim.Serve(simCtx, qrPair.Device()) // ends with the link's error at cleanup, expected
	}()
	t.Cleanup(func() {
		stopSim()
		qrPair.Close()
		<-simDone
	})

	const id = "lab-kiosk-21"
	body := labConfig(id, b.URL()) + fmt.Sprintf(`
[[device]]
name = "qr-1"
kind = "qrscan"
path = %q
[device.qrscan]
terminator = "CR"
`, qrPair.Path())
	cfg := writeConfig(t, body)
	data := filepath.Join(filepath.Dir(cfg), "data")

	ns := newNotifySocket(t)
	ns.onReady = func() {
		// At READY=1 the outbox is open and the admin endpoint listens.
		_, errDB := os.Stat(filepath.Join(data, "outbox.db"))
		_, errAddr := os.Stat(admin.AddrPath(data))
		ns.mu.Lock()
		ns.ready = append(ns.ready, errDB == nil && errAddr == nil)
		ns.onReady = nil // later READY=1s end reloads
		ns.mu.Unlock()
	}
	d := startDaemon(t, cfg, "NOTIFY_SOCKET="+ns.path, "WATCHDOG_USEC=1000000")

	waitUntil(t, d, "READY=1", func() bool { return ns.count("READY=1") > 0 })
	ns.mu.Lock()
	readyOK := len(ns.ready) == 1 && ns.ready[0]
	ns.mu.Unlock()
	if !readyOK {
		t.Errorf("READY=1 came before the outbox file and the admin address existed")
	}
	if first := ns.all()[0]; !strings.HasPrefix(first, "READY=1\nSTATUS=running: outbox ") {
		t.Errorf("first datagram %q, want READY=1 with a status line", first)
	}
	waitUntil(t, d, "two watchdog pings", func() bool { return ns.count("WATCHDOG=1") >= 2 })

	addrB, err := os.ReadFile(admin.AddrPath(data))
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + strings.TrimSpace(string(addrB))
	tokB, err := os.ReadFile(admin.TokenPath(data))
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(admin.TokenPath(data)); st.Mode().Perm() != 0o600 {
		t.Errorf("admin.token mode %v, want 0600", st.Mode().Perm())
	}
	token := strings.TrimSpace(string(tokB))

	// /v1/ needs the token.
	if code, _ := httpDo(t, "GET", base+"/v1/status", "", ""); code != http.StatusUnauthorized {
		t.Errorf("/v1/status without token: %d, want 401", code)
	}
	if code, _ := httpDo(t, "POST", base+"/v1/records", "", `{"kind":"commissioning.report","body":{}}`); code != http.StatusUnauthorized {
		t.Errorf("POST /v1/records without token: %d, want 401", code)
	}

	// A commissioning report reaches the hub.
	code, resp := httpDo(t, "POST", base+"/v1/records", token, `{"kind":"commissioning.report","body":{"technician":"T-0042","passed":true}}`)
	var posted admin.PostRecordResponse
	if code != http.StatusCreated || json.Unmarshal(resp, &posted) != nil || posted.Seq == 0 {
		t.Fatalf("POST /v1/records: %d %s", code, resp)
	}
	h.WaitHolds(t, id, posted.Seq, waitFor)
	found := false
	for _, r := range h.Records(t, id) {
		if r.Seq == posted.Seq {
			found = r.Kind == "commissioning.report" && strings.Contains(string(r.Body), `"passed":true`)
		}
	}
	if !found {
		t.Errorf("the hub does not hold seq %d as the commissioning report", posted.Seq)
	}

	// /v1/status: the device, the outbox and the last sync (after the
	// hub's ack, seen within the main loop's second).
	var st admin.StatusResponse
	waitUntil(t, d, "a last sync and qr-1 up in /v1/status", func() bool {
		code, resp := httpDo(t, "GET", base+"/v1/status", token, "")
		if code != http.StatusOK {
			t.Fatalf("/v1/status: %d %s", code, resp)
		}
		st = admin.StatusResponse{}
		if err := json.Unmarshal(resp, &st); err != nil {
			t.Fatalf("/v1/status: %v: %s", err, resp)
		}
		up := false
		for _, dv := range st.Health.Devices {
			up = up || (dv.Name == "qr-1" && dv.Connected)
		}
		return st.LastSync != nil && up
	})
	if st.Health.Agent != id || st.Health.BootID == "" || !st.Health.Uplink.Connected || st.Health.Outbox.AckedThrough < posted.Seq {
		t.Errorf("status health %+v", st.Health)
	}
	if age := time.Since(*st.LastSync); age < -time.Second || age > waitFor+time.Second {
		t.Errorf("last_sync %v is not recent", st.LastSync)
	}

	// /metrics parses and has the families, with values that fit.
	code, resp = httpDo(t, "GET", base+"/metrics", "", "")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	fams, err := promtext.Parse(strings.NewReader(string(resp)))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, resp)
	}
	value := func(name string, labels ...string) float64 {
		t.Helper()
		f := fams[name]
		if f == nil {
			t.Errorf("/metrics lacks %s", name)
			return -1
		}
		v, ok := f.Get(labels...)
		if !ok {
			t.Errorf("/metrics %s has no sample %v", name, labels)
			return -1
		}
		return v
	}
	checks := []struct {
		name   string
		labels []string
		ok     func(float64) bool
		want   string
	}{
		{"kioskedge_outbox_depth", nil, func(v float64) bool { return v >= 0 }, "≥ 0"},
		{"kioskedge_outbox_oldest_unsent_age_seconds", nil, func(v float64) bool { return v >= 0 && v < 3600 }, "0..3600"},
		{"kioskedge_outbox_disk_bytes", nil, func(v float64) bool { return v > 0 }, "> 0"},
		{"kioskedge_outbox_budget_bytes", nil, func(v float64) bool { return v == 1<<30 }, "the default 1 GiB"},
		{"kioskedge_outbox_evicted_records_total", nil, func(v float64) bool { return v == 0 }, "0"},
		{"kioskedge_outbox_acked_through", nil, func(v float64) bool { return v >= float64(posted.Seq) }, "≥ the posted seq"},
		{"kioskedge_uplink_connected", nil, func(v float64) bool { return v == 1 }, "1"},
		{"kioskedge_uplink_reconnects_total", nil, func(v float64) bool { return v == 0 }, "0"},
		{"kioskedge_uplink_batches_sent_total", nil, func(v float64) bool { return v >= 1 }, "≥ 1"},
		{"kioskedge_uplink_records_sent_total", nil, func(v float64) bool { return v >= float64(posted.Seq) }, "≥ the posted seq"},
		{"kioskedge_uplink_acks_total", nil, func(v float64) bool { return v >= 1 }, "≥ 1"},
		{"kioskedge_uplink_last_sync_timestamp_seconds", nil, func(v float64) bool { return v > 1e9 }, "a Unix time"},
		{"kioskedge_device_up", []string{"device", "qr-1", "kind", "qrscan"}, func(v float64) bool { return v == 1 }, "1"},
		{"kioskedge_device_errors_total", []string{"device", "qr-1", "kind", "qrscan"}, func(v float64) bool { return v >= 0 }, "≥ 0"},
		{"kioskedge_errors_total", []string{"kind", "uplink_bad_acks"}, func(v float64) bool { return v == 0 }, "0"},
		{"kioskedge_build_info", []string{"agent", id}, func(v float64) bool { return v == 1 }, "1"},
		{"kioskedge_watchdog_missed_total", nil, func(v float64) bool { return v >= 0 }, "≥ 0"},
	}
	for _, c := range checks {
		if v := value(c.name, c.labels...); !c.ok(v) {
			t.Errorf("%s%v = %v, want %s", c.name, c.labels, v, c.want)
		}
	}
	for _, fam := range []string{"kioskedge_access_decisions_total", "kioskedge_device_reconnects_total"} {
		if f := fams[fam]; f == nil || f.Type != promtext.Counter {
			t.Errorf("/metrics lacks the counter family %s", fam)
		}
	}

	// Idle for a watchdog period, kioskd proves its outbox committer works
	// by storing a health sample, which the hub gets.
	waitUntil(t, d, "the watchdog probe's health.sample at the hub", func() bool {
		for _, r := range h.Records(t, id) {
			if r.Kind == wire.KindHealthSample && r.Class == wire.ClassHealth && strings.Contains(string(r.Body), `"agent":"`+id+`"`) {
				return true
			}
		}
		return false
	})

	// SIGHUP: a new log level applies; a new broker waits for a restart.
	changed := strings.Replace(strings.Replace(body, `level = "info"`, `level = "debug"`, 1), b.URL(), "tcp://127.0.0.1:1", 1)
	if err := os.WriteFile(cfg, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	before := d.stderr.String()
	if strings.Contains(before, `"level":"DEBUG"`) {
		t.Fatal("debug lines logged at level info")
	}
	d.signal(t, syscall.SIGHUP)
	waitUntil(t, d, "debug lines after the reload", func() bool {
		return strings.Contains(strings.TrimPrefix(d.stderr.String(), before), `"level":"DEBUG"`)
	})
	waitUntil(t, d, "the reload's log lines", func() bool {
		s := d.stderr.String()
		return strings.Contains(s, "log.level changed: applied") && strings.Contains(s, "hub.broker changed: restart kioskd to apply")
	})
	waitUntil(t, d, "RELOADING=1 then READY=1", func() bool { return ns.count("RELOADING=1") == 1 && ns.count("READY=1") == 2 })
	// An invalid file is rejected and the daemon keeps running.
	if err := os.WriteFile(cfg, []byte(strings.Replace(body, `level = "info"`, `level = "loud"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	d.signal(t, syscall.SIGHUP)
	waitUntil(t, d, "the rejected reload", func() bool {
		return strings.Contains(d.stderr.String(), "config reload rejected") && ns.count("READY=1") == 3
	})
	if code, _ := httpDo(t, "GET", base+"/metrics", "", ""); code != http.StatusOK {
		t.Errorf("after a rejected reload /metrics answers %d", code)
	}

	d.signal(t, syscall.SIGTERM)
	if ws := d.wait(t); ws.Signaled() || ws.ExitStatus() != 0 {
		t.Fatalf("after SIGTERM: %v, want exit 0", d.err)
	}
	msgs := ns.all()
	if last := msgs[len(msgs)-1]; !strings.HasPrefix(last, "STOPPING=1\n") {
		t.Errorf("last datagram %q, want STOPPING=1", last)
	}
	if _, err := os.Stat(admin.AddrPath(data)); !os.IsNotExist(err) {
		t.Errorf("admin.addr still there after a clean stop (%v)", err)
	}
	if os.Getenv("KIOSKD_TEST_SHOWLOG") != "" {
		t.Logf("stderr:\n%s", d.stderr)
	}
	if strings.Contains(d.stderr.String(), token) {
		t.Error("the admin token appears in the log")
	}
}

func TestVersionFlag(t *testing.T) {
	t.Parallel()
	var out, errb strings.Builder
	if code := run([]string{"-version"}, &out, &errb); code != 0 || out.String() != "kioskd "+version+"\n" {
		t.Errorf("kioskd -version: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}
