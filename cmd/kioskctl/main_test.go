package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func runCtl(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

func TestUsageAndExitCodes(t *testing.T) {
	if code, _, stderr := runCtl(t); code != exitUsage || !strings.Contains(stderr, "usage: kioskctl") {
		t.Fatalf("no args: code %d, stderr %q", code, stderr)
	}
	if code, _, stderr := runCtl(t, "frobnicate"); code != exitUsage || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Fatalf("unknown: code %d, stderr %q", code, stderr)
	}
	if code, _, _ := runCtl(t, "help"); code != exitOK {
		t.Fatalf("help: code %d", code)
	}
	code, stdout, _ := runCtl(t, "version", "--json")
	var v map[string]string
	if code != exitOK || json.Unmarshal([]byte(stdout), &v) != nil || v["version"] == "" {
		t.Fatalf("version --json: code %d, %q", code, stdout)
	}
}

func TestCompletionsNameEveryCommand(t *testing.T) {
	for _, shell := range []string{"bash", "zsh"} {
		code, out, _ := runCtl(t, "completion", shell)
		if code != exitOK {
			t.Fatalf("%s: code %d", shell, code)
		}
		for _, c := range commands() {
			if !strings.Contains(out, c.name) {
				t.Errorf("%s completion lacks %q", shell, c.name)
			}
		}
		if bin, err := exec.LookPath(shell); err == nil {
			// The script must at least parse.
			cmd := exec.Command(bin, "-n")
			cmd.Stdin = strings.NewReader(out)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s -n rejects the script: %v\n%s", shell, err, b)
			}
		}
	}
	if code, _, _ := runCtl(t, "completion", "fish"); code != exitUsage {
		t.Fatalf("fish: code %d, want usage", code)
	}
}

func TestConfigCheck(t *testing.T) {
	code, out, _ := runCtl(t, "config", "check", "../../examples/kioskd.toml")
	if code != exitOK || !strings.Contains(out, "ok") {
		t.Fatalf("example config: code %d\n%s", code, out)
	}
	bad := t.TempDir() + "/bad.toml"
	if err := writeFile(bad, "[agent]\nid = \"a b\"\n[hub]\nbroker = \"tcp://x:1\"\n[admin]\nlisten = \"0.0.0.0:1\"\n"); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCtl(t, "--json", "config", "check", bad)
	var res struct {
		Valid    bool
		Problems []struct{ Key, Problem string }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	keys := map[string]bool{}
	for _, p := range res.Problems {
		keys[p.Key] = true
	}
	if code != exitFailed || res.Valid || !keys["agent.id"] || !keys["agent.data_dir"] || !keys["hub.broker"] || !keys["admin.listen"] {
		t.Fatalf("bad config: code %d, %+v", code, res)
	}
	if code, _, stderr := runCtl(t, "config", "check", t.TempDir()+"/missing.toml"); code != exitUnusable || !strings.Contains(stderr, "is the path right") {
		t.Fatalf("missing file: code %d, %q", code, stderr)
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
