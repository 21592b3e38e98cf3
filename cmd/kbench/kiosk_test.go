package main

import (
	"context"
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
	checkSuiteRows(t, "kiosk", rows, []string{"kiosk/transactions", "kiosk/latency_p50_ms", "kiosk/latency_p99_ms"}, dir)
}

func TestKioskSuiteCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sz := kioskSizes{requests: 640, baseRequests: 64, limit: 20 * time.Second}
	if _, err := kioskRows(ctx, Config{Dir: t.TempDir()}, sz); err == nil {
		t.Fatal("a cancelled run reported rows without error")
	}
}
