package hubplan

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func readPlan(t *testing.T) *Plan {
	t.Helper()
	f, err := os.Open("testdata/plan.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := ParseCSV(f, "testdata/plan.csv")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseCSV(t *testing.T) {
	p := readPlan(t)
	if len(p.Communities) != 8 || p.Source != "plan.csv" {
		t.Fatalf("%d communities, source %q", len(p.Communities), p.Source)
	}
	c := p.Communities[0]
	if c != (Community{Code: "110101001001", Name: "东华门社区", Area: Urban, PlannedKiosks: 1, PlannedGates: 1}) {
		t.Fatalf("first community %+v", c)
	}
	for code, want := range map[string]string{
		"110101001":    "东华门街道",
		"110105":       "朝阳区",
		"1101":         "北京市市辖区",
		"1201":         "",
		"110105101203": "费家村",
		"110105101299": "",
	} {
		if got := p.Name(code); got != want {
			t.Errorf("Name(%s) = %q, want %q", code, got, want)
		}
	}
}

func TestParseCSVMinimalColumnsAnyOrder(t *testing.T) {
	in := "\ufeffPlanned_Gates,area,region_code,planned_kiosks,community\r\n" +
		"2,rural,110105101202,0,\"下辛堡村, 东\"\r\n" +
		"\r\n" +
		"0,URBAN,110101001001,3,东华门社区\r\n"
	p, err := ParseCSV(strings.NewReader(in), "x.csv")
	if err != nil {
		t.Fatal(err)
	}
	want := []Community{
		{Code: "110101001001", Name: "东华门社区", Area: Urban, PlannedKiosks: 3},
		{Code: "110105101202", Name: "下辛堡村, 东", Area: Rural, PlannedGates: 2},
	}
	if !reflect.DeepEqual(p.Communities, want) || len(p.Names) != 0 {
		t.Fatalf("got %+v names %v", p.Communities, p.Names)
	}
}

func TestParseCSVErrors(t *testing.T) {
	const hdr = "region_code,community,area,planned_kiosks,planned_gates\n"
	const ok = "110101001001,东华门社区,urban,1,1\n"
	cases := []struct {
		name, in   string
		line, col  int
		msgContain string
	}{
		{"empty", "", 1, 0, "header"},
		{"missing column", "region_code,community,area,planned_kiosks\n" + ok, 1, 0, "planned_gates"},
		{"repeated column", "region_code,community,area,planned_kiosks,planned_gates,area\n", 1, 6, "repeated"},
		{"no rows", hdr, 1, 0, "empty"},
		{"short code", hdr + "110101001,东华门街道,urban,1,1\n", 2, 1, "12 digits"},
		{"letters in code", hdr + "11010100100A,x,urban,1,1\n", 2, 1, "12 digits"},
		{"empty name", hdr + "110101001001, ,urban,1,1\n", 2, 2, "name is empty"},
		{"bad area", hdr + ok + "110101001002,景山社区,suburban,1,1\n", 3, 3, "urban or rural"},
		{"negative kiosks", hdr + "110101001001,x,urban,-1,1\n", 2, 4, "planned_kiosks"},
		{"gates not a number", hdr + "110101001001,x,urban,1,two\n", 2, 5, "planned_gates"},
		{"too many", hdr + "110101001001,x,urban,1,1001\n", 2, 5, "planned_gates"},
		{"duplicate", hdr + ok + "110101001002,景山社区,urban,1,0\n" + ok, 4, 1, "first on line 2"},
		{"field count", hdr + "110101001001,x,urban,1\n", 2, 0, "4 fields"},
		{"bad quoting", hdr + "110101001001,\"x,urban,1,1\n", 2, 0, ""},
		{"conflicting names",
			"region_code,community,area,planned_kiosks,planned_gates,county_name\n" +
				"110101001001,a,urban,1,0,东城区\n110101001002,b,urban,1,0,西城区\n", 3, 6, "differs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCSV(strings.NewReader(tc.in), "plan.csv")
			var pe *ParseError
			if !errors.As(err, &pe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err %v, want a *ParseError wrapping ErrInvalid", err)
			}
			if pe.File != "plan.csv" || pe.Line != tc.line || (tc.col != 0 && pe.Column != tc.col) || !strings.Contains(pe.Msg, tc.msgContain) {
				t.Fatalf("got %s (line %d col %d), want line %d col %d containing %q", err, pe.Line, pe.Column, tc.line, tc.col, tc.msgContain)
			}
			if tc.col != 0 && !strings.HasPrefix(err.Error(), "plan.csv:") {
				t.Fatalf("error %q does not start with the file", err)
			}
		})
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "plan")
	if _, err := Load(dir); !errors.Is(err, ErrNoPlan) {
		t.Fatalf("Load of an empty dir: %v", err)
	}
	p := readPlan(t)
	p.Imported = time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC)
	if err := Save(dir, p); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, p) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, p)
	}
	// A second save replaces the first and leaves no temporary files.
	p.Communities = p.Communities[:1]
	if err := Save(dir, p); err != nil {
		t.Fatal(err)
	}
	if got, err := Load(dir); err != nil || len(got.Communities) != 1 {
		t.Fatalf("after replace: %v, %v", got, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != PlanFile {
		t.Fatalf("dir holds %v", ents)
	}
}

func TestLoadCorrupt(t *testing.T) {
	for name, body := range map[string]string{
		"not json": "{",
		"version":  `{"version":2,"communities":[]}`,
		"bad code": `{"version":1,"communities":[{"code":"1101","name":"x","area":"urban"}]}`,
		"bad area": `{"version":1,"communities":[{"code":"110101001001","name":"x","area":"city"}]}`,
		"unsorted": `{"version":1,"communities":[{"code":"110101001002","name":"x","area":"urban"},{"code":"110101001001","name":"x","area":"urban"}]}`,
		"negative": `{"version":1,"communities":[{"code":"110101001001","name":"x","area":"urban","planned_gates":-1}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, PlanFile), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := Load(dir); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Load: %v, want ErrCorrupt", err)
			}
		})
	}
}

func FuzzParseCSV(f *testing.F) {
	seed, err := os.ReadFile("testdata/plan.csv")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(seed))
	f.Add("region_code,community,area,planned_kiosks,planned_gates\n110101001001,x,urban,1,1\n")
	f.Fuzz(func(t *testing.T, in string) {
		p, err := ParseCSV(strings.NewReader(in), "f.csv")
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				var pe *ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("error %v is neither ErrInvalid nor a ParseError", err)
				}
			}
			return
		}
		for i, c := range p.Communities {
			if !isCode(c.Code, 12) || c.Name == "" || c.PlannedKiosks < 0 || c.PlannedGates < 0 || (i > 0 && p.Communities[i-1].Code >= c.Code) {
				t.Fatalf("accepted a bad plan: %+v", p.Communities)
			}
		}
	})
}
