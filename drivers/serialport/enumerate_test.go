package serialport

import (
	"os"
	"path/filepath"
	"testing"
)

func TestStablePathFindsTheUdevLink(t *testing.T) {
	dev := t.TempDir()
	byID, byPath := filepath.Join(dev, "by-id"), filepath.Join(dev, "by-path")
	for _, d := range []string{byID, byPath} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	usb0, usb1, uart := filepath.Join(dev, "ttyUSB0"), filepath.Join(dev, "ttyUSB1"), filepath.Join(dev, "ttyS0")
	for _, f := range []string{usb0, usb1, uart} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, name string) string {
		if err := os.Symlink(target, name); err != nil {
			t.Fatal(err)
		}
		return name
	}
	// udev's links are relative, as on a real system.
	id0 := link("../ttyUSB0", filepath.Join(byID, "usb-FTDI_FT232R_A1B2C3-if00-port0"))
	link("../ttyUSB0", filepath.Join(byPath, "pci-0000:00:14.0-usb-0:1:1.0-port0"))
	path1 := link("../ttyUSB1", filepath.Join(byPath, "pci-0000:00:14.0-usb-0:2:1.0-port0"))
	alias := link(usb0, filepath.Join(dev, "printer"))
	dirs := []string{byID, byPath, filepath.Join(dev, "absent")}
	for _, c := range []struct{ path, want string }{
		{usb0, id0},                         // by-id first
		{alias, id0},                        // through a link
		{usb1, path1},                       // no serial number: by-path
		{uart, ""},                          // built in: no stable link
		{filepath.Join(dev, "ttyUSB9"), ""}, // not there
	} {
		if got := stablePath(dirs, c.path); got != c.want {
			t.Errorf("stablePath(%s) = %q, want %q", filepath.Base(c.path), got, c.want)
		}
	}
}
