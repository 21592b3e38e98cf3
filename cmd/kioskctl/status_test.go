package main

// kioskctl status and the admin client against the real admin endpoint
// (cmd/internal/admin, the server kioskd runs) holding a gate's status;
// kioskd's own tests check the status it builds.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/agent/localapi"
	"github.com/kioskedge/kioskedge/cmd/internal/admin"
	"github.com/kioskedge/kioskedge/cmd/internal/promtext"
	"github.com/kioskedge/kioskedge/sync/wire"
)

type adminFake struct {
	mu   sync.Mutex
	recs []wire.Record
}

func (f *adminFake) Append(_ context.Context, r wire.Record) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recs = append(f.recs, r)
	return uint64(100 + len(f.recs)), nil
}

func statusConfig(dir, listen string) string {
	return fmt.Sprintf(`[agent]
id = "lab-gate-41"
data_dir = %q

[hub]
broker = "tcp://127.0.0.1:1"
root = "kioskedge/lab"
plaintext = true

[localapi]
enabled = false

[admin]
listen = %q
`, filepath.Join(dir, "data"), listen)
}

// startAdmin runs an admin endpoint as kioskd would (token file, address
// file) and returns the config path pointing at it.
func startAdmin(t *testing.T, st admin.StatusResponse) (cfgPath string, fake *adminFake) {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	token, err := localapi.LoadOrCreateToken(admin.TokenPath(data))
	if err != nil {
		t.Fatal(err)
	}
	fake = &adminFake{}
	s, err := admin.New(admin.Options{Listen: "127.0.0.1:0", Token: token, Append: fake.Append,
		Status: func() admin.StatusResponse { return st }, Metrics: func(*promtext.Writer) {}})
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.WriteAddrFile(data, s.Addr().String()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	cfgPath = filepath.Join(dir, "kioskd.toml")
	if err := writeFile(cfgPath, statusConfig(dir, "127.0.0.1:0")); err != nil {
		t.Fatal(err)
	}
	return cfgPath, fake
}

func gateStatus(now time.Time) admin.StatusResponse {
	sync := now.Add(-42 * time.Second).UTC().Truncate(time.Second)
	return admin.StatusResponse{
		Health: wire.Health{
			Agent: "lab-gate-41", BootID: "c645738a8fe105e2", Version: "1.4.0", Time: now, UptimeS: 3*3600 + 12*60,
			Outbox: wire.OutboxHealth{Depth: 3, OldestUnsentS: 75, DiskBytes: 3 << 20, BudgetBytes: 1 << 30, NextSeq: 912, AckedThrough: 908},
			Uplink: wire.UplinkHealth{Connected: true, Reconnects: 2, Batches: 57},
			Devices: []wire.DeviceHealth{
				{Name: "main", Connected: true, LastSeen: now.Add(-time.Second), Detail: "door"},
				{Name: "main-in", Connected: true, LastSeen: now.Add(-5 * time.Minute), Errors: 4, Detail: "wiegand"},
				{Name: "osdp-2", Connected: false, Errors: 17, Detail: "osdp: disconnected"},
			},
			Allowlist: &wire.AllowlistHealth{Version: 12, Entries: 3401},
			Doors:     []wire.DoorHealth{{ID: "main", Mode: "free_passage", Released: true, Alarms: []string{"fire"}}},
			Counters:  map[string]uint64{"uplink_bad_acks": 0, "gate_records_dropped": 1},
		},
		LastSync: &sync,
	}
}

func TestStatusHuman(t *testing.T) {
	t.Parallel()
	cfg, _ := startAdmin(t, gateStatus(time.Now()))
	code, out, errOut := runCtl(t, "--config", cfg, "status")
	if code != exitOK {
		t.Fatalf("exit %d; stderr %s", code, errOut)
	}
	for _, want := range []string{
		"agent      lab-gate-41  version 1.4.0", "up 3h12m",
		"hub        connected (reconnects 2, batches sent 57",
		"last sync  ", "(4", // 42 s ago, give or take the test's own second
		"outbox     3 records, oldest 1m; 3.0 MiB on disk, budget 1.0 GiB; evicted 0",
		"allowlist  version 12, 3401 entries",
		"alarms     door main: fire; device osdp-2 down",
		"errors     gate_records_dropped 1",
		"DEVICE", "main-in", "5m ago", "osdp-2", "DOWN", "never", "osdp: disconnected",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestStatusJSON(t *testing.T) {
	t.Parallel()
	want := gateStatus(time.Now())
	cfg, _ := startAdmin(t, want)
	code, out, errOut := runCtl(t, "--json", "--config", cfg, "status")
	if code != exitOK {
		t.Fatalf("exit %d; stderr %s", code, errOut)
	}
	var got adminStatusResponse
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.Health.Agent != "lab-gate-41" || got.Health.Outbox.Depth != 3 || got.LastSync == nil || !got.LastSync.Equal(*want.LastSync) ||
		got.Health.Allowlist.Version != 12 || len(got.Health.Devices) != 3 || got.Health.Doors[0].Alarms[0] != "fire" {
		t.Errorf("--json: %+v", got)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &raw); err != nil || raw["health"] == nil || raw["last_sync"] == nil {
		t.Errorf("--json keys: %s", out)
	}
}

func TestStatusWithoutDaemon(t *testing.T) {
	t.Parallel()
	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	free := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	tests := []struct {
		name, cfg, want string
	}{
		{"nothing listens", statusConfig(dir, free), "kioskd is not running: systemctl start kioskd"},
		{"port 0 without address file", statusConfig(dir, "127.0.0.1:0"), "kioskd is not running: systemctl start kioskd"},
		{"admin disabled", strings.Replace(statusConfig(dir, free), "[admin]\n", "[admin]\nenabled = false\n", 1), "admin endpoint is disabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "kioskd.toml")
			if err := writeFile(p, tt.cfg); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"--config", p, "status"}, {"--json", "--config", p, "status"}} {
				code, out, errOut := runCtl(t, args...)
				if code != exitUnusable || !strings.Contains(errOut, tt.want) || out != "" {
					t.Errorf("%v: exit %d, stdout %q, stderr %q; want 3 and %q", args, code, out, errOut, tt.want)
				}
			}
		})
	}
}

