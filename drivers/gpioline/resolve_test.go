package gpioline

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

// A Raspberry Pi 5-like machine: two chips share a label, and the line
// name 2712_WAKE is on two chips.
var fakeChips = []chipInfo{
	{Name: "gpiochip0", Path: "/dev/gpiochip0", Label: "pinctrl-rp1", Lines: []string{"ID_SDA", "ID_SCL", "DOOR_RELAY", "", "2712_WAKE"}},
	{Name: "gpiochip1", Path: "/dev/gpiochip1", Label: "brcmstb", Lines: []string{"2712_WAKE", "RTE"}},
	{Name: "gpiochip2", Path: "/dev/gpiochip2", Label: "brcmstb", Lines: []string{"A", "B"}},
	{Name: "gpiochip3", Path: "/dev/gpiochip3", Label: "gpiochip3", Lines: []string{"X"}},
}

func TestResolve(t *testing.T) {
	for _, c := range []struct {
		spec       Spec
		chip, name string
		offset     int
	}{
		{Spec{Chip: "gpiochip0", Line: 2}, "gpiochip0", "DOOR_RELAY", 2},
		{Spec{Chip: "/dev/gpiochip1", Line: 1}, "gpiochip1", "RTE", 1},
		{Spec{Chip: "pinctrl-rp1", Line: 3}, "gpiochip0", "", 3},
		{Spec{Chip: "gpiochip3", Line: 0}, "gpiochip3", "X", 0}, // label equal to name
		{Spec{Name: "DOOR_RELAY"}, "gpiochip0", "DOOR_RELAY", 2},
		{Spec{Name: "RTE"}, "gpiochip1", "RTE", 1},
	} {
		got, err := resolve(c.spec, fakeChips)
		if err != nil || got.Chip.Name != c.chip || got.Offset != c.offset || got.Name != c.name {
			t.Errorf("resolve(%v) = %s:%d %q, %v; want %s:%d %q", c.spec, got.Chip.Name, got.Offset, got.Name, err, c.chip, c.offset, c.name)
		}
	}
}

func TestResolveErrors(t *testing.T) {
	for _, c := range []struct {
		spec  Spec
		chips []chipInfo
		is    error
		says  []string
	}{
		{Spec{Chip: "gpiochip9", Line: 0}, fakeChips, ErrNotFound, []string{`"gpiochip9"`, "gpiochip0 (pinctrl-rp1)", "gpiochip3 (gpiodetect"}},
		{Spec{Chip: "gpiochip1", Line: 2}, fakeChips, ErrNotFound, []string{"gpiochip1 (brcmstb) has 2 lines (offsets 0 to 1)"}},
		{Spec{Chip: "brcmstb", Line: 0}, fakeChips, ErrAmbiguous, []string{"gpiochip1, gpiochip2", "by name"}},
		{Spec{Name: "2712_WAKE"}, fakeChips, ErrAmbiguous, []string{"gpiochip0:4 and gpiochip1:0", "chip:offset"}},
		{Spec{Name: "NOPE"}, fakeChips, ErrNotFound, []string{`"NOPE"`, "gpioinfo", "chip:offset"}},
		{Spec{Name: "DOOR_RELAY"}, nil, ErrNoChips, []string{"/dev/gpiochip*"}},
		{Spec{}, fakeChips, ErrSpec, nil},
	} {
		_, err := resolve(c.spec, c.chips)
		if !errors.Is(err, c.is) {
			t.Errorf("resolve(%+v) = %v; want %v", c.spec, err, c.is)
			continue
		}
		for _, s := range c.says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("resolve(%+v): %q does not say %q", c.spec, err, s)
			}
		}
	}
}

func TestNoChipsError(t *testing.T) {
	denied := &fs.PathError{Op: "open", Path: "/dev/gpiochip0", Err: fs.ErrPermission}
	for _, c := range []struct {
		name    string
		paths   []string
		openErr error
		is      []error
		says    []string
	}{
		{"none present", nil, nil, []error{ErrNoChips}, []string{"no /dev/gpiochip*", "CONFIG_GPIO_CDEV", "container"}},
		{"not allowed", []string{"/dev/gpiochip0"}, denied, []error{ErrNoChips, ErrPermission, fs.ErrPermission}, []string{"/dev/gpiochip0", "permission denied", "group", "udev", `KERNEL=="gpiochip*"`}},
		{"other error", []string{"/dev/gpiochip0"}, errors.New("boom"), []error{ErrNoChips}, []string{"boom"}},
		{"opened but unreadable", []string{"/dev/gpiochip0"}, nil, []error{ErrNoChips}, []string{"5.10"}},
	} {
		err := noChipsError(c.paths, c.openErr)
		for _, is := range c.is {
			if !errors.Is(err, is) {
				t.Errorf("%s: %v is not %v", c.name, err, is)
			}
		}
		for _, s := range c.says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: %q does not say %q", c.name, err, s)
			}
		}
	}
}
