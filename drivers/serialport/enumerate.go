package serialport

import (
	"os"
	"path/filepath"
)

// stableDirs are where udev links serial ports under names that survive
// re-plugging and reboots: by serial number, then by USB topology.
var stableDirs = []string{"/dev/serial/by-id", "/dev/serial/by-path"}

// StablePath returns a name for the serial port at path that survives
// reboots and re-plugging, for the agent config's [[device]] path: its udev
// link under /dev/serial/by-id, else under /dev/serial/by-path (an adapter
// without a serial number), else "" (a built-in UART, a pty, a system
// without udev). path may itself be a link. Unreadable links are skipped.
func StablePath(path string) string { return stablePath(stableDirs, path) }

func stablePath(dirs []string, path string) string {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return ""
	}
	for _, d := range dirs {
		ents, err := os.ReadDir(d)
		if err != nil {
			continue // no udev, or no such adapters
		}
		for _, e := range ents {
			p := filepath.Join(d, e.Name())
			if t, err := filepath.EvalSymlinks(p); err == nil && t == target {
				return p
			}
		}
	}
	return ""
}
