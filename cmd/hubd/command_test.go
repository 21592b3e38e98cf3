package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/agent/command"
	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
)

func TestCommandKeygen(t *testing.T) {
	dir := t.TempDir()
	var stderr bytes.Buffer
	if err := commandRun(context.Background(), []string{"keygen", "-out", dir}, &stderr, &stderr); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "cmd.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("cmd.key: %v, %v", st, err)
	}
	priv, err := loadCommandKey(filepath.Join(dir, "cmd.key"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := command.LoadPublicKey(filepath.Join(dir, "cmd.pub"))
	if err != nil || !pub.Equal(priv.Public()) {
		t.Fatalf("cmd.pub does not match cmd.key: %v", err)
	}
	if err := commandRun(context.Background(), []string{"keygen", "-out", dir}, &stderr, &stderr); err == nil ||
		!strings.Contains(err.Error(), "exists") {
		t.Errorf("second keygen: %v, want a refusal", err)
	}
	if err := os.Chmod(filepath.Join(dir, "cmd.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadCommandKey(filepath.Join(dir, "cmd.key")); err == nil {
		t.Error("a world-readable cmd.key was accepted")
	}
}

func TestCommandBadFlags(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"reboot"},
		{"door-open", "-broker", "tcp://127.0.0.1:1", "-agent", "a"},
		{"door-open", "-broker", "tcp://127.0.0.1:1", "-agent", "a", "-door", "d", "-key", "k", "-mode", "normal"},
		{"door-open", "-broker", "tcp://127.0.0.1:1", "-agent", "a/b", "-door", "d", "-key", "k"},
	} {
		var out bytes.Buffer
		if err := commandRun(context.Background(), args, &out, &out); err == nil {
			t.Errorf("%q: accepted", args)
		}
	}
}

// fakeAgent subscribes to one agent's cmd topic and runs an Executor on it,
// publishing results to cmd/result, as kioskd does.
func fakeAgent(t *testing.T, url, root, agent, pubFile string, h command.Handlers) {
	t.Helper()
	pub, err := command.LoadPublicKey(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	topics := wire.Topics{Root: root, Agent: agent}
	connected := make(chan struct{})
	var once sync.Once
	s, err := uplink.NewSession(uplink.SessionOptions{Broker: url, ClientID: "agent-" + agent, AllowPlaintext: true,
		OnConnect: func(context.Context, *uplink.Session) { once.Do(func() { close(connected) }) }})
	if err != nil {
		t.Fatal(err)
	}
	x, err := command.New(command.Options{PublicKey: pub, Agent: agent,
		SeenFile: filepath.Join(t.TempDir(), "seen"), Handlers: h,
		Publish: func(r wire.CommandResult) {
			b, err := json.Marshal(r)
			if err != nil {
				t.Error(err)
				return
			}
			s.PublishAsync(uplink.Message{Topic: topics.CmdResult(), QoS: 1, Payload: b})
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Subscribe(topics.Cmd(), 1, func(_ string, p []byte) { x.Submit(p) }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = s.Run(ctx) }() // Run returns nil when ctx ends
	go func() { defer wg.Done(); _ = x.Run(ctx) }() // likewise
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if err := x.Close(); err != nil {
			t.Error(err)
		}
	})
	select {
	case <-connected:
	case <-time.After(10 * time.Second):
		t.Fatal("fake agent did not connect")
	}
}

// TestCommandThroughBroker: hubd cmd door-open and door-mode reach an
// agent's handler through a real MQTT broker and the result comes back; a
// command for an agent whose key is another is refused with "unsigned".
func TestCommandThroughBroker(t *testing.T) {
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi})
	dir := t.TempDir()
	var stderr bytes.Buffer
	if err := commandRun(context.Background(), []string{"keygen", "-out", dir}, &stderr, &stderr); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if err := commandRun(context.Background(), []string{"keygen", "-out", other}, &stderr, &stderr); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var opened []string
	h := command.Handlers{
		DoorOpen: func(_ context.Context, _, door string) error {
			mu.Lock()
			defer mu.Unlock()
			opened = append(opened, door)
			return nil
		},
		DoorMode: func(_ context.Context, _, door, mode string) error {
			mu.Lock()
			defer mu.Unlock()
			opened = append(opened, door+"="+mode)
			return nil
		},
	}
	fakeAgent(t, b.URL(), "ke", "gate-01", filepath.Join(dir, "cmd.pub"), h)
	fakeAgent(t, b.URL(), "ke", "gate-02", filepath.Join(other, "cmd.pub"), h)

	common := []string{"-broker", b.URL(), "-plaintext", "-root", "ke", "-key", filepath.Join(dir, "cmd.key"), "-timeout", "20s"}
	var out bytes.Buffer
	start := time.Now()
	err := commandRun(context.Background(), append([]string{"door-open", "-agent", "gate-01", "-door", "d1"}, common...), &out, &stderr)
	if err != nil {
		t.Fatalf("door-open: %v\n%s", err, stderr.String())
	}
	t.Logf("door-open round trip (connect included) %v: %s", time.Since(start), strings.TrimSpace(out.String()))
	if !strings.Contains(out.String(), ": ok") {
		t.Errorf("output %q", out.String())
	}
	out.Reset()
	err = commandRun(context.Background(), append([]string{"door-mode", "-json", "-agent", "gate-01", "-door", "d1", "-mode", "locked_down"}, common...), &out, &stderr)
	if err != nil {
		t.Fatalf("door-mode: %v", err)
	}
	r, err := wire.DecodeCommandResult(bytes.TrimSpace(out.Bytes()))
	if err != nil || !r.OK || r.Name != wire.CmdDoorMode {
		t.Errorf("door-mode JSON %q: %v", out.String(), err)
	}
	out.Reset()
	err = commandRun(context.Background(), append([]string{"door-open", "-agent", "gate-02", "-door", "d9"}, common...), &out, &stderr)
	if err == nil || !strings.Contains(out.String(), "unsigned") {
		t.Errorf("command under the wrong key: err %v, output %q", err, out.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(opened, ",") != "d1,d1=locked_down" {
		t.Errorf("handlers ran %q", opened)
	}
}
