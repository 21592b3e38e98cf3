package osdp_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/drivers/osdp"
	"github.com/kioskedge/kioskedge/drivers/serialport"
	"github.com/kioskedge/kioskedge/testhw/fakeclock"
	"github.com/kioskedge/kioskedge/testhw/logbuf"
	"github.com/kioskedge/kioskedge/testhw/osdpsim"
	"github.com/kioskedge/kioskedge/testhw/pty"
)

// rig is simulated PDs on a pty and a CP on its path.
type rig struct {
	t      *testing.T
	pair   *pty.Pair
	bus    *osdpsim.Bus
	cp     *osdp.CP
	clock  *fakeclock.Clock
	logs   *logbuf.Buffer
	creds  chan credential.Credential
	events chan osdp.Event
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	runErr chan error
	once   sync.Once
}

func newRig(t *testing.T, pds []*osdpsim.PD, readers []osdp.ReaderConfig) *rig {
	t.Helper()
	pair, err := pty.New(filepath.Join(t.TempDir(), "osdp0"))
	if err != nil {
		t.Fatal(err)
	}
	g := &rig{t: t, pair: pair, bus: osdpsim.NewBus(pds...), clock: fakeclock.New(time.Unix(1_700_000_000, 0)),
		logs: &logbuf.Buffer{}, creds: make(chan credential.Credential, 16), events: make(chan osdp.Event, 256), runErr: make(chan error, 1)}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.wg.Add(1)
	go g.serve()
	port, err := serialport.OpenReconnecting(pair.Path(), serialport.Mode{}, serialport.ReconnectOptions{
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, PathCheck: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	g.cp, err = osdp.New(port, osdp.Options{
		Readers: readers, ReplyTimeout: 60 * time.Millisecond, Retries: 1, PollInterval: 5 * time.Millisecond,
		DownAfter: 2, OfflineBackoff: time.Second, Now: g.clock.Now,
		Logger:       slog.New(slog.NewTextHandler(g.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnCredential: func(c credential.Credential) { g.creds <- c },
		OnEvent: func(e osdp.Event) {
			select {
			case g.events <- e:
			default: // a test that does not read events must not stall the loop
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() { g.runErr <- g.cp.Run(g.ctx) }()
	t.Cleanup(g.close)
	return g
}

// serve runs the simulated bus on the pair's device, again after each
// replug, until the rig closes.
func (g *rig) serve() {
	defer g.wg.Done()
	for g.ctx.Err() == nil {
		if !g.pair.Plugged() {
			time.Sleep(5 * time.Millisecond) // waiting for the test to replug
			continue
		}
		_ = g.bus.Serve(g.ctx, g.pair.Device()) // ends with the device's close error, expected
	}
}

func (g *rig) close() { g.once.Do(g.closeOnce) }

func (g *rig) closeOnce() {
	g.cancel()
	if err := <-g.runErr; err != nil {
		g.t.Errorf("Run: %v", err)
	}
	if err := g.cp.Close(); err != nil {
		g.t.Errorf("Close: %v", err)
	}
	if err := g.cp.Close(); err != nil {
		g.t.Errorf("second Close: %v", err)
	}
	if err := g.pair.Close(); err != nil {
		g.t.Errorf("close pty: %v", err)
	}
	g.wg.Wait()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (g *rig) status(addr byte) osdp.ReaderStatus {
	s, err := g.cp.Status(addr)
	if err != nil {
		g.t.Fatal(err)
	}
	return s
}

func (g *rig) cred() credential.Credential {
	g.t.Helper()
	select {
	case c := <-g.creds:
		return c
	case <-time.After(10 * time.Second):
		g.t.Fatal("no credential")
	}
	return credential.Credential{}
}

func (g *rig) waitEvent(kind osdp.EventKind, addr byte) osdp.Event {
	g.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-g.events:
			if e.Kind == kind && e.Addr == addr {
				return e
			}
		case <-timeout:
			g.t.Fatalf("no %s event for %#x", kind, addr)
		}
	}
}

func pdCfg(addr byte) osdpsim.Config {
	return osdpsim.Config{Address: addr, Vendor: [3]byte{0x0a, 0x0b, 0x0c}, Model: 7, Version: 1, Serial: 0x1000 + uint32(addr), Firmware: [3]byte{1, 2, 3}}
}

// Two readers on one bus: both interrogated, cards, keypad and tamper from
// each arrive with the right reader name, and output commands reach the
// right simulator.
func TestMultiDropCardsKeypadOutputs(t *testing.T) {
	a, b := osdpsim.NewPD(pdCfg(1)), osdpsim.NewPD(pdCfg(2))
	g := newRig(t, []*osdpsim.PD{a, b}, []osdp.ReaderConfig{{Address: 1, Name: "in"}, {Address: 2, Name: "out", Checksum: true}})
	waitFor(t, "both readers online", func() bool { return g.status(1).Online && g.status(2).Online && g.status(2).Capabilities != nil })
	if id := g.status(2).Identity; id == nil || id.Serial != 0x1002 || id.Model != 7 {
		t.Fatalf("identity %+v", id)
	}
	a.Swipe(26, []byte{0x0f, 0x1e, 0x2d, 0x40})
	c := g.cred()
	if c.Kind != credential.OSDP || c.Reader != "in" || c.Encoding != "osdp-raw" || c.Bits != 26 || c.Number != "0F1E2D40" {
		t.Errorf("raw card: %+v bits %d number ok %v", c, c.Bits, c.Number == "0F1E2D40")
	}
	b.SwipeFormatted("987654321")
	c = g.cred()
	if c.Reader != "out" || c.Encoding != "osdp-formatted" || c.Number != "987654321" {
		t.Errorf("formatted card on %s: %s", c.Reader, c.Encoding)
	}
	b.Keys("4321#")
	c = g.cred()
	if c.Kind != credential.Keypad || c.Reader != "out" || c.Number != "4321" {
		t.Errorf("keypad: %v %s", c.Kind, c.Reader)
	}
	a.SetTamper(true)
	if e := g.waitEvent(osdp.EventLocalStatus, 1); !e.Tamper {
		t.Errorf("tamper event %+v", e)
	}
	if err := g.cp.LED(2, osdp.LEDCommand{TempOn: 5, TempOnColor: osdp.Green, TempTimer: 20, PermOn: 1, PermOnColor: osdp.Red}); err != nil {
		t.Fatal(err)
	}
	if err := g.cp.Buzzer(2, osdp.BuzzerCommand{Tone: 2, On: 3, Off: 1, Count: 2}); err != nil {
		t.Fatal(err)
	}
	if err := g.cp.Text(1, osdp.TextCommand{Command: 3, Seconds: 5, Text: "GRANTED"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "outputs", func() bool { return b.LED(0).Set && b.Buzzer().Set && a.Text() == "GRANTED" })
	if l := b.LED(0); l.TempOnColor != osdp.Green || l.PermOnColor != osdp.Red || l.TempTimer != 20 {
		t.Errorf("LED %+v", l)
	}
	if bz := b.Buzzer(); bz.Tone != 2 || bz.On != 3 || bz.Count != 2 {
		t.Errorf("buzzer %+v", bz)
	}
	if a.LED(0).Set || a.Buzzer().Set {
		t.Error("reader 1 got reader 2's outputs")
	}
	if err := g.cp.LED(9, osdp.LEDCommand{}); !errors.Is(err, osdp.ErrUnknownReader) {
		t.Errorf("LED to unknown reader: %v", err)
	}
}

// Garbage, truncated copies and a bad CRC around replies are counted and
// skipped; the next valid reply is still read and the card arrives.
func TestFaultsSkippedAndCounted(t *testing.T) {
	a := osdpsim.NewPD(pdCfg(1))
	g := newRig(t, []*osdpsim.PD{a}, []osdp.ReaderConfig{{Address: 1}})
	waitFor(t, "online", func() bool { return g.status(1).Online && g.status(1).Capabilities != nil })
	a.Inject(osdpsim.Garbage)
	a.Inject(osdpsim.Truncated)
	a.Inject(osdpsim.BadCRC)
	a.Inject(osdpsim.Busy)
	a.Inject(osdpsim.NAK)
	waitFor(t, "faults delivered", func() bool { return a.PendingFaults() == 0 })
	a.Swipe(26, []byte{0x01, 0x02, 0x03, 0x40})
	if c := g.cred(); c.Number != "01020340" {
		t.Errorf("card after faults: %v", c)
	}
	h := g.status(1).Health
	if h.Errors["framing"] == 0 || h.Errors["checksum"] == 0 || h.Errors["nak"] == 0 {
		t.Errorf("errors not counted: %v", h.Errors)
	}
	if h.Down || !g.status(1).Online {
		t.Errorf("faults took the reader down: %+v", h)
	}
}

// A reader that goes silent is marked down (the other keeps working), is
// probed with back-off on the injected clock, and comes back.
func TestSilentReaderDownAndRecovered(t *testing.T) {
	a, b := osdpsim.NewPD(pdCfg(1)), osdpsim.NewPD(pdCfg(2))
	g := newRig(t, []*osdpsim.PD{a, b}, []osdp.ReaderConfig{{Address: 1}, {Address: 2}})
	waitFor(t, "online", func() bool { return g.status(1).Online && g.status(2).Online })
	a.SetSilent(true)
	g.waitEvent(osdp.EventOffline, 1)
	if h := g.status(1).Health; !h.Down || h.Errors["timeout"] < 2 {
		t.Errorf("silent reader health %+v", h)
	}
	b.Swipe(26, []byte{0x0a, 0x0b, 0x0c, 0x00})
	if c := g.cred(); c.Reader != "osdp-02" {
		t.Errorf("card from %s", c.Reader)
	}
	// No probes while the back-off has not elapsed on the injected clock.
	n := a.Count(0x61)
	a.SetSilent(false)
	time.Sleep(100 * time.Millisecond) // a few poll cycles of real time, not a timer
	if a.Count(0x61) != n || g.status(1).Online {
		t.Fatal("offline reader probed before its back-off elapsed")
	}
	g.clock.Advance(2 * time.Second)
	g.waitEvent(osdp.EventOnline, 1)
	if h := g.status(1).Health; h.Down {
		t.Errorf("recovered reader still down: %+v", h)
	}
}

// Unplugging the bus adapter and plugging it back: the CP reconnects within
// 2 s of the device reappearing, reads cards again, and leaves no goroutine
// behind once closed.
func TestUnplugReplugNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		a := osdpsim.NewPD(pdCfg(1))
		g := newRig(t, []*osdpsim.PD{a}, []osdp.ReaderConfig{{Address: 1}})
		defer g.close()
		waitFor(t, "online", func() bool { return g.status(1).Online })
		if err := g.pair.Unplug(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "disconnected", func() bool { return !g.status(1).Health.Connected })
		if err := g.pair.Replug(); err != nil {
			t.Fatal(err)
		}
		replugged := time.Now()
		waitFor(t, "reconnected", func() bool { h := g.status(1).Health; return h.Connected && g.status(1).Online })
		if d := time.Since(replugged); d > 2*time.Second {
			t.Errorf("reconnected %v after replug, want within 2 s", d)
		}
		if h := g.status(1).Health; h.Reconnects == 0 {
			t.Errorf("reconnect not counted: %+v", h)
		}
		a.Swipe(26, []byte{0x11, 0x22, 0x33, 0x40})
		if c := g.cred(); c.Number != "11223340" {
			t.Errorf("card after replug: %v", c)
		}
	}()
	settled := false
	for range 200 {
		if runtime.NumGoroutine() <= before {
			settled = true
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !settled {
		buf := make([]byte, 1<<16)
		t.Errorf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
	}
}

// Install mode: the channel opens with SCBK-D, osdp_KEYSET moves the
// reader to its unique key, the channel reopens with it, and card reads
// arrive through it. A key rotation with SetKey works the same way.
func TestSecureChannelInstallKeysetReopen(t *testing.T) {
	unique := bytes.Repeat([]byte{0xA5}, 16)
	cfg := pdCfg(1)
	cfg.Install, cfg.SecureOnly = true, true
	a := osdpsim.NewPD(cfg)
	g := newRig(t, []*osdpsim.PD{a}, []osdp.ReaderConfig{{Address: 1, Key: unique, Install: true, RequireSecure: true}})
	g.waitEvent(osdp.EventKeySet, 1)
	waitFor(t, "secure with the unique key", func() bool { return g.status(1).Secure && a.Secure() })
	if a.InstallMode() || !bytes.Equal(a.Key(), unique) {
		t.Fatalf("reader key %x install %v", a.Key(), a.InstallMode())
	}
	if a.Count(0x76) < 2 {
		t.Errorf("channel not reopened after KEYSET (%d challenges)", a.Count(0x76))
	}
	a.Swipe(26, []byte{0x0f, 0x1e, 0x2d, 0x40})
	if c := g.cred(); c.Number != "0F1E2D40" {
		t.Errorf("card through the channel: %v", c)
	}
	var next [16]byte
	copy(next[:], bytes.Repeat([]byte{0x5A}, 16))
	if err := g.cp.SetKey(1, next); err != nil {
		t.Fatal(err)
	}
	if e := g.waitEvent(osdp.EventKeySet, 1); e.Err != nil {
		t.Fatalf("rotation: %v", e.Err)
	}
	waitFor(t, "secure with the rotated key", func() bool { return bytes.Equal(a.Key(), next[:]) && g.status(1).Secure })
	if err := g.cp.LED(1, osdp.LEDCommand{PermOn: 1, PermOnColor: osdp.Green}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "LED through the channel", func() bool { return a.LED(0).PermOnColor == osdp.Green })
}

// A reader keyed differently from the CP is refused: no channel, no
// polling, no card reads, and no plaintext fallback. With RequireSecure
// false the same reader falls back to plaintext, as configured.
func TestMisKeyedReaderRefused(t *testing.T) {
	cfg := pdCfg(1)
	cfg.Key = bytes.Repeat([]byte{0x11}, 16)
	a := osdpsim.NewPD(cfg)
	cfg2 := pdCfg(2)
	cfg2.Key = bytes.Repeat([]byte{0x11}, 16)
	b := osdpsim.NewPD(cfg2)
	wrong := bytes.Repeat([]byte{0x22}, 16)
	g := newRig(t, []*osdpsim.PD{a, b}, []osdp.ReaderConfig{
		{Address: 1, Key: wrong, RequireSecure: true},
		{Address: 2, Key: wrong}})
	e := g.waitEvent(osdp.EventSecureRefused, 1)
	if !errors.Is(e.Err, osdp.ErrBadCryptogram) {
		t.Errorf("refusal reason %v", e.Err)
	}
	waitFor(t, "refused", func() bool { return g.status(1).Refused })
	g.waitEvent(osdp.EventPlaintext, 2)
	a.Swipe(26, []byte{0x0f, 0x1e, 0x2d, 0x40})
	b.Swipe(26, []byte{0x01, 0x01, 0x01, 0x00})
	if c := g.cred(); c.Reader != "osdp-02" {
		t.Errorf("credential from %s", c.Reader)
	}
	time.Sleep(100 * time.Millisecond) // some poll cycles: reader 1 must stay unused
	select {
	case c := <-g.creds:
		t.Fatalf("credential from a refused reader: %v", c.Reader)
	default:
	}
	if a.Count(0x60) != 0 {
		t.Errorf("refused reader polled %d times", a.Count(0x60))
	}
	if s := g.status(1); s.Secure || !strings.Contains(s.Health.Detail, "refused") {
		t.Errorf("status %+v", s)
	}
}

// Card reads are logged masked: the captured debug logs never contain a
// card number or PIN whole.
func TestLogsNeverContainNumbers(t *testing.T) {
	a := osdpsim.NewPD(pdCfg(1))
	g := newRig(t, []*osdpsim.PD{a}, []osdp.ReaderConfig{{Address: 1}})
	waitFor(t, "online", func() bool { return g.status(1).Online })
	a.Swipe(34, []byte{0x9a, 0xbc, 0xde, 0xf0, 0x40})
	a.SwipeFormatted("4601987654321")
	a.Keys("135790#")
	for range 3 {
		g.cred()
	}
	logs := g.logs.String()
	if !strings.Contains(logs, "credential") {
		t.Fatal("no credential log line captured; the test would pass vacuously")
	}
	for _, n := range []string{"9ABCDEF040", "9abcdef040", "4601987654321", "135790"} {
		if strings.Contains(logs, n) {
			t.Errorf("logs contain %q", n)
		}
	}
}

func TestNewValidates(t *testing.T) {
	p := &nopPort{}
	for _, rc := range [][]osdp.ReaderConfig{nil, {{Address: 0x7F}}, {{Address: 1}, {Address: 1}},
		{{Address: 1, Key: []byte{1}}}, {{Address: 1, Install: true}}, {{Address: 1, RequireSecure: true}}} {
		if _, err := osdp.New(p, osdp.Options{Readers: rc}); err == nil {
			t.Errorf("New accepted %+v", rc)
		}
	}
}

type nopPort struct{}

func (nopPort) Read([]byte) (int, error)           { return 0, &serialport.Error{Code: serialport.Timeout} }
func (nopPort) Write(b []byte) (int, error)        { return len(b), nil }
func (nopPort) SetReadTimeout(time.Duration) error { return nil }
func (nopPort) ResetInputBuffer() error            { return nil }
func (nopPort) Close() error                       { return nil }
