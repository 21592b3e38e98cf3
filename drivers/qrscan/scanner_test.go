package qrscan

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/drivers/serialport"
	"github.com/kioskedge/kioskedge/testhw/fakeclock"
	"github.com/kioskedge/kioskedge/testhw/pty"
	"github.com/kioskedge/kioskedge/testhw/qrscansim"
)

// waitFor polls cond until it holds or the limit passes. The limit is a
// hang guard, not a speed requirement.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func recv(t *testing.T, ch <-chan credential.Credential) credential.Credential {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no scan delivered")
		return credential.Credential{}
	}
}

// settle waits for the goroutine count to come back to base.
func settle(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutine leak: %d > %d\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestScannerOverPTY(t *testing.T) {
	base := runtime.NumGoroutine()
	pair, err := pty.New(filepath.Join(t.TempDir(), "qr0"))
	if err != nil {
		t.Fatal(err)
	}
	defer pair.Close()

	sim := qrscansim.New(qrscansim.Options{AIM: "]Q1"})
	simCtx, simStop := context.WithCancel(context.Background())
	var simWG sync.WaitGroup
	serve := func() {
		dev := pair.Device()
		simWG.Go(func() {
			// Serve ends with the link's read error on unplug; expected.
			_ = sim.Serve(simCtx, dev)
		})
	}
	serve()

	clock := fakeclock.New(t0)
	scans := make(chan credential.Credential, 16)
	sc, err := Open(pair.Path(), serialport.Mode{BaudRate: 9600},
		serialport.ReconnectOptions{MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, PathCheck: 100 * time.Millisecond},
		Options{
			Name:      "kiosk-1-qr",
			Framer:    FramerConfig{StripAIM: true, CharTimeout: 200 * time.Millisecond},
			Probe:     &Probe{Request: qrscansim.DefaultProbeRequest, Reply: qrscansim.DefaultProbeReply, Every: time.Second},
			DownAfter: 3,
			Now:       clock.Now,
			OnScan:    func(c credential.Credential) { scans <- c },
		})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- sc.Run(ctx) }()

	// Normal flow; the first probe (sent at start) is answered.
	waitFor(t, "first probe reply", 10*time.Second, func() bool { return sc.Stats().Replies >= 1 })
	if err := sim.Scan("KE1.visitor.0042"); err != nil {
		t.Fatal(err)
	}
	c := recv(t, scans)
	if c.Kind != credential.QR || c.Number != "KE1.visitor.0042" || string(c.Raw) != c.Number || c.Reader != "kiosk-1-qr" || !c.Time.Equal(t0) {
		t.Fatalf("scan = %#v (%q)", c, c.Number)
	}
	if h := sc.Health(); !h.Connected || h.Down || !h.LastSeen.Equal(t0) {
		t.Fatalf("health after scan: %+v", h)
	}

	// Garbage between valid lines: counted, skipped, next read.
	if err := sim.Garbage([]byte{0x00, 0x1b, 0xff, 'A'}); err != nil {
		t.Fatal(err)
	}
	if err := sim.Scan("after-garbage"); err != nil {
		t.Fatal(err)
	}
	if c := recv(t, scans); c.Number != "after-garbage" {
		t.Fatalf("got %q", c.Number)
	}
	if st := sc.Stats(); st.Garbage != 1 {
		t.Fatalf("stats %+v", st)
	}

	// Overlong line.
	if err := sim.Overlong(DefaultMaxLen + 500); err != nil {
		t.Fatal(err)
	}
	if err := sim.Scan("after-overlong"); err != nil {
		t.Fatal(err)
	}
	if c := recv(t, scans); c.Number != "after-overlong" {
		t.Fatalf("got %q", c.Number)
	}

	// Truncated line: a partial line then silence, dropped by the
	// inter-character timeout on the injected clock.
	before := sc.Stats().Bytes
	if err := sim.Truncated("KE1.partial", 7); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "partial bytes read", 10*time.Second, func() bool { return sc.Stats().Bytes == before+7 })
	clock.Advance(300 * time.Millisecond)
	waitFor(t, "partial dropped", 10*time.Second, func() bool { return sc.Stats().Truncated == 1 })
	if err := sim.Scan("after-truncation"); err != nil {
		t.Fatal(err)
	}
	if c := recv(t, scans); c.Number != "after-truncation" {
		t.Fatalf("got %q", c.Number)
	}
	st := sc.Stats()
	if st.Lines != 4 || st.Garbage != 1 || st.Overlong != 1 || st.Truncated != 1 {
		t.Fatalf("stats %+v", st)
	}
	if h := sc.Health(); h.Errors["framing"] != 3 {
		t.Fatalf("framing errors: %+v", h.Errors)
	}

	// Silent device: probes go unanswered, marked down, then recovered.
	sim.SetSilent(true)
	for i := 0; !sc.Health().Down; i++ {
		if i == 10 {
			t.Fatalf("not down after %d unanswered probes: %+v", i, sc.Health())
		}
		p := sc.Stats().Probes
		clock.Advance(time.Second)
		waitFor(t, "probe sent", 10*time.Second, func() bool { return sc.Stats().Probes > p })
	}
	if h := sc.Health(); h.Errors["timeout"] != 3 {
		t.Fatalf("down after %d timeouts, want 3", h.Errors["timeout"])
	}
	sim.SetSilent(false)
	r := sc.Stats().Replies
	clock.Advance(time.Second)
	waitFor(t, "probe answered", 10*time.Second, func() bool { return sc.Stats().Replies > r })
	if h := sc.Health(); h.Down || !h.LastSeen.Equal(clock.Now()) {
		t.Fatalf("not recovered: %+v", h)
	}

	// Unplug and replug: reconnects within 2 s of the device reappearing.
	if err := pair.Unplug(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "disconnected", 10*time.Second, func() bool { return !sc.Health().Connected })
	simWG.Wait()
	if err := pair.Replug(); err != nil {
		t.Fatal(err)
	}
	replugged := time.Now()
	serve()
	waitFor(t, "reconnected", 10*time.Second, func() bool { h := sc.Health(); return h.Connected && h.Reconnects == 1 })
	if d := time.Since(replugged); d > 2*time.Second {
		t.Errorf("reconnected %v after replug, want within 2s", d)
	}
	if err := sim.Scan("after-replug"); err != nil {
		t.Fatal(err)
	}
	if c := recv(t, scans); c.Number != "after-replug" {
		t.Fatalf("got %q", c.Number)
	}

	cancel()
	if err := <-runErr; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := sc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sc.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := sc.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close = %v", err)
	}
	simStop()
	simWG.Wait()
	if err := pair.Close(); err != nil {
		t.Fatal(err)
	}
	settle(t, base)
}

