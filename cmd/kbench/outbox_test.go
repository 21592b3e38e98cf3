package main

import (
	"context"
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
	checkSuiteRows(t, "outbox", rows, []string{"outbox/append", "outbox/append_256", "outbox/append_p50_ms", "outbox/append_p99_ms", "outbox/append_vs_disk"}, dir)
}

func TestOutboxSuiteCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sz := outboxSizes{records64: 640, records256: 1024, boltRecords: 20, diskRecords: 2000, limit: 20 * time.Second}
	if _, err := outboxRows(ctx, Config{Dir: t.TempDir()}, sz); err == nil {
		t.Fatal("a cancelled run reported rows without error")
	}
}
