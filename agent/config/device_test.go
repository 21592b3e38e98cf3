package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const devices = `
[[device]]
name = "id-1"
kind = "idcard"
path = "/dev/serial/by-id/usb-sam-if00"

[[device]]
name = "qr-1"
kind = "qrscan"
path = "/dev/ttyUSB1"
down_after = 5
[device.qrscan]
terminator = "CRLF"
prefix = "KE:"
max_len = 512

[[device]]
name = "printer"
kind = "escpos"
path = "/dev/ttyUSB2"
baud = 19200
reconnect_max = "2s"
[device.escpos]
poll_interval = "10s"

[[device]]
name = "gate-bus"
kind = "osdp"
path = "/dev/ttyRS485"
[device.osdp]
poll_interval = "40ms"
readers = [
  {address = 0, key_file = "keys/in.hex", install_mode = true, require_secure = true},
  {address = 1, name = "gate-out"},
]
`

func TestParseDevices(t *testing.T) {
	c, err := Parse([]byte(good+devices), "/etc/kioskedge")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Devices) != 4 {
		t.Fatalf("%d devices, want 4", len(c.Devices))
	}
	id, qr, pr, bus := c.Devices[0], c.Devices[1], c.Devices[2], c.Devices[3]
	if id.Baud != 115200 || id.ReconnectMax != DefaultReconnectMax || id.DownAfter != 0 {
		t.Errorf("idcard defaults: %+v", id)
	}
	if qr.Baud != 9600 || qr.DownAfter != 5 || qr.QRScan == nil || qr.QRScan.Terminator != "CRLF" ||
		qr.QRScan.Prefix != "KE:" || qr.QRScan.MaxLen != 512 {
		t.Errorf("qrscan: %+v %+v", qr, qr.QRScan)
	}
	if pr.Baud != 19200 || pr.ReconnectMax.D() != 2*time.Second || pr.ESCPOS.PollInterval.D() != 10*time.Second {
		t.Errorf("escpos: %+v", pr)
	}
	if bus.Baud != 9600 || bus.OSDP.PollInterval.D() != 40*time.Millisecond || len(bus.OSDP.Readers) != 2 {
		t.Fatalf("osdp: %+v", bus)
	}
	r0, r1 := bus.OSDP.Readers[0], bus.OSDP.Readers[1]
	if r0.Name != "gate-bus-0" || r0.KeyFile != "/etc/kioskedge/keys/in.hex" || !r0.InstallMode || !r0.RequireSecure {
		t.Errorf("reader 0: %+v", r0)
	}
	if r1.Name != "gate-out" || r1.Address != 1 || r1.KeyFile != "" {
		t.Errorf("reader 1: %+v", r1)
	}
}

