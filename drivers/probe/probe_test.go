package probe

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/drivers/osdp"
	"github.com/kioskedge/kioskedge/drivers/serialport"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The queries are the specs' read-only status requests, byte for byte.
func TestQueriesAreReadOnlyStatusRequests(t *testing.T) {
	want := map[string]string{
		"SAM status":  "AAAAAA9669 0003 11FF ED", // idcard.md §2–3
		"CARD STATUS": "02 0001 11 10 03",        // sscard.md §1.1–1.2
		"DLE EOT 1":   "100401",                  // escpos.md §5
		"DLE EOT 2":   "100402",
		"DLE EOT 3":   "100403",
		"DLE EOT 4":   "100404",
	}
	for _, q := range Queries() {
		if q.Kind == OSDP {
			p, err := osdp.Decode(q.Bytes)
			if err != nil || p.Addr != osdp.Broadcast || p.Reply || p.Seq != 0 || p.Code != osdp.CmdID || !bytes.Equal(p.Data, []byte{0}) || p.SCB != nil {
				t.Errorf("%s: %+v, %v: want osdp_ID to 0x7F at SQN 0", q.Name, p, err)
			}
			continue
		}
		if w, ok := want[q.Name]; !ok || !bytes.Equal(q.Bytes, unhex(t, w)) {
			t.Errorf("%s: % X, want %s", q.Name, q.Bytes, w)
		}
		delete(want, q.Name)
	}
	if len(want) > 0 {
		t.Errorf("queries missing: %v", want)
	}
}

func osdpPacket(t testing.TB, p osdp.Packet) []byte {
	b, err := osdp.Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var pdid = []byte{0x0A, 0x0B, 0x0C, 1, 2, 0x39, 0x30, 0, 0, 1, 2, 3} // serial 12345

func TestRecognisers(t *testing.T) {
	reply := osdpPacket(t, osdp.Packet{Addr: 3, Reply: true, CRC: true, Code: osdp.ReplyPDID, Data: pdid})
	for _, c := range []struct {
		name string
		in   []byte
		want string // "" for not recognised
	}{
		{"escpos status", []byte{0x12}, "escpos 12"},
		{"escpos paper out", []byte{0x72}, "escpos 72"},
		{"escpos fixed bits wrong", []byte{0xFF}, ""},
		{"escpos two bytes", []byte{0x12, 0x12}, ""},
		{"osdp reply", reply, "osdp 3"},
		{"osdp reply after our echo and noise", append(append(append([]byte(nil), osdpRequest...), 0x00, 0xFF, 0x53), reply...), "osdp 3"},
		{"osdp echo only", osdpRequest, ""},
		{"osdp bad CRC", append(append([]byte(nil), reply[:len(reply)-1]...), reply[len(reply)-1]^1), ""},
		{"idcard ok", unhex(t, "AAAAAA9669 0004 000090 94"), "idcard 90"},
		{"idcard after garbage", unhex(t, "00AA55 AAAAAA9669 0004 000060 64"), "idcard 60"},
		{"idcard bad checksum", unhex(t, "AAAAAA9669 0004 000090 95"), ""},
		{"sscard no card", unhex(t, "02 0003 110000 12 03"), "sscard 00"},
		{"sscard after garbage", unhex(t, "FF0201 02 0003 110001 13 03"), "sscard 00"},
		{"sscard other command echoed", unhex(t, "02 0002 1200 10 03"), ""},
		{"nothing", nil, ""},
	} {
		var got []string
		if b, ok := escposReply(c.in); ok {
			got = append(got, fmt.Sprintf("escpos %02X", b))
		}
		if p, ok := osdpReply(c.in); ok {
			got = append(got, fmt.Sprintf("osdp %d", p.Addr))
		}
		if r, ok := idcardReply(c.in); ok {
			got = append(got, fmt.Sprintf("idcard %02X", r.SW3))
		}
		if s, _, ok := sscardReply(c.in); ok {
			got = append(got, fmt.Sprintf("sscard %02X", s))
		}
		if g := strings.Join(got, ","); g != c.want {
			t.Errorf("%s: recognised %q, want %q", c.name, g, c.want)
		}
	}
	if d := osdpDetail(osdp.Packet{Code: osdp.ReplyPDID, Data: pdid}); d != "vendor 0A0B0C model 1 version 2 serial 12345 firmware 1.2.3" {
		t.Errorf("osdp detail %q", d)
	}
}

// FuzzRecognisers: no input makes a recogniser panic.
func FuzzRecognisers(f *testing.F) {
	for _, q := range Queries() {
		f.Add(q.Bytes)
	}
	f.Add(osdpPacket(f, osdp.Packet{Addr: 3, Reply: true, CRC: true, Code: osdp.ReplyPDID, Data: pdid}))
	f.Add(unhex(f, "AAAAAA9669 0004 000090 94"))
	f.Add(unhex(f, "02 0003 110000 12 03"))
	f.Fuzz(func(t *testing.T, b []byte) {
		escposReply(b)
		osdpReply(b)
		idcardReply(b)
		sscardReply(b)
	})
}

// device is a scripted device behind a fake port: answer gets what the host
// wrote and the rate, and returns the reply.
type device struct {
	baud   int
	answer func(q []byte) []byte
	late   bool // each reply comes only when the next query is written

	mu     sync.Mutex
	writes []string // "rate:query name"
	opens  int
	closes int
}

func (d *device) open(path string, m serialport.Mode) (serialport.Port, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.opens++
	return &fakePort{d: d, baud: m.BaudRate, data: make(chan []byte, 8), closed: make(chan struct{})}, nil
}

func (d *device) log() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.writes...)
}

