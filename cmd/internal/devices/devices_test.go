package devices

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/agent/config"
	agentdevices "github.com/kioskedge/kioskedge/agent/devices"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/osdpsim"
	"github.com/kioskedge/kioskedge/testhw/pty"
)

// memOutbox keeps appended records.
type memOutbox struct {
	mu   sync.Mutex
	recs []wire.Record
}

func (o *memOutbox) Append(_ context.Context, r wire.Record) (uint64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.recs = append(o.recs, r)
	return uint64(len(o.recs)), nil
}

func (o *memOutbox) find(kind, name string) (map[string]any, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, r := range o.recs {
		var b map[string]any
		if r.Kind == kind && json.Unmarshal(r.Body, &b) == nil && b["name"] == name {
			return b, true
		}
	}
	return nil, false
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func newMonitor(t *testing.T, ob agentdevices.Outbox) *agentdevices.Monitor {
	t.Helper()
	m, err := agentdevices.NewMonitor(agentdevices.Options{Outbox: ob, Every: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestOpenRefusesWhatWaitingCannotFix(t *testing.T) {
	dir := t.TempDir()
	notATTY := filepath.Join(dir, "file")
	os.WriteFile(notATTY, []byte("x"), 0o600)
	badKey := filepath.Join(dir, "bad.key")
	os.WriteFile(badKey, []byte("not hex at all"), 0o600)
	absent := filepath.Join(dir, "absent")
	bus := func(key string) config.Device {
		return config.Device{Name: "bus", Kind: config.KindOSDP, Path: absent, Baud: 9600, ReconnectMax: config.DefaultReconnectMax,
			OSDP: &config.OSDPBus{Readers: []config.OSDPReader{{Name: "gate-in", Address: 1, KeyFile: key, RequireSecure: true}}}}
	}
	for _, tc := range []struct {
		name string
		dev  config.Device
		want []string
	}{
		{"not a tty", config.Device{Name: "qr", Kind: config.KindQRScan, Path: notATTY, Baud: 9600}, []string{`device[0] "qr"`, notATTY}},
		{"idcard baud", config.Device{Name: "id", Kind: config.KindIDCard, Path: absent, Baud: 9600}, []string{`device[0] "id"`, "115200"}},
		{"missing key file", bus(filepath.Join(dir, "nope.key")), []string{`device[0] "bus"`, "gate-in", "key_file", "no such file"}},
		{"bad key file", bus(badKey), []string{"gate-in", "32 hex digits"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ob := &memOutbox{}
			_, err := Open(Options{Devices: []config.Device{tc.dev}, Monitor: newMonitor(t, ob)})
			if err == nil {
				t.Fatal("opened")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q: %v", w, err)
				}
			}
			if strings.Contains(err.Error(), "not hex at all") {
				t.Errorf("the error echoes the key file: %v", err)
			}
		})
	}
}

func TestReadKey(t *testing.T) {
	p := filepath.Join(t.TempDir(), "k")
	os.WriteFile(p, []byte("000102030405060708090a0b0c0d0e0f\n"), 0o600)
	k, err := ReadKey(p)
	if err != nil || len(k) != 16 || k[15] != 0x0f {
		t.Fatalf("ReadKey: %x %v", k, err)
	}
	os.WriteFile(p, []byte("0001"), 0o600)
	if _, err := ReadKey(p); err == nil {
		t.Error("a short key was accepted")
	}
}

// TestOSDPBusOverPTY runs an OSDP bus from its config against the
// simulator: the reader, installed with its own key from key_file, comes
// up in the Monitor, and its tamper switch becomes a record.
func TestOSDPBusOverPTY(t *testing.T) {
	dir := t.TempDir()
	pair, err := pty.New(filepath.Join(dir, "rs485"))
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "gate-in.key")
	os.WriteFile(keyFile, []byte("0102030405060708090a0b0c0d0e0f10\n"), 0o600)
	pd := osdpsim.NewPD(osdpsim.Config{Address: 1, Install: true})
	simCtx, stopSim := context.WithCancel(context.Background())
	var sims sync.WaitGroup
	dev := pair.Device()
	sims.Go(func() { _ = osdpsim.NewBus(pd).Serve(simCtx, dev) }) // ends with ctx or the closed device

	ob := &memOutbox{}
	mon := newMonitor(t, ob)
	set, err := Open(Options{Monitor: mon, Devices: []config.Device{{Name: "bus", Kind: config.KindOSDP, Path: pair.Path(),
		Baud: 9600, ReconnectMax: config.DefaultReconnectMax, OSDP: &config.OSDPBus{
			Readers: []config.OSDPReader{{Name: "gate-in", Address: 1, KeyFile: keyFile, InstallMode: true, RequireSecure: true}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = set.Run(ctx) })
	wg.Go(func() { _ = mon.Run(ctx) })
	defer func() {
		cancel()
		wg.Wait()
		if err := set.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		stopSim()
		pair.Close()
		sims.Wait()
	}()

	waitUntil(t, "gate-in up", func() bool { _, ok := ob.find(agentdevices.KindUp, "gate-in"); return ok })
	waitUntil(t, "a secure channel", func() bool { _, ok := ob.find("device.secure.open", "gate-in"); return ok && pd.Secure() })
	pd.SetTamper(true)
	waitUntil(t, "the tamper record", func() bool {
		b, ok := ob.find("device.local_status", "gate-in")
		return ok && b["tamper"] == true
	})
	if h := mon.Health(); len(h) != 1 || h[0].Name != "gate-in" || !h[0].Connected {
		t.Errorf("health %+v", h)
	}
	if _, ok := ob.find("device.secure.refused", "gate-in"); ok {
		t.Error("the handshake was refused")
	}
}
