package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kioskedge/kioskedge/drivers/probe"
	"github.com/kioskedge/kioskedge/drivers/serialport"
)

func portsFlags() *flag.FlagSet {
	fs := flag.NewFlagSet("kioskctl ports", flag.ContinueOnError)
	fs.Bool("probe", true, "ask each port which device answers there (read-only status queries); false only lists the ports")
	fs.Duration("timeout", probe.DefaultTimeout, "reply wait per query; a port where nothing answers takes about "+strconv.Itoa(probe.SilentQueries)+" of these")
	return fs
}

// portRow is one port in the output.
type portRow struct {
	Port    string `json:"port"`
	VID     string `json:"vid,omitempty"`
	PID     string `json:"pid,omitempty"`
	Serial  string `json:"serial,omitempty"`
	Product string `json:"product,omitempty"`
	// StablePath is the port's /dev/serial/by-id (or by-path) name, the
	// one to put in the config's [[device]] path.
	StablePath string `json:"stable_path,omitempty"`
	// Device is the probe's kind (osdp, idcard, sscard, escpos, qrscan,
	// silent, unknown, busy, error); empty with --probe=false.
	Device  string `json:"device,omitempty"`
	Baud    int    `json:"baud,omitempty"`
	Address *int   `json:"address,omitempty"` // OSDP reader address
	Detail  string `json:"detail,omitempty"`
}

// runPorts runs "ports [--probe=true] [--timeout D] [PATH...]": it lists the
// serial ports (the system's, or PATHs) with their USB details and, unless
// --probe=false, which device answers on each. Exit 0 when every port was
// listed and probed (busy and silent ports included), 3 when the ports
// cannot be enumerated or a port could not be opened.
func runPorts(ctx context.Context, e *env, args []string) int {
	fs := portsFlags()
	// Flags may come before or after the paths.
	var paths []string
	for rest := args; ; {
		if code, ok := parseFlags(e, fs, rest); !ok {
			return code
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		paths, rest = append(paths, rest[0]), rest[1:]
	}
	doProbe := fs.Lookup("probe").Value.(flag.Getter).Get().(bool)
	timeout := fs.Lookup("timeout").Value.(flag.Getter).Get().(time.Duration)
	if timeout <= 0 {
		return fail(e, "ports", exitUsage, "--timeout must be positive, got %v", timeout)
	}

	infos, listErr := serialport.List()
	var rows []portRow
	if len(paths) == 0 {
		if listErr != nil {
			return fail(e, "ports", exitUnusable, "%v; name the ports instead: kioskctl ports /dev/ttyUSB0 ...", listErr)
		}
		for _, in := range infos {
			rows = append(rows, rowFor(in.Path, infos))
		}
	} else {
		// A failed enumeration only loses the USB details of named ports.
		for _, p := range paths {
			rows = append(rows, rowFor(p, infos))
		}
	}

	code := exitOK
	if doProbe {
		ports := make([]string, len(rows))
		for i, r := range rows {
			ports[i] = r.Port
		}
		for i, res := range probe.Ports(ctx, ports, probe.Options{Timeout: timeout}) {
			r := &rows[i]
			r.Device, r.Baud, r.Detail = string(res.Kind), res.Baud, res.Detail
			if res.Kind == probe.OSDP {
				a := res.Addr
				r.Address = &a
			}
			if res.Kind == probe.Error {
				code = exitUnusable
			}
		}
	}

	if e.JSON {
		if rows == nil {
			rows = []portRow{}
		}
		return printJSONCode(e, rows, code)
	}
	if len(rows) == 0 {
		fmt.Fprintln(e.Stdout, "no serial ports found (is the USB adapter plugged in?)")
		return code
	}
	header := []string{"PORT", "USB", "SERIAL", "PRODUCT"}
	if doProbe {
		header = append(header, "DEVICE", "DETAIL")
	}
	var out [][]string
	for _, r := range rows {
		usb := "-"
		if r.VID != "" || r.PID != "" {
			usb = r.VID + ":" + r.PID
		}
		line := []string{r.Port, usb, orDash(r.Serial), orDash(r.Product)}
		if doProbe {
			line = append(line, deviceCell(r), r.Detail)
		}
		out = append(out, line)
	}
	table(e, header, out)
	first := true
	for _, r := range rows {
		if r.StablePath == "" {
			continue
		}
		if first {
			fmt.Fprintln(e.Stdout, "\nstable names, for the config's [[device]] path:")
			first = false
		}
		fmt.Fprintf(e.Stdout, "  %s = %s\n", r.Port, r.StablePath)
	}
	return code
}

// rowFor fills a row for path with the USB details of the listed port it
// is, or links to.
func rowFor(path string, infos []serialport.PortInfo) portRow {
	r := portRow{Port: path, StablePath: serialport.StablePath(path)}
	if r.StablePath == path {
		r.StablePath = ""
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		real = path // not there: the probe says so
	}
	for _, in := range infos {
		if in.Path == path || in.Path == real {
			r.VID, r.PID, r.Serial, r.Product = in.VID, in.PID, in.Serial, in.Description
			break
		}
	}
	return r
}

// deviceCell is the DEVICE column: "osdp@9600 addr 0", "idcard@115200",
// "silent", "busy", ...
func deviceCell(r portRow) string {
	s := r.Device
	if r.Baud > 0 {
		s += "@" + strconv.Itoa(r.Baud)
	}
	if r.Address != nil {
		s += " addr " + strconv.Itoa(*r.Address)
	}
	return s
}
