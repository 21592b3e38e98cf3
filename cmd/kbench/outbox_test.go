package main

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestOutboxSuiteTiny runs the whole outbox suite with tiny sizes: every
// row is present, positive and carries a baseline, and no file is left.
func TestOutboxSuiteTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("fsyncs a few thousand times")
	}
	dir := t.TempDir()
	sz := outboxSizes{records64: 640, records256: 1024, boltRecords: 20, diskRecords: 2000, limit: 20 * time.Second}
	rows, err := outboxRows(context.Background(), Config{Dir: dir}, sz)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"outbox/append", "outbox/append_256", "outbox/append_p50_ms", "outbox/append_p99_ms", "outbox/append_vs_disk"}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d: %+v", len(rows), len(want), rows)
	}
	for i, r := range rows {
		if r.Name != want[i] || r.Suite != "outbox" {
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

func TestOutboxSuiteCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sz := outboxSizes{records64: 640, records256: 1024, boltRecords: 20, diskRecords: 2000, limit: 20 * time.Second}
	if _, err := outboxRows(ctx, Config{Dir: t.TempDir()}, sz); err == nil {
		t.Fatal("a cancelled run reported rows without error")
	}
}
