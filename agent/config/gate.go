package config

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kioskedge/kioskedge/sync/wire"
)

// Gate is the [gate] table: what every door of a smart gate shares. The
// doors themselves are [[door]] entries and their Wiegand readers
// [[wiegand]] entries; a config without doors runs no gate.
type Gate struct {
	// AllowlistFile is the allowlist's own bbolt file
	// [<data_dir>/allowlist.db].
	AllowlistFile string `toml:"allowlist_file"`
	// AllowlistGroups are the hub's allowlist groups this gate also
	// listens to (<root>/v1/$group/<group>/allowlist,
	// firmware-specs/hub-allowlist.md §2), besides its own topic [none].
	AllowlistGroups []string `toml:"allowlist_groups"`
	// CommandKeyFile holds the hub's Ed25519 public key for signed remote
	// commands (hubd cmd keygen). Without it every command is refused.
	CommandKeyFile string `toml:"command_key_file"`
	// CommandSeenFile remembers the nonces of accepted commands across
	// restarts [<data_dir>/commands.seen].
	CommandSeenFile string `toml:"command_seen_file"`
	// UnlockPulse is how long a grant releases a door ["5s"].
	UnlockPulse Duration `toml:"unlock_pulse"`
	// HeldOpen is how long a door may stay open after a legitimate
	// opening before the held-open alarm ["30s"].
	HeldOpen Duration `toml:"held_open"`
	// Debounce is how long a door input must hold a level to count
	// ["20ms"]; at most 50ms so a fire alarm releases well within 100ms.
	Debounce Duration `toml:"debounce"`
	// DenialThreshold wrong credentials at one reader within DenialWindow
	// raise an alarm [5, the most GB 50396 allows; 1..5].
	DenialThreshold int      `toml:"denial_threshold"`
	DenialWindow    Duration `toml:"denial_window"` // ["1m"]
	// AntiPassbackTimeout: how long an entry counts as in after passing an
	// In door ["30m"].
	AntiPassbackTimeout Duration `toml:"anti_passback_timeout"`
}

// Lock modes of a door: what the lock does without power.
const (
	LockFailSafe   = "fail_safe"   // released when unpowered (maglock; escape routes)
	LockFailSecure = "fail_secure" // locked when unpowered (electric strike)
)

// Door modes a door starts in.
const (
	ModeNormal      = "normal"
	ModeLockedDown  = "locked_down"
	ModeFreePassage = "free_passage"
)

// Door is one [[door]] entry: a door's I/O lines and its access settings.
// Lines are named as "gpiochip0:17" (chip and offset), "/dev/gpiochip0:17"
// or "name:DOOR_RELAY" (the kernel's line name); drivers/gpioline resolves
// them.
type Door struct {
	ID     string   `toml:"id"`     // unique; used in records, commands and the allowlist's door groups
	Groups []string `toml:"groups"` // door groups an allowlist entry must share
	// Mode is the mode the door starts in [normal].
	Mode string `toml:"mode"`
	// Timezone names the zone schedules are read in ["Local"].
	Timezone string `toml:"timezone"`
	// Lock is fail_safe or fail_secure; required, because it decides what
	// a power cut or a halted agent does to the door.
	Lock           string `toml:"lock"`
	Relay          string `toml:"relay"` // required
	RelayActiveLow bool   `toml:"relay_active_low"`
	// Inputs; an empty line means not fitted. Contact is active when the
	// door is open, Exit when the request-to-exit button is pressed,
	// Fire when the fire alarm is on, Tamper when the enclosure is open.
	Contact          string `toml:"contact"`
	ContactActiveLow bool   `toml:"contact_active_low"`
	Exit             string `toml:"exit"`
	ExitActiveLow    bool   `toml:"exit_active_low"`
	Fire             string `toml:"fire"`
	FireActiveLow    bool   `toml:"fire_active_low"`
	Tamper           string `toml:"tamper"`
	TamperActiveLow  bool   `toml:"tamper_active_low"`
	// UnlockPulse and HeldOpen override [gate]'s for this door.
	UnlockPulse Duration `toml:"unlock_pulse"`
	HeldOpen    Duration `toml:"held_open"`
	// AntiPassbackGroup and Direction ("in" or "out") make the door part
	// of an anti-passback group.
	AntiPassbackGroup string `toml:"anti_passback_group"`
	Direction         string `toml:"direction"`
}