func queryName(b []byte) string {
	for _, q := range Queries() {
		if bytes.Equal(q.Bytes, b) {
			return q.Name
		}
	}
	return fmt.Sprintf("% x", b)
}

type fakePort struct {
	d       *device
	baud    int
	data    chan []byte
	timeout time.Duration
	closed  chan struct{}
	once    sync.Once
	pending []byte // a late device's reply to the last query
}

func (p *fakePort) Read(b []byte) (int, error) {
	var to <-chan time.Time
	if p.timeout > 0 {
		to = time.After(p.timeout)
	}
	select {
	case r := <-p.data:
		return copy(b, r), nil
	case <-to:
		return 0, &serialport.Error{Code: serialport.Timeout, Op: "read"}
	case <-p.closed:
		return 0, &serialport.Error{Code: serialport.Closed, Op: "read"}
	}
}

func (p *fakePort) Write(b []byte) (int, error) {
	p.d.mu.Lock()
	p.d.writes = append(p.d.writes, fmt.Sprintf("%d:%s", p.baud, queryName(b)))
	p.d.mu.Unlock()
	if p.pending != nil {
		p.data <- p.pending
		p.pending = nil
	}
	if p.d.answer != nil && (p.d.baud == 0 || p.d.baud == p.baud) {
		if r := p.d.answer(b); len(r) > 0 && p.d.late {
			p.pending = r
		} else if len(r) > 0 {
			p.data <- r
		}
	}
	return len(b), nil
}

func (p *fakePort) SetReadTimeout(d time.Duration) error { p.timeout = d; return nil }
func (p *fakePort) ResetInputBuffer() error {
	for {
		select {
		case <-p.data:
		default:
			return nil
		}
	}
}
func (p *fakePort) Close() error {
	p.once.Do(func() {
		close(p.closed)
		p.d.mu.Lock()
		p.d.closes++
		p.d.mu.Unlock()
	})
	return nil
}

const fast = 5 * time.Millisecond

