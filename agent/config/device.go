package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kioskedge/kioskedge/sync/wire"
)

// Device kinds: one per driver family on a serial link (DESIGN.md §4).
const (
	KindIDCard = "idcard" // resident ID-card reader, drivers/idcard
	KindSSCard = "sscard" // social security card reader, drivers/sscard
	KindQRScan = "qrscan" // QR / barcode scanner, drivers/qrscan
	KindESCPOS = "escpos" // receipt printer, drivers/escpos
	KindOSDP   = "osdp"   // RS-485 bus of OSDP readers, drivers/osdp
)

// Kinds lists the device kinds in the order error messages name them.
var Kinds = []string{KindIDCard, KindSSCard, KindQRScan, KindESCPOS, KindOSDP}

// DefaultReconnectMax caps a device's reopen back-off, so a replugged
// device is back within about a second.
const DefaultReconnectMax = Duration(time.Second)

// Device is one [[device]] entry: a serial device the agent runs.
// Exactly the sub-table of its kind may be present.
type Device struct {
	Name string `toml:"name"` // unique among devices and OSDP readers; used in health and records
	Kind string `toml:"kind"` // one of Kinds
	Path string `toml:"path"` // serial device path, e.g. /dev/serial/by-id/…; unique
	// Baud is the line speed; 0 picks the kind's default (DefaultBaud).
	Baud int `toml:"baud"`
	// DownAfter is how many failed exchanges in a row mark the device
	// down; 0 picks the driver's default (3).
	DownAfter int `toml:"down_after"`
	// ReconnectMax caps the back-off between reopen attempts after the
	// device went away [DefaultReconnectMax].
	ReconnectMax Duration `toml:"reconnect_max"`

	IDCard *PollDevice `toml:"idcard"`
	SSCard *PollDevice `toml:"sscard"`
	QRScan *QRScan     `toml:"qrscan"`
	ESCPOS *PollDevice `toml:"escpos"`
	OSDP   *OSDPBus    `toml:"osdp"`
}

// PollDevice holds the keys of kinds that poll their device (idcard,
// sscard, escpos).
type PollDevice struct {
	// PollInterval is the driver's polling period; 0 picks its default
	// (idcard 250ms, sscard 200ms, escpos 30s).
	PollInterval Duration `toml:"poll_interval"`
}

// QRScan holds a scanner's line framing (firmware-specs/qrscan.md).
type QRScan struct {
	Terminator  string   `toml:"terminator"`   // "CR" (default), "LF" or "CRLF"
	Prefix      string   `toml:"prefix"`       // stripped from a line when present
	Suffix      string   `toml:"suffix"`       // stripped from a line when present
	MaxLen      int      `toml:"max_len"`      // longest accepted line in bytes; 0 = 1024
	StripAIM    bool     `toml:"strip_aim"`    // remove a leading AIM identifier ("]Q1")
	CharTimeout Duration `toml:"char_timeout"` // drop a partial line after this gap; 0 = off
}

// OSDPBus is an RS-485 bus of OSDP readers driven by one control panel.
type OSDPBus struct {
	Readers []OSDPReader `toml:"readers"`
	// PollInterval is the pause between bus cycles; 0 picks the driver's
	// default (50ms).
	PollInterval Duration `toml:"poll_interval"`
}

// OSDPReader is one PD on the bus.
type OSDPReader struct {
	// Name defaults to "<device name>-<address>".
	Name    string `toml:"name"`
	Address int    `toml:"address"` // 0–126, unique on the bus
	// KeyFile holds the reader's 16-byte secure-channel key as 32 hex
	// digits; empty means no secure channel.
	KeyFile       string `toml:"key_file"`
	InstallMode   bool   `toml:"install_mode"`   // reader may still have the default key: set KeyFile's key
	RequireSecure bool   `toml:"require_secure"` // never fall back to plaintext
	Checksum      bool   `toml:"checksum"`       // 8-bit checksum instead of CRC-16
}

// DefaultBaud returns the line speed a kind's spec gives as its default:
// 115200 for the ID-card and social security card readers, 9600 for
// scanners, printers and OSDP buses; 0 for an unknown kind.
func DefaultBaud(kind string) int {
	switch kind {
	case KindIDCard, KindSSCard:
		return 115200
	case KindQRScan, KindESCPOS, KindOSDP:
		return 9600
	}
	return 0
}

var bauds = []int{1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600}

// ReaderName returns the name of reader r of an OSDP device d: its own, or
// "<device>-<address>".
func (d Device) ReaderName(r OSDPReader) string {
	if r.Name != "" {
		return r.Name
	}
	return fmt.Sprintf("%s-%d", d.Name, r.Address)
}

