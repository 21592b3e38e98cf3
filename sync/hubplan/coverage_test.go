package hubplan

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/kioskedge/kioskedge/sync/hubstore"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// testAgents is a fleet over testdata/plan.csv: see the comments for what
// each agent does to its community.
func testAgents() []AgentRegion {
	return []AgentRegion{
		{ID: "a1", Region: "110101001001", Kind: Kiosk, Online: true}, // A (urban 1k+1g): covered with a2
		{ID: "a2", Region: "110101001001", Kind: Gate},
		{ID: "b1", Region: "110101001002", Kind: Kiosk},               // B (urban 1k): covered, offline
		{ID: "c1", Region: "110101002001", Kind: Kiosk, Online: true}, // C (urban 2k): 1 of 2, not covered
		{ID: "d1", Region: "110105101201", Kind: Kiosk, Online: true}, // D (rural 1k): covered
		{ID: "e1", Region: "110105101202", Kind: Kiosk},               // E (rural 1k): covered
		{ID: "f1", Region: "110105101203", Kind: Kiosk, Online: true}, // F (rural 1g): a kiosk does not cover a gate
		{ID: "x1", Region: "110105101299", Kind: Kiosk, Online: true}, // not in the plan
		{ID: "x2", Region: "", Kind: Gate},                            // no region
		{ID: "x3", Region: "110105", Kind: Kiosk},                     // a county, not a community
	}
}

func TestCovered(t *testing.T) {
	for _, tc := range []struct {
		c    Counts
		want bool
	}{
		{Counts{PlannedKiosks: 1, ProvisionedKiosks: 1}, true},
		{Counts{PlannedKiosks: 2, ProvisionedKiosks: 1}, false},
		{Counts{PlannedKiosks: 1, PlannedGates: 1, ProvisionedKiosks: 3}, false},
		{Counts{PlannedGates: 1, ProvisionedGates: 1, ProvisionedKiosks: 1}, true},
		{Counts{}, false},                   // nothing planned, nothing there
		{Counts{ProvisionedGates: 1}, true}, // nothing planned, one box there
		{Counts{PlannedKiosks: 1, ProvisionedKiosks: 1, OnlineKiosks: 0}, true}, // offline still counts
	} {
		if got := tc.c.Covered(); got != tc.want {
			t.Errorf("%+v: Covered %v, want %v", tc.c, got, tc.want)
		}
	}
}

func TestComputeRollUp(t *testing.T) {
	cv := Compute(readPlan(t), testAgents())
	type want struct {
		code, name                 string
		urban, urbanCov, rural, ru int
		met                        bool
		c                          Counts
	}
	check := func(rows []Row, ws []want) {
		t.Helper()
		if len(rows) != len(ws) {
			t.Fatalf("%d rows, want %d: %+v", len(rows), len(ws), rows)
		}
		for i, w := range ws {
			r := rows[i]
			if r.Code != w.code || r.Name != w.name || r.Urban != w.urban || r.UrbanCovered != w.urbanCov ||
				r.Rural != w.rural || r.RuralCovered != w.ru || r.TargetMet() != w.met || r.Counts != w.c {
				t.Errorf("row %d: %+v (met %v), want %+v", i, r, r.TargetMet(), w)
			}
		}
	}
	check(cv.Rows(LevelCity, ""), []want{
		{"1101", "北京市市辖区", 3, 2, 4, 2, false, Counts{7, 2, 6, 1, 4, 0}},
		{"1201", "", 1, 0, 0, 0, false, Counts{1, 0, 0, 0, 0, 0}},
	})
	check(cv.Rows(LevelCounty, "1101"), []want{
		{"110101", "东城区", 3, 2, 0, 0, false, Counts{4, 1, 3, 1, 2, 0}},
		{"110105", "朝阳区", 0, 0, 4, 2, true, Counts{3, 1, 3, 0, 2, 0}}, // half of rural is enough
	})
	check(cv.Rows(LevelTownship, "110101"), []want{
		{"110101001", "东华门街道", 2, 2, 0, 0, true, Counts{2, 1, 2, 1, 1, 0}},
		{"110101002", "交道口街道", 1, 0, 0, 0, false, Counts{2, 0, 1, 0, 1, 0}},
	})
	check(cv.Rows(LevelCommunity, "110105101"), []want{
		{"110105101201", "上辛堡村", 0, 0, 1, 1, true, Counts{1, 0, 1, 0, 1, 0}},
		{"110105101202", "下辛堡村", 0, 0, 1, 1, true, Counts{1, 0, 1, 0, 0, 0}},
		{"110105101203", "费家村", 0, 0, 1, 0, false, Counts{0, 1, 1, 0, 1, 0}},
		{"110105101204", "何各庄村", 0, 0, 1, 0, false, Counts{1, 0, 0, 0, 0, 0}},
	})
	if rows := cv.Rows(LevelCity, "1101"); rows != nil {
		t.Errorf("city rows under a city: %+v", rows)
	}
	if rows := cv.Rows(LevelCounty, "3301"); len(rows) != 0 {
		t.Errorf("rows under an unplanned city: %+v", rows)
	}
	tot := cv.Total
	if tot.Urban != 4 || tot.UrbanCovered != 2 || tot.Rural != 4 || tot.RuralCovered != 2 ||
		tot.Counts != (Counts{8, 2, 6, 1, 4, 0}) || tot.TargetMet() || tot.UrbanPct() != 50 || tot.RuralPct() != 50 {
		t.Errorf("total %+v", tot)
	}
	if s := Sum(cv.Rows(LevelCity, ""), "t"); s.Counts != tot.Counts || s.Urban != tot.Urban || s.RuralCovered != tot.RuralCovered {
		t.Errorf("sum of cities %+v != total %+v", s, tot)
	}
	var ids []string
	for _, a := range cv.Unplanned {
		ids = append(ids, a.ID)
	}
	if !reflect.DeepEqual(ids, []string{"x2", "x3", "x1"}) {
		t.Errorf("unplanned %v, want x2 x3 x1 (by region)", ids)
	}
}

