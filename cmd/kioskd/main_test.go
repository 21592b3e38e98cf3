package main

// Tests of the daemon as an operator meets it: config checking in-process
// through run, and the real process (this test binary re-executed as
// kioskd, so it runs main itself, race-instrumented) against a mochi
// broker with the hub in-process: birth, health, SIGTERM → shutdown status,
// SIGKILL → the retained Will.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/hubtest"
	"github.com/kioskedge/kioskedge/testhw/logbuf"
)

// envRunMain makes the re-executed test binary run main instead of tests.
const envRunMain = "KIOSKD_TEST_RUN_MAIN"

const labRoot = "kioskedge/lab"

// waitFor bounds every wait on the hub or the process.
const waitFor = 15 * time.Second

func TestMain(m *testing.M) {
	if os.Getenv(envRunMain) == "1" {
		main() // exits
	}
	os.Exit(m.Run())
}

// writeConfig writes body as kioskd.toml in a fresh temp dir and returns its path.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kioskd.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// labConfig is a plaintext lab config with short timers; data_dir is
// relative, so it lands next to the config file.
func labConfig(agent, brokerURL string) string {
	return fmt.Sprintf(`[agent]
id = %q
data_dir = "data"

[hub]
broker = %q
root = %q
plaintext = true
keepalive = "1s"
health_interval = "200ms"
backoff_min = "50ms"
backoff_max = "500ms"

[log]
format = "json"
level = "info"

[localapi]
listen = "127.0.0.1:0"   # tests run daemons in parallel

[admin]
listen = "127.0.0.1:0"
`, agent, brokerURL, labRoot)
}

func TestCheckExampleConfig(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	cfg := filepath.Join("..", "..", "examples", "kioskd.toml")
	if code := run([]string{"-config", cfg, "-check"}, io.Discard, &stderr); code != 0 {
		t.Fatalf("kioskd -check %s: exit %d, want 0; stderr:\n%s", cfg, code, &stderr)
	}
	if !strings.Contains(stderr.String(), ": ok") {
		t.Errorf("stderr %q does not say the config is ok", &stderr)
	}
}

func TestCheckLabConfig(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	cfg := writeConfig(t, labConfig("lab-gate-01", "tcp://127.0.0.1:1883"))
	if code := run([]string{"-config", cfg, "-check"}, io.Discard, &stderr); code != 0 {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, &stderr)
	}
	// -check must not touch the data directory.
	if _, err := os.Stat(filepath.Join(filepath.Dir(cfg), "data")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("-check created or touched data_dir (stat: %v)", err)
	}
}

func TestInvalidConfigExits2NamingTheKey(t *testing.T) {
	t.Parallel()
	valid := labConfig("lab-gate-01", "tcp://127.0.0.1:1883")
	tests := []struct {
		name string
		body string
		key  string // stderr must name it
	}{
		{"unknown key", strings.Replace(valid, "keepalive =", "keepalive_s =", 1), "hub.keepalive_s"},
		{"unknown section", valid + "\n[door]\nrelay = 1\n", "door"},
		{"plaintext broker without plaintext", strings.Replace(valid, "plaintext = true\n", "", 1), "hub.broker"},
		{"bad duration", strings.Replace(valid, `keepalive = "1s"`, `keepalive = "1 second"`, 1), "hub.keepalive"},
		{"negative duration", strings.Replace(valid, `keepalive = "1s"`, `keepalive = "-1s"`, 1), "hub.keepalive"},
		{"bad size", valid + "\n[outbox]\nbudget = \"1 gigabyte\"\n", "outbox.budget"},
		{"bad log level", strings.Replace(valid, `level = "info"`, `level = "loud"`, 1), "log.level"},
		{"missing agent id", strings.Replace(valid, `id = "lab-gate-01"`, "", 1), "agent.id"},
		{"not TOML", "[agent\n", "toml: line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := writeConfig(t, tt.body)
			for _, args := range [][]string{{"-config", cfg, "-check"}, {"-config", cfg}} {
				var stderr bytes.Buffer
				code := run(args, io.Discard, &stderr)
				if code != 2 {
					t.Fatalf("kioskd %v: exit %d, want 2; stderr:\n%s", args, code, &stderr)
				}
				// The path holds the test name; look for the key in the rest.
				if msg := strings.ReplaceAll(stderr.String(), cfg, "CONFIG"); !strings.Contains(msg, tt.key) {
					t.Errorf("kioskd %v: stderr does not name %q:\n%s", args, tt.key, &stderr)
				}
			}
			// A rejected config must not have created the data directory.
			if _, err := os.Stat(filepath.Join(filepath.Dir(cfg), "data")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("data_dir exists after a rejected config (stat: %v)", err)
			}
		})
	}
}

