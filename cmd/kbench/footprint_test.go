package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/kioskedge/kioskedge/cmd/internal/admin"
)

// TestFootprintSuiteQuick runs the footprint suite as -quick does, but
// sizes kioskd built for this host rather than arm64 (one build of each
// program instead of two): it runs kioskd on simulated devices until they
// are up, and reports three positive rows with baselines, leaving no file
// behind.
func TestFootprintSuiteQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kioskd and runs it for a few seconds")
	}
	dir := t.TempDir()
	rows, err := footprintRows(context.Background(), Config{Quick: true, Dir: dir}, "")
	if err != nil {
		t.Fatal(err)
	}
	checkSuiteRows(t, "footprint", rows, []string{"footprint/kioskd_" + runtime.GOARCH + "_mb", "footprint/idle_rss_mb", "footprint/idle_rss_anon_mb"}, dir)
	// kioskd is bigger than a program that does nothing, in both figures.
	for _, r := range rows[:2] {
		if r.Ratio <= 1 {
			t.Errorf("%s: %.2f MB against %.2f MB for the minimal program", r.Name, r.Value, r.Baseline)
		}
	}
}

func TestFootprintSuiteCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := footprintSuite(ctx, Config{Quick: true, Dir: t.TempDir()}); err == nil {
		t.Fatal("a cancelled run reported rows without error")
	}
}

func TestProcRSSOwnProcess(t *testing.T) {
	t.Parallel()
	rss, anon, err := procRSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if rss <= 0 || anon <= 0 || anon > rss {
		t.Errorf("VmRSS %.2f MB, RssAnon %.2f MB", rss, anon)
	}
}

// TestDevicesUpCountsSamples serves a /metrics page at the address an
// admin.addr file names and checks the device_up samples are counted.
func TestDevicesUpCountsSamples(t *testing.T) {
	t.Parallel()
	page := `# HELP kioskedge_device_up 1 when the device is connected and answering.
# TYPE kioskedge_device_up gauge
kioskedge_device_up{device="idcard",kind="idcard"} 1
kioskedge_device_up{device="qrscan",kind="qrscan"} 0
kioskedge_device_up{device="gate-in",kind="osdp"} 1
# TYPE kioskedge_device_errors_total counter
kioskedge_device_errors_total{device="idcard",kind="idcard"} 1
`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, page)
	}))
	defer srv.Close()
	dir := t.TempDir()
	client := srv.Client()
	if _, _, err := devicesUp(context.Background(), client, dir); err == nil {
		t.Error("no admin.addr file, no error")
	}
	if err := os.WriteFile(admin.AddrPath(dir), []byte(strings.TrimPrefix(srv.URL, "http://")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	up, total, err := devicesUp(context.Background(), client, dir)
	if err != nil {
		t.Fatal(err)
	}
	if up != 2 || total != 3 {
		t.Errorf("%d of %d up, want 2 of 3", up, total)
	}
}
