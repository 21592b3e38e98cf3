package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDemoOpensDashboard runs a short demo with -open and a stand-in for
// the browser that loads the URL it is given: the page must be the agents
// table listing every demo agent, with the demo's site and region.
func TestDemoOpensDashboard(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	var opened []string
	var page string
	f := flags{
		duration:     2 * time.Second,
		agents:       2,
		rate:         50,
		brokerKind:   "mochi",
		dir:          t.TempDir(),
		drainTimeout: 25 * time.Second,
		open:         true,
		openURL: func(url string) error {
			// Called once, from the demo's run, while the hub serves.
			opened = append(opened, url)
			resp, err := http.Get(url)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			page = string(b)
			return err
		},
	}
	var out bytes.Buffer
	code, err := run(ctx, f, &out)
	if code != 0 || err != nil {
		t.Fatalf("run: exit %d, err %v; output:\n%s", code, err, &out)
	}
	if len(opened) != 1 || !strings.HasSuffix(opened[0], "/ui/") {
		t.Fatalf("opened %q, want the dashboard's /ui/ once; output:\n%s", opened, &out)
	}
	if !strings.Contains(out.String(), "kioskdemo: fleet dashboard lists all 2 agents: "+opened[0]+"\n") {
		t.Errorf("output does not print the URL it opened; output:\n%s", &out)
	}
	for _, want := range []string{`id="row-demo-gate-01"`, `id="row-demo-gate-02"`, `data-region="` + demoRegion + `"`, `data-status="online"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the opened page lacks %s:\n%s", want, page)
		}
	}
}
