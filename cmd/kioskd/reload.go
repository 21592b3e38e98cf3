package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"reflect"
	"sort"

	"github.com/BurntSushi/toml"

	"github.com/kioskedge/kioskedge/agent/config"
)

// liveKeys are the config keys SIGHUP applies without a restart. Only the
// log level: every other setting is baked into a component when it is
// opened (the broker session, the outbox budget, the devices' ports, the
// local API's listener and origins, the gate's doors and timers), and
// rebuilding those live would risk the very doors and records a reload is
// meant not to disturb.
var liveKeys = map[string]bool{"log.level": true}

// reloadResult is what a SIGHUP did.
type reloadResult struct {
	Applied []string // changed keys applied live
	Restart []string // changed keys that need a restart
}

// reload reads the config file again and applies to running (the config
// in effect) what can change live. An invalid file changes nothing: the
// error names every problem. Keys that need a restart are listed and left
// as they run, so the next SIGHUP reports them again until kioskd is
// restarted.
func reload(path string, running *config.Config, level *slog.LevelVar) (reloadResult, error) {
	next, err := config.Load(path)
	if err != nil {
		return reloadResult{}, err
	}
	changed, err := configDiff(*running, next)
	if err != nil {
		return reloadResult{}, err
	}
	var r reloadResult
	for _, k := range changed {
		if !liveKeys[k] {
			r.Restart = append(r.Restart, k)
			continue
		}
		r.Applied = append(r.Applied, k)
		switch k {
		case "log.level":
			running.Log.Level = next.Log.Level
			level.Set(parseLevel(next.Log.Level))
		}
	}
	return r, nil
}

// configDiff returns the TOML keys ("hub.broker", "device[1].path") whose
// values differ between a and b, sorted.
func configDiff(a, b config.Config) ([]string, error) {
	fa, err := flatConfig(a)
	if err != nil {
		return nil, err
	}
	fb, err := flatConfig(b)
	if err != nil {
		return nil, err
	}
	var keys []string
	for k, v := range fa {
		if w, ok := fb[k]; !ok || !reflect.DeepEqual(v, w) {
			keys = append(keys, k)
		}
	}
	for k := range fb {
		if _, ok := fa[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys, nil
}

// flatConfig encodes c as TOML and flattens it to key → value, so keys are
// named as the operator writes them.
func flatConfig(c config.Config) (map[string]any, error) {
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(c); err != nil {
		return nil, fmt.Errorf("kioskd: encoding the config: %w", err)
	}
	var m map[string]any
	if _, err := toml.Decode(buf.String(), &m); err != nil {
		return nil, fmt.Errorf("kioskd: decoding the config: %w", err)
	}
	out := map[string]any{}
	flatten("", m, out)
	return out, nil
}

func flatten(prefix string, v any, out map[string]any) {
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			flatten(join(k), x, out)
		}
	case []map[string]any:
		for i, x := range t {
			flatten(fmt.Sprintf("%s[%d]", prefix, i), x, out)
		}
		out[prefix+".count"] = len(t)
	default:
		out[prefix] = v
	}
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(s)) // validated by config.Load
	return l
}
