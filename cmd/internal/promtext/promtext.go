package promtext

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// ContentType is the Content-Type of the text format.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Type is a metric family's type.
type Type string

// The types kioskd exports.
const (
	Counter Type = "counter"
	Gauge   Type = "gauge"
)

// ErrName is returned (by Writer.Err) for an invalid metric or label
// name, a family written twice, or a sample's labels that do not match
// its family's.
var ErrName = errors.New("promtext: bad metric or label name")

// Label is one label pair.
type Label struct{ Name, Value string }

// L builds labels from name, value pairs: L("door", "front", "reason",
// "allowlist"). An odd trailing name gets an empty value.
func L(pairs ...string) []Label {
	ls := make([]Label, 0, (len(pairs)+1)/2)
	for i := 0; i < len(pairs); i += 2 {
		l := Label{Name: pairs[i]}
		if i+1 < len(pairs) {
			l.Value = pairs[i+1]
		}
		ls = append(ls, l)
	}
	return ls
}

// Writer writes families to an io.Writer. Errors stick: after the first,
// later calls do nothing and Err returns it.
type Writer struct {
	w    *bufio.Writer
	err  error
	seen map[string]bool
	cur  string // the family being written
}

// NewWriter returns a Writer on w; call Flush at the end.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: bufio.NewWriter(w), seen: map[string]bool{}}
}

// Family starts a metric family: its HELP and TYPE lines. A family may be
// started once; its samples follow with Sample.
func (w *Writer) Family(name string, typ Type, help string) {
	if w.err != nil {
		return
	}
	if !validName(name, true) {
		w.err = fmt.Errorf("%w: metric %q", ErrName, name)
		return
	}
	if w.seen[name] {
		w.err = fmt.Errorf("%w: family %q written twice", ErrName, name)
		return
	}
	w.seen[name] = true
	w.cur = name
	help = strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(help)
	_, w.err = fmt.Fprintf(w.w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// Sample writes one sample of the current family. Labels are written
// sorted by name; NaN and ±Inf are written as Prometheus spells them.
func (w *Writer) Sample(value float64, labels ...Label) {
	if w.err != nil {
		return
	}
	if w.cur == "" {
		w.err = fmt.Errorf("%w: sample before any family", ErrName)
		return
	}
	var b strings.Builder
	b.WriteString(w.cur)
	if len(labels) > 0 {
		ls := append([]Label(nil), labels...)
		sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
		b.WriteByte('{')
		for i, l := range ls {
			if !validName(l.Name, false) || strings.HasPrefix(l.Name, "__") {
				w.err = fmt.Errorf("%w: label %q of %s", ErrName, l.Name, w.cur)
				return
			}
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(l.Name)
			b.WriteString(`="`)
			b.WriteString(escapeLabel(l.Value))
			b.WriteByte('"')
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(formatValue(value))
	b.WriteByte('\n')
	_, w.err = w.w.WriteString(b.String())
}

// Flush writes what is buffered and returns the first error.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	return w.w.Flush()
}

// Err returns the first error.
func (w *Writer) Err() error { return w.err }

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// validName checks [a-zA-Z_:][a-zA-Z0-9_:]* (colons only in metric names).
func validName(s string, metric bool) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		ok := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (metric && c == ':') || (i > 0 && c >= '0' && c <= '9')
		if !ok {
			return false
		}
	}
	return true
}
