package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/agent/privacy"
	"github.com/kioskedge/kioskedge/cmd/internal/commission"
	"github.com/kioskedge/kioskedge/cmd/internal/node"
	"github.com/kioskedge/kioskedge/drivers/serialport"
	"github.com/kioskedge/kioskedge/firmware-specs/sscardvectors"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/escpossim"
	"github.com/kioskedge/kioskedge/testhw/gatesim"
	"github.com/kioskedge/kioskedge/testhw/gpiosim"
	"github.com/kioskedge/kioskedge/testhw/hubtest"
	"github.com/kioskedge/kioskedge/testhw/idcardsim"
	"github.com/kioskedge/kioskedge/testhw/pty"
	"github.com/kioskedge/kioskedge/testhw/qrscansim"
	"github.com/kioskedge/kioskedge/testhw/sscardsim"
)

const kioskTOML = `
[agent]
id = "kiosk-7"
data_dir = "data"
site = "Haidian community centre"
region = "110108"

[hub]
broker = "%[1]s"
plaintext = true
root = "%[2]s"
backoff_min = "30ms"
backoff_max = "300ms"

[localapi]
enabled = false

[admin]
listen = "127.0.0.1:1"

[[device]]
name = "idcard"
kind = "idcard"
path = "%[3]s/idcard"

[[device]]
name = "sscard"
kind = "sscard"
path = "%[3]s/sscard"

[[device]]
name = "scanner"
kind = "qrscan"
path = "%[3]s/qrscan"

[[device]]
name = "printer"
kind = "escpos"
path = "%[3]s/printer"
`

// kiosk is a virtual kiosk: a config and four simulated serial devices.
type kiosk struct {
	dir, cfgPath string
	pairs        map[string]*pty.Pair
	idcard       *idcardsim.Sim
	sscard       *sscardsim.Sim
	scanner      *qrscansim.Scanner
	printer      *escpossim.Printer
}

