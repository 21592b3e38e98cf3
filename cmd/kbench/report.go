package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"text/tabwriter"
)

// Row is one figure. Its JSON form is exactly the six fields
// suite, name, value, unit, baseline, ratio.
type Row struct {
	Suite    string  `json:"suite"`
	Name     string  `json:"name"` // "<suite>/<figure>", stable across runs
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	Baseline float64 `json:"baseline"` // the same unit, measured in the same run
	Ratio    float64 `json:"ratio"`    // Value / Baseline; 0 when Baseline is 0
	// Against says what the baseline is; shown in the table only.
	Against string `json:"-"`
}

// newRow builds a row and computes its ratio.
func newRow(suite, name string, value float64, unit string, baseline float64, against string) Row {
	r := Row{Suite: suite, Name: suite + "/" + name, Value: value, Unit: unit, Baseline: baseline, Against: against}
	if baseline != 0 && !math.IsNaN(baseline) && !math.IsInf(baseline, 0) {
		r.Ratio = value / baseline
	}
	return r
}

// round keeps 4 significant digits, enough for figures that vary ±10%.
func round(v float64) float64 {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	f, err := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 4, 64), 64)
	if err != nil {
		return v
	}
	return f
}

// writeJSON writes one JSON object per row and line.
func writeJSON(w io.Writer, rows []Row) error {
	enc := json.NewEncoder(w)
	for _, r := range rows {
		r.Value, r.Baseline, r.Ratio = round(r.Value), round(r.Baseline), round(r.Ratio)
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("write json: %w", err)
		}
	}
	return nil
}

// writeTable writes a human-readable table.
func writeTable(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "name\tvalue\tunit\tbaseline\tratio\t\tbaseline is")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s×\t\t%s\n",
			r.Name, human(r.Value), r.Unit, human(r.Baseline), strconv.FormatFloat(round(r.Ratio), 'f', -1, 64), r.Against)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

// human formats a figure for the table: whole numbers with thousands
// separators from 1000 up, 3 significant digits below.
func human(v float64) string {
	if math.Abs(v) < 1000 {
		return strconv.FormatFloat(round(v), 'f', -1, 64)
	}
	s := strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
