package hubplan

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/kioskedge/kioskedge/sync/hubstore"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// BoxKind is what a provisioned box counts as against the plan.
type BoxKind string

// Box kinds (firmware-specs/rollout-plan.md §3).
const (
	Kiosk BoxKind = "kiosk"
	Gate  BoxKind = "gate"
)

// AgentRegion is what coverage needs to know of one agent.
type AgentRegion struct {
	ID     string
	Region string // the birth's region code; "" if none
	Kind   BoxKind
	Online bool
}

// Fleet is the hub's view of its agents, as coverage reads it.
type Fleet interface {
	Agents() []AgentRegion
}

// gateKinds are the birth inventory's device kinds that make a box a gate.
var gateKinds = []string{"wiegand", "osdp", "door", "doors"}

// KindOf classifies a box (firmware-specs/rollout-plan.md §3): a gate if
// its birth inventory lists a door, Wiegand or OSDP device or its last
// health reports doors (hasDoors), otherwise a kiosk (ID-card, social
// security card, QR scanner, receipt printer, or no devices at all).
func KindOf(inv []wire.Device, hasDoors bool) BoxKind {
	if hasDoors {
		return Gate
	}
	for _, d := range inv {
		if slices.Contains(gateKinds, strings.ToLower(d.Kind)) {
			return Gate
		}
	}
	return Kiosk
}

// StoreAgents is the part of *hubstore.Store FromStore reads.
type StoreAgents interface {
	Agents() []hubstore.AgentState
}

// FromStore adapts the hub store's agent state (last birth, last health,
// online) to a Fleet. An agent whose birth or health does not decode
// counts with what could be read (no region: unplanned).
func FromStore(s StoreAgents) Fleet { return hubFleet{s} }

type hubFleet struct{ h StoreAgents }

func (f hubFleet) Agents() []AgentRegion {
	all := f.h.Agents()
	out := make([]AgentRegion, 0, len(all))
	for _, a := range all {
		var birth wire.Status
		if len(a.Birth) > 0 {
			// Undecodable births leave the zero value: no region, no inventory.
			_ = json.Unmarshal(a.Birth, &birth)
		}
		var health struct {
			Doors []json.RawMessage `json:"doors"`
		}
		if len(a.Health) > 0 {
			// As above: a health that does not decode reports no doors.
			_ = json.Unmarshal(a.Health, &health)
		}
		out = append(out, AgentRegion{
			ID:     a.ID,
			Region: birth.Region,
			Kind:   KindOf(birth.Inventory, len(health.Doors) > 0),
			Online: a.Online,
		})
	}
	return out
}

// Level is a region level, named by its code length.
type Level int

// Region levels (GB/T 2260 code lengths).
const (
	LevelProvince  Level = 2
	LevelCity      Level = 4
	LevelCounty    Level = 6
	LevelTownship  Level = 9
	LevelCommunity Level = 12
)

// ParseLevel maps "city", "county", "township" and "community" (and ""
// as city) to a Level.
func ParseLevel(s string) (Level, error) {
	switch s {
	case "", "city":
		return LevelCity, nil
	case "county":
		return LevelCounty, nil
	case "township":
		return LevelTownship, nil
	case "community":
		return LevelCommunity, nil
	}
	return 0, fmt.Errorf("%w: level %q: want city, county, township or community", ErrInvalid, s)
}

func (l Level) String() string {
	switch l {
	case LevelProvince:
		return "province"
	case LevelCity:
		return "city"
	case LevelCounty:
		return "county"
	case LevelTownship:
		return "township"
	case LevelCommunity:
		return "community"
	}
	return fmt.Sprintf("level%d", int(l))
}

// next is the level a row drills down to; 0 for communities.
func (l Level) next() Level {
	switch l {
	case LevelCity:
		return LevelCounty
	case LevelCounty:
		return LevelTownship
	case LevelTownship:
		return LevelCommunity
	}
	return 0
}

// Counts are planned, provisioned and online boxes.
type Counts struct {
	PlannedKiosks, PlannedGates         int
	ProvisionedKiosks, ProvisionedGates int
	OnlineKiosks, OnlineGates           int
}

// Planned, Provisioned and Online total kiosks and gates.
func (c Counts) Planned() int     { return c.PlannedKiosks + c.PlannedGates }
func (c Counts) Provisioned() int { return c.ProvisionedKiosks + c.ProvisionedGates }
func (c Counts) Online() int      { return c.OnlineKiosks + c.OnlineGates }

func (c *Counts) add(o Counts) {
	c.PlannedKiosks += o.PlannedKiosks
	c.PlannedGates += o.PlannedGates
	c.ProvisionedKiosks += o.ProvisionedKiosks
	c.ProvisionedGates += o.ProvisionedGates
	c.OnlineKiosks += o.OnlineKiosks
	c.OnlineGates += o.OnlineGates
}

