package gpioline

import (
	"errors"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestOpenRejectsBadArguments(t *testing.T) {
	if _, err := Open(Spec{}, Options{}); !errors.Is(err, ErrSpec) {
		t.Errorf("empty spec: %v", err)
	}
	if _, err := Open(Spec{Chip: "gpiochip0"}, Options{EventBuffer: -1}); !errors.Is(err, ErrOptions) {
		t.Errorf("bad options: %v", err)
	}
}

// This test runs the real path on machines without GPIO hardware (like
// the CI runners and the development container, which have no
// /dev/gpiochip* and no gpio-sim): Open must say plainly that there is no
// chip and what to check, not fail obscurely. On a machine with chips it
// cannot check that, and says so.
func TestOpenWithoutChips(t *testing.T) {
	if runtime.GOOS != "linux" {
		_, err := Open(Spec{Chip: "gpiochip0", Line: 0}, Options{})
		if !errors.Is(err, ErrUnsupported) {
			t.Fatalf("Open on %s: %v, want ErrUnsupported", runtime.GOOS, err)
		}
		return
	}
	if chips, _ := filepath.Glob("/dev/gpiochip*"); len(chips) > 0 {
		t.Skipf("this machine has GPIO chips (%v): the no-chip error path cannot be exercised here", chips)
	}
	for _, s := range []Spec{{Chip: "gpiochip0", Line: 17}, {Name: "DOOR_RELAY"}} {
		l, err := Open(s, Options{})
		if l != nil || !errors.Is(err, ErrNoChips) {
			t.Fatalf("Open(%v) = %v, %v; want ErrNoChips", s, l, err)
		}
		if !strings.Contains(err.Error(), "/dev/gpiochip*") || !strings.Contains(err.Error(), "CONFIG_GPIO_CDEV") {
			t.Errorf("Open(%v): %q does not say what to check", s, err)
		}
	}
}
