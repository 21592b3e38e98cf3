package idcard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/drivers/serialport"
	v "github.com/kioskedge/kioskedge/firmware-specs/idcardvectors"
	"github.com/kioskedge/kioskedge/testhw/idcardsim"
	"github.com/kioskedge/kioskedge/testhw/logbuf"
	"github.com/kioskedge/kioskedge/testhw/pty"
)

// rig is a simulated reader on a pty and a Reader opened on its path.
type rig struct {
	t    *testing.T
	sim  *idcardsim.Sim
	pair *pty.Pair
	r    *Reader
	logs *logbuf.Buffer
	wg   sync.WaitGroup
}

func newRig(t *testing.T, opts Options) *rig {
	t.Helper()
	pair, err := pty.New(filepath.Join(t.TempDir(), "idcard0"))
	if err != nil {
		t.Fatal(err)
	}
	g := &rig{t: t, sim: idcardsim.New(), pair: pair, logs: &logbuf.Buffer{}}
	g.serve()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewJSONHandler(g.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if opts.ReplyTimeout == 0 {
		opts.ReplyTimeout = 500 * time.Millisecond
	}
	g.r, err = Open(pair.Path(), opts, serialport.ReconnectOptions{MinBackoff: 20 * time.Millisecond, MaxBackoff: 300 * time.Millisecond, PathCheck: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.close)
	// OpenReconnecting opens the device in the background.
	waitFor(t, 10*time.Second, "port up", func() bool { return g.r.Health().Connected })
	return g
}

// serve runs the simulator on the pair's current device until it is
// unplugged or closed.
func (g *rig) serve() {
	dev := g.pair.Device()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		_ = g.sim.Serve(dev) // ends with the device's close error, expected
	}()
}

func (g *rig) close() {
	if err := g.r.Close(); err != nil {
		g.t.Errorf("close reader: %v", err)
	}
	if err := g.r.Close(); err != nil {
		g.t.Errorf("second close: %v", err)
	}
	if err := g.pair.Close(); err != nil {
		g.t.Errorf("close pty: %v", err)
	}
	g.wg.Wait()
	g.scanLogs()
}

// scanLogs fails the test if a simulated person's data is in the logs.
func (g *rig) scanLogs() {
	logs := g.logs.String()
	for _, p := range people() {
		for what, s := range map[string]string{"number": p.Number, "name": p.Name, "address": p.Address, "birth date": p.BirthDate, "number middle": p.Number[4:14]} {
			if strings.Contains(logs, s) {
				g.t.Errorf("logs contain the simulated %s", what)
			}
		}
	}
}

func people() []idcardsim.Person {
	var out []idcardsim.Person
	for _, c := range vectors.Cards {
		out = append(out, person(c))
	}
	return out
}

// person turns a vector card into the simulator's Person with the same
// photo.
func person(c v.Card) idcardsim.Person {
	f := c.Fields
	d := func(s string) string { return strings.ReplaceAll(s, "-", "") }
	until := d(f.ValidUntil)
	if f.LongTerm {
		until = "长期"
	}
	fr := v.Bytes(c.Hex)
	return idcardsim.Person{Name: f.Name, Sex: f.Sex, Ethnicity: f.Ethnicity, BirthDate: d(f.BirthDate),
		Address: f.Address, Number: f.Number, Issuer: f.Issuer, ValidFrom: d(f.ValidFrom), ValidUntil: until,
		Photo: fr[len(fr)-1-f.PhotoLen : len(fr)-1]}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReadCardOverPTY(t *testing.T) {
	t.Parallel()
	g := newRig(t, Options{Name: "kiosk-1"})
	for _, vc := range vectors.Cards {
		g.sim.Insert(person(vc))
		c, err := g.r.ReadCard(ctxT(t))
		if err != nil {
			t.Fatalf("%s: %v", vc.Name, err)
		}
		f := vc.Fields
		for field, ok := range map[string]bool{
			"name":        c.Name == f.Name,
			"sex":         SexName(c.Sex) == f.SexName,
			"ethnicity":   c.Ethnicity == f.Ethnicity && EthnicityName(c.Ethnicity) == f.EthnicityName,
			"birth_date":  c.BirthDate.Format("2006-01-02") == f.BirthDate,
			"address":     c.Address == f.Address,
			"number":      c.Number == f.Number,
			"issuer":      c.Issuer == f.Issuer,
			"valid_from":  c.ValidFrom.Format("2006-01-02") == f.ValidFrom,
			"valid_until": c.LongTerm == f.LongTerm && (f.LongTerm && c.ValidUntil.IsZero() || c.ValidUntil.Format("2006-01-02") == f.ValidUntil),
			"photo":       len(c.Photo) == f.PhotoLen && bytes.HasPrefix(c.Photo, v.Bytes(f.PhotoPrefix)),
			"reader":      c.Reader == "kiosk-1" && !c.ReadAt.IsZero(),
		} {
			if !ok {
				t.Errorf("%s: field %s differs", vc.Name, field)
			}
		}
		cred := c.Credential()
		if cred.Kind != "idcard" || cred.Number != f.Number || cred.Reader != "kiosk-1" {
			t.Errorf("%s: credential %v", vc.Name, cred) // masked by Credential's formatting
		}
	}
	if err := g.r.Status(ctxT(t)); err != nil {
		t.Errorf("status: %v", err)
	}
	if err := g.r.Reset(ctxT(t)); err != nil {
		t.Errorf("reset: %v", err)
	}
	h := g.r.Health()
	if !h.Connected || h.Down || h.LastSeen.IsZero() || len(h.Errors) != 0 {
		t.Errorf("health %+v", h)
	}
}

func TestNoCardAndStatusErrors(t *testing.T) {
	t.Parallel()
	g := newRig(t, Options{})
	_, err := g.r.ReadCard(ctxT(t))
	if !errors.Is(err, ErrNoCard) || errors.Is(err, ErrCardRemoved) {
		t.Fatalf("no card: %v", err)
	}
	g.sim.Insert(idcardsim.Fake())
	g.sim.Inject(0x20, 0x01, idcardsim.Fault{Status: StatusSelfTest})
	_, err = g.r.ReadCard(ctxT(t))
	var se *StatusError
	if !errors.As(err, &se) || se.SW3 != StatusSelfTest || !errors.Is(err, ErrProtocol) || errors.Is(err, ErrNoCard) {
		t.Fatalf("SAM error: %v", err)
	}
	// A card with a bad check digit is rejected by field, never by value.
	bad := idcardsim.Fake()
	bad.Number = bad.Number[:17] + "9"
	g.sim.Insert(bad)
	_, err = g.r.ReadCard(ctxT(t))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "number" || strings.Contains(err.Error(), bad.Number[:6]) {
		t.Fatalf("bad check digit: %v", err)
	}
	h := g.r.Health()
	if h.Down || h.Errors["nak"] != 1 || h.Errors["field"] != 1 {
		t.Errorf("health %+v", h.Errors)
	}
}

func TestCardRemovedMidRead(t *testing.T) {
	t.Parallel()
	g := newRig(t, Options{})
	for _, cmd := range []Command{CmdSelect, CmdReadBase} {
		g.sim.Insert(idcardsim.Fake())
		g.sim.Inject(cmd.Cmd, cmd.Para, idcardsim.Fault{RemoveCard: true})
		_, err := g.r.ReadCard(ctxT(t))
		if !errors.Is(err, ErrCardRemoved) {
			t.Errorf("removed at %s: %v", cmd, err)
		}
		if _, err := g.r.ReadCard(ctxT(t)); !errors.Is(err, ErrNoCard) {
			t.Errorf("after removal at %s: %v", cmd, err)
		}
	}
}

// Garbage, truncated frames and a damaged frame between valid ones are
// counted and skipped; the read still succeeds.
func TestGarbageAndTruncatedFrames(t *testing.T) {
	t.Parallel()
	g := newRig(t, Options{})
	g.sim.Insert(idcardsim.Fake())
	g.sim.Inject(0x20, 0x01, idcardsim.Fault{Garbage: []byte{0x00, 0xAA, 0x13, 0x37}, Truncated: 9})
	g.sim.Inject(0x20, 0x02, idcardsim.Fault{BadChecksum: true})
	g.sim.Inject(0x30, 0x01, idcardsim.Fault{Garbage: bytes.Repeat([]byte{0xAA}, 7), Truncated: 300})
	c, err := g.r.ReadCard(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if c.Number != idcardsim.Fake().Number {
		t.Error("wrong number read")
	}
	h := g.r.Health()
	if h.Errors["framing"] < 3 || h.Errors["checksum"] < 2 || h.Down {
		t.Errorf("errors not counted: %v", h.Errors)
	}
	// The select was sent twice (retried after the damaged reply).
	if n := g.sim.Stats().Requests[[2]byte{0x20, 0x02}]; n != 2 {
		t.Errorf("select sent %d times", n)
	}
}

type events struct {
	mu  sync.Mutex
	evs []Event
}

func (e *events) add(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evs = append(e.evs, ev)
}

func (e *events) kinds() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var s []string
	for _, ev := range e.evs {
		s = append(s, ev.Kind.String())
	}
	return strings.Join(s, ",")
}

func runReader(t *testing.T, g *rig) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.r.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

func TestSilentReaderDownThenRecovered(t *testing.T) {
	t.Parallel()
	var ev events
	g := newRig(t, Options{ReplyTimeout: 150 * time.Millisecond, Retries: -1, DownAfter: 2,
		PollInterval: 10 * time.Millisecond, DownPollInterval: 30 * time.Millisecond, OnEvent: ev.add})
	stop := runReader(t, g)
	defer stop()
	waitFor(t, 10*time.Second, "first answer", func() bool { return !g.r.Health().LastSeen.IsZero() })
	g.sim.SetSilent(true)
	waitFor(t, 10*time.Second, "marked down", func() bool { return g.r.Health().Down })
	if g.r.Health().Errors["timeout"] < 2 {
		t.Errorf("timeouts %v", g.r.Health().Errors)
	}
	g.sim.SetSilent(false)
	g.sim.Insert(idcardsim.Fake())
	waitFor(t, 10*time.Second, "recovered and read", func() bool { return !g.r.Health().Down && ev.kinds() == "inserted" })
	g.sim.Remove()
	waitFor(t, 10*time.Second, "removed event", func() bool { return ev.kinds() == "inserted,removed" })
}

// Unplugging the reader and plugging it back: Run keeps going, the reader
// is back within 2 s of reappearing, and no goroutine outlives Close.
// Not parallel: it counts goroutines.
func TestUnplugReplug(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		var ev events
		g := newRig(t, Options{ReplyTimeout: 200 * time.Millisecond, Retries: -1, PollInterval: 10 * time.Millisecond, DownPollInterval: 50 * time.Millisecond, OnEvent: ev.add})
		stop := runReader(t, g)
		g.sim.Insert(idcardsim.Fake())
		waitFor(t, 10*time.Second, "card read", func() bool { return ev.kinds() == "inserted" })

		if err := g.pair.Unplug(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "disconnect noticed", func() bool { return !g.r.Health().Connected })
		seen := g.r.Health().LastSeen
		if err := g.pair.Replug(); err != nil {
			t.Fatal(err)
		}
		g.serve()
		replugged := time.Now()
		waitFor(t, 10*time.Second, "reconnect", func() bool {
			h := g.r.Health()
			return h.Connected && h.LastSeen.After(seen)
		})
		if d := time.Since(replugged); d > 2*time.Second {
			t.Errorf("answering again %v after the replug; the requirement is 2 s", d)
		}
		if h := g.r.Health(); h.Reconnects < 1 {
			t.Errorf("reconnects %d", h.Reconnects)
		}
		g.sim.Remove()
		waitFor(t, 10*time.Second, "removed after replug", func() bool { return ev.kinds() == "inserted,removed" })
		stop()
		g.close()
	}()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines left over (before %d):\n%s", n-before, before, buf[:runtime.Stack(buf, true)])
	}
}

