package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const good = `
[agent]
id = "gate-00017"
data_dir = "data"

[hub]
broker = "ssl://hub.example:8883"
root = "kioskedge/prov-a"
ca_file = "/etc/kioskedge/hub-ca.pem"
cert_file = "box.pem"
key_file = "box.key"
window = 16
ack_timeout = "20s"

[outbox]
budget = "256MiB"
`

func TestParseGood(t *testing.T) {
	c, err := Parse([]byte(good), "/etc/kioskedge")
	if err != nil {
		t.Fatal(err)
	}
	if c.Agent.ID != "gate-00017" || c.Hub.Window != 16 || c.Hub.AckTimeout.D() != 20*time.Second {
		t.Errorf("values not decoded: %+v", c)
	}
	if c.Outbox.Budget != 256<<20 {
		t.Errorf("budget = %d", c.Outbox.Budget)
	}
	if c.Agent.DataDir != "/etc/kioskedge/data" || c.Hub.CertFile != "/etc/kioskedge/box.pem" || c.Hub.CAFile != "/etc/kioskedge/hub-ca.pem" {
		t.Errorf("paths not resolved: %q %q %q", c.Agent.DataDir, c.Hub.CertFile, c.Hub.CAFile)
	}
	if c.Hub.BatchRecords != 2000 || c.Log.Format != "json" || c.Hub.ReconnectSpread.D() != 30*time.Second {
		t.Errorf("defaults lost: %+v", c)
	}
}

func TestParseBad(t *testing.T) {
	cases := []struct {
		name, edit string
		wantKeys   []string
	}{
		{"unknown key", good + "\n[hub2]\nx = 1\n", []string{"hub2.x: unknown key"}},
		{"typo in key", strings.Replace(good, "window = 16", "windw = 16", 1), []string{"hub.windw: unknown key"}},
		{"plaintext without opt-in", strings.Replace(good, "ssl://", "tcp://", 1), []string{"hub.broker:", "plaintext"}},
		{"missing id", strings.Replace(good, `id = "gate-00017"`, "", 1), []string{"agent.id:"}},
		{"wildcard in id", strings.Replace(good, "gate-00017", "gate/+", 1), []string{"agent.id:"}},
		{"bad duration", strings.Replace(good, `"20s"`, `"twenty"`, 1), []string{"twenty", "duration"}},
		{"bad size", strings.Replace(good, `"256MiB"`, `"lots"`, 1), []string{"lots", "size"}},
		{"window range", strings.Replace(good, "window = 16", "window = 0", 1), []string{"hub.window:"}},
		{"cert without key", strings.Replace(good, `key_file = "box.key"`, "", 1), []string{"hub.key_file:"}},
		{"not toml", "[[[", []string{"config: invalid"}},
		{"negative spread", strings.Replace(good, "window = 16", "window = 16\nreconnect_spread = \"-1s\"", 1), []string{"hub.reconnect_spread:"}},
		{"several at once", strings.Replace(strings.Replace(good, "window = 16", "window = 999", 1), `root = "kioskedge/prov-a"`, "", 1),
			[]string{"hub.window:", "hub.root: required"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.edit), "")
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			for _, k := range tc.wantKeys {
				if !strings.Contains(err.Error(), k) {
					t.Errorf("error does not mention %q:\n%v", k, err)
				}
			}
		})
	}
}

func TestReconnectSpreadZero(t *testing.T) {
	c, err := Parse([]byte(strings.Replace(good, "window = 16", "window = 16\nreconnect_spread = \"0s\"", 1)), "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Hub.ReconnectSpread != 0 {
		t.Fatalf("reconnect_spread = %v, want 0 (no spread)", c.Hub.ReconnectSpread.D())
	}
}

func TestPlaintextLab(t *testing.T) {
	cfg := strings.Replace(good, "ssl://", "tcp://", 1)
	cfg = strings.Replace(cfg, "[outbox]", "plaintext = true\n[outbox]", 1)
	if _, err := Parse([]byte(cfg), ""); err != nil {
		t.Fatalf("lab plaintext refused: %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if !errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrInvalid) {
		t.Fatalf("want a not-exist error, got %v", err)
	}
}

func TestExampleConfigLoads(t *testing.T) {
	c, err := Load("../../examples/kioskd.toml")
	if err != nil {
		t.Fatalf("examples/kioskd.toml: %v", err)
	}
	if c.Hub.Plaintext {
		t.Error("the example should show the production (TLS) setup")
	}
}
