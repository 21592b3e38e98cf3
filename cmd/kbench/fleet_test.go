package main

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/testhw/broker"
)

// TestFleetSuiteTiny runs the whole fleet suite with tiny sizes against
// Mosquitto (Mochi when it is missing outside CI): every row is present
// with a positive figure and baseline, the storm lost no record, and no
// file is left. No figure is compared with a speed.
func TestFleetSuiteTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two reconnect storms and a hub child process")
	}
	kind := broker.Mosquitto
	if _, err := broker.MosquittoPath(); errors.Is(err, broker.ErrMosquittoNotFound) {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v; CI must install it: apt-get install -y mosquitto", err)
		}
		t.Log("mosquitto not installed: the fleet suite runs against Mochi here (CI runs it against Mosquitto)")
		kind = broker.Mochi
	}
	dir := t.TempDir()
	sz := fleetSize{kind: kind, agents: 20, records: 2, outage: 300 * time.Millisecond,
		healthIDs: 200, healthRate: 1000, publishers: 2, ackTimeout: time.Second, spread: 500 * time.Millisecond}
	rows, err := runFleet(context.Background(), Config{Quick: true, Dir: dir, Progress: tlogWriter{t}}, sz)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"fleet/storm_recovery_s", "fleet/storm_peak_share_pct", "fleet/storm_records_lost",
		"fleet/health_staleness_p99_ms", "fleet/hubd_rss_mb_10k"}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d: %+v", len(rows), len(want), rows)
	}
	for i, r := range rows {
		if r.Name != want[i] || r.Suite != "fleet" || r.Unit == "" {
			t.Errorf("row %d is %+v, want %s", i, r, want[i])
		}
		if r.Name == "fleet/storm_records_lost" {
			if r.Value != 0 || r.Baseline != 0 {
				t.Errorf("records lost: %v with jitter, %v with the fixed retry", r.Value, r.Baseline)
			}
			continue
		}
		if r.Value <= 0 || r.Baseline <= 0 || r.Ratio <= 0 {
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

func TestPeakInWindow(t *testing.T) {
	s := int64(time.Second)
	for _, tc := range []struct {
		name  string
		times []int64
		want  int
	}{
		{"empty", nil, 0},
		{"one", []int64{5}, 1},
		{"all in one second", []int64{0, s / 2, s - 1}, 3},
		{"window is half-open", []int64{0, s}, 1},
		{"unsorted", []int64{3 * s, 0, 3*s + 10, s / 3, 3*s + 20}, 3},
		{"spread", []int64{0, s, 2 * s, 3 * s}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := peakInWindow(tc.times, s); got != tc.want {
				t.Fatalf("peakInWindow(%v) = %d, want %d", tc.times, got, tc.want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	v := make([]float64, 100)
	for i := range v {
		v[len(v)-1-i] = float64(i + 1)
	}
	for _, tc := range []struct {
		q    float64
		want float64
	}{{0.99, 99}, {0.5, 50}, {1, 100}, {0, 1}} {
		if got := percentile(v, tc.q); got != tc.want {
			t.Errorf("percentile(1..100, %v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := percentile(nil, 0.99); got != 0 {
		t.Errorf("percentile(nil) = %v", got)
	}
}

// tlogWriter sends the suite's progress lines to the test log.
type tlogWriter struct{ t *testing.T }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}
