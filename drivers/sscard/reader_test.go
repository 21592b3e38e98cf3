package sscard_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/drivers/devstatus"
	"github.com/kioskedge/kioskedge/drivers/serialport"
	"github.com/kioskedge/kioskedge/drivers/sscard"
	"github.com/kioskedge/kioskedge/firmware-specs/sscardvectors"
	"github.com/kioskedge/kioskedge/testhw/logbuf"
	"github.com/kioskedge/kioskedge/testhw/pty"
	"github.com/kioskedge/kioskedge/testhw/sscardsim"
)

// logs collects every log line of every Reader in this package's tests;
// TestMain scans it for personal data once all tests have run.
var logs logbuf.Buffer

// readersLogged is set once a test gave a Reader the capturing logger.
var readersLogged atomic.Bool

func testLogger() *slog.Logger {
	readersLogged.Store(true)
	return slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

var fields = sscardvectors.MustLoad().Card.Fields

// personal are the simulated card's personal values, in every form a log
// line could carry them.
var personal = []string{fields.CardNumber, fields.SSN, fields.Name, fields.CardID, "19000101", "1900-01-01"}

// TestMain fails the run if any captured log line holds the simulated card
// number, SSN, name, card id or birth date unmasked (issue 4: no personal
// data in logs).
func TestMain(m *testing.M) {
	code := m.Run()
	out := logs.String()
	if code == 0 && len(out) == 0 && readersLogged.Load() {
		fmt.Fprintln(os.Stderr, "no log lines captured: the personal-data scan checked nothing")
		code = 1
	}
	for _, p := range personal {
		if strings.Contains(out, p) {
			fmt.Fprintf(os.Stderr, "captured logs contain a personal value unmasked (%d characters)\n", len(p))
			code = 1
		}
	}
	os.Exit(code)
}

// rig is a pty with the simulator serving its device side.
type rig struct {
	pair *pty.Pair
	sim  *sscardsim.Sim
	wg   sync.WaitGroup
}

func newRig(t *testing.T) *rig {
	t.Helper()
	p, err := pty.New(filepath.Join(t.TempDir(), "sscard0"))
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{pair: p, sim: sscardsim.New()}
	r.serve()
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
		r.wg.Wait()
	})
	return r
}

// serve runs the simulator on the pair's current device until it is unplugged.
func (r *rig) serve() {
	dev := r.pair.Device()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		// Serve returns the read error that ends it (unplugged); expected.
		_ = r.sim.Serve(dev)
	}()
}

func (r *rig) reader(t *testing.T, opts sscard.Options) *sscard.Reader {
	t.Helper()
	port, err := serialport.Open(r.pair.Path(), serialport.Mode{BaudRate: 115200})
	if err != nil {
		t.Fatal(err)
	}
	opts.Name = "test-sscard"
	opts.Logger = testLogger()
	rd, err := sscard.New(port, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rd.Close(); err != nil {
			t.Error(err)
		}
	})
	return rd
}

// checkCard compares every decoded field with the vectors without printing
// personal values.
func checkCard(t *testing.T, c sscard.Card) {
	t.Helper()
	date := func(tm time.Time) string { return tm.Format(time.DateOnly) }
	for _, f := range []struct{ name, got, want string }{
		{"CardID", c.CardID, fields.CardID},
		{"Region", c.Region, fields.Region},
		{"CardType", c.CardType, fields.CardType},
		{"SpecVersion", c.SpecVersion, fields.SpecVersion},
		{"Issued", date(c.Issued), fields.Issued},
		{"ValidUntil", date(c.ValidUntil), fields.ValidUntil},
		{"CardNumber", c.CardNumber, fields.CardNumber},
		{"SSN", c.SSN, fields.SSN},
		{"Name", c.Name, fields.Name},
		{"Sex", c.Sex, fields.Sex},
		{"Ethnicity", c.Ethnicity, fields.Ethnicity},
		{"Birth", date(c.Birth), fields.Birth},
		{"Reader", c.Reader, "test-sscard"},
	} {
		if f.got != f.want {
			t.Errorf("%s differs from the vector (%d vs %d characters)", f.name, len(f.got), len(f.want))
		}
	}
	if len(c.ATR) == 0 {
		t.Error("no ATR")
	}
	cr := c.Credential()
	if cr.Kind != "sscard" || cr.Number != fields.SSN || cr.Encoding != "ssn" || cr.Reader != "test-sscard" {
		t.Errorf("credential %v", cr)
	}
}

