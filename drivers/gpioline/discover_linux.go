package gpioline

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"periph.io/x/conn/v3/driver/driverreg"
	"periph.io/x/host/v3/gpioioctl"
)

// discover lists the machine's GPIO chips through periph's gpioioctl
// driver, initialised once per process by driverreg.Init (which also
// registers the named lines in periph's gpioreg, and keeps each chip's
// device node open for the life of the process). The chips are the ones
// present at the first call: a chip that appears later is not seen until
// the agent restarts.
func discover() ([]chipInfo, error) {
	if _, err := driverreg.Init(); err != nil {
		return nil, fmt.Errorf("gpioline: periph driver initialisation: %w", err)
	}
	var chips []chipInfo
	for _, c := range gpioioctl.Chips {
		path := c.Path()
		if p, err := filepath.EvalSymlinks(path); err == nil {
			path = p
		}
		ci := chipInfo{Name: c.Name(), Path: path, Label: c.Label(), Lines: make([]string, len(c.Lines()))}
		for i, ln := range c.Lines() {
			ci.Lines[i] = kernelName(c.Name(), ln.Name())
		}
		chips = append(chips, ci)
	}
	if len(chips) > 0 {
		return chips, nil
	}
	// periph found nothing and, by design, says little: say why.
	paths, _ := filepath.Glob("/dev/gpiochip*") // the pattern is valid
	var openErr error
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			openErr = err
			break
		}
		_ = f.Close() // opened read-only to test access; nothing to lose
	}
	return nil, noChipsError(paths, openErr)
}

// kernelName undoes periph's renaming of a line whose name another chip's
// line already has ("2712_WAKE" becomes "gpiochip1-2712_WAKE"), so that
// resolution sees the kernel's names and reports the duplicate instead of
// silently picking the first. Unnamed lines ("", "-", "_") stay as they
// are; they match no reasonable Spec.Name.
func kernelName(chip, periphName string) string {
	return strings.TrimPrefix(periphName, chip+"-")
}
