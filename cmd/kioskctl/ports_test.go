package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kioskedge/kioskedge/drivers/probe"
	"github.com/kioskedge/kioskedge/drivers/serialport"
	"github.com/kioskedge/kioskedge/testhw/escpossim"
	"github.com/kioskedge/kioskedge/testhw/idcardsim"
	"github.com/kioskedge/kioskedge/testhw/osdpsim"
	"github.com/kioskedge/kioskedge/testhw/pty"
	"github.com/kioskedge/kioskedge/testhw/qrscansim"
	"github.com/kioskedge/kioskedge/testhw/sscardsim"
)

// line is the device end of a pty as a device at a fixed baud rate sees
// it: bytes the host sends while its side of the pty is set to another
// rate never reach the device (a real UART would see only framing errors).
// It keeps everything the host sent (sent) and what reached the device
// (heard). baud 0 hears every rate.
type line struct {
	f    *os.File
	baud int

	mu          sync.Mutex
	sent, heard []byte
}

func newLine(t *testing.T, p *pty.Pair, baud int) *line {
	f, ok := p.Device().(*os.File)
	if !ok {
		t.Fatalf("pty device is a %T, not a file", p.Device())
	}
	return &line{f: f, baud: baud}
}

func (l *line) Read(b []byte) (int, error) {
	for {
		n, err := l.f.Read(b)
		if n > 0 {
			match := l.baud == 0 || hostBaud(l.f) == l.baud
			l.mu.Lock()
			l.sent = append(l.sent, b[:n]...)
			if match {
				l.heard = append(l.heard, b[:n]...)
			}
			l.mu.Unlock()
			if !match {
				if err != nil {
					return 0, err
				}
				continue
			}
		}
		return n, err
	}
}

func (l *line) Write(b []byte) (int, error) { return l.f.Write(b) }

// SetReadDeadline lets pty.ReadContext (escpossim, qrscansim) see ctx end.
func (l *line) SetReadDeadline(t time.Time) error { return l.f.SetReadDeadline(t) }

func (l *line) logs() (sent, heard []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.sent...), append([]byte(nil), l.heard...)
}

var bauds = map[uint32]int{unix.B9600: 9600, unix.B19200: 19200, unix.B38400: 38400, unix.B57600: 57600, unix.B115200: 115200}

// hostBaud is the rate the host set on its (slave) end; on Linux the
// master's TCGETS reports the slave's termios.
func hostBaud(f *os.File) int {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1
	}
	b := -1
	_ = rc.Control(func(fd uintptr) { // an error leaves b at -1: no match
		if t, err := unix.IoctlGetTermios(int(fd), unix.TCGETS); err == nil {
			if v, ok := bauds[t.Cflag&unix.CBAUD]; ok {
				b = v
			}
		}
	})
	return b
}

// queryNames splits what a device received into the probe's queries; an
// error names the first bytes that are none of them.
func queryNames(b []byte) ([]string, error) {
	var names []string
next:
	for len(b) > 0 {
		for _, q := range probe.Queries() {
			if bytes.HasPrefix(b, q.Bytes) {
				names = append(names, q.Name)
				b = b[len(q.Bytes):]
				continue next
			}
		}
		return names, fmt.Errorf("bytes % x… are not a read-only probe query", b[:min(len(b), 16)])
	}
	return names, nil
}

type portJSON struct {
	Port    string `json:"port"`
	Device  string `json:"device"`
	Baud    int    `json:"baud"`
	Address *int   `json:"address"`
	Detail  string `json:"detail"`
}