func TestReadCardOverPty(t *testing.T) {
	for _, t0 := range []bool{false, true} {
		t.Run(fmt.Sprintf("t0=%v", t0), func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			r.sim.SetT0(t0)
			r.sim.Insert(sscardsim.VectorCard())
			rd := r.reader(t, sscard.Options{})
			c, err := rd.ReadCard(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			checkCard(t, c)
			h := rd.Health()
			if !h.Connected || h.Down || h.LastSeen.IsZero() || len(h.Errors) != 0 {
				t.Errorf("health %+v", h)
			}
			// Powered off at the end: the reader reports "present, not powered".
			if ok, err := rd.Present(context.Background()); !ok || err != nil {
				t.Errorf("Present = %v, %v", ok, err)
			}
		})
	}
}

func TestReadCardErrors(t *testing.T) {
	missing := sscardsim.VectorCard()
	delete(missing.EF05, 0x07)
	malformed := sscardsim.VectorCard()
	malformed.EF06[0x0D] = []byte{0x0D, 0x04, 0x19, 0x00, 0x13, 0x45} // month 13
	cut := sscardsim.VectorCard()
	cut.EF06[0x08] = []byte{0x08, 0x12, 0x39, 0x39} // length past the end
	locked := sscardsim.VectorCard()
	locked.Locked = true
	for _, tc := range []struct {
		name  string
		setup func(*sscardsim.Sim)
		want  error
		sw    uint16
	}{
		{"no card", func(s *sscardsim.Sim) {}, sscard.ErrNoCard, 0},
		{"other card", func(s *sscardsim.Sim) { s.Insert(sscardsim.OtherCard()) }, sscard.ErrWrongApplication, 0x6A82},
		{"locked", func(s *sscardsim.Sim) { s.Insert(locked) }, sscard.ErrLocked, 0x6283},
		{"removed mid-read", func(s *sscardsim.Sim) { s.Insert(sscardsim.VectorCard()); s.RemoveAfter(4) }, sscard.ErrCardRemoved, 0},
		{"record missing", func(s *sscardsim.Sim) { s.Insert(missing) }, nil, 0x6A83},
		{"bad date", func(s *sscardsim.Sim) { s.Insert(malformed) }, sscard.ErrMalformed, 0},
		{"bad TLV", func(s *sscardsim.Sim) { s.Insert(cut) }, sscard.ErrMalformed, 0},
		{"silent reader", func(s *sscardsim.Sim) { s.Insert(sscardsim.VectorCard()); s.SetSilent(true) }, sscard.ErrTimeout, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			tc.setup(r.sim)
			timeout := time.Second // generous: parallel subtests under -race on 2 cores
			if tc.want == sscard.ErrTimeout {
				timeout = 150 * time.Millisecond
			}
			rd := r.reader(t, sscard.Options{ResponseTimeout: timeout})
			c, err := rd.ReadCard(context.Background())
			if err == nil {
				t.Fatalf("read a card (%v)", c)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			var se *sscard.StatusError
			if tc.sw != 0 && (!errors.As(err, &se) || se.SW != tc.sw) {
				t.Errorf("err = %v, want status word %04X", err, tc.sw)
			}
			for _, p := range personal {
				if strings.Contains(err.Error(), p) {
					t.Errorf("error text carries a personal value")
				}
			}
		})
	}
}

// Garbage, truncated frames and frames with a bad BCC before the replies are
// counted and skipped; the valid frame after each is read.
func TestFaultyFramesSkipped(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.sim.Insert(sscardsim.VectorCard())
	r.sim.Inject(sscardsim.Garbage, sscardsim.Truncated, sscardsim.BadBCC, sscardsim.Garbage, sscardsim.Truncated, sscardsim.BadBCC)
	rd := r.reader(t, sscard.Options{})
	c, err := rd.ReadCard(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkCard(t, c)
	h := rd.Health()
	if h.Errors[devstatus.ErrFraming] < 4 || h.Errors[devstatus.ErrChecksum] < 2 || h.Down {
		t.Errorf("health %+v", h)
	}
	if r.sim.Stats().Faults != 6 {
		t.Errorf("sim stats %+v", r.sim.Stats())
	}
}

type events struct {
	ch chan sscard.Event
}

func newEvents() *events { return &events{ch: make(chan sscard.Event, 256)} }

func (e *events) on(ev sscard.Event) { e.ch <- ev }

// wait returns the first event of kind, failing after limit.
func (e *events) wait(t *testing.T, kind sscard.EventKind, limit time.Duration) sscard.Event {
	t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		select {
		case ev := <-e.ch:
			if ev.Kind == kind {
				return ev
			}
		case <-timer.C:
			t.Fatalf("no %v event within %v", kind, limit)
			return sscard.Event{}
		}
	}
}

