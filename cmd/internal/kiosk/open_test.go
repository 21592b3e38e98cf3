package kiosk

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/cmd/internal/devices"
	"github.com/kioskedge/kioskedge/cmd/internal/node"
	"github.com/kioskedge/kioskedge/sync/wire"
)

func labConfig(t *testing.T, dir, extra string) config.Config {
	t.Helper()
	c, err := config.Parse([]byte(`
[agent]
id = "kiosk-test-2"
data_dir = "data"
[hub]
broker = "tcp://127.0.0.1:1"
root = "kioskedge/lab"
plaintext = true
[localapi]
listen = "127.0.0.1:0"
`+extra), dir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestOpenRefuses(t *testing.T) {
	t.Parallel()
	codec, err := wire.NewCodec(wire.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer codec.Close()
	// A token file readable by others.
	dir := t.TempDir()
	tok := filepath.Join(dir, "open.token")
	if err := os.WriteFile(tok, []byte(strings.Repeat("a", 64)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tok, 0o644); err != nil { // umask may have narrowed it
		t.Fatal(err)
	}
	c := labConfig(t, dir, "token_file = \"open.token\"\n")
	if k, err := Open(node.Options{Config: c, Codec: codec}); err == nil || !strings.Contains(err.Error(), "localapi.token_file") {
		if k != nil {
			_ = k.Close() // failing anyway
		}
		t.Errorf("0644 token file: %v", err)
	}
	// A hub key without a site key; an unreadable site key.
	for extra, key := range map[string]string{
		"[privacy]\nhub_public_key_file = \"hub.pub\"\n": "privacy.hub_public_key_file",
		"[privacy]\nsite_key_file = \"missing.key\"\n":   "privacy.site_key_file",
	} {
		c := labConfig(t, t.TempDir(), extra)
		if k, err := Open(node.Options{Config: c, Codec: codec}); err == nil || !strings.Contains(err.Error(), key) {
			if k != nil {
				_ = k.Close() // failing anyway
			}
			t.Errorf("%s: %v", key, err)
		}
	}
	// Disabled: no API, no token file.
	dir = t.TempDir()
	c = labConfig(t, dir, "enabled = false\n")
	k, err := Open(node.Options{Config: c, Codec: codec})
	if err != nil {
		t.Fatal(err)
	}
	if k.API != nil {
		t.Error("API built while disabled")
	}
	if err := k.Close(); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(c.LocalAPI.TokenFile); !os.IsNotExist(err) {
		t.Errorf("token file with the API disabled: %v", err)
	}
}

func TestUIEvent(t *testing.T) {
	t.Parallel()
	e := uiEvent(devices.Event{Device: "qr-1", Name: "code.scanned", Fields: map[string]any{"bytes": 6}, Payload: "APPT-1"})
	if e.Type != "code.scanned" || e.Data["data"] != "APPT-1" || e.Data["bytes"] != nil {
		t.Errorf("%+v", e)
	}
	e = uiEvent(devices.Event{Device: "ss-1", Name: "card.read_failed", Fields: map[string]any{"error": "sscard: locked"}})
	if e.Data["error"] != "sscard: locked" {
		t.Errorf("%+v", e)
	}
}
