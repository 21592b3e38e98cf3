package main

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestJSONLinesShape(t *testing.T) {
	rows := []Row{
		newRow("outbox", "append", 52345.678, "records/s", 1834.2, "one bbolt Update per record"),
		newRow("outbox", "append_p99_ms", 2.5, "ms", 0, "nothing"),
	}
	var out bytes.Buffer
	if err := writeJSON(&out, rows); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != len(rows) {
		t.Fatalf("%d lines for %d rows:\n%s", len(lines), len(rows), out.String())
	}
	want := []string{"baseline", "name", "ratio", "suite", "unit", "value"}
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d is not one JSON object: %v\n%s", i, err, line)
		}
		if keys := slices.Sorted(maps.Keys(m)); !slices.Equal(keys, want) {
			t.Fatalf("line %d has keys %v, want %v", i, keys, want)
		}
		for _, k := range []string{"value", "baseline", "ratio"} {
			if _, ok := m[k].(float64); !ok {
				t.Fatalf("line %d: %s is %T, want a number", i, k, m[k])
			}
		}
	}
	var r Row
	if err := json.Unmarshal([]byte(lines[0]), &r); err != nil {
		t.Fatal(err)
	}
	if r.Suite != "outbox" || r.Name != "outbox/append" || r.Unit != "records/s" ||
		r.Value != 52350 || r.Baseline != 1834 || r.Ratio != 28.54 {
		t.Fatalf("row 0 decoded as %+v", r)
	}
	if err := json.Unmarshal([]byte(lines[1]), &r); err != nil {
		t.Fatal(err)
	}
	if r.Ratio != 0 {
		t.Fatalf("ratio with a zero baseline = %v, want 0", r.Ratio)
	}
}

func TestTable(t *testing.T) {
	var out bytes.Buffer
	if err := writeTable(&out, []Row{newRow("outbox", "append", 52345.6, "records/s", 1834, "one bbolt Update per record")}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"outbox/append", "52,346", "1,834", "28.54×", "one bbolt Update per record"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestHuman(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 0.123456: "0.1235", 999: "999", 1000: "1,000", 1234567.8: "1,234,568", -45678: "-45,678"} {
		if got := human(v); got != want {
			t.Errorf("human(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"-suite", "nope"}, {"-n", "0"}, {"extra"}, {"-bogus"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 {
			t.Errorf("run(%q) = %d, want 2 (stderr %q)", args, code, stderr.String())
		}
		if stdout.Len() != 0 {
			t.Errorf("run(%q) wrote to stdout: %q", args, stdout.String())
		}
	}
}

func TestSuiteNamesUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range suites() {
		if s.name == "" || s.name == "all" || seen[s.name] || s.run == nil {
			t.Fatalf("bad suite entry %q", s.name)
		}
		seen[s.name] = true
	}
}

func TestBenchRecordSize(t *testing.T) {
	val, _, err := benchRecord()
	if err != nil {
		t.Fatal(err)
	}
	if len(val) != recordSize {
		t.Fatalf("record is %d bytes, want %d", len(val), recordSize)
	}
}

func TestPercentiles(t *testing.T) {
	d := make([]int64, 100)
	for i := range d {
		d[i] = int64(100 - i) // unsorted on purpose
	}
	durs := make([]time.Duration, len(d))
	for i, v := range d {
		durs[i] = time.Duration(v)
	}
	if p50, p99 := percentiles(durs); p50 != 50 || p99 != 99 {
		t.Fatalf("p50 %v p99 %v, want 50 and 99", p50, p99)
	}
}

// checkSuiteRows checks that a suite returned exactly the rows named in
// want, in order, each with a value, a baseline, a ratio and a unit, and
// left no files behind in dir.
func checkSuiteRows(t *testing.T, suite string, rows []Row, want []string, dir string) {
	t.Helper()
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d: %+v", len(rows), len(want), rows)
	}
	for i, r := range rows {
		if r.Name != want[i] || r.Suite != suite {
			t.Errorf("row %d is %s/%s, want %s/%s", i, r.Suite, r.Name, suite, want[i])
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