func newKiosk(t *testing.T, brokerURL, root string) *kiosk {
	t.Helper()
	k := &kiosk{dir: t.TempDir(), pairs: map[string]*pty.Pair{}, idcard: idcardsim.New(), sscard: sscardsim.New(),
		scanner: qrscansim.New(qrscansim.Options{}), printer: escpossim.New()}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		for _, p := range k.pairs {
			p.Close()
		}
		wg.Wait()
	})
	for _, name := range []string{"idcard", "sscard", "qrscan", "printer"} {
		p, err := pty.New(filepath.Join(k.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		k.pairs[name] = p
		dev := p.Device()
		switch name { // each Serve ends when its pty is closed
		case "idcard":
			wg.Go(func() { _ = k.idcard.Serve(dev) })
		case "sscard":
			wg.Go(func() { _ = k.sscard.Serve(dev) })
		case "qrscan":
			wg.Go(func() { _ = k.scanner.Serve(ctx, dev) })
		case "printer":
			wg.Go(func() { _ = k.printer.Serve(ctx, dev) })
		}
	}
	k.cfgPath = filepath.Join(k.dir, "kioskd.toml")
	if err := os.WriteFile(k.cfgPath, fmt.Appendf(nil, kioskTOML, brokerURL, root, k.dir), 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

const gateTOML = `
[agent]
id = "gate-3"
data_dir = "data"

[hub]
broker = "%s"
plaintext = true
root = "%s"
backoff_min = "30ms"
backoff_max = "300ms"

[localapi]
enabled = false

[admin]
listen = "127.0.0.1:1"

[privacy]
site_key_file = "site.key"

[gate]
unlock_pulse = "300ms"

[[door]]
id = "main"
lock = "fail_secure"
relay = "sim:relay"
contact = "sim:contact"
fire = "sim:fire"

[[door]]
id = "side"
lock = "fail_secure"
relay = "sim:side-relay"
contact = "sim:side-contact"

[[door]]
id = "exit"
lock = "fail_safe"
relay = "sim:exit-relay"

[[wiegand]]
name = "main-in"
door = "main"
d0 = "sim:d0"
d1 = "sim:d1"
`

// gate is a virtual gate: a config, simulated doors and a Wiegand reader.
// Doors in pushed open whenever their lock releases, like a person
// waiting at them; the others never move.
type gate struct {
	dir, cfgPath string
	cfg          config.Config
	hw           *gatesim.Gate
}

func newGate(t *testing.T, brokerURL, root string, pushed ...string) *gate {
	t.Helper()
	g := &gate{dir: t.TempDir()}
	key, err := privacy.NewSiteKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := privacy.WriteSiteKey(filepath.Join(g.dir, "site.key"), key); err != nil {
		t.Fatal(err)
	}
	g.cfgPath = filepath.Join(g.dir, "kioskd.toml")
	if err := os.WriteFile(g.cfgPath, fmt.Appendf(nil, gateTOML, brokerURL, root), 0o600); err != nil {
		t.Fatal(err)
	}
	if g.cfg, err = config.Load(g.cfgPath); err != nil {
		t.Fatal(err)
	}
	if g.hw, err = gatesim.New(g.cfg, nil); err != nil {
		t.Fatal(err)
	}
	prev := gpioLines
	gpioLines = g.hw.Lines
	t.Cleanup(func() { gpioLines = prev })
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, id := range pushed {
		d := g.hw.Door(id)
		wg.Go(func() { // a person at the door: opens it when it releases, shuts it when it locks
			for ctx.Err() == nil {
				switch {
				case !d.Locked() && !d.Open():
					d.Push()
				case d.Locked() && d.Open():
					d.Close()
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	return g
}

// selftest runs kioskctl selftest --json and decodes its result.
func selftest(t *testing.T, cfgPath string, args ...string) (int, selftestResult, string) {
	t.Helper()
	start := time.Now()
	code, out, stderr := runCtl(t, append([]string{"--json", "--config", cfgPath, "selftest", "--timeout", "2s"}, args...)...)
	t.Logf("selftest took %v", time.Since(start))
	var res selftestResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("code %d: %v\nstdout %s\nstderr %s", code, err, out, stderr)
	}
	return code, res, out + stderr
}

func checks(r commission.Report) map[string]commission.Check {
	m := map[string]commission.Check{}
	for _, c := range r.Checks {
		m[c.Name] = c
	}
	return m
}

// noPersonalData fails t if out holds any of the simulated residents'
// numbers or names.
func noPersonalData(t *testing.T, out string) {
	t.Helper()
	p := idcardsim.Fake()
	ss := sscardvectors.MustLoad().Card.Fields
	for _, s := range []string{p.Number, p.Name, ss.SSN, ss.Name, ss.CardNumber, ss.CardID} {
		if s != "" && strings.Contains(out, s) {
			t.Errorf("output holds personal data (%d chars of a field)", len(s))
		}
	}
}

func TestSelftestVirtualKiosk(t *testing.T) {
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi})
	hub := hubtest.Start(t, b.URL(), hubtest.Options{})
	k := newKiosk(t, b.URL(), hub.Root())

	code, res, out := selftest(t, k.cfgPath)
	cs := checks(res.Report)
	for _, c := range res.Report.Checks {
		t.Logf("%v %s: %s %s", c.OK, c.Name, c.Detail, c.Reason)
	}
	if code != exitOK || !res.Report.Summary.OK {
		t.Fatalf("healthy kiosk: code %d, summary %+v", code, res.Report.Summary)
	}
	for _, n := range []string{"device:idcard", "device:sscard", "device:scanner", "device:printer", "hub", "tls", "clock", "disk", "outbox"} {
		if _, ok := cs[n]; !ok {
			t.Errorf("no %s check", n)
		}
	}
	if !strings.Contains(cs["clock"].Detail, "offset") {
		t.Errorf("clock not measured against the hub: %+v", cs["clock"])
	}
	if r := res.Report; r.Agent != "kiosk-7" || r.Site != "Haidian community centre" || r.Region != "110108" {
		t.Errorf("identity: %+v", r)
	}
	// Saved as JSON and text.
	if len(res.Saved) != 2 {
		t.Fatalf("saved %v", res.Saved)
	}
	b1, err := os.ReadFile(res.Saved[0])
	if err != nil {
		t.Fatal(err)
	}
	var saved commission.Report
	if err := json.Unmarshal(b1, &saved); err != nil || len(saved.Checks) != len(res.Report.Checks) {
		t.Fatalf("saved report: %v %+v", err, saved)
	}
	if txt, err := os.ReadFile(res.Saved[1]); err != nil || !strings.Contains(string(txt), "PASS  device:printer") {
		t.Fatalf("saved text: %v\n%s", err, txt)
	}
	// Printed on the receipt printer.
	if !strings.HasPrefix(res.Printed, "printed on printer") || !strings.Contains(k.printer.Paper(), "Commissioning report") {
		t.Fatalf("printed %q; paper:\n%s", res.Printed, k.printer.Paper())
	}
	// kioskd is stopped: the record is queued in the outbox and reaches
	// the hub when a node starts.
	if !strings.Contains(res.Sent, "queued in the outbox") {
		t.Fatalf("sent: %q", res.Sent)
	}
	cfg, err := config.Load(k.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Devices = nil // the node must not take the simulated ports
	runNode(t, cfg)
	var got *wire.Record
	deadline := time.Now().Add(15 * time.Second)
	for got == nil && time.Now().Before(deadline) {
		for _, r := range hub.Records(t, "kiosk-7") {
			if r.Kind == commission.RecordKind {
				got = &r
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got == nil || got.Class != wire.ClassCritical {
		t.Fatalf("the hub holds no commissioning.report record: %+v", got)
	}
	var body commission.Report
	if err := json.Unmarshal(got.Body, &body); err != nil || body.Agent != "kiosk-7" || !body.Summary.OK {
		t.Fatalf("record body: %v %+v", err, body)
	}
	noPersonalData(t, out)
}

// runNode runs an agent node (outbox and uplink, as kioskd does) until the
// test ends.
func runNode(t *testing.T, cfg config.Config) {
	t.Helper()
	codec, err := wire.NewCodec(wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(node.Options{Config: cfg, Version: "test", Codec: codec})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = n.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait(); n.Close(); codec.Close() })
}

func TestSelftestKioskFaults(t *testing.T) {
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi})
	hub := hubtest.Start(t, b.URL(), hubtest.Options{})
	k := newKiosk(t, b.URL(), hub.Root())
	k.printer.SetPaperOut(true)
	if err := k.pairs["sscard"].Unplug(); err != nil {
		t.Fatal(err)
	}
	code, res, out := selftest(t, k.cfgPath)
	cs := checks(res.Report)
	if code != exitFailed || res.Report.Summary.OK || res.Report.Summary.Failed != 2 {
		t.Fatalf("code %d summary %+v\n%s", code, res.Report.Summary, out)
	}
	if c := cs["device:printer"]; c.OK || !strings.Contains(c.Reason, "paper out") {
		t.Errorf("printer: %+v", c)
	}
	if c := cs["device:sscard"]; c.OK || !strings.Contains(c.Reason, "not connected") {
		t.Errorf("sscard: %+v", c)
	}
	if !cs["device:idcard"].OK || !cs["device:scanner"].OK {
		t.Errorf("healthy devices failed: %+v %+v", cs["device:idcard"], cs["device:scanner"])
	}
	if !strings.Contains(res.Printed, "not printed") {
		t.Errorf("printed with paper out: %q", res.Printed)
	}
	// The human form says the same, with what to do.
	code, human, _ := runCtl(t, "--config", k.cfgPath, "selftest", "--no-print")
	t.Logf("human output:\n%s", human)
	for _, want := range []string{"FAIL  device:printer", "→ paper out: load a paper roll", "FAIL  device:sscard", "→ not connected", "2 of ", "queued in the outbox"} {
		if !strings.Contains(human, want) {
			t.Errorf("human output lacks %q", want)
		}
	}
	if code != exitFailed {
		t.Errorf("human: code %d", code)
	}
}

func TestSelftestVirtualGate(t *testing.T) {
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi})
	hub := hubtest.Start(t, b.URL(), hubtest.Options{})
	g := newGate(t, b.URL(), hub.Root(), "main") // nobody opens "side"

	code, res, out := selftest(t, g.cfgPath)
	cs := checks(res.Report)
	for _, c := range res.Report.Checks {
		t.Logf("%v %s: %s %s", c.OK, c.Name, c.Detail, c.Reason)
	}
	if c := cs["door:main"]; !c.OK || !strings.Contains(c.Detail, "door contact opened") {
		t.Errorf("main door: %+v", c)
	}
	if c := cs["door:side"]; c.OK || c.Reason != commission.ReasonNoFeedback {
		t.Errorf("side door (relay without feedback): %+v", c)
	}
	if !cs["wiegand:main-in"].OK || !cs["hub"].OK || !cs["clock"].OK {
		t.Errorf("wiegand/hub/clock: %+v %+v %+v", cs["wiegand:main-in"], cs["hub"], cs["clock"])
	}
	// A fresh gate has no allowlist: reported, not hidden.
	if c := cs["allowlist"]; c.OK || !strings.Contains(c.Detail, "version 0") {
		t.Errorf("allowlist: %+v", c)
	}
	if code != exitFailed || res.Report.Summary.Failed != 2 {
		t.Fatalf("code %d summary %+v\n%s", code, res.Report.Summary, out)
	}
	if !g.hw.Door("side").Locked() || !g.hw.Door("main").Locked() {
		t.Error("a fail-secure door was left released")
	}
	// Without a contact the pulse cannot be verified; a fail-safe lock is
	// left in its safe state, released, as a stopped kioskd leaves it.
	if c := cs["door:exit"]; !c.OK || !strings.Contains(c.Detail, commission.DetailNoContact) {
		t.Errorf("exit door: %+v", c)
	}
	if g.hw.Door("exit").Locked() {
		t.Error("the fail-safe exit door was left locked")
	}
	if res.Printed != "not printed: no receipt printer configured" {
		t.Errorf("printed: %q", res.Printed)
	}

	// --no-actuate leaves the relays alone: both doors pass.
	edges := len(g.hw.Door("side").RelayEdges())
	_, res, _ = selftest(t, g.cfgPath, "--no-actuate")
	cs = checks(res.Report)
	if c := cs["door:side"]; !c.OK || !strings.Contains(c.Detail, "not pulsed") {
		t.Errorf("side door with --no-actuate: %+v", c)
	}
	if n := len(g.hw.Door("side").RelayEdges()); n != edges {
		t.Errorf("--no-actuate moved the relay: %d edges, was %d", n, edges)
	}
}

func TestDeviceTests(t *testing.T) {
	b := broker.ForTest(t, broker.Options{Kind: broker.Mochi})
	k := newKiosk(t, b.URL(), "kioskedge/test")
	g := newGate(t, b.URL(), "kioskedge/test", "main")
	person := idcardsim.Fake()

	for _, tc := range []struct {
		name, cfg, device string
		before            func()
		code              int
		want              string
	}{
		{"printer", k.cfgPath, "printer", nil, exitOK, "test receipt printed"},
		{"idcard", k.cfgPath, "idcard", func() { k.idcard.Insert(person) }, exitOK, "ID card read: "},
		{"sscard", k.cfgPath, "sscard", func() { k.sscard.Insert(sscardsim.VectorCard()) }, exitOK, "social security card read: "},
		{"scanner", k.cfgPath, "scanner", func() {
			go func() { // the person scans once the test listens
				for range 50 {
					time.Sleep(20 * time.Millisecond)
					_ = k.scanner.Scan("https://example.invalid/q/123456789")
				}
			}()
		}, exitOK, "scanned"},
		{"door", g.cfgPath, "main", nil, exitOK, "door contact opened"},
		{"door without feedback", g.cfgPath, "side", nil, exitFailed, commission.ReasonNoFeedback},
		{"wiegand", g.cfgPath, "main-in", func() {
			go func() {
				time.Sleep(100 * time.Millisecond)
				_, _ = g.hw.Swipe("main-in", gpiosim.H10301(12, 34567), gpiosim.TxOptions{})
			}()
		}, exitOK, "card read: H10301"},
		{"unknown", k.cfgPath, "toaster", nil, exitUsage, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
			}
			code, out, stderr := runCtl(t, "--config", tc.cfg, "test", tc.device, "--timeout", "2s")
			if code != tc.code || !strings.Contains(out+stderr, tc.want) {
				t.Fatalf("code %d, want %d; want %q in\n%s%s", code, tc.code, tc.want, out, stderr)
			}
			noPersonalData(t, out+stderr)
			if strings.Contains(out, "123456789") || strings.Contains(out, "34567") {
				t.Errorf("output holds a whole card number or payload: %s", out)
			}
		})
	}
	// A port someone holds (kioskd) is not fought over.
	held, err := serialport.Open(filepath.Join(k.dir, "printer"), serialport.Mode{})
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCtl(t, "--config", k.cfgPath, "test", "printer")
	held.Close()
	if code != exitUnusable || !strings.Contains(stderr, "busy: kioskd is running; stop it (systemctl stop kioskd)") {
		t.Fatalf("busy port: code %d, %q", code, stderr)
	}
	k.printer.SetPaperOut(true)
	code, out, _ := runCtl(t, "--json", "--config", k.cfgPath, "test", "printer")
	var c commission.Check
	if err := json.Unmarshal([]byte(out), &c); err != nil || code != exitFailed || !strings.Contains(c.Reason, "paper out") {
		t.Fatalf("paper out: code %d %v %+v", code, err, c)
	}
	if !strings.Contains(k.printer.Paper(), "KioskEdge test receipt") {
		t.Errorf("the test receipt is not on the paper:\n%s", k.printer.Paper())
	}
}