func validateDevices(devs []Device) []string {
	var p []string
	names := map[string]string{} // name → key that took it
	paths := map[string]string{}
	claim := func(key, name string) {
		if prev, ok := names[name]; ok {
			p = append(p, fmt.Sprintf("%s: %q is already the name of %s", key, name, prev))
			return
		}
		names[name] = key
	}
	for i, d := range devs {
		key := fmt.Sprintf("device[%d]", i)
		bad := func(sub, format string, args ...any) {
			p = append(p, key+"."+sub+": "+fmt.Sprintf(format, args...))
		}
		if err := wire.ValidateID("name", d.Name); err != nil {
			bad("name", "%v", strings.TrimPrefix(err.Error(), "wire: "))
		} else {
			claim(key+".name", d.Name)
		}
		if !slices.Contains(Kinds, d.Kind) {
			if d.Kind == "" {
				bad("kind", "required (one of %s)", strings.Join(Kinds, ", "))
			} else {
				bad("kind", "%q is not one of %s", d.Kind, strings.Join(Kinds, ", "))
			}
		}
		if d.Path == "" {
			bad("path", "required")
		} else if prev, ok := paths[d.Path]; ok {
			bad("path", "%q is already the path of %s", d.Path, prev)
		} else {
			paths[d.Path] = key
		}
		if d.Baud != 0 && !slices.Contains(bauds, d.Baud) {
			bad("baud", "%d is not a standard rate (9600, 19200, 38400, 57600, 115200, …)", d.Baud)
		}
		if d.DownAfter < 0 || d.DownAfter > 1000 {
			bad("down_after", "%d out of range 1..1000 (0 = the driver's default)", d.DownAfter)
		}
		if d.ReconnectMax < 0 {
			bad("reconnect_max", "must be a positive duration such as \"1s\"")
		}
		// Exactly the sub-table of the kind may be present.
		for _, st := range []struct {
			kind    string
			present bool
		}{{KindIDCard, d.IDCard != nil}, {KindSSCard, d.SSCard != nil}, {KindQRScan, d.QRScan != nil},
			{KindESCPOS, d.ESCPOS != nil}, {KindOSDP, d.OSDP != nil}} {
			if st.present && st.kind != d.Kind {
				bad(st.kind, "only allowed for kind %q (this device is %q)", st.kind, d.Kind)
			}
		}
		for _, pd := range []struct {
			sub string
			d   *PollDevice
		}{{KindIDCard, d.IDCard}, {KindSSCard, d.SSCard}, {KindESCPOS, d.ESCPOS}} {
			if pd.d != nil && pd.d.PollInterval < 0 {
				bad(pd.sub+".poll_interval", "must be a positive duration such as \"250ms\"")
			}
		}
		if q := d.QRScan; q != nil {
			switch q.Terminator {
			case "", "CR", "LF", "CRLF":
			default:
				bad("qrscan.terminator", "%q is not one of CR, LF, CRLF", q.Terminator)
			}
			if q.MaxLen < 0 || q.MaxLen > 65536 {
				bad("qrscan.max_len", "%d out of range 1..65536 (0 = 1024)", q.MaxLen)
			}
			if q.CharTimeout < 0 {
				bad("qrscan.char_timeout", "must be a positive duration such as \"200ms\" (0 = off)")
			}
		}
		if d.Kind == KindOSDP {
			if d.OSDP == nil || len(d.OSDP.Readers) == 0 {
				bad("osdp.readers", "an OSDP bus needs at least one reader")
				continue
			}
			if d.OSDP.PollInterval < 0 {
				bad("osdp.poll_interval", "must be a positive duration such as \"50ms\"")
			}
			addrs := map[int]bool{}
			for j, r := range d.OSDP.Readers {
				rkey := fmt.Sprintf("osdp.readers[%d]", j)
				if r.Address < 0 || r.Address > 0x7E {
					bad(rkey+".address", "%d out of range 0..126", r.Address)
				} else if addrs[r.Address] {
					bad(rkey+".address", "%d is used by another reader on this bus", r.Address)
				}
				addrs[r.Address] = true
				if r.Name != "" {
					if err := wire.ValidateID("name", r.Name); err != nil {
						bad(rkey+".name", "%v", strings.TrimPrefix(err.Error(), "wire: "))
						continue
					}
				}
				if d.Name != "" {
					claim(key+"."+rkey+".name", d.ReaderName(r))
				}
				if r.KeyFile == "" && r.InstallMode {
					bad(rkey+".key_file", "install_mode needs the key to install (key_file)")
				}
				if r.KeyFile == "" && r.RequireSecure {
					bad(rkey+".key_file", "require_secure needs the reader's key (key_file)")
				}
			}
		}
	}
	return p
}

// applyDeviceDefaults fills the zero values that have a default, after
// validation.
func applyDeviceDefaults(devs []Device) {
	for i := range devs {
		d := &devs[i]
		if d.Baud == 0 {
			d.Baud = DefaultBaud(d.Kind)
		}
		if d.ReconnectMax == 0 {
			d.ReconnectMax = DefaultReconnectMax
		}
		if d.Kind == KindQRScan && d.QRScan == nil {
			d.QRScan = &QRScan{}
		}
		if d.QRScan != nil && d.QRScan.Terminator == "" {
			d.QRScan.Terminator = "CR"
		}
		if d.OSDP != nil {
			for j := range d.OSDP.Readers {
				d.OSDP.Readers[j].Name = d.ReaderName(d.OSDP.Readers[j])
			}
		}
	}
}