func TestMissingConfigExits2(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "nope.toml")
	for _, args := range [][]string{{"-config", missing, "-check"}, {"-config", missing}} {
		var stderr bytes.Buffer
		if code := run(args, io.Discard, &stderr); code != 2 {
			t.Fatalf("kioskd %v: exit %d, want 2; stderr:\n%s", args, code, &stderr)
		}
		msg := stderr.String()
		if !strings.Contains(msg, missing) || !strings.Contains(msg, "no such file") {
			t.Errorf("kioskd %v: stderr should name the file and say it does not exist:\n%s", args, msg)
		}
	}
}

func TestBadFlagExits2(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	if code := run([]string{"-confgi", "x.toml"}, io.Discard, &stderr); code != 2 {
		t.Fatalf("exit %d, want 2; stderr:\n%s", code, &stderr)
	}
	if !strings.Contains(stderr.String(), "-confgi") {
		t.Errorf("stderr does not name the bad flag:\n%s", &stderr)
	}
}

// daemon is a kioskd child process.
type daemon struct {
	cmd    *exec.Cmd
	stderr *logbuf.Buffer
	exited chan struct{} // closed when Wait returned
	err    error         // Wait's result, valid after exited
}

// startDaemon runs kioskd -config cfg as a child; t.Cleanup kills it if it
// is still running and waits for it.
// env adds variables ("NOTIFY_SOCKET=…") to the child's environment.
func startDaemon(t *testing.T, cfg string, env ...string) *daemon {
	t.Helper()
	d := &daemon{stderr: &logbuf.Buffer{}, exited: make(chan struct{})}
	d.cmd = exec.Command(os.Args[0], "-config", cfg)
	d.cmd.Env = append(append(os.Environ(), envRunMain+"=1"), env...)
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-d.exited:
		default:
			// Kill may race with a natural exit; either way we wait below.
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
		if t.Failed() {
			t.Logf("kioskd stderr:\n%s", d.stderr)
		}
	})
	return d
}

func (d *daemon) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits for the process to exit and returns its wait status.
func (d *daemon) wait(t *testing.T) syscall.WaitStatus {
	t.Helper()
	select {
	case <-d.exited:
	case <-time.After(waitFor):
		t.Fatalf("kioskd did not exit within %v", waitFor)
	}
	var ee *exec.ExitError
	if d.err != nil && !errors.As(d.err, &ee) {
		t.Fatalf("wait: %v", d.err)
	}
	return d.cmd.ProcessState.Sys().(syscall.WaitStatus)
}