// The driver's logs during reads, removals, faults and field errors never
// hold the simulated name, number, address or birth date; neither does any
// fmt or slog formatting of a Card or Event.
func TestNoPersonalDataInLogs(t *testing.T) {
	t.Parallel()
	var ev events
	g := newRig(t, Options{PollInterval: 10 * time.Millisecond, OnEvent: ev.add})
	stop := runReader(t, g)
	for _, p := range people() {
		g.sim.Insert(p)
		waitFor(t, 10*time.Second, "inserted", func() bool { return strings.HasSuffix(ev.kinds(), "inserted") })
		g.sim.Remove()
		waitFor(t, 10*time.Second, "removed", func() bool { return strings.HasSuffix(ev.kinds(), "removed") })
	}
	stop()
	g.sim.Insert(people()[0])
	g.sim.Inject(0x30, 0x01, idcardsim.Fault{RemoveCard: true})
	if _, err := g.r.ReadCard(ctxT(t)); !errors.Is(err, ErrCardRemoved) {
		t.Errorf("mid-read: %v", err)
	}
	bad := people()[1]
	bad.BirthDate = "19561329"
	g.sim.Insert(bad)
	if _, err := g.r.ReadCard(ctxT(t)); !errors.Is(err, ErrBadField) {
		t.Errorf("bad field: %v", err)
	}
	g.sim.Insert(people()[0])
	c, err := g.r.ReadCard(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	// Everything a caller might print goes to the same buffer.
	lg := slog.New(slog.NewTextHandler(g.logs, nil))
	ev.mu.Lock()
	all := append([]Event{}, ev.evs...)
	ev.mu.Unlock()
	lg.Info("card", "card", c, "ptr", &c, "event", all[0], "cred", c.Credential())
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		fmt.Fprintf(g.logs, verb+"\n", c)
		fmt.Fprintf(g.logs, verb+"\n", &c)
		fmt.Fprintf(g.logs, verb+"\n", all[0])
	}
	if !strings.Contains(g.logs.String(), "card read") {
		t.Error("no read was logged; the scan would prove nothing")
	}
	// g.close (cleanup) scans the logs.
}