// Close from another goroutine ends Run with ErrClosed.
func TestCloseEndsRun(t *testing.T) {
	pair, err := pty.New(filepath.Join(t.TempDir(), "qr1"))
	if err != nil {
		t.Fatal(err)
	}
	defer pair.Close()
	sc, err := Open(pair.Path(), serialport.Mode{}, serialport.ReconnectOptions{}, Options{OnScan: func(credential.Credential) {}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sc.Run(context.Background()) }()
	waitFor(t, "connected", 10*time.Second, func() bool { return sc.Health().Connected })
	if err := sc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Run = %v, want ErrClosed", err)
	}
}

func TestNewRejects(t *testing.T) {
	pair, err := pty.New(filepath.Join(t.TempDir(), "qr2"))
	if err != nil {
		t.Fatal(err)
	}
	defer pair.Close()
	p, err := serialport.Open(pair.Path(), serialport.Mode{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ok := func(credential.Credential) {}
	for name, o := range map[string]Options{
		"no OnScan":  {},
		"bad framer": {OnScan: ok, Framer: FramerConfig{MaxLen: -1}},
		"bad probe":  {OnScan: ok, Probe: &Probe{Request: []byte("x")}},
	} {
		if _, err := New(p, o); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := New(nil, Options{OnScan: ok}); !errors.Is(err, ErrConfig) {
		t.Errorf("nil port: %v", err)
	}
}