// Each kind of device is found at its rate; the queries follow the plan
// (printer first at every rate) and stop at the identifying one; every
// port opened is closed.
func TestPortFollowsThePlanAndStops(t *testing.T) {
	statusByte := func(q []byte) []byte {
		if len(q) == 3 && q[0] == 0x10 && q[1] == 0x04 {
			if q[2] == 4 {
				return []byte{0x12 | 0x0C} // paper near end
			}
			return []byte{0x12}
		}
		return nil
	}
	osdpPD := func(q []byte) []byte {
		if bytes.Equal(q, osdpRequest) {
			return osdpPacket(t, osdp.Packet{Addr: 3, Reply: true, CRC: true, Code: osdp.ReplyPDID, Data: pdid})
		}
		return nil
	}
	for _, c := range []struct {
		name       string
		dev        *device
		kind       Kind
		baud, addr int
		detail     string
		last       []string // the last writes
	}{
		{"printer at 57600", &device{baud: 57600, answer: statusByte}, ESCPOS, 57600, -1, "printer status: paper near end",
			[]string{"38400:DLE EOT 1", "57600:DLE EOT 1", "57600:DLE EOT 2", "57600:DLE EOT 3", "57600:DLE EOT 4"}},
		{"osdp at 19200", &device{baud: 19200, answer: osdpPD}, OSDP, 19200, 3, "serial 12345",
			[]string{"19200:SAM status", "19200:osdp_ID to 0x7F"}},
		{"idcard at 115200", &device{baud: 115200, answer: func(q []byte) []byte {
			if bytes.Equal(q, idcardRequest) {
				return unhex(t, "AAAAAA9669 0004 000090 94")
			}
			return nil
		}}, IDCard, 115200, -1, "SAM status 90: success",
			[]string{"115200:DLE EOT 1", "115200:CARD STATUS", "115200:SAM status"}},
		{"sscard at 9600", &device{baud: 9600, answer: func(q []byte) []byte {
			if bytes.Equal(q, sscardRequest) {
				return unhex(t, "02 0003 110001 13 03")
			}
			return nil
		}}, SSCard, 9600, -1, "card present",
			[]string{"19200:osdp_ID to 0x7F", "9600:CARD STATUS"}},
		{"silent", &device{}, Silent, 0, -1, "QR scanner", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := Port(context.Background(), "/dev/fake", Options{Timeout: fast, Open: c.dev.open})
			if r.Kind != c.kind || r.Baud != c.baud || r.Addr != c.addr || !strings.Contains(r.Detail, c.detail) || r.Err != nil {
				t.Errorf("got %+v, want %s@%d addr %d detail ~%q", r, c.kind, c.baud, c.addr, c.detail)
			}
			w := c.dev.log()
			if c.last != nil && (len(w) < len(c.last) || strings.Join(w[len(w)-len(c.last):], " ") != strings.Join(c.last, " ")) {
				t.Errorf("writes %v: want them to end with %v", w, c.last)
			}
			if c.kind == Silent && len(w) != SilentQueries {
				t.Errorf("silent port got %d queries, want %d", len(w), SilentQueries)
			}
			if c.dev.opens != c.dev.closes || c.dev.opens == 0 {
				t.Errorf("%d opens, %d closes", c.dev.opens, c.dev.closes)
			}
			if len(w) > 0 && w[0] != "9600:DLE EOT 1" {
				t.Errorf("first query %q: the printer query goes first", w[0])
			}
		})
	}
}

// A device that keeps talking is Unknown, not a printer.
func TestChatterIsUnknown(t *testing.T) {
	dev := &device{answer: func([]byte) []byte { return []byte{0x12, 0x55, 0x12} }}
	r := Port(context.Background(), "/dev/fake", Options{Timeout: fast, Open: dev.open})
	if r.Kind != Unknown || !strings.Contains(r.Detail, "bytes heard") {
		t.Errorf("got %+v", r)
	}
}

func TestOpenFailures(t *testing.T) {
	for _, c := range []struct {
		code   serialport.Code
		kind   Kind
		detail string
	}{
		{serialport.Busy, Busy, "stop kioskd to probe it"},
		{serialport.NotFound, Error, "no such port"},
		{serialport.Permission, Error, "dialout"},
	} {
		open := func(path string, _ serialport.Mode) (serialport.Port, error) {
			return nil, &serialport.Error{Code: c.code, Path: path, Op: "open"}
		}
		r := Port(context.Background(), "/dev/x", Options{Open: open})
		if r.Kind != c.kind || !strings.Contains(r.Detail, c.detail) || !serialport.Is(r.Err, c.code) {
			t.Errorf("%v: got %+v", c.code, r)
		}
	}
}

