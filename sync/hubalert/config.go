package hubalert

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// ErrConfig wraps every rules-file error; the message names the key.
var ErrConfig = errors.New("hubalert: invalid rules")

// Rule names: the first part of every alert key (hub-alerts.md §2).
const (
	RuleOffline         = "offline"
	RuleOldestUnsent    = "oldest_unsent"
	RuleDeviceDown      = "device_down"
	RuleTamper          = "tamper"
	RuleDoorForced      = "door_forced"
	RuleDoorHeld        = "door_held"
	RuleFire            = "fire"
	RuleClockSkew       = "clock_skew"
	RuleLowDisk         = "low_disk"
	RuleRepeatedDenials = "repeated_denials"
)

// Severities.
const (
	SeverityCritical = "critical"
	SeverityMajor    = "major"
	SeverityMinor    = "minor"
)

// Duration is a TOML duration string ("90s", "2m").
type Duration time.Duration

// UnmarshalText parses a Go duration; negative durations are refused.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("negative duration %q", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as Go does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Rule is one rule's settings. Enabled defaults to true; Severity to the
// rule's default (DefaultRules).
type Rule struct {
	Enabled  bool   `toml:"enabled"`
	Severity string `toml:"severity"`
	// After is the delay: offline (how long the agent stays offline before
	// the alert fires; 0 fires when the death arrives) and oldest_unsent
	// (the age of the oldest unacked record).
	After Duration `toml:"after"`
	// Above is clock_skew's threshold.
	Above Duration `toml:"above"`
	// BelowPct is low_disk's threshold: free share of the outbox budget,
	// in percent.
	BelowPct float64 `toml:"below_pct"`
	// ResolveAfter resolves a one-shot alarm (repeated_denials) when no
	// new one came for that long.
	ResolveAfter Duration `toml:"resolve_after"`
}

// Webhook is one [[webhook]] receiver.
type Webhook struct {
	Name string `toml:"name"`
	URL  string `toml:"url"`
	// Secret or SecretFile (one of them) is the HMAC key (hub-alerts.md §4).
	Secret     string   `toml:"secret"`
	SecretFile string   `toml:"secret_file"`
	Timeout    Duration `toml:"timeout"`     // per attempt; default 10s
	Queue      int      `toml:"queue"`       // pending deliveries; default 1024
	BackoffMin Duration `toml:"backoff_min"` // default 1s
	BackoffMax Duration `toml:"backoff_max"` // default 5m
	// MaxAttempts bounds the attempts per alert (default 20); then the
	// delivery is counted as given up.
	MaxAttempts int `toml:"max_attempts"`
}

// Rules is the parsed rules file (hub-alerts.md §1).
type Rules struct {
	// StateFile keeps alert state across restarts; "" keeps it in memory.
	// Options.State, when set, is used instead.
	StateFile string `toml:"state_file"`
	// History bounds the transitions kept for /api/alerts; default 1000.
	History int `toml:"history"`
	// MQTT publishes transitions on <root>/v1/$hub/alerts; default true.
	MQTT bool `toml:"mqtt"`

	Offline         Rule `toml:"offline"`
	OldestUnsent    Rule `toml:"oldest_unsent"`
	DeviceDown      Rule `toml:"device_down"`
	Tamper          Rule `toml:"tamper"`
	DoorForced      Rule `toml:"door_forced"`
	DoorHeld        Rule `toml:"door_held"`
	Fire            Rule `toml:"fire"`
	ClockSkew       Rule `toml:"clock_skew"`
	LowDisk         Rule `toml:"low_disk"`
	RepeatedDenials Rule `toml:"repeated_denials"`

	Webhooks []Webhook `toml:"webhook"`
}

// DefaultRules returns every rule enabled with its default threshold and
// severity, MQTT on, no webhook.
func DefaultRules() Rules {
	r := func(sev string) Rule { return Rule{Enabled: true, Severity: sev} }
	rs := Rules{
		History:         1000,
		MQTT:            true,
		Offline:         r(SeverityMajor),
		OldestUnsent:    r(SeverityMinor),
		DeviceDown:      r(SeverityMajor),
		Tamper:          r(SeverityCritical),
		DoorForced:      r(SeverityCritical),
		DoorHeld:        r(SeverityMinor),
		Fire:            r(SeverityCritical),
		ClockSkew:       r(SeverityMinor),
		LowDisk:         r(SeverityMinor),
		RepeatedDenials: r(SeverityMajor),
	}
	rs.Offline.After = Duration(2 * time.Minute)
	rs.OldestUnsent.After = Duration(30 * time.Minute)
	rs.ClockSkew.Above = Duration(30 * time.Second)
	rs.LowDisk.BelowPct = 10
	rs.RepeatedDenials.ResolveAfter = Duration(10 * time.Minute)
	return rs
}