func runReader(t *testing.T, rd *sscard.Reader) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rd.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, sscard.ErrClosed) {
			t.Errorf("Run: %v", err)
		}
	})
}

// A reader that stops answering is marked down after DownAfter polls, and up
// again at the first answer; insert and remove are reported.
func TestSilentReaderDownThenUp(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ev := newEvents()
	rd := r.reader(t, sscard.Options{ResponseTimeout: 100 * time.Millisecond, PollInterval: 20 * time.Millisecond, DownAfter: 2, OnEvent: ev.on})
	runReader(t, rd)
	r.sim.Insert(sscardsim.VectorCard())
	ev.wait(t, sscard.CardInserted, 10*time.Second)
	checkCard(t, ev.wait(t, sscard.CardRead, 10*time.Second).Card)
	r.sim.SetSilent(true)
	down := ev.wait(t, sscard.ReaderDown, 10*time.Second)
	if !errors.Is(down.Err, sscard.ErrTimeout) || !rd.Health().Down {
		t.Errorf("down: %v, health %+v", down.Err, rd.Health())
	}
	r.sim.SetSilent(false)
	ev.wait(t, sscard.ReaderUp, 10*time.Second)
	if h := rd.Health(); h.Down || h.Errors[devstatus.ErrTimeout] < 2 {
		t.Errorf("health after recovery %+v", h)
	}
	r.sim.Remove()
	ev.wait(t, sscard.CardRemoved, 10*time.Second)
}

// settle waits for the goroutine count to drop to at most n.
func settle(t *testing.T, n int) {
	t.Helper()
	var got int
	for range 200 {
		if got = runtime.NumGoroutine(); got <= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 1<<16)
	t.Errorf("%d goroutines, want at most %d:\n%s", got, n, buf[:runtime.Stack(buf, true)])
}

// Unplugged and plugged back at the same path, the reader reconnects within
// 2 s of the device reappearing, reads the card again, and leaves no
// goroutine behind once closed. (Not parallel: it counts goroutines.)
func TestUnplugReplug(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		r := newRig(t)
		ev := newEvents()
		var states []bool
		var mu sync.Mutex
		rd, err := sscard.Open(r.pair.Path(), serialport.Mode{BaudRate: 115200},
			sscard.Options{Name: "test-sscard", Logger: testLogger(), ResponseTimeout: 100 * time.Millisecond,
				PollInterval: 20 * time.Millisecond, DownAfter: 2, OnEvent: ev.on},
			serialport.ReconnectOptions{MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
				PathCheck: 50 * time.Millisecond, OnState: func(up bool) {
					mu.Lock()
					states = append(states, up)
					mu.Unlock()
					ev.on(sscard.Event{Kind: stateKind(up)})
				}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- rd.Run(ctx) }()

		r.sim.Insert(sscardsim.VectorCard())
		checkCard(t, ev.wait(t, sscard.CardRead, 10*time.Second).Card)

		if err := r.pair.Unplug(); err != nil {
			t.Fatal(err)
		}
		r.wg.Wait() // the simulator's Serve has ended with the device
		ev.wait(t, portDown, 10*time.Second)
		ev.wait(t, sscard.ReaderDown, 10*time.Second)
		r.sim.Remove()
		r.sim.Insert(sscardsim.VectorCard())

		if err := r.pair.Replug(); err != nil {
			t.Fatal(err)
		}
		r.serve()
		// The acceptance bound is a deadline to wait for, not a speed claim.
		ev.wait(t, portUp, 2*time.Second)
		checkCard(t, ev.wait(t, sscard.CardRead, 10*time.Second).Card)
		h := rd.Health()
		if h.Reconnects != 1 || !h.Connected || h.Down {
			t.Errorf("health %+v", h)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := rd.Close(); err != nil {
			t.Error(err)
		}
		if err := rd.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if _, err := rd.ReadCard(context.Background()); !errors.Is(err, sscard.ErrClosed) {
			t.Errorf("ReadCard after Close: %v", err)
		}
		if err := r.pair.Close(); err != nil {
			t.Error(err)
		}
		r.wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(states) < 3 || !states[0] || states[1] || !states[2] {
			t.Errorf("port states %v", states)
		}
	}()
	settle(t, before)
}

// Pseudo event kinds for the port's own up/down, carried on the same channel.
const (
	portUp   sscard.EventKind = 100
	portDown sscard.EventKind = 101
)

func stateKind(up bool) sscard.EventKind {
	if up {
		return portUp
	}
	return portDown
}
