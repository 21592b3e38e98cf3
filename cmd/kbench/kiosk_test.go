package main

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestKioskSuiteTiny runs the whole kiosk suite with tiny sizes: the three
// rows are present, positive and carry a baseline, and no file is left.
func TestKioskSuiteTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("serves a few hundred durable HTTP transactions")
	}
	dir := t.TempDir()
	sz := kioskSizes{requests: 640, baseRequests: 64, limit: 20 * time.Second}
	rows, err := kioskRows(context.Background(), Config{Quick: true, Dir: dir}, sz)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"kiosk/transactions", "kiosk/latency_p50_ms", "kiosk/latency_p99_ms"}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d: %+v", len(rows), len(want), rows)
	}
	for i, r := range rows {
		if r.Name != want[i] || r.Suite != "kiosk" {
			t.Errorf("row %d is %s/%s, want %s", i, r.Suite, r.Name, want[i])
		}
		if r.Value <= 0 || r.Baseline <= 0 || r.Ratio <= 0 || r.Unit == "" {
			t.Errorf("row %s: %+v", r.Name, r)
		}
	}
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		t.Errorf("left behind: %s", e.Name())
	}
}

func TestKioskSuiteCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sz := kioskSizes{requests: 640, baseRequests: 64, limit: 20 * time.Second}
	if _, err := kioskRows(ctx, Config{Dir: t.TempDir()}, sz); err == nil {
		t.Fatal("a cancelled run reported rows without error")
	}
}