// Wiegand is one [[wiegand]] entry: a Wiegand reader on two lines, at a
// door (firmware-specs/wiegand.md).
type Wiegand struct {
	Name string `toml:"name"` // unique among readers and devices; used in records
	Door string `toml:"door"` // the [[door]] id it opens
	D0   string `toml:"d0"`
	D1   string `toml:"d1"`
	// Gap is the silence that ends a frame ["25ms"].
	Gap Duration `toml:"gap"`
	// CompleteAt, when set, is the reader's card format length in bits:
	// a frame with that many regularly timed bits is complete at its last
	// bit, without waiting for Gap [0: frames end by Gap only].
	CompleteAt int `toml:"complete_at"`
	// RawBits lists other frame lengths passed on as raw credentials.
	RawBits []int `toml:"raw_bits"`
}

func defaultGate() Gate {
	return Gate{
		UnlockPulse:         Duration(5 * time.Second),
		HeldOpen:            Duration(30 * time.Second),
		Debounce:            Duration(20 * time.Millisecond),
		DenialThreshold:     5,
		DenialWindow:        Duration(time.Minute),
		AntiPassbackTimeout: Duration(30 * time.Minute),
	}
}

// maxDebounce keeps a fire alarm's release well inside the 100 ms the gate
// promises.
const maxDebounce = 50 * time.Millisecond

