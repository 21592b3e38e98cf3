package main

// End-to-end test of issue 7's alert target: an agent (cmd/internal/node,
// a child process) with a 1 s MQTT keep-alive is SIGKILLed; the broker
// publishes its Will after keep-alive × 1.5, the hub commits the death
// and the offline alert reaches a webhook (target: within keep-alive ×
// 1.5 + 5 s of the kill; the time is logged, not asserted, as tests never
// assert wall-clock speed); the restarted agent's birth resolves it.
//
// Against Mochi and Mosquitto, two cases: "kill", where the kernel closes
// the dead process's socket so the broker publishes the Will at once, and
// "vanish", where the agent reaches the broker through a fault proxy that
// black-holes the link before the kill (a power cut, a dead 4G link): only
// the keep-alive can tell, so this is the keep-alive × 1.5 bound.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/cmd/internal/node"
	"github.com/kioskedge/kioskedge/sync/hub/hubrun"
	"github.com/kioskedge/kioskedge/sync/hubalert"
	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/faultproxy"
)

const (
	alertRoot      = "kioskedge/alerts-e2e"
	alertAgent     = "box-alert-1"
	alertKeepAlive = time.Second
	envAlertChild  = "KIOSKEDGE_ALERT_CHILD" // data dir of the child agent
	envAlertBroker = "KIOSKEDGE_ALERT_BROKER"
)

// TestAlertChildAgent is the child agent of TestOfflineAlertAfterSIGKILL,
// run as a re-executed test binary; in a normal run it does nothing.
func TestAlertChildAgent(t *testing.T) {
	dir := os.Getenv(envAlertChild)
	if dir == "" {
		return // not the child
	}
	c := config.Defaults()
	c.Agent = config.Agent{ID: alertAgent, DataDir: dir, Site: "demo site", Region: "460105"}
	c.Hub.Broker, c.Hub.Plaintext, c.Hub.Root = os.Getenv(envAlertBroker), true, alertRoot
	c.Hub.KeepAlive = config.Duration(alertKeepAlive)
	c.Hub.BackoffMin, c.Hub.BackoffMax, c.Hub.BackoffStable = config.Duration(30*time.Millisecond), config.Duration(300*time.Millisecond), config.Duration(time.Second)
	runChildNode(t, c, "alert-e2e")
}

