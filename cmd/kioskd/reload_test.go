package main

import (
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/kioskedge/kioskedge/agent/config"
)

func TestConfigDiffNamesKeys(t *testing.T) {
	base := labConfig("lab-gate-01", "tcp://127.0.0.1:1883")
	dev := "\n[[device]]\nname = \"id-1\"\nkind = \"idcard\"\npath = \"/dev/ttyUSB0\"\n"
	tests := []struct {
		name string
		a, b string
		want []string
	}{
		{"same", base, base, nil},
		{"log level", base, strings.Replace(base, `level = "info"`, `level = "debug"`, 1), []string{"log.level"}},
		{"broker and keepalive", base, strings.Replace(strings.Replace(base, "127.0.0.1:1883", "127.0.0.1:1884", 1), `keepalive = "1s"`, `keepalive = "2s"`, 1),
			[]string{"hub.broker", "hub.keepalive"}},
		{"device path", base + dev, base + strings.Replace(dev, "ttyUSB0", "ttyUSB1", 1), []string{"device[0].path"}},
		{"device added", base, base + dev, []string{"device.count", "device[0].kind", "device[0].name", "device[0].path"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := config.Parse([]byte(tt.a), "/tmp")
			if err != nil {
				t.Fatal(err)
			}
			b, err := config.Parse([]byte(tt.b), "/tmp")
			if err != nil {
				t.Fatal(err)
			}
			got, err := configDiff(a, b)
			if err != nil {
				t.Fatal(err)
			}
			// A device has defaults (baud, reconnect…) filled in: check
			// the named keys are there and nothing outside them for the
			// scalar cases.
			for _, k := range tt.want {
				if !slices.Contains(got, k) {
					t.Errorf("diff %q lacks %q", got, k)
				}
			}
			if !strings.HasPrefix(tt.name, "device") && !slices.Equal(got, tt.want) {
				t.Errorf("diff %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReloadAppliesLevelAndKeepsTheRest(t *testing.T) {
	base := labConfig("lab-gate-01", "tcp://127.0.0.1:1883")
	path := writeConfig(t, base)
	running, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var level slog.LevelVar
	changed := strings.Replace(strings.Replace(base, `level = "info"`, `level = "debug"`, 1), "127.0.0.1:1883", "127.0.0.1:1999", 1)
	if err := os.WriteFile(path, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := reload(path, &running, &level)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Applied, []string{"log.level"}) || !slices.Equal(r.Restart, []string{"hub.broker"}) {
		t.Errorf("reload %+v; want log.level applied, hub.broker needing a restart", r)
	}
	if level.Level() != slog.LevelDebug || running.Log.Level != "debug" || running.Hub.Broker != "tcp://127.0.0.1:1883" {
		t.Errorf("after reload: level %v, running level %q broker %q", level.Level(), running.Log.Level, running.Hub.Broker)
	}
	// Still pending at the next SIGHUP; the level is no longer a change.
	if r, _ := reload(path, &running, &level); len(r.Applied) != 0 || !slices.Equal(r.Restart, []string{"hub.broker"}) {
		t.Errorf("second reload %+v", r)
	}
	// An invalid file changes nothing.
	if err := os.WriteFile(path, []byte(strings.Replace(base, `level = "info"`, `level = "loud"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := reload(path, &running, &level); err == nil || !strings.Contains(err.Error(), "log.level") {
		t.Errorf("invalid config: err %v, want one naming log.level", err)
	}
	if level.Level() != slog.LevelDebug || running.Log.Level != "debug" {
		t.Error("an invalid config changed the running level")
	}
}
