package hubplan

import (
	"encoding/csv"
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// CSVHeader is the coverage export's header row
// (firmware-specs/rollout-plan.md §5).
var CSVHeader = []string{
	"level", "code", "name", "communities", "urban", "urban_covered", "urban_pct",
	"rural", "rural_covered", "rural_pct", "target_met",
	"planned_kiosks", "planned_gates", "provisioned_kiosks", "provisioned_gates",
	"online_kiosks", "online_gates",
}

// WriteCSV writes rows as the coverage export: CSVHeader, then one line
// per row. It returns the writer's error.
func WriteCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	for _, r := range rows {
		rec := []string{
			r.Level.String(), r.Code, csvSafe(r.Name), itoa(r.Communities()),
			itoa(r.Urban), itoa(r.UrbanCovered), pctText(r.UrbanPct()),
			itoa(r.Rural), itoa(r.RuralCovered), pctText(r.RuralPct()), strconv.FormatBool(r.TargetMet()),
			itoa(r.PlannedKiosks), itoa(r.PlannedGates), itoa(r.ProvisionedKiosks), itoa(r.ProvisionedGates),
			itoa(r.OnlineKiosks), itoa(r.OnlineGates),
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// csvSafe keeps a name from being read as a formula by a spreadsheet.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@", rune(s[0])) {
		return "'" + s
	}
	return s
}

func itoa(n int) string { return strconv.Itoa(n) }

func pctText(p float64) string { return strconv.FormatFloat(p, 'f', 1, 64) }

// label is a row's display name: its name with its code, or the code.
func label(r Row) string {
	if r.Name == "" {
		return r.Code
	}
	if r.Code == "" {
		return r.Name
	}
	return r.Name + " " + r.Code
}

// Chart geometry.
const (
	chartLabelW = 260
	chartBarW   = 420
	chartNumW   = 120
	chartBarH   = 10
	chartRowH   = 3*chartBarH + 14
	chartTop    = 44
)

// bar series: class, colour, label.
var series = [3]struct{ class, fill, label string }{
	{"planned", "#9aa5b1", "计划 Planned"},
	{"provisioned", "#3b7dd8", "已部署 Provisioned"},
	{"online", "#2f9e44", "在线 Online"},
}

// WriteSVG writes a horizontal bar chart of rows: per row a group (class
// "row") with three bars (planned, provisioned and online boxes) and text
// labels, scaled to the largest value. title heads the chart. The output is
// a standalone SVG document; every text is XML-escaped.
func WriteSVG(w io.Writer, rows []Row, title string) error {
	maxV := 1
	for _, r := range rows {
		maxV = max(maxV, r.Planned(), r.Provisioned(), r.Online())
	}
	width := chartLabelW + chartBarW + chartNumW
	height := chartTop + chartRowH*len(rows) + 10
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12" role="img">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&b, "<title>%s</title>\n", esc(title))
	fmt.Fprintf(&b, `<text x="4" y="16" font-size="14" font-weight="bold">%s</text>`+"\n", esc(title))
	x := chartLabelW
	for _, s := range series {
		fmt.Fprintf(&b, `<rect x="%d" y="26" width="10" height="10" fill="%s"/><text x="%d" y="35">%s</text>`+"\n", x, s.fill, x+14, esc(s.label))
		x += 140
	}
	for i, r := range rows {
		y := chartTop + i*chartRowH
		fmt.Fprintf(&b, `<g class="row" data-code="%s">`+"\n", esc(r.Code))
		fmt.Fprintf(&b, `<text x="4" y="%d">%s</text>`+"\n", y+chartBarH*2-2, esc(truncate(label(r), 26)))
		vals := [3]int{r.Planned(), r.Provisioned(), r.Online()}
		for j, s := range series {
			by := y + j*chartBarH
			bw := vals[j] * chartBarW / maxV
			fmt.Fprintf(&b, `<rect class="%s" x="%d" y="%d" width="%d" height="%d" fill="%s"><title>%s: %d</title></rect>`+"\n",
				s.class, chartLabelW, by, bw, chartBarH-1, s.fill, esc(s.label), vals[j])
			fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="10">%d</text>`+"\n", chartLabelW+bw+4, by+chartBarH-1, vals[j])
		}
		b.WriteString("</g>\n")
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func esc(s string) string {
	var b strings.Builder
	// strings.Builder never fails.
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