func (c Config) validateGate() []string {
	var p []string
	bad := func(key, format string, args ...any) { p = append(p, key+": "+fmt.Sprintf(format, args...)) }
	g := c.Gate
	for _, x := range []struct {
		key string
		d   Duration
	}{{"gate.unlock_pulse", g.UnlockPulse}, {"gate.held_open", g.HeldOpen}, {"gate.denial_window", g.DenialWindow}, {"gate.anti_passback_timeout", g.AntiPassbackTimeout}} {
		if x.d <= 0 {
			bad(x.key, "must be a positive duration such as \"5s\"")
		}
	}
	if g.Debounce < 0 || g.Debounce.D() > maxDebounce {
		bad("gate.debounce", "%v out of range 0..%v", g.Debounce.D(), maxDebounce)
	}
	for _, grp := range g.AllowlistGroups {
		if err := wire.ValidateID("group", grp); err != nil {
			bad("gate.allowlist_groups", "%q: %v", grp, strings.TrimPrefix(err.Error(), "wire: "))
		}
	}
	if g.DenialThreshold < 1 || g.DenialThreshold > 5 {
		bad("gate.denial_threshold", "%d out of range 1..5 (GB 50396: an alarm after at most 5 wrong credentials)", g.DenialThreshold)
	}

	lines := map[string]string{} // line → key that uses it
	useLine := func(key, line string, required bool) {
		if line == "" {
			if required {
				bad(key, "required")
			}
			return
		}
		if strings.ContainsAny(line, " \t\r\n") || !strings.Contains(line, ":") {
			bad(key, "%q is not a line like \"gpiochip0:17\" or \"name:DOOR_RELAY\"", line)
			return
		}
		if other, dup := lines[line]; dup {
			bad(key, "line %q is already used by %s", line, other)
			return
		}
		lines[line] = key
	}
	doors := map[string]bool{}
	for i, d := range c.Doors {
		k := fmt.Sprintf("door[%d]", i)
		if err := wire.ValidateID("id", d.ID); err != nil {
			bad(k+".id", "%v", strings.TrimPrefix(err.Error(), "wire: "))
		} else if doors[d.ID] {
			bad(k+".id", "%q is used by another door", d.ID)
		}
		doors[d.ID] = true
		switch d.Mode {
		case "", ModeNormal, ModeLockedDown, ModeFreePassage:
		default:
			bad(k+".mode", "%q is not normal, locked_down or free_passage", d.Mode)
		}
		if d.Timezone != "" {
			if _, err := time.LoadLocation(d.Timezone); err != nil {
				bad(k+".timezone", "%q is not a time zone like \"Asia/Shanghai\"", d.Timezone)
			}
		}
		switch d.Lock {
		case LockFailSafe, LockFailSecure:
		case "":
			bad(k+".lock", "required: fail_safe (released without power; escape routes) or fail_secure")
		default:
			bad(k+".lock", "%q is not fail_safe or fail_secure", d.Lock)
		}
		useLine(k+".relay", d.Relay, true)
		useLine(k+".contact", d.Contact, false)
		useLine(k+".exit", d.Exit, false)
		useLine(k+".fire", d.Fire, false)
		useLine(k+".tamper", d.Tamper, false)
		if d.UnlockPulse < 0 {
			bad(k+".unlock_pulse", "must not be negative")
		}
		if d.HeldOpen < 0 {
			bad(k+".held_open", "must not be negative")
		}
		switch d.Direction {
		case "", "in", "out":
		default:
			bad(k+".direction", "%q is not in or out", d.Direction)
		}
		if (d.AntiPassbackGroup == "") != (d.Direction == "") {
			bad(k+".anti_passback_group", "anti_passback_group and direction go together")
		}
	}
	names := map[string]bool{}
	for _, d := range c.Devices {
		names[d.Name] = true
	}
	for i, w := range c.Wiegand {
		k := fmt.Sprintf("wiegand[%d]", i)
		if err := wire.ValidateID("name", w.Name); err != nil {
			bad(k+".name", "%v", strings.TrimPrefix(err.Error(), "wire: "))
		} else if names[w.Name] {
			bad(k+".name", "%q is used by another reader or device", w.Name)
		}
		names[w.Name] = true
		if !doors[w.Door] {
			bad(k+".door", "%q is not a [[door]] id", w.Door)
		}
		useLine(k+".d0", w.D0, true)
		useLine(k+".d1", w.D1, true)
		if w.Gap < 0 {
			bad(k+".gap", "must not be negative")
		}
		if w.CompleteAt != 0 && (w.CompleteAt < 4 || w.CompleteAt > 64) {
			bad(k+".complete_at", "%d out of range 4..64 (0 = frames end by the gap)", w.CompleteAt)
		}
		for _, n := range w.RawBits {
			if n < 4 || n > 64 {
				bad(k+".raw_bits", "%d out of range 4..64", n)
			}
		}
		if slices.Contains(w.RawBits, 26) || slices.Contains(w.RawBits, 34) || slices.Contains(w.RawBits, 37) {
			bad(k+".raw_bits", "26, 34 and 37 are decoded formats, not raw lengths")
		}
	}
	if len(c.Doors) > 0 && c.Privacy.SiteKeyFile == "" {
		bad("privacy.site_key_file", "required with [[door]]s: the allowlist is looked up by keyed credential hash")
	}
	if len(c.Wiegand) > 0 && len(c.Doors) == 0 {
		bad("wiegand", "readers need a [[door]]")
	}
	return p
}

func (c *Config) resolveGate(baseDir string) {
	resolvePaths(baseDir, &c.Gate.AllowlistFile, &c.Gate.CommandKeyFile, &c.Gate.CommandSeenFile)
	if c.Gate.AllowlistFile == "" {
		c.Gate.AllowlistFile = filepath.Join(c.Agent.DataDir, "allowlist.db")
	}
	if c.Gate.CommandSeenFile == "" {
		c.Gate.CommandSeenFile = filepath.Join(c.Agent.DataDir, "commands.seen")
	}
	for i := range c.Doors {
		d := &c.Doors[i]
		if d.Mode == "" {
			d.Mode = ModeNormal
		}
		if d.UnlockPulse == 0 {
			d.UnlockPulse = c.Gate.UnlockPulse
		}
		if d.HeldOpen == 0 {
			d.HeldOpen = c.Gate.HeldOpen
		}
	}
}