// rule returns the settings of the named rule.
func (rs *Rules) rule(name string) *Rule {
	switch name {
	case RuleOffline:
		return &rs.Offline
	case RuleOldestUnsent:
		return &rs.OldestUnsent
	case RuleDeviceDown:
		return &rs.DeviceDown
	case RuleTamper:
		return &rs.Tamper
	case RuleDoorForced:
		return &rs.DoorForced
	case RuleDoorHeld:
		return &rs.DoorHeld
	case RuleFire:
		return &rs.Fire
	case RuleClockSkew:
		return &rs.ClockSkew
	case RuleLowDisk:
		return &rs.LowDisk
	case RuleRepeatedDenials:
		return &rs.RepeatedDenials
	}
	return nil
}

var ruleNames = []string{RuleOffline, RuleOldestUnsent, RuleDeviceDown, RuleTamper, RuleDoorForced,
	RuleDoorHeld, RuleFire, RuleClockSkew, RuleLowDisk, RuleRepeatedDenials}

// LoadRules reads and validates a rules file; see ParseRules.
func LoadRules(path string) (Rules, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Rules{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return ParseRules(b)
}

// ParseRules parses a rules file over DefaultRules. Unknown keys, a bad
// duration, an unknown severity, a webhook without url or secret, or one
// with both secret and secret_file are errors wrapping ErrConfig that
// name the key. A secret_file is read here.
func ParseRules(b []byte) (Rules, error) {
	rs := DefaultRules()
	md, err := toml.Decode(string(b), &rs)
	if err != nil {
		return Rules{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return Rules{}, fmt.Errorf("%w: unknown keys %s", ErrConfig, strings.Join(keys, ", "))
	}
	if rs.History <= 0 {
		rs.History = 1000
	}
	for _, n := range ruleNames {
		r := rs.rule(n)
		switch r.Severity {
		case SeverityCritical, SeverityMajor, SeverityMinor:
		default:
			return Rules{}, fmt.Errorf("%w: %s.severity %q: want critical, major or minor", ErrConfig, n, r.Severity)
		}
	}
	if p := rs.LowDisk.BelowPct; p < 0 || p > 100 {
		return Rules{}, fmt.Errorf("%w: low_disk.below_pct %v: want 0..100", ErrConfig, p)
	}
	names := map[string]bool{}
	for i := range rs.Webhooks {
		w := &rs.Webhooks[i]
		key := fmt.Sprintf("webhook[%d]", i)
		if w.Name == "" {
			w.Name = fmt.Sprintf("webhook%d", i+1)
		}
		if names[w.Name] {
			return Rules{}, fmt.Errorf("%w: %s.name %q repeated", ErrConfig, key, w.Name)
		}
		names[w.Name] = true
		if !strings.HasPrefix(w.URL, "http://") && !strings.HasPrefix(w.URL, "https://") {
			return Rules{}, fmt.Errorf("%w: %s.url %q: want http:// or https://", ErrConfig, key, w.URL)
		}
		switch {
		case w.Secret != "" && w.SecretFile != "":
			return Rules{}, fmt.Errorf("%w: %s: secret and secret_file both set", ErrConfig, key)
		case w.SecretFile != "":
			s, err := os.ReadFile(w.SecretFile)
			if err != nil {
				return Rules{}, fmt.Errorf("%w: %s.secret_file: %v", ErrConfig, key, err)
			}
			w.Secret = strings.TrimSpace(string(s))
		}
		if len(w.Secret) < 16 {
			return Rules{}, fmt.Errorf("%w: %s: secret missing or shorter than 16 bytes", ErrConfig, key)
		}
		if w.Queue <= 0 {
			w.Queue = 1024
		}
		if w.Timeout <= 0 {
			w.Timeout = Duration(10 * time.Second)
		}
		if w.BackoffMin <= 0 {
			w.BackoffMin = Duration(time.Second)
		}
		if w.BackoffMax <= 0 {
			w.BackoffMax = Duration(5 * time.Minute)
		}
		if w.BackoffMax < w.BackoffMin {
			return Rules{}, fmt.Errorf("%w: %s: backoff_max below backoff_min", ErrConfig, key)
		}
		if w.MaxAttempts <= 0 {
			w.MaxAttempts = 20
		}
	}
	return rs, nil
}