func TestParseQRScanWithoutSubTable(t *testing.T) {
	c, err := Parse([]byte(good+"[[device]]\nname = \"qr\"\nkind = \"qrscan\"\npath = \"/dev/ttyACM0\"\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if q := c.Devices[0].QRScan; q == nil || q.Terminator != "CR" {
		t.Errorf("qrscan defaults: %+v", q)
	}
}

func TestParseBadDevices(t *testing.T) {
	dev := func(body string) string { return good + "\n[[device]]\n" + body + "\n" }
	const idc = "name = \"id-1\"\nkind = \"idcard\"\npath = \"/dev/ttyUSB0\"\n"
	cases := []struct {
		name, cfg string
		want      []string
	}{
		{"unknown kind", dev(`name = "x"
kind = "foo"
path = "/dev/ttyUSB0"`), []string{`device[0].kind: "foo" is not one of idcard, sscard, qrscan, escpos, osdp`}},
		{"missing kind", dev("name = \"x\"\npath = \"/dev/ttyUSB0\""), []string{"device[0].kind: required"}},
		{"missing path", dev("name = \"x\"\nkind = \"idcard\""), []string{"device[0].path: required"}},
		{"missing name", dev("kind = \"idcard\"\npath = \"/dev/ttyUSB0\""), []string{"device[0].name:", "empty"}},
		{"bad name", dev("name = \"a/b\"\nkind = \"idcard\"\npath = \"/dev/ttyUSB0\""), []string{"device[0].name:"}},
		{"duplicate name", dev(idc) + "[[device]]\nname = \"id-1\"\nkind = \"qrscan\"\npath = \"/dev/ttyUSB1\"\n",
			[]string{`device[1].name: "id-1" is already the name of device[0].name`}},
		{"duplicate path", dev(idc) + "[[device]]\nname = \"qr\"\nkind = \"qrscan\"\npath = \"/dev/ttyUSB0\"\n",
			[]string{`device[1].path: "/dev/ttyUSB0" is already the path of device[0]`}},
		{"bad baud", dev(idc + "baud = 12345"), []string{"device[0].baud: 12345"}},
		{"negative down_after", dev(idc + "down_after = -1"), []string{"device[0].down_after:"}},
		{"bad reconnect_max", dev(idc + `reconnect_max = "soon"`), []string{"soon", "duration"}},
		{"negative reconnect_max", dev(idc + `reconnect_max = "-1s"`), []string{"device[0].reconnect_max:"}},
		{"unknown key", dev(idc + "speed = 9600"), []string{"device.speed: unknown key"}},
		{"sub-table of another kind", dev(idc + "[device.qrscan]\nterminator = \"LF\""),
			[]string{`device[0].qrscan: only allowed for kind "qrscan"`}},
		{"bad terminator", dev("name = \"qr\"\nkind = \"qrscan\"\npath = \"/dev/ttyUSB0\"\n[device.qrscan]\nterminator = \"ETX\""),
			[]string{`device[0].qrscan.terminator: "ETX" is not one of CR, LF, CRLF`}},
		{"bad max_len", dev("name = \"qr\"\nkind = \"qrscan\"\npath = \"/dev/ttyUSB0\"\n[device.qrscan]\nmax_len = 100000"),
			[]string{"device[0].qrscan.max_len:"}},
		{"unknown qrscan key", dev("name = \"qr\"\nkind = \"qrscan\"\npath = \"/dev/ttyUSB0\"\n[device.qrscan]\nterminatr = \"LF\""),
			[]string{"device.qrscan.terminatr: unknown key"}},
		{"osdp without readers", dev("name = \"bus\"\nkind = \"osdp\"\npath = \"/dev/ttyS1\""),
			[]string{"device[0].osdp.readers: an OSDP bus needs at least one reader"}},
		{"osdp address range", dev("name = \"bus\"\nkind = \"osdp\"\npath = \"/dev/ttyS1\"\n[device.osdp]\nreaders = [{address = 127}]"),
			[]string{"device[0].osdp.readers[0].address: 127 out of range"}},
		{"osdp duplicate address", dev("name = \"bus\"\nkind = \"osdp\"\npath = \"/dev/ttyS1\"\n[device.osdp]\nreaders = [{address = 1}, {address = 1, name = \"b\"}]"),
			[]string{"device[0].osdp.readers[1].address: 1 is used"}},
		{"osdp install without key", dev("name = \"bus\"\nkind = \"osdp\"\npath = \"/dev/ttyS1\"\n[device.osdp]\nreaders = [{address = 1, install_mode = true}]"),
			[]string{"device[0].osdp.readers[0].key_file: install_mode"}},
		{"osdp secure without key", dev("name = \"bus\"\nkind = \"osdp\"\npath = \"/dev/ttyS1\"\n[device.osdp]\nreaders = [{address = 1, require_secure = true}]"),
			[]string{"device[0].osdp.readers[0].key_file: require_secure"}},
		{"osdp reader name clash", dev(idc) + "[[device]]\nname = \"bus\"\nkind = \"osdp\"\npath = \"/dev/ttyS1\"\n[device.osdp]\nreaders = [{address = 1, name = \"id-1\"}]\n",
			[]string{`device[1].osdp.readers[0].name: "id-1" is already the name of device[0].name`}},
		{"osdp unknown reader key", dev("name = \"bus\"\nkind = \"osdp\"\npath = \"/dev/ttyS1\"\n[device.osdp]\nreaders = [{address = 1, adress = 2}]"),
			[]string{"adress: unknown key"}},
		{"several at once", dev("name = \"x\"\nkind = \"foo\"") + "[[device]]\nname = \"x\"\nkind = \"idcard\"\n",
			[]string{"device[0].kind:", "device[0].path: required", "device[1].name:", "device[1].path: required"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.cfg), "")
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}