// Covered reports whether a community with counts c is covered
// (firmware-specs/rollout-plan.md §4): at least its planned kiosks and its
// planned gates provisioned, and at least one box in all.
func (c Counts) Covered() bool {
	return c.ProvisionedKiosks >= c.PlannedKiosks && c.ProvisionedGates >= c.PlannedGates && c.Provisioned() >= 1
}

// Row is one region of a coverage table.
type Row struct {
	Level Level
	Code  string
	Name  string // "" when the plan names no such region
	Counts
	// Urban and Rural count the region's planned communities; the
	// …Covered fields those covered. A community row has exactly one of
	// Urban or Rural set to 1.
	Urban, UrbanCovered int
	Rural, RuralCovered int
}

// Communities is the number of planned communities in the row.
func (r Row) Communities() int { return r.Urban + r.Rural }

// UrbanTargetMet: every urban community covered.
func (r Row) UrbanTargetMet() bool { return r.UrbanCovered == r.Urban }

// RuralTargetMet: at least half of the rural communities covered.
func (r Row) RuralTargetMet() bool { return 2*r.RuralCovered >= r.Rural }

// TargetMet: both targets met (rollout-plan.md §4).
func (r Row) TargetMet() bool { return r.UrbanTargetMet() && r.RuralTargetMet() }

// UrbanPct and RuralPct are the covered share in percent; 100 when the row
// has no such communities (nothing left to cover).
func (r Row) UrbanPct() float64 { return pct(r.UrbanCovered, r.Urban) }
func (r Row) RuralPct() float64 { return pct(r.RuralCovered, r.Rural) }

func pct(n, d int) float64 {
	if d == 0 {
		return 100
	}
	return 100 * float64(n) / float64(d)
}

// Coverage is the plan set against the fleet at one moment.
type Coverage struct {
	plan  *Plan
	comm  []Row // one per planned community, sorted by code
	Total Row   // every planned community
	// Unplanned lists agents whose region is not a planned community,
	// sorted by region then id.
	Unplanned []AgentRegion
}

// Compute sets plan against agents: each agent counts for the community
// its region names (by kind, and online if it is); agents whose region is
// not a community of the plan are Unplanned.
func Compute(plan *Plan, agents []AgentRegion) *Coverage {
	cv := &Coverage{plan: plan, comm: make([]Row, len(plan.Communities))}
	idx := make(map[string]int, len(plan.Communities))
	for i, c := range plan.Communities {
		r := Row{Level: LevelCommunity, Code: c.Code, Name: c.Name}
		r.PlannedKiosks, r.PlannedGates = c.PlannedKiosks, c.PlannedGates
		if c.Area == Urban {
			r.Urban = 1
		} else {
			r.Rural = 1
		}
		cv.comm[i] = r
		idx[c.Code] = i
	}
	for _, a := range agents {
		i, ok := idx[a.Region]
		if !ok {
			cv.Unplanned = append(cv.Unplanned, a)
			continue
		}
		r := &cv.comm[i]
		if a.Kind == Gate {
			r.ProvisionedGates++
			if a.Online {
				r.OnlineGates++
			}
		} else {
			r.ProvisionedKiosks++
			if a.Online {
				r.OnlineKiosks++
			}
		}
	}
	slices.SortFunc(cv.Unplanned, func(x, y AgentRegion) int {
		if c := strings.Compare(x.Region, y.Region); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	cv.Total = Row{Code: "", Name: "合计 Total"}
	for i := range cv.comm {
		r := &cv.comm[i]
		if r.Covered() {
			r.UrbanCovered, r.RuralCovered = r.Urban, r.Rural
		}
		cv.Total.merge(*r)
	}
	return cv
}

func (r *Row) merge(o Row) {
	r.Counts.add(o.Counts)
	r.Urban += o.Urban
	r.UrbanCovered += o.UrbanCovered
	r.Rural += o.Rural
	r.RuralCovered += o.RuralCovered
}

// Rows returns the regions of level under parent (a code prefix; "" for
// all), one row each, sorted by code, rolled up from their communities.
// A parent whose length is not shorter than level's yields no rows.
func (cv *Coverage) Rows(level Level, parent string) []Row {
	if len(parent) >= int(level) {
		return nil
	}
	var out []Row
	for _, c := range cv.comm {
		if !strings.HasPrefix(c.Code, parent) {
			continue
		}
		if level == LevelCommunity {
			out = append(out, c)
			continue
		}
		code := c.Code[:level]
		if len(out) == 0 || out[len(out)-1].Code != code {
			out = append(out, Row{Level: level, Code: code, Name: cv.plan.Name(code)})
		}
		out[len(out)-1].merge(c)
	}
	return out
}

// Sum totals rows into one row named name.
func Sum(rows []Row, name string) Row {
	t := Row{Name: name}
	for _, r := range rows {
		t.merge(r)
	}
	return t
}

// Plan returns the plan the coverage was computed from.
func (cv *Coverage) Plan() *Plan { return cv.plan }
