package main

// End-to-end test of the devices (issue 4) as the hub sees them: kioskd
// (this test binary re-executed) runs an ID-card reader and a QR scanner
// simulated over pty pairs and configured by path; the hub, in-process
// with its own store, must see both devices in the agent's health, a
// "device.down" record when the scanner is unplugged and a "device.up"
// when it is plugged back, and no personal data in the agent's logs or in
// any stored record.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/hubtest"
	"github.com/kioskedge/kioskedge/testhw/idcardsim"
	"github.com/kioskedge/kioskedge/testhw/pty"
	"github.com/kioskedge/kioskedge/testhw/qrscansim"
)

// deviceRecord says whether r is a record of kind about device name.
func deviceRecord(r wire.Record, kind, name string) bool {
	if r.Kind != kind {
		return false
	}
	var b struct{ Name string }
	return json.Unmarshal(r.Body, &b) == nil && b.Name == name
}

// waitRecord waits until the hub holds a record of kind for device name
// with a sequence above after, and returns its sequence.
func waitRecord(t *testing.T, h *hubtest.Hub, d *daemon, agent, kind, name string, after uint64) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	go func() {
		select {
		case <-d.exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	var seq uint64
	err := h.Server().Hub().Wait(ctx, func() bool {
		for _, r := range h.Records(t, agent) {
			if r.Seq > after && deviceRecord(r, kind, name) {
				seq = r.Seq
				return true
			}
		}
		return false
	})
	if err != nil {
		var kinds []string
		for _, r := range h.Records(t, agent) {
			kinds = append(kinds, fmt.Sprintf("%d:%s %s", r.Seq, r.Kind, r.Body))
		}
		t.Fatalf("the hub holds no %s record for %s after seq %d within %v (exited early: %v); records:\n%s",
			kind, name, after, waitFor, isClosed(d.exited), strings.Join(kinds, "\n"))
	}
	return seq
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func deviceHealth(h *wire.Health, name string) (wire.DeviceHealth, bool) {
	if h == nil {
		return wire.DeviceHealth{}, false
	}
	for _, d := range h.Devices {
		if d.Name == name {
			return d, true
		}
	}
	return wire.DeviceHealth{}, false
}

func TestDaemonDevicesHealthAndUnplug(t *testing.T) {
	t.Parallel()
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi})
	h := hubtest.Start(t, b.URL(), hubtest.Options{Root: labRoot})
	dir := t.TempDir()

	// The ID-card reader, with a (fake) resident's card in the field.
	idPair, err := pty.New(filepath.Join(dir, "idcard0"))
	if err != nil {
		t.Fatal(err)
	}
	idSim := idcardsim.New()
	person := idcardsim.Fake()
	idSim.Insert(person)
	// The QR scanner.
	qrPair, err := pty.New(filepath.Join(dir, "qr0"))
	if err != nil {
		t.Fatal(err)
	}
	qrSim := qrscansim.New(qrscansim.Options{})
	simCtx, stopSims := context.WithCancel(context.Background())
	var sims sync.WaitGroup
	serveID := func() {
		dev := idPair.Device()
		sims.Go(func() { _ = idSim.Serve(dev) }) // ends with the device's close error, expected
	}
	serveQR := func() {
		dev := qrPair.Device()
		sims.Go(func() { _ = qrSim.Serve(simCtx, dev) }) // ends with the link's read error on unplug, expected
	}
	serveID()
	serveQR()
	t.Cleanup(func() {
		stopSims()
		idPair.Close()
		qrPair.Close()
		sims.Wait()
	})

	const id = "lab-kiosk-07"
	cfg := strings.Replace(labConfig(id, b.URL()), `level = "info"`, `level = "debug"`, 1) + fmt.Sprintf(`
[[device]]
name = "id-1"
kind = "idcard"
path = %q

[[device]]
name = "qr-1"
kind = "qrscan"
path = %q
reconnect_max = "200ms"
[device.qrscan]
terminator = "CR"

[[device]]
name = "ss-absent"
kind = "sscard"
path = %q
`, idPair.Path(), qrPair.Path(), filepath.Join(dir, "never-plugged"))
	d := startDaemon(t, writeConfig(t, cfg))

	// Both devices connected in the agent's health at the hub.
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	err = h.Server().Hub().Wait(ctx, func() bool {
		hl := h.View(t, id).Health
		a, okA := deviceHealth(hl, "id-1")
		q, okQ := deviceHealth(hl, "qr-1")
		return okA && okQ && a.Connected && q.Connected
	})
	if err != nil {
		t.Fatalf("the hub never saw both devices connected; last health %+v", h.View(t, id).Health)
	}

	waitRecord(t, h, d, id, "device.up", "id-1", 0)
	waitRecord(t, h, d, id, "device.card.inserted", "id-1", 0)
	upQR := waitRecord(t, h, d, id, "device.up", "qr-1", 0)
	if err := qrSim.Scan("VISITOR-TOKEN-4601991234"); err != nil {
		t.Fatal(err)
	}
	waitRecord(t, h, d, id, "device.code.scanned", "qr-1", 0)

	// Unplug the scanner: a device.down record; replug: device.up again.
	if err := qrPair.Unplug(); err != nil {
		t.Fatal(err)
	}
	down := waitRecord(t, h, d, id, "device.down", "qr-1", upQR)
	if err := qrPair.Replug(); err != nil {
		t.Fatal(err)
	}
	serveQR()
	waitRecord(t, h, d, id, "device.up", "qr-1", down)
	// A device absent from the start does not stop the agent: it is
	// reported down (after the start-up grace) and not connected.
	waitRecord(t, h, d, id, "device.down", "ss-absent", 0)
	if a, ok := deviceHealth(h.View(t, id).Health, "ss-absent"); !ok || a.Connected {
		t.Errorf("health of the absent device: %+v (present %v), want not connected", a, ok)
	}
	// The ID-card reader was not touched: no down record for it.
	for _, r := range h.Records(t, id) {
		if deviceRecord(r, "device.down", "id-1") {
			t.Errorf("a device.down record for the untouched id-1: %s", r.Body)
		}
	}

	d.signal(t, syscall.SIGTERM)
	if ws := d.wait(t); ws.Signaled() || ws.ExitStatus() != 0 {
		t.Fatalf("after SIGTERM: %v, want exit 0", d.err)
	}

	// No personal data anywhere: not the name, not the number, not the
	// scanned payload, in the logs or in any record.
	secrets := []string{person.Name, person.Number, person.Address, "VISITOR-TOKEN-4601991234"}
	logs := d.stderr.String()
	if !strings.Contains(logs, `"device":"id-1"`) {
		t.Errorf("the agent's logs do not mention id-1; was the log captured?\n%s", logs)
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		if strings.Contains(logs, s) {
			t.Errorf("personal data %q in the agent's logs", s)
		}
		for _, r := range h.Records(t, id) {
			if strings.Contains(string(r.Body), s) || strings.Contains(r.Kind, s) {
				t.Errorf("personal data %q in record %d %s: %s", s, r.Seq, r.Kind, r.Body)
			}
		}
	}
}

func TestDaemonRefusesAnUnusableDevicePath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notATTY := filepath.Join(dir, "not-a-tty")
	if err := os.WriteFile(notATTY, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := labConfig("lab-kiosk-08", "tcp://127.0.0.1:1") + fmt.Sprintf(`
[[device]]
name = "printer-1"
kind = "escpos"
path = %q
`, notATTY)
	var stderr bytes.Buffer
	if code := run([]string{"-config", writeConfig(t, cfg)}, io.Discard, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, &stderr)
	}
	for _, want := range []string{"device[0]", "printer-1", notATTY} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr does not name %q:\n%s", want, &stderr)
		}
	}
}
