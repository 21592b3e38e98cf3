package serialport

import "go.bug.st/serial/enumerator"

// PortInfo describes a serial port found by [List].
type PortInfo struct {
	Path        string // device path, e.g. /dev/ttyUSB0
	Description string // USB manufacturer and product strings when known
	VID, PID    string // USB vendor and product IDs (hex) when USB
	Serial      string // USB serial number when known
	USB         bool   // whether the port is a USB adapter
}

// List returns the serial ports the OS knows about, with USB details where the
// OS gives them (sysfs on Linux). It is meant for technicians choosing a
// path; a machine with no ports returns an empty list and no error. A failed
// enumeration returns *Error{Code: Other, Op: "list"}.
func List() ([]PortInfo, error) {
	ds, err := enumerator.GetDetailedPortsList()
	if err != nil {
		return nil, &Error{Code: Other, Op: "list", Err: err}
	}
	out := make([]PortInfo, 0, len(ds))
	for _, d := range ds {
		desc := d.Manufacturer
		if d.Product != "" {
			if desc != "" {
				desc += " "
			}
			desc += d.Product
		}
		out = append(out, PortInfo{Path: d.Name, Description: desc, VID: d.VID, PID: d.PID, Serial: d.SerialNumber, USB: d.IsUSB})
	}
	return out, nil
}