func TestTargetMet(t *testing.T) {
	for _, tc := range []struct {
		r    Row
		want bool
	}{
		{Row{}, true}, // nothing planned: nothing to miss
		{Row{Urban: 3, UrbanCovered: 3, Rural: 3, RuralCovered: 2}, true},
		{Row{Urban: 3, UrbanCovered: 3, Rural: 3, RuralCovered: 1}, false}, // 1 of 3 is under half
		{Row{Urban: 3, UrbanCovered: 3, Rural: 4, RuralCovered: 2}, true},  // exactly half
		{Row{Urban: 3, UrbanCovered: 2, Rural: 2, RuralCovered: 2}, false},
	} {
		if got := tc.r.TargetMet(); got != tc.want {
			t.Errorf("%+v: TargetMet %v, want %v", tc.r, got, tc.want)
		}
	}
}

func TestKindOf(t *testing.T) {
	for _, tc := range []struct {
		kinds []string
		doors bool
		want  BoxKind
	}{
		{nil, false, Kiosk},
		{[]string{"idcard", "escpos", "qrscan", "sscard"}, false, Kiosk},
		{[]string{"idcard", "wiegand"}, false, Gate},
		{[]string{"osdp"}, false, Gate},
		{[]string{"Door"}, false, Gate},
		{nil, true, Gate},
	} {
		var inv []wire.Device
		for _, k := range tc.kinds {
			inv = append(inv, wire.Device{Name: "d", Kind: k})
		}
		if got := KindOf(inv, tc.doors); got != tc.want {
			t.Errorf("%v doors %v: %s, want %s", tc.kinds, tc.doors, got, tc.want)
		}
	}
}

type fakeStore []hubstore.AgentState

func (f fakeStore) Agents() []hubstore.AgentState { return f }

func TestFromStore(t *testing.T) {
	birth := func(region string, kinds ...string) json.RawMessage {
		st := wire.Status{State: wire.StateOnline, Agent: "x", Region: region}
		for _, k := range kinds {
			st.Inventory = append(st.Inventory, wire.Device{Name: k, Kind: k})
		}
		raw, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	got := FromStore(fakeStore{
		{ID: "k", Online: true, Birth: birth("110101001001", "idcard", "escpos")},
		{ID: "g", Birth: birth("110101001001", "wiegand")},
		{ID: "h", Online: true, Birth: birth("110101001002"), Health: json.RawMessage(`{"doors":[{"id":"main"}]}`)},
		{ID: "bad", Birth: json.RawMessage(`{"region":`)},
		{ID: "none", Online: true},
	}).Agents()
	want := []AgentRegion{
		{ID: "k", Region: "110101001001", Kind: Kiosk, Online: true},
		{ID: "g", Region: "110101001001", Kind: Gate},
		{ID: "h", Region: "110101001002", Kind: Gate, Online: true},
		{ID: "bad", Kind: Kiosk},
		{ID: "none", Kind: Kiosk, Online: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]Level{"": LevelCity, "city": LevelCity, "county": LevelCounty, "township": LevelTownship, "community": LevelCommunity} {
		if got, err := ParseLevel(in); err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseLevel("province"); err == nil {
		t.Error("ParseLevel(province) accepted")
	}
}
