package escpos

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/drivers/serialport"
	"github.com/kioskedge/kioskedge/testhw/escpossim"
	"github.com/kioskedge/kioskedge/testhw/pty"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("paper differs from %s:\n--- got\n%s--- want\n%s", path, got, want)
	}
}

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

var receipt = Receipt{
	Title: "访客通行证",
	Lines: []Line{
		{Text: "Visitor pass / 访客"},
		{Text: "Unit 3-1201", Bold: true},
		{Text: "Valid until 18:00", Align: Right},
		{Text: "Wide", DoubleWidth: true},
		{Text: "Tall", DoubleHeight: true},
	},
	QR:  &QR{Data: "KE1.visitor.0042.sig", Align: Center},
	Cut: PartialCut,
}

func TestPrinterOverPTY(t *testing.T) {
	base := runtime.NumGoroutine()
	pair, err := pty.New(filepath.Join(t.TempDir(), "lp0"))
	if err != nil {
		t.Fatal(err)
	}
	defer pair.Close()
	sim := escpossim.New()
	simCtx, simStop := context.WithCancel(context.Background())
	var simWG sync.WaitGroup
	serve := func() {
		dev := pair.Device()
		// Serve ends with the link's read error on unplug; expected.
		simWG.Go(func() { _ = sim.Serve(simCtx, dev) })
	}
	serve()

	pr, err := Open(pair.Path(), serialport.Mode{BaudRate: 19200},
		serialport.ReconnectOptions{MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, PathCheck: 100 * time.Millisecond},
		Options{Name: "kiosk-1-printer", ReplyTimeout: 200 * time.Millisecond, DownAfter: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// OpenReconnecting may still be opening the device in the background.
	waitFor(t, "first status", 10*time.Second, func() bool { _, err := pr.Status(ctx); return err == nil })

	// Normal flow.
	st, err := pr.Print(ctx, receipt)
	if err != nil || st != (Status{}) {
		t.Fatalf("Print = %v, %v", st, err)
	}
	waitFor(t, "cut", 10*time.Second, func() bool { return len(sim.Paper()) > 0 && sim.Paper()[len(sim.Paper())-1] == '\n' })
	golden(t, "receipt.golden", sim.Paper())
	if h := pr.Health(); !h.Connected || h.Down || h.Detail != "ok" {
		t.Fatalf("health %+v", h)
	}

	// Paper near end is reported, not an error.
	sim.SetPaperNearEnd(true)
	if st, err := pr.Status(ctx); err != nil || !st.PaperNearEnd || st.PaperOut {
		t.Fatalf("near end: %v, %v", st, err)
	}

	// Paper out and cover open: typed errors, nothing printed.
	printed := sim.Paper()
	sim.SetPaperOut(true)
	if _, err := pr.Print(ctx, receipt); !isCode(err, PaperOut) {
		t.Fatalf("paper out: %v", err)
	}
	sim.SetPaperOut(false)
	sim.SetCoverOpen(true)
	_, err = pr.Print(ctx, receipt)
	var pe *Error
	if !errors.As(err, &pe) || pe.Code != CoverOpen || !pe.Status.CoverOpen || !pe.Status.Offline {
		t.Fatalf("cover open: %v", err)
	}
	sim.SetCoverOpen(false)
	sim.SetPaperNearEnd(false)
	if sim.Paper() != printed {
		t.Fatal("printed while paper out or cover open")
	}

	// Garbage reply: counted as a bad reply, next query fine.
	sim.SetFault(escpossim.Garbage)
	if _, err := pr.Status(ctx); !isCode(err, BadReply) {
		t.Fatalf("garbage: %v", err)
	}
	sim.SetFault(escpossim.NoFault)
	if _, err := pr.Status(ctx); err != nil {
		t.Fatalf("after garbage: %v", err)
	}
	if h := pr.Health(); h.Errors["framing"] != 1 || h.Down {
		t.Fatalf("health %+v", h)
	}

	// Silent: down after 3 unanswered queries, then recovered.
	sim.SetFault(escpossim.Silent)
	for range 3 {
		if _, err := pr.Status(ctx); !isCode(err, NoReply) {
			t.Fatalf("silent: %v", err)
		}
	}
	if !pr.Health().Down {
		t.Fatalf("not down: %+v", pr.Health())
	}
	sim.SetFault(escpossim.NoFault)
	if _, err := pr.Status(ctx); err != nil || pr.Health().Down {
		t.Fatalf("not recovered: %v %+v", err, pr.Health())
	}

	// Unplug and replug: back within 2 s of the device reappearing.
	if err := pair.Unplug(); err != nil {
		t.Fatal(err)
	}
	simWG.Wait()
	if _, err := pr.Status(ctx); !isCode(err, Disconnected) {
		t.Fatalf("unplugged: %v", err)
	}
	if pr.Health().Connected {
		t.Fatal("still connected")
	}
	if err := pair.Replug(); err != nil {
		t.Fatal(err)
	}
	replugged := time.Now()
	serve()
	waitFor(t, "status after replug", 10*time.Second, func() bool { _, err := pr.Status(ctx); return err == nil })
	if d := time.Since(replugged); d > 2*time.Second {
		t.Errorf("printer answered %v after replug, want within 2s", d)
	}
	if h := pr.Health(); !h.Connected || h.Reconnects != 1 {
		t.Fatalf("health %+v", h)
	}
	before := len(sim.Paper())
	if _, err := pr.Print(ctx, Receipt{Lines: []Line{{Text: "after replug"}}, Cut: FullCut}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "second receipt", 10*time.Second, func() bool { return len(sim.Paper()) > before && sim.Paper()[len(sim.Paper())-1] == '\n' })
	golden(t, "after-replug.golden", sim.Paper()[before:])

	if err := pr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pr.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := pr.Status(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	simStop()
	simWG.Wait()
	if err := pair.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			t.Fatalf("goroutine leak: %d > %d", runtime.NumGoroutine(), base)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func isCode(err error, c Code) bool {
	got, ok := CodeOf(err)
	return ok && got == c
}

// Run polls on the injected timer and returns when ctx ends.
func TestRunPolls(t *testing.T) {
	pair, err := pty.New(filepath.Join(t.TempDir(), "lp1"))
	if err != nil {
		t.Fatal(err)
	}
	defer pair.Close()
	sim := escpossim.New()
	simCtx, simStop := context.WithCancel(context.Background())
	simDone := make(chan struct{})
	go func() {
		defer close(simDone)
		_ = sim.Serve(simCtx, pair.Device()) // ends with simStop
	}()
	tick := make(chan time.Time)
	pr, err := Open(pair.Path(), serialport.Mode{}, serialport.ReconnectOptions{},
		Options{After: func(time.Duration) <-chan time.Time { return tick }})
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pr.Run(ctx) }()
	// The device may still be opening: polls before it is up fail.
	waitFor(t, "a full poll", 10*time.Second, func() bool {
		select {
		case tick <- time.Time{}:
		default:
		}
		return sim.Queries() >= 4 && sim.Queries()%4 == 0
	})
	q := sim.Queries()
	tick <- time.Time{}
	waitFor(t, "next poll", 10*time.Second, func() bool { return sim.Queries() >= q+4 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	simStop()
	<-simDone
}