func TestStatusBadUsageAndConfig(t *testing.T) {
	t.Parallel()
	if code, _, _ := runCtl(t, "--config", filepath.Join(t.TempDir(), "none.toml"), "status"); code != exitUnusable {
		t.Errorf("missing config: exit %d, want 3", code)
	}
	if code, _, _ := runCtl(t, "status", "extra"); code != exitUsage {
		t.Errorf("extra argument: exit %d, want 2", code)
	}
	if code, _, _ := runCtl(t, "status", "--bogus"); code != exitUsage {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
}

func TestStatusWrongToken(t *testing.T) {
	t.Parallel()
	cfgPath, _ := startAdmin(t, gateStatus(time.Now()))
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(admin.TokenPath(cfg.Agent.DataDir), []byte(strings.Repeat("f", 64)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCtl(t, "--config", cfgPath, "status")
	if code != exitUnusable || !strings.Contains(errOut, "refused the admin token") || strings.Contains(errOut, strings.Repeat("f", 64)) {
		t.Errorf("exit %d, stderr %q; want 3, the token refused, and no token in the message", code, errOut)
	}
}

func TestAdminPostRecord(t *testing.T) {
	t.Parallel()
	cfgPath, fake := startAdmin(t, gateStatus(time.Now()))
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	seq, err := adminPostRecord(context.Background(), cfg, "commissioning.report", map[string]any{"passed": true})
	if err != nil || seq != 101 {
		t.Fatalf("adminPostRecord: %d %v", seq, err)
	}
	if len(fake.recs) != 1 || fake.recs[0].Kind != "commissioning.report" || fake.recs[0].Class != wire.ClassCritical || string(fake.recs[0].Body) != `{"passed":true}` {
		t.Errorf("records %+v", fake.recs)
	}
	if _, err := adminPostRecord(context.Background(), cfg, "access.decision", map[string]any{}); err == nil || !strings.Contains(err.Error(), "commissioning.") {
		t.Errorf("other kind: %v, want kioskd's refusal", err)
	}
	// Nothing listens: the error wraps errDaemonDown.
	cfg.Admin.Listen = "127.0.0.1:1"
	if _, err := adminPostRecord(context.Background(), cfg, "commissioning.report", map[string]any{}); !errorsIs(err, errDaemonDown) {
		t.Errorf("no daemon: %v, want errDaemonDown", err)
	}
	if _, err := adminStatus(context.Background(), cfg); !errorsIs(err, errDaemonDown) {
		t.Errorf("no daemon: %v, want errDaemonDown", err)
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
