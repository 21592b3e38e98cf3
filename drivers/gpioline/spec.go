package gpioline

import (
	"fmt"
	"strconv"
	"strings"
)

// namePrefix starts the config form of a Spec that addresses a line by name.
const namePrefix = "name:"

// Spec addresses one GPIO line: either by chip and line offset (Chip set),
// or by the line's kernel name, unique across all chips (Name set). The
// zero Spec addresses nothing.
type Spec struct {
	// Chip is the chip's device name ("gpiochip0"), its device path
	// ("/dev/gpiochip0", symlinks followed) or its label
	// ("pinctrl-bcm2711"; must then be unique).
	Chip string
	// Line is the line's offset on Chip, counted from 0 as gpioinfo
	// lists them; not a board pin number. Ignored when Name is set.
	Line int
	// Name is the line's name as the kernel (device tree, gpio-line-names)
	// gives it and gpioinfo shows it: "DOOR_RELAY", "GPIO17".
	Name string
}

// ParseSpec parses a line address from configuration:
//
//	gpiochip0:17         chip gpiochip0, line offset 17
//	/dev/gpiochip0:17    the same by device path
//	pinctrl-bcm2711:17   the same by chip label
//	name:DOOR_RELAY      the line the kernel names DOOR_RELAY, on any chip
//
// The offset follows the last colon, so a label may contain colons. It
// returns an error wrapping ErrSpec that shows the accepted forms when s
// has none of them.
func ParseSpec(s string) (Spec, error) {
	if rest, ok := strings.CutPrefix(s, namePrefix); ok {
		sp := Spec{Name: rest}
		return sp, sp.Validate()
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return Spec{}, fmt.Errorf("%w %q: want chip:offset (gpiochip0:17) or name:LINE_NAME", ErrSpec, s)
	}
	chip, off := s[:i], s[i+1:]
	n, err := strconv.Atoi(off)
	if err != nil {
		return Spec{}, fmt.Errorf("%w %q: line offset %q is not a number; want chip:offset (gpiochip0:17), or name:%s to address a line by name", ErrSpec, s, off, off)
	}
	sp := Spec{Chip: chip, Line: n}
	if err := sp.Validate(); err != nil {
		return Spec{}, err
	}
	return sp, nil
}

// Validate reports, wrapping ErrSpec, a Spec that sets both or neither of
// Chip and Name, a negative Line, or an offset beyond the kernel's.
func (s Spec) Validate() error {
	switch {
	case s.Chip == "" && s.Name == "":
		return fmt.Errorf("%w: empty: want a chip and line offset, or a line name", ErrSpec)
	case s.Chip != "" && s.Name != "":
		return fmt.Errorf("%w %q: set either a chip and offset or a line name, not both", ErrSpec, s.String())
	case s.Name == "" && s.Line < 0:
		return fmt.Errorf("%w %q: negative line offset", ErrSpec, s.String())
	case s.Name == "" && s.Line > 1<<16:
		return fmt.Errorf("%w %q: line offset out of range", ErrSpec, s.String())
	}
	return nil
}

// String returns s in the form ParseSpec reads.
func (s Spec) String() string {
	if s.Name != "" {
		return namePrefix + s.Name
	}
	return s.Chip + ":" + strconv.Itoa(s.Line)
}

// MarshalText returns s in the form ParseSpec reads.
func (s Spec) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses b with ParseSpec, so a Spec can be a string in a
// TOML or JSON configuration file. On error s is unchanged.
func (s *Spec) UnmarshalText(b []byte) error {
	sp, err := ParseSpec(string(b))
	if err != nil {
		return err
	}
	*s = sp
	return nil
}
