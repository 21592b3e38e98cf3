package promtext

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestWriteAndParseRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Family("kioskedge_outbox_depth", Gauge, "Records not yet acked by the hub.")
	w.Sample(42)
	w.Family("kioskedge_access_decisions_total", Counter, "Access decisions, by door and reason.\nSecond line \\ backslash.")
	w.Sample(3, L("reason", "allowlist", "door", "front")...)
	w.Sample(1, L("door", `back "yard"`+"\n"+`c:\x`, "reason", "not_listed")...)
	w.Family("kioskedge_odd", Gauge, "Special values.")
	w.Sample(math.NaN(), L("v", "nan")...)
	w.Sample(math.Inf(1), L("v", "inf")...)
	w.Sample(1.5e-7, L("v", "small")...)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"# HELP kioskedge_outbox_depth Records not yet acked by the hub.\n# TYPE kioskedge_outbox_depth gauge\nkioskedge_outbox_depth 42\n",
		`# HELP kioskedge_access_decisions_total Access decisions, by door and reason.\nSecond line \\ backslash.` + "\n",
		`kioskedge_access_decisions_total{door="front",reason="allowlist"} 3` + "\n",
		`kioskedge_access_decisions_total{door="back \"yard\"\nc:\\x",reason="not_listed"} 1` + "\n",
		`kioskedge_odd{v="nan"} NaN`, `kioskedge_odd{v="inf"} +Inf`, `kioskedge_odd{v="small"} 1.5e-07`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	fams, err := Parse(strings.NewReader(out))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, out)
	}
	d := fams["kioskedge_access_decisions_total"]
	if d == nil || d.Type != Counter || d.Help != "Access decisions, by door and reason.\nSecond line \\ backslash." || len(d.Samples) != 2 {
		t.Fatalf("decisions family: %+v", d)
	}
	if v, ok := d.Get("door", `back "yard"`+"\n"+`c:\x`); !ok || v != 1 {
		t.Errorf("escaped label round trip: %v %v", v, ok)
	}
	if v, ok := fams["kioskedge_outbox_depth"].Get(); !ok || v != 42 {
		t.Errorf("depth %v %v", v, ok)
	}
	if v, _ := fams["kioskedge_odd"].Get("v", "nan"); !math.IsNaN(v) {
		t.Errorf("NaN round trip: %v", v)
	}
}

func TestWriterRejectsBadNames(t *testing.T) {
	tests := []struct {
		name string
		do   func(w *Writer)
	}{
		{"metric starts with digit", func(w *Writer) { w.Family("1abc", Gauge, "") }},
		{"metric with dash", func(w *Writer) { w.Family("a-b", Gauge, "") }},
		{"label with colon", func(w *Writer) { w.Family("a", Gauge, ""); w.Sample(1, L("a:b", "x")...) }},
		{"reserved label", func(w *Writer) { w.Family("a", Gauge, ""); w.Sample(1, L("__name__", "x")...) }},
		{"family twice", func(w *Writer) { w.Family("a", Gauge, ""); w.Family("a", Gauge, "") }},
		{"sample first", func(w *Writer) { w.Sample(1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewWriter(&buf)
			tt.do(w)
			if err := w.Flush(); !errors.Is(err, ErrName) {
				t.Errorf("err %v, want ErrName", err)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	for _, in := range []string{
		"x 1\n", // no TYPE
		"# TYPE x gauge\nx{a=\"1\" 2\n",
		"# TYPE x gauge\nx{a=\"1\\q\"} 2\n",
		"# TYPE x gauge\nx one\n",
		"# TYPE x gauge\ny 1\n",
		"# TYPE x gauge\nx 1\n# TYPE y gauge\ny 1\n# TYPE x gauge\n",
		"# TYPE x weird\n",
		"# TYPE x gauge\nx{a=\"1\",a=\"2\"} 1\n",
	} {
		if _, err := Parse(strings.NewReader(in)); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q): %v, want ErrSyntax", in, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("# HELP a b\n# TYPE a counter\na{x=\"y\\n\"} 1 123\n")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = Parse(strings.NewReader(s)) // must not panic
	})
}

// FuzzRoundTrip: any label value and help text written is parsed back
// unchanged.
func FuzzRoundTrip(f *testing.F) {
	f.Add("front \"door\"\n\\x", "help\nwith \\ newline", 1.5)
	f.Fuzz(func(t *testing.T, label, help string, v float64) {
		if !utf8.ValidString(label) || !utf8.ValidString(help) || math.IsNaN(v) {
			return
		}
		var buf bytes.Buffer
		w := NewWriter(&buf)
		w.Family("kioskedge_x", Counter, help)
		w.Sample(v, L("door", label)...)
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		fams, err := Parse(&buf)
		if err != nil {
			t.Fatalf("%v: %q", err, buf.String())
		}
		f := fams["kioskedge_x"]
		got, ok := f.Get("door", label)
		if !ok || got != v || f.Help != help {
			t.Fatalf("round trip: %v %v help %q, want %v %q", got, ok, f.Help, v, help)
		}
	})
}