// waitView waits until cond holds for the hub's view of agent id and
// returns that view. It fails t after waitFor, or at once if d exits while
// the test still expects it to run (exitOK false).
func waitView(t *testing.T, h *hubtest.Hub, d *daemon, exitOK bool, id, what string, cond func(hubtest.AgentView) bool) hubtest.AgentView {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if !exitOK {
		go func() {
			select {
			case <-d.exited:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	var v hubtest.AgentView
	err := h.Server().Hub().Wait(ctx, func() bool { v = h.View(t, id); return cond(v) })
	if err != nil {
		cancel()
		select {
		case <-d.exited:
			if !exitOK {
				t.Fatalf("kioskd exited (%v) before the hub saw %s", d.err, what)
			}
		default:
		}
		t.Fatalf("the hub did not see %s within %v; last status %+v, health present %v", what, waitFor, v.Status, v.Health != nil)
	}
	return v
}

func TestDaemonBirthHealthAndSIGTERM(t *testing.T) {
	t.Parallel()
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi})
	srv := hubtest.Start(t, b.URL(), hubtest.Options{Root: labRoot})
	const id = "lab-gate-01"
	cfg := writeConfig(t, labConfig(id, b.URL()))
	d := startDaemon(t, cfg)

	birth := waitView(t, srv, d, false, id, "the birth", func(v hubtest.AgentView) bool {
		return v.Status != nil && v.Status.State == wire.StateOnline
	})
	if !birth.Online || birth.Status.BdSeq < 1 || birth.Status.BootID == "" || birth.Status.Agent != id {
		t.Fatalf("birth: online=%v status %+v; want online, bdseq ≥ 1, a boot id, agent %s", birth.Online, birth.Status, id)
	}
	health := waitView(t, srv, d, false, id, "a health snapshot of this boot", func(v hubtest.AgentView) bool {
		return v.Health != nil && v.Health.BootID == birth.Status.BootID
	})
	if health.Health.Agent != id || !health.Health.Uplink.Connected {
		t.Errorf("health: %+v; want agent %s, uplink connected", health.Health, id)
	}

	d.signal(t, syscall.SIGTERM)
	if ws := d.wait(t); ws.Signaled() || ws.ExitStatus() != 0 {
		t.Fatalf("after SIGTERM: %v, want exit 0", d.err)
	}
	death := waitView(t, srv, d, true, id, "the shutdown status", func(v hubtest.AgentView) bool {
		return v.Status != nil && v.Status.State == wire.StateOffline
	})
	if death.Online || death.Status.Reason != "shutdown" || death.Status.BdSeq != birth.Status.BdSeq ||
		death.Status.BootID != birth.Status.BootID {
		t.Errorf("after SIGTERM the hub holds online=%v status %+v; want offline, reason shutdown, bdseq %d, boot %s",
			death.Online, death.Status, birth.Status.BdSeq, birth.Status.BootID)
	}

	// stderr is JSON lines; the daemon's own lines carry component=kioskd.
	var lines, own int
	sc := bufio.NewScanner(strings.NewReader(d.stderr.String()))
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		lines++
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Errorf("stderr line is not JSON (%v): %s", err, line)
			continue
		}
		if m["component"] == "kioskd" {
			own++
			if m["agent"] != id {
				t.Errorf("kioskd log line without agent=%s: %s", id, line)
			}
		}
	}
	if lines == 0 || own < 2 {
		t.Errorf("want JSON log lines with component=kioskd for start and stop; got %d lines, %d from kioskd", lines, own)
	}
}

func TestDaemonSIGKILLLeavesTheWill(t *testing.T) {
	t.Parallel()
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi})
	srv := hubtest.Start(t, b.URL(), hubtest.Options{Root: labRoot})
	const id = "lab-gate-02"
	cfg := writeConfig(t, labConfig(id, b.URL()))
	d := startDaemon(t, cfg)

	birth := waitView(t, srv, d, false, id, "the birth", func(v hubtest.AgentView) bool {
		return v.Status != nil && v.Status.State == wire.StateOnline
	})
	d.signal(t, syscall.SIGKILL)
	if ws := d.wait(t); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("after SIGKILL: %v, want killed by SIGKILL", d.err)
	}
	will := waitView(t, srv, d, true, id, "the Will", func(v hubtest.AgentView) bool {
		return v.Status != nil && v.Status.State == wire.StateOffline
	})
	if will.Online || will.Status.Reason != "will" || will.Status.BdSeq != birth.Status.BdSeq ||
		will.Status.BootID != birth.Status.BootID {
		t.Errorf("after SIGKILL the hub holds online=%v status %+v; want offline, reason will, bdseq %d, boot %s",
			will.Online, will.Status, birth.Status.BdSeq, birth.Status.BootID)
	}

	// Restarted on the same data dir, the agent is born again with a higher
	// bdseq, so the hub takes the new birth over the old Will.
	d2 := startDaemon(t, cfg)
	again := waitView(t, srv, d2, false, id, "the second birth", func(v hubtest.AgentView) bool {
		return v.Status != nil && v.Status.State == wire.StateOnline
	})
	if !again.Online || again.Status.BdSeq <= birth.Status.BdSeq || again.Status.BootID == birth.Status.BootID {
		t.Errorf("second birth: online=%v status %+v; want online, bdseq > %d, a new boot id",
			again.Online, again.Status, birth.Status.BdSeq)
	}
	d2.signal(t, syscall.SIGTERM)
	if ws := d2.wait(t); ws.Signaled() || ws.ExitStatus() != 0 {
		t.Fatalf("after SIGTERM: %v, want exit 0", d2.err)
	}
}
