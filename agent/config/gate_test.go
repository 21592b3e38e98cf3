package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const gateDoors = `
[privacy]
site_key_file = "keys/site.key"

[gate]
command_key_file = "keys/cmd.pub"
unlock_pulse = "4s"

[[door]]
id = "main-gate"
groups = ["north", "staff"]
lock = "fail_safe"
relay = "gpiochip0:17"
contact = "gpiochip0:18"
contact_active_low = true
exit = "name:EXIT_BTN"
fire = "gpiochip1:2"
timezone = "Asia/Shanghai"

[[door]]
id = "side-door"
lock = "fail_secure"
relay = "gpiochip0:20"
relay_active_low = true
unlock_pulse = "2s"
mode = "locked_down"
anti_passback_group = "block-3"
direction = "in"

[[wiegand]]
name = "gate-in"
door = "main-gate"
d0 = "gpiochip0:4"
d1 = "gpiochip0:5"
complete_at = 26
`

func TestParseGate(t *testing.T) {
	c, err := Parse([]byte(good+gateDoors), "/etc/kioskedge")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Doors) != 2 || len(c.Wiegand) != 1 {
		t.Fatalf("%d doors, %d readers; want 2, 1", len(c.Doors), len(c.Wiegand))
	}
	g := c.Gate
	if g.CommandKeyFile != "/etc/kioskedge/keys/cmd.pub" {
		t.Errorf("command_key_file %q not resolved against the config's directory", g.CommandKeyFile)
	}
	if !strings.HasSuffix(g.AllowlistFile, "/allowlist.db") || !strings.HasSuffix(g.CommandSeenFile, "/commands.seen") {
		t.Errorf("state files default to the data dir: %q %q", g.AllowlistFile, g.CommandSeenFile)
	}
	if g.Debounce.D() != 20*time.Millisecond || g.HeldOpen.D() != 30*time.Second || g.DenialThreshold != 5 {
		t.Errorf("gate defaults: %+v", g)
	}
	main, side := c.Doors[0], c.Doors[1]
	if main.Mode != ModeNormal || main.UnlockPulse.D() != 4*time.Second || main.HeldOpen.D() != 30*time.Second {
		t.Errorf("main-gate took the [gate] values: %+v", main)
	}
	if side.UnlockPulse.D() != 2*time.Second || side.Mode != ModeLockedDown || !side.RelayActiveLow {
		t.Errorf("side-door keeps its own: %+v", side)
	}
	if w := c.Wiegand[0]; w.CompleteAt != 26 || w.Door != "main-gate" {
		t.Errorf("reader: %+v", w)
	}
}

func TestGateProblemsNameTheirKeys(t *testing.T) {
	bad := `
[gate]
debounce = "80ms"
allowlist_groups = ["all", "a/b"]
denial_threshold = 9

[[door]]
id = "a"
relay = "gpiochip0:1"
fire = "gpiochip0:1"
mode = "open"
timezone = "Mars/Olympus"
direction = "in"

[[door]]
id = "a"
lock = "sometimes"
relay = "GPIO17"

[[wiegand]]
name = "r"
door = "nowhere"
d0 = "gpiochip0:4"
complete_at = 200
raw_bits = [26]
`
	_, err := Parse([]byte(good+bad), "")
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	for _, want := range []string{
		"gate.debounce:", "gate.denial_threshold:", `gate.allowlist_groups: "a/b"`, "privacy.site_key_file: required with [[door]]s",
		"door[0].lock: required", `door[0].fire: line "gpiochip0:1" is already used by door[0].relay`,
		"door[0].mode:", "door[0].timezone:", "door[0].anti_passback_group:",
		`door[1].id: "a" is used by another door`, "door[1].lock:", `door[1].relay: "GPIO17" is not a line`,
		`wiegand[0].door: "nowhere"`, "wiegand[0].d1: required", "wiegand[0].complete_at:", "wiegand[0].raw_bits:",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}