// runChildNode runs the agent on c, in a child test process, until SIGTERM
// or SIGINT.
func runChildNode(t *testing.T, c config.Config, version string) {
	t.Helper()
	codec, err := wire.NewCodec(wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer codec.Close()
	n, err := node.Open(node.Options{Config: c, Version: version, Codec: codec})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := n.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// alertReceiver is the hotline's webhook: it verifies each signature and
// passes the alert on.
type alertReceiver struct {
	t      *testing.T
	secret []byte
	ch     chan hubalert.Alert
}

func (r *alertReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	if err := hubalert.Verify(r.secret, req.Header.Get(hubalert.HeaderTimestamp), req.Header.Get(hubalert.HeaderSignature),
		body, time.Now(), hubalert.DefaultReplayWindow); err != nil {
		r.t.Errorf("webhook: %v", err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var a hubalert.Alert
	if err := json.Unmarshal(body, &a); err != nil {
		r.t.Errorf("webhook body: %v", err)
		return
	}
	r.ch <- a
	w.WriteHeader(http.StatusNoContent)
}

func (r *alertReceiver) await(t *testing.T, rule, state string, within time.Duration) hubalert.Alert {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case a := <-r.ch:
			if a.Rule == rule && a.State == state {
				return a
			}
			t.Logf("webhook: %s %s %s/%s (not awaited)", a.State, a.Rule, a.Agent, a.Subject)
		case <-deadline:
			t.Fatalf("no %s %s alert within %s", state, rule, within)
		}
	}
}

func TestOfflineAlertAfterSIGKILL(t *testing.T) {
	for _, kind := range broker.Kinds {
		for _, vanish := range []bool{false, true} {
			name := string(kind) + map[bool]string{false: "/kill", true: "/vanish"}[vanish]
			t.Run(name, func(t *testing.T) { testOfflineAlert(t, kind, vanish) })
		}
	}
}

func testOfflineAlert(t *testing.T, kind broker.Kind, vanish bool) {
	b := broker.ForTest(t, broker.Options{Kind: kind})
	agentBroker := b.URL()
	var proxy *faultproxy.Proxy
	if vanish {
		var err error
		if proxy, err = faultproxy.New(b.Addr(), nil); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = proxy.Close() }) // closing a test proxy has nothing to report
		agentBroker = proxy.URL()
	}
	secret := "hotline-shared-secret-0123456789"
	rcv := &alertReceiver{t: t, secret: []byte(secret), ch: make(chan hubalert.Alert, 16)}
	hook := httptest.NewServer(rcv)
	defer hook.Close()

	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "alerts.toml")
	if err := os.WriteFile(rulesFile, fmt.Appendf(nil, `
[offline]
after = "0s"
[[webhook]]
name = "hotline"
url = %q
secret = %q
backoff_min = "100ms"
`, hook.URL, secret), 0o600); err != nil {
		t.Fatal(err)
	}
	rules, err := hubalert.LoadRules(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := hubrun.Config{
		Broker: b.URL(), AllowPlaintext: true, ClientID: "hubd-alert-e2e", Root: alertRoot,
		DBPath: filepath.Join(dir, "hub.db"), HTTPAddr: "127.0.0.1:0", Alerts: &rules,
		Backoff: uplink.Backoff{Min: 50 * time.Millisecond, Max: 500 * time.Millisecond, StableAfter: time.Second},
	}
	alertMetrics(&cfg)
	srv, err := hubrun.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- srv.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runDone; err != nil {
			t.Errorf("hub run: %v", err)
		}
		if err := srv.Close(); err != nil {
			t.Errorf("hub close: %v", err)
		}
	}()

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	agentDir := filepath.Join(dir, "agent")
	var children sync.WaitGroup
	start := func() *exec.Cmd {
		cmd := exec.Command(exe, "-test.run=^TestAlertChildAgent$")
		cmd.Env = append(os.Environ(), envAlertChild+"="+agentDir, envAlertBroker+"="+agentBroker)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	online := func(want bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			if a, ok := srv.Store().AgentState(alertAgent); ok && a.Online == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the hub never saw %s online=%v", alertAgent, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	child := start()
	t.Cleanup(func() { _ = child.Process.Kill(); children.Wait() }) // a no-op when it already ended
	children.Go(func() { _ = child.Wait() })
	online(true)

	if vanish {
		proxy.SetBlackHole(true)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	fired := rcv.await(t, hubalert.RuleOffline, hubalert.StateFiring, 60*time.Second)
	elapsed := time.Since(killed)
	target := alertKeepAlive*3/2 + 5*time.Second
	t.Logf("offline alert at the webhook %s after SIGKILL (target ≤ %s: %v); id %s, labels %+v",
		elapsed.Round(time.Millisecond), target, elapsed <= target, fired.ID, fired.Labels)
	if fired.Agent != alertAgent || fired.Labels.Region != "460105" || fired.Labels.Site != "demo site" || fired.Severity != hubalert.SeverityMajor {
		t.Fatalf("alert %+v", fired)
	}

	if m := get(t, "http://"+srv.HTTPAddr()+"/metrics"); !strings.Contains(m, `kioskedge_hub_alerts_firing{rule="offline"} 1`) {
		t.Fatalf("/metrics does not show the offline alert firing:\n%s", m)
	}
	if vanish {
		proxy.SetBlackHole(false)
	}
	child2 := start()
	t.Cleanup(func() { _ = child2.Process.Kill() })
	children.Go(func() { _ = child2.Wait() })
	resolved := rcv.await(t, hubalert.RuleOffline, hubalert.StateResolved, 60*time.Second)
	if resolved.ID != fired.ID || resolved.Resolved.IsZero() {
		t.Fatalf("resolved %+v, want the episode %s", resolved, fired.ID)
	}

	// The history shows both transitions. (child2 stays up until then: once
	// it stops, its own offline alert may fire before the page is read.)
	var page hubalert.Page
	if err := json.Unmarshal([]byte(get(t, "http://"+srv.HTTPAddr()+"/api/alerts")), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.History) < 2 || page.History[0].State != hubalert.StateResolved || len(page.Firing) != 0 {
		t.Fatalf("/api/alerts %+v", page)
	}
	if body := get(t, "http://"+srv.HTTPAddr()+"/ui/alerts"); !strings.Contains(body, "历史 History") || !strings.Contains(body, alertAgent) {
		t.Fatalf("/ui/alerts: %s", body)
	}
	if err := child2.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(body)
}
