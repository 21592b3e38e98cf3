package gpioline

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// chipInfo is what resolution needs to know of one GPIO chip. On Linux it
// is filled from periph's gpioioctl discovery (discover_linux.go); tests
// build it by hand.
type chipInfo struct {
	Name  string   // kernel device name: "gpiochip0"
	Path  string   // device node, symlinks resolved: "/dev/gpiochip0"
	Label string   // "pinctrl-bcm2711"; may repeat across chips
	Lines []string // kernel line names by offset; "" for an unnamed line
}

// target is a resolved line.
type target struct {
	Chip   chipInfo
	Offset int
	Name   string // the line's kernel name, "" if it has none
}

// addr returns the canonical chip:offset address of t.
func (t target) addr() string { return Spec{Chip: t.Chip.Name, Line: t.Offset}.String() }

// String returns the address and kernel name: "gpiochip0:17(DOOR_RELAY)",
// or the address alone for an unnamed line.
func (t target) String() string {
	if t.Name == "" {
		return t.addr()
	}
	return t.addr() + "(" + t.Name + ")"
}

// resolve finds the line s addresses among chips. A chip matches by name
// or path first, then by label, which must be unique; a line name must be
// unique across all chips. Errors wrap ErrNoChips, ErrNotFound or
// ErrAmbiguous and list what there is to choose from.
func resolve(s Spec, chips []chipInfo) (target, error) {
	if err := s.Validate(); err != nil {
		return target{}, err
	}
	if len(chips) == 0 {
		return target{}, noChipsError(nil, nil)
	}
	if s.Name != "" {
		return resolveName(s.Name, chips)
	}
	chip, err := findChip(s.Chip, chips)
	if err != nil {
		return target{}, err
	}
	if s.Line >= len(chip.Lines) {
		return target{}, fmt.Errorf("%w: %s: %s has %d lines (offsets 0 to %d)", ErrNotFound, s, describe(chip), len(chip.Lines), len(chip.Lines)-1)
	}
	return target{Chip: chip, Offset: s.Line, Name: chip.Lines[s.Line]}, nil
}

func findChip(want string, chips []chipInfo) (chipInfo, error) {
	for _, c := range chips {
		if c.Name == want || c.Path == want {
			return c, nil
		}
	}
	var byLabel []chipInfo
	for _, c := range chips {
		if c.Label == want {
			byLabel = append(byLabel, c)
		}
	}
	switch len(byLabel) {
	case 1:
		return byLabel[0], nil
	case 0:
		return chipInfo{}, fmt.Errorf("%w: no GPIO chip has the name, path or label %q; the chips are %s (gpiodetect lists them)", ErrNotFound, want, listChips(chips))
	}
	names := make([]string, len(byLabel))
	for i, c := range byLabel {
		names[i] = c.Name
	}
	return chipInfo{}, fmt.Errorf("%w: chip label %q is on %s: address the chip by name", ErrAmbiguous, want, strings.Join(names, ", "))
}

func resolveName(name string, chips []chipInfo) (target, error) {
	var found []target
	for _, c := range chips {
		for off, n := range c.Lines {
			if n == name {
				found = append(found, target{Chip: c, Offset: off, Name: n})
			}
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return target{}, fmt.Errorf("%w: no GPIO line named %q on %s; gpioinfo lists the line names, or address the line as chip:offset", ErrNotFound, name, listChips(chips))
	}
	addrs := make([]string, len(found))
	for i, t := range found {
		addrs[i] = t.addr()
	}
	return target{}, fmt.Errorf("%w: line name %q is on %s: address the line as chip:offset", ErrAmbiguous, name, strings.Join(addrs, " and "))
}

func describe(c chipInfo) string {
	if c.Label == "" || c.Label == c.Name {
		return c.Name
	}
	return c.Name + " (" + c.Label + ")"
}

func listChips(chips []chipInfo) string {
	s := make([]string, len(chips))
	for i, c := range chips {
		s[i] = describe(c)
	}
	return strings.Join(s, ", ")
}

// noChipsError explains, wrapping ErrNoChips, why no chip is usable:
// paths are the /dev/gpiochip* nodes present, openErr the error opening
// the first one that failed (nil if all opened or there are none).
func noChipsError(paths []string, openErr error) error {
	switch {
	case len(paths) == 0:
		return fmt.Errorf("%w: there is no /dev/gpiochip* on this machine: is the GPIO character device present (kernel CONFIG_GPIO_CDEV, a GPIO controller driver loaded) and, in a container, passed through?", ErrNoChips)
	case errors.Is(openErr, fs.ErrPermission):
		return &multiError{
			msg:  fmt.Sprintf("%v: %s exists but this user cannot open it (%v): %s", ErrNoChips, strings.Join(paths, ", "), openErr, permissionHint),
			errs: []error{ErrNoChips, ErrPermission, openErr},
		}
	case openErr != nil:
		return fmt.Errorf("%w: %s exists but cannot be opened: %w", ErrNoChips, strings.Join(paths, ", "), openErr)
	}
	return fmt.Errorf("%w: %s exists but no chip could be read; is the user allowed to read it, and is the kernel new enough (5.10, GPIO character device v2)?", ErrNoChips, strings.Join(paths, ", "))
}

// permissionHint says how to give the agent's user the GPIO chips.
const permissionHint = `add the user to the group that owns /dev/gpiochip* (often gpio), or install a udev rule such as SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"`

// multiError is an error with its own message that wraps several errors.
type multiError struct {
	msg  string
	errs []error
}

func (e *multiError) Error() string   { return e.msg }
func (e *multiError) Unwrap() []error { return e.errs }
