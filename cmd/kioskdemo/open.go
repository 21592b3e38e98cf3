package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"

	"github.com/kioskedge/kioskedge/sync/hub/hubrun"
)

// Where the demo's agents say they are, so the dashboard's site and
// region columns (and its region filter) have something to show.
const (
	demoSite   = "演示社区 Demo community"
	demoRegion = "330106" // a county code: Hangzhou, Xihu district
)

// showDashboard waits until the hub has seen every one of ids online, then
// prints the dashboard's URL, whose agents table now lists them all, and
// with -open opens it in a browser (f.openURL, or openInBrowser). It
// returns at once when ctx ends first.
func showDashboard(ctx context.Context, srv *hubrun.Server, ids []string, f flags, out io.Writer) {
	err := srv.Hub().Wait(ctx, func() bool {
		for _, id := range ids {
			if a, ok := srv.Store().AgentState(id); !ok || !a.Online {
				return false
			}
		}
		return true
	})
	if err != nil {
		return // the run ended first
	}
	url := "http://" + srv.HTTPAddr() + "/ui/"
	fmt.Fprintf(out, "kioskdemo: fleet dashboard lists all %d agents: %s\n", len(ids), url)
	if !f.open {
		return
	}
	open := f.openURL
	if open == nil {
		open = openInBrowser
	}
	if err := open(url); err != nil {
		fmt.Fprintf(out, "kioskdemo: -open: %v; open %s yourself\n", err, url)
	}
}

// openInBrowser starts xdg-open (else chromium) on url and does not wait
// for it: the browser is the user's and may outlive the demo.
func openInBrowser(url string) error {
	if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		return errors.New("no display (DISPLAY and WAYLAND_DISPLAY are unset)")
	}
	for _, name := range []string{"xdg-open", "chromium", "chromium-browser"} {
		p, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		cmd := exec.Command(p, url)
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		// Not waited for: the process is the user's browser (or its
		// launcher); the system reaps it once the demo has exited.
		return cmd.Process.Release()
	}
	return errors.New("neither xdg-open nor chromium is installed")
}
