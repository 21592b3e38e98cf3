package hubplan

import (
	"bytes"
	"encoding/csv"
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

// svgGroups decodes an SVG document fully (failing t if it is not
// well-formed XML) and returns the data-code of each group of class "row",
// with the classes of the rects inside it.
func svgGroups(t *testing.T, r io.Reader) (codes []string, bars [][]string) {
	t.Helper()
	dec := xml.NewDecoder(r)
	depth, rowDepth := 0, -1
	sawRoot := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 {
				sawRoot = el.Name.Local == "svg" && el.Name.Space == "http://www.w3.org/2000/svg"
			}
			attr := map[string]string{}
			for _, a := range el.Attr {
				attr[a.Name.Local] = a.Value
			}
			if el.Name.Local == "g" && attr["class"] == "row" {
				codes = append(codes, attr["data-code"])
				bars = append(bars, nil)
				rowDepth = depth
			}
			if el.Name.Local == "rect" && rowDepth > 0 {
				bars[len(bars)-1] = append(bars[len(bars)-1], attr["class"])
			}
		case xml.EndElement:
			if depth == rowDepth {
				rowDepth = -1
			}
			depth--
		}
	}
	if !sawRoot {
		t.Fatal("root element is not an svg in the SVG namespace")
	}
	return codes, bars
}

func TestWriteSVG(t *testing.T) {
	cv := Compute(readPlan(t), testAgents())
	for _, tc := range []struct {
		level  Level
		parent string
	}{{LevelCity, ""}, {LevelCounty, "1101"}, {LevelCommunity, "110105101"}, {LevelCounty, "3301"}} {
		rows := cv.Rows(tc.level, tc.parent)
		var b bytes.Buffer
		if err := WriteSVG(&b, rows, `覆盖 <Coverage> & "more"`); err != nil {
			t.Fatal(err)
		}
		codes, bars := svgGroups(t, &b)
		if len(codes) != len(rows) {
			t.Fatalf("%s/%s: %d row groups, want %d", tc.level, tc.parent, len(codes), len(rows))
		}
		for i, r := range rows {
			if codes[i] != r.Code || strings.Join(bars[i], ",") != "planned,provisioned,online" {
				t.Errorf("group %d: code %s bars %v, want %s with planned,provisioned,online", i, codes[i], bars[i], r.Code)
			}
		}
	}
}

func TestWriteSVGEscapesNames(t *testing.T) {
	rows := []Row{{Level: LevelCommunity, Code: "110101001001", Name: `</text><script>alert(1)</script>&`}}
	var b bytes.Buffer
	if err := WriteSVG(&b, rows, "t"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "<script>") {
		t.Fatal("a name's markup reached the SVG unescaped")
	}
	if codes, _ := svgGroups(t, &b); len(codes) != 1 {
		t.Fatalf("%d groups", len(codes))
	}
}

func TestWriteCSV(t *testing.T) {
	cv := Compute(readPlan(t), testAgents())
	rows := cv.Rows(LevelCounty, "1101")
	rows[0].Name = "=cmd|x" // a spreadsheet formula must not survive
	var b bytes.Buffer
	if err := WriteCSV(&b, rows); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1+len(rows) || strings.Join(recs[0], ",") != strings.Join(CSVHeader, ",") {
		t.Fatalf("records %q", recs)
	}
	col := func(rec []string, name string) string {
		for i, h := range CSVHeader {
			if h == name {
				return rec[i]
			}
		}
		t.Fatalf("no column %s", name)
		return ""
	}
	r1 := recs[2]
	for name, want := range map[string]string{
		"level": "county", "code": "110105", "name": "朝阳区", "communities": "4", "rural": "4", "rural_covered": "2",
		"rural_pct": "50.0", "urban_pct": "100.0", "target_met": "true", "planned_kiosks": "3", "planned_gates": "1",
		"provisioned_kiosks": "3", "provisioned_gates": "0", "online_kiosks": "2", "online_gates": "0",
	} {
		if got := col(r1, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if got := col(recs[1], "name"); got != "'=cmd|x" {
		t.Errorf("formula name exported as %q", got)
	}
	if got := col(recs[1], "target_met"); got != "false" {
		t.Errorf("110101 target_met %q", got)
	}
}