// Eight simulated devices on eight ptys, and a scanner being used: ports
// names each, finds the rate and OSDP address, and every device received
// only read-only queries, nothing after it was identified.
func TestPortsIdentifiesEverySimulatedDevice(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var pairs []*pty.Pair
	t.Cleanup(func() {
		cancel()
		for _, p := range pairs {
			if err := p.Close(); err != nil {
				t.Errorf("closing pty: %v", err)
			}
		}
		wg.Wait()
	})
	lines := map[string]*line{}
	var paths []string
	attach := func(name string, baud int, serve func(rw io.ReadWriter)) {
		p, err := pty.New(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, p)
		l := newLine(t, p, baud)
		lines[name] = l
		paths = append(paths, filepath.Join(dir, name))
		wg.Add(1)
		go func() {
			defer wg.Done()
			serve(l)
		}()
	}

	pdA := osdpsim.NewPD(osdpsim.Config{Address: 0, Vendor: [3]byte{0x0A, 0x0B, 0x0C}, Model: 1, Version: 2, Serial: 1001, Firmware: [3]byte{1, 2, 3}})
	pdB := osdpsim.NewPD(osdpsim.Config{Address: 5, Vendor: [3]byte{0x0A, 0x0B, 0x0C}, Model: 3, Version: 1, Serial: 2002, Firmware: [3]byte{2, 0, 7}})
	pdA.Swipe(26, []byte{0x12, 0x34, 0x56, 0x40}) // a card read waiting, which a POLL would take (checked below: no POLL)
	idc := idcardsim.New()
	idc.Insert(idcardsim.Fake())
	ssc := sscardsim.New()
	ssc.Insert(sscardsim.VectorCard())
	printer := escpossim.New()
	scanner := qrscansim.New(qrscansim.Options{})
	scanning := qrscansim.New(qrscansim.Options{Terminator: []byte("\r\n")})

	attach("osdp-a", 9600, func(rw io.ReadWriter) { _ = osdpsim.NewBus(pdA).Serve(ctx, rw) }) // ends when the pty closes
	attach("osdp-b", 38400, func(rw io.ReadWriter) { _ = osdpsim.NewBus(pdB).Serve(ctx, rw) })
	attach("idcard", 115200, func(rw io.ReadWriter) { _ = idc.Serve(rw) })
	attach("sscard", 115200, func(rw io.ReadWriter) { _ = ssc.Serve(rw) })
	attach("printer", 19200, func(rw io.ReadWriter) { _ = printer.Serve(ctx, rw) })
	attach("qr", 9600, func(rw io.ReadWriter) { _ = scanner.Serve(ctx, rw) })
	probing := make(chan struct{})
	attach("qr-scanning", 9600, func(rw io.ReadWriter) { // a technician scans a code now and then while ports runs
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = scanning.Serve(ctx, rw) // ends with ctx
		}()
		<-probing
		tick := time.NewTicker(150 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				// Detached for an instant at start is fine: the next tick scans.
				_ = scanning.Scan("VISITOR-TEST-1")
			}
		}
	})
	attach("nothing", 0, func(rw io.ReadWriter) { // a cable to nothing: reads, never answers
		b := make([]byte, 64)
		for {
			if _, err := pty.ReadContext(ctx, rw, b); err != nil {
				return
			}
		}
	})
	attach("noise", 0, func(rw io.ReadWriter) { // a device talking garbage at any rate
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := make([]byte, 64)
			for {
				if _, err := pty.ReadContext(ctx, rw, b); err != nil {
					return
				}
			}
		}()
		rng := rand.New(rand.NewPCG(6, 6))
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			chunk := make([]byte, 16)
			for i := range chunk {
				chunk[i] = byte(rng.Uint32())
			}
			if _, err := rw.Write(chunk); err != nil {
				return
			}
		}
	})

	start := time.Now()
	close(probing)
	code, stdout, stderr := runCtl(t, append([]string{"--json", "ports"}, paths...)...)
	t.Logf("ports probed %d ports in %v", len(paths), time.Since(start))
	if code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var rows []portJSON
	if err := json.Unmarshal([]byte(stdout), &rows); err != nil || len(rows) != len(paths) {
		t.Fatalf("output %q: %v", stdout, err)
	}
	addr := func(a int) *int { return &a }
	want := map[string]portJSON{
		"osdp-a":      {Device: "osdp", Baud: 9600, Address: addr(0)},
		"osdp-b":      {Device: "osdp", Baud: 38400, Address: addr(5)},
		"idcard":      {Device: "idcard", Baud: 115200},
		"sscard":      {Device: "sscard", Baud: 115200},
		"printer":     {Device: "escpos", Baud: 19200},
		"qr":          {Device: "silent"},
		"qr-scanning": {Device: "qrscan", Baud: -1}, // the rate the first scan arrived at: not asserted
		"nothing":     {Device: "silent"},
		"noise":       {Device: "unknown"},
	}
	for _, r := range rows {
		name := filepath.Base(r.Port)
		w := want[name]
		if w.Baud == -1 {
			w.Baud = r.Baud
		}
		if r.Device != w.Device || r.Baud != w.Baud || (r.Address == nil) != (w.Address == nil) ||
			(r.Address != nil && *r.Address != *w.Address) {
			t.Errorf("%s: got %s@%d addr %v (%s), want %s@%d addr %v", name, r.Device, r.Baud, deref(r.Address), r.Detail, w.Device, w.Baud, deref(w.Address))
		}
	}
	if d := rows[0].Detail; !strings.Contains(d, "serial 1001") || !strings.Contains(d, "vendor 0A0B0C") {
		t.Errorf("osdp-a detail %q lacks the reader's identity", d)
	}

	// Everything the host sent, at any rate, to any port, is a read-only
	// query; what reached each device ends with the query that identified it.
	identifying := map[string]string{"osdp-a": "osdp_ID to 0x7F", "osdp-b": "osdp_ID to 0x7F",
		"idcard": "SAM status", "sscard": "CARD STATUS", "printer": "DLE EOT 4"}
	for name, l := range lines {
		sent, heard := l.logs()
		names, err := queryNames(sent)
		if err != nil {
			t.Errorf("%s: %v (after %v)", name, err, names)
			continue
		}
		heardNames, err := queryNames(heard)
		if err != nil {
			t.Errorf("%s heard: %v", name, err)
			continue
		}
		if last := identifying[name]; last != "" && (len(heardNames) == 0 || heardNames[len(heardNames)-1] != last ||
			names[len(names)-1] != last) {
			t.Errorf("%s: sent %v, heard %v: want both to end with %q", name, names, heardNames, last)
		}
		if name == "nothing" && len(names) != probe.SilentQueries {
			t.Errorf("a silent port got %d queries, want %d: %v", len(names), probe.SilentQueries, names)
		}
	}
	_, heard := lines["printer"].logs()
	if names, _ := queryNames(heard); strings.Join(names, ",") != "DLE EOT 1,DLE EOT 2,DLE EOT 3,DLE EOT 4" {
		t.Errorf("printer heard %v, want DLE EOT 1–4 only", names)
	}

	// And each simulator agrees it was only asked.
	for _, pd := range []*osdpsim.PD{pdA, pdB} {
		for c := 0; c < 256; c++ {
			if n := pd.Count(byte(c)); (c == 0x61 && n != 1) || (c != 0x61 && n != 0) {
				t.Errorf("PD %d processed command %#02x %d times", pd.Address(), c, n)
			}
		}
		if pd.LED(0).Set || pd.Buzzer().Set || pd.Text() != "" || pd.Secure() {
			t.Errorf("PD %d state changed", pd.Address())
		}
	}
	if st := idc.Stats(); len(st.Requests) != 1 || st.Requests[[2]byte{0x11, 0xFF}] != 1 || st.BadRequests != 0 {
		t.Errorf("ID-card module saw %+v, want one SAM status", st)
	}
	if st := ssc.Stats(); st.Frames != 1 || st.APDUs != 0 || st.BadFrames != 0 {
		t.Errorf("SS-card reader saw %+v, want one CARD STATUS", st)
	}
	if printer.Queries() != 4 || printer.Unknown() != 0 || printer.Paper() != "" {
		t.Errorf("printer: %d queries, %d unknown commands, paper %q", printer.Queries(), printer.Unknown(), printer.Paper())
	}
	if scanner.Probes() != 0 || scanning.Probes() != 0 {
		t.Errorf("scanners got %d and %d liveness probes", scanner.Probes(), scanning.Probes())
	}
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// A port kioskd holds is reported busy, not probed, and not a failure; a
// missing port is an error (exit 3); the table has the documented columns.
func TestPortsBusyMissingAndTable(t *testing.T) {
	dir := t.TempDir()
	p, err := pty.New(filepath.Join(dir, "held"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() }) // the test's own pty; nothing to report
	held, err := serialport.Open(filepath.Join(dir, "held"), serialport.Mode{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	code, out, stderr := runCtl(t, "ports", filepath.Join(dir, "held"))
	if code != exitOK {
		t.Fatalf("busy port: exit %d, stderr %q", code, stderr)
	}
	for _, s := range []string{"PORT", "USB", "SERIAL", "PRODUCT", "DEVICE", "DETAIL", "busy", "stop kioskd to probe it"} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
	// Nothing was written to the held port.
	dev := p.Device().(*os.File)
	if err := dev.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if n, err := dev.Read(make([]byte, 16)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("busy port received %d bytes (%v)", n, err)
	}

	code, out, _ = runCtl(t, "--json", "ports", filepath.Join(dir, "absent"))
	var rows []portJSON
	if code != exitUnusable || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 1 || rows[0].Device != "error" {
		t.Errorf("missing port: exit %d, %s", code, out)
	}
	code, out, _ = runCtl(t, "--json", "ports", filepath.Join(dir, "absent"), "--probe=false")
	if code != exitOK || !strings.Contains(out, "absent") || strings.Contains(out, `"device"`) {
		t.Errorf("--probe=false: exit %d, %s", code, out)
	}
	if code, _, _ := runCtl(t, "ports", "--timeout", "0s"); code != exitUsage {
		t.Errorf("--timeout 0: exit %d, want usage", code)
	}
}
