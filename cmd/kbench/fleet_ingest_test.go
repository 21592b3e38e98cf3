package main

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/kioskedge/kioskedge/testhw/broker"
	"github.com/kioskedge/kioskedge/testhw/pgtest"
)

// TestFleetIngestTiny measures row (c) with tiny sizes: one hub child,
// then two, on a private PostgreSQL cluster; the row is there with both
// rates positive (every record was stored and acked in both runs, or
// runIngest fails) and no file is left. No figure is compared with a
// speed.
func TestFleetIngestTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("runs PostgreSQL, a broker and three hub child processes")
	}
	if _, err := pgtest.Find(); errors.Is(err, pgtest.ErrNotFound) {
		pgtest.Start(t) // skips loudly, or fails under CI
	}
	kind := broker.Mosquitto
	if _, err := broker.MosquittoPath(); errors.Is(err, broker.ErrMosquittoNotFound) {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v; CI must install it: apt-get install -y mosquitto", err)
		}
		t.Log("mosquitto not installed: row c runs against Mochi here (CI runs it against Mosquitto)")
		kind = broker.Mochi
	}
	dir := t.TempDir()
	row, err := runIngest(context.Background(), Config{Quick: true, Dir: dir, Progress: tlogWriter{t}},
		ingestSize{kind: kind, agents: 4, records: 250})
	if err != nil {
		t.Fatal(err)
	}
	if row.Name != "fleet/ingest_2x_ratio" || row.Suite != "fleet" || row.Unit != "records/s" ||
		row.Value <= 0 || row.Baseline <= 0 || row.Ratio <= 0 || row.Against == "" {
		t.Fatalf("row %+v", row)
	}
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		t.Errorf("left behind: %s", e.Name())
	}
}

func TestBacklogSource(t *testing.T) {
	s, err := newBacklogSource(5)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Notify():
	default:
		t.Fatal("a full backlog does not notify")
	}
	for _, tc := range []struct {
		after, max int
		first, n   int
	}{{0, 2, 1, 2}, {2, 10, 3, 3}, {5, 10, 0, 0}, {9, 10, 0, 0}} {
		got, err := s.Read(uint64(tc.after), tc.max, 1<<20)
		if err != nil || len(got) != tc.n || (tc.n > 0 && got[0].Seq != uint64(tc.first)) {
			t.Errorf("Read(%d, %d) = %d entries from %v, %v", tc.after, tc.max, len(got), got, err)
		}
	}
	if got, _ := s.Read(0, 10, 1); len(got) != 1 {
		t.Errorf("a byte budget of 1 read %d entries, want the first alone", len(got))
	}
	if err := s.Ack(3); err != nil || s.AckedThrough() != 3 {
		t.Fatalf("ack 3: %v, %d", err, s.AckedThrough())
	}
	if err := s.Ack(2); err != nil || s.AckedThrough() != 3 {
		t.Fatalf("an older ack moved AckedThrough to %d (%v)", s.AckedThrough(), err)
	}
}