// Ports keeps the order of its paths, and a cancelled ctx ends every probe.
func TestPortsOrderAndCancel(t *testing.T) {
	devs := map[string]*device{"/a": {baud: 9600, answer: func(q []byte) []byte { return []byte{0x12} }}, "/b": {}}
	open := func(path string, m serialport.Mode) (serialport.Port, error) { return devs[path].open(path, m) }
	rs := Ports(context.Background(), []string{"/a", "/b"}, Options{Timeout: fast, Open: open, Concurrency: 1})
	if len(rs) != 2 || rs[0].Path != "/a" || rs[0].Kind != ESCPOS || rs[1].Path != "/b" || rs[1].Kind != Silent {
		t.Fatalf("got %+v", rs)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rs = Ports(ctx, []string{"/a", "/b"}, Options{Timeout: fast, Open: open})
	for _, r := range rs {
		if r.Kind != Error || r.Detail != "probe interrupted" {
			t.Errorf("cancelled: %+v", r)
		}
	}
}

// A port that answers nothing but sends text lines unasked is a scanner
// that scanned; lines mixed with other bytes are not.
func TestScannedLines(t *testing.T) {
	for _, c := range []struct {
		name    string
		chatter []chunk
		baud    int
		lines   int
	}{
		{"CR", []chunk{{9600, []byte("VISITOR-1\r")}}, 9600, 1},
		{"CRLF over two windows", []chunk{{19200, []byte("A1\r\n")}, {38400, []byte("B2\r\n")}}, 19200, 2},
		{"LF", []chunk{{115200, []byte("扫码\n")}}, 115200, 1},
		{"garbage line", []chunk{{9600, []byte("A\x01B\r")}}, 0, 0},
		{"line and noise", []chunk{{9600, []byte("ABC\r")}, {9600, []byte{0xFF, 0x12}}}, 0, 0},
		{"unfinished line", []chunk{{9600, []byte("ABC")}}, 0, 0},
		{"nothing", nil, 0, 0},
	} {
		baud, lines, ok := scanned(c.chatter)
		if ok != (c.lines > 0) || baud != c.baud || lines != c.lines {
			t.Errorf("%s: %d lines at %d (%v), want %d at %d", c.name, lines, baud, ok, c.lines, c.baud)
		}
	}
	dev := &device{baud: 9600, answer: func(q []byte) []byte {
		if q[0] == 0x10 { // the first query at 9600: the technician scans
			return []byte("VISITOR-1\r")
		}
		return nil
	}}
	r := Port(context.Background(), "/dev/fake", Options{Timeout: fast, Open: dev.open})
	if r.Kind != QRScan || r.Baud != 9600 || strings.Contains(r.Detail, "VISITOR") {
		t.Errorf("got %+v, want qrscan@9600 without the payload", r)
	}
}

// A reader slower than the reply wait is still found when its answer
// arrives while the next query at the same rate waits.
func TestLateReplyAtTheSameRate(t *testing.T) {
	dev := &device{baud: 115200, late: true, answer: func(q []byte) []byte {
		if bytes.Equal(q, sscardRequest) {
			return unhex(t, "02 0003 110000 12 03")
		}
		return nil
	}}
	r := Port(context.Background(), "/dev/fake", Options{Timeout: fast, Open: dev.open})
	w := dev.log()
	if r.Kind != SSCard || r.Baud != 115200 || w[len(w)-1] != "115200:SAM status" {
		t.Errorf("got %+v after %v, want sscard@115200 found while SAM status waited", r, w)
	}
}

func TestSilentQueriesIsThePlan(t *testing.T) {
	if n := len(plan()); n != SilentQueries {
		t.Errorf("the plan has %d queries, SilentQueries says %d", n, SilentQueries)
	}
}

// An RS-485 adapter that echoes what is sent, with nothing on the bus, is
// silent, and a printer behind an echoing adapter is still a printer.
func TestEchoIsNotNoise(t *testing.T) {
	echo := &device{answer: func(q []byte) []byte { return q }}
	if r := Port(context.Background(), "/dev/fake", Options{Timeout: fast, Open: echo.open}); r.Kind != Silent {
		t.Errorf("echo only: %+v", r)
	}
	printer := &device{baud: 9600, answer: func(q []byte) []byte { return append(append([]byte(nil), q...), 0x12) }}
	if r := Port(context.Background(), "/dev/fake", Options{Timeout: fast, Open: printer.open}); r.Kind != ESCPOS {
		t.Errorf("printer behind an echo: %+v", r)
	}
}
