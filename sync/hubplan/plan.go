package hubplan

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kioskedge/kioskedge/sync/internal/atomicfile"
)

var (
	// ErrInvalid is returned (wrapped in a *ParseError) for a plan CSV that
	// breaks firmware-specs/rollout-plan.md §2.
	ErrInvalid = errors.New("hubplan: invalid plan")
	// ErrNoPlan is returned by Load when the directory holds no plan.
	ErrNoPlan = errors.New("hubplan: no plan imported")
	// ErrCorrupt is returned by Load for a stored plan it cannot read.
	ErrCorrupt = errors.New("hubplan: corrupt stored plan")
)

// Area says whether a community is urban (社区) or rural (行政村).
type Area string

// Areas of a community.
const (
	Urban Area = "urban"
	Rural Area = "rural"
)

// Community is one planned community or village (a 12-digit region).
type Community struct {
	Code          string `json:"code"` // 12 digits
	Name          string `json:"name"`
	Area          Area   `json:"area"`
	PlannedKiosks int    `json:"planned_kiosks"`
	PlannedGates  int    `json:"planned_gates"`
}

// Plan is an imported roll-out plan.
type Plan struct {
	// Communities, sorted by code, codes unique.
	Communities []Community `json:"communities"`
	// Names of upper-level regions (4, 6 or 9 digits) from the CSV's
	// optional name columns; a region without one is shown by its code.
	Names map[string]string `json:"names,omitempty"`
	// Source is the imported file's base name; Imported when it was
	// imported.
	Source   string    `json:"source,omitempty"`
	Imported time.Time `json:"imported"`
}

// Name returns the display name of region code: a community's name, an
// upper level's name from the plan, or "" when the plan has none.
func (p *Plan) Name(code string) string {
	if len(code) == 12 {
		if i, ok := slices.BinarySearchFunc(p.Communities, code, func(c Community, code string) int {
			return strings.Compare(c.Code, code)
		}); ok {
			return p.Communities[i].Name
		}
		return ""
	}
	return p.Names[code]
}

// ParseError locates a problem in a plan CSV. Line and Column are 1-based;
// Column 0 means the whole line.
type ParseError struct {
	File         string
	Line, Column int
	Msg          string
}

func (e *ParseError) Error() string {
	if e.Column > 0 {
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *ParseError) Unwrap() error { return ErrInvalid }

// CSV column names (firmware-specs/rollout-plan.md §2).
const (
	colCode     = "region_code"
	colName     = "community"
	colArea     = "area"
	colKiosks   = "planned_kiosks"
	colGates    = "planned_gates"
	colTownship = "township_name"
	colCounty   = "county_name"
	colCity     = "city_name"
)

var required = []string{colCode, colName, colArea, colKiosks, colGates}

// maxCount bounds planned counts, so a typo (an extra zero or three) is
// caught at import rather than on a chart.
const maxCount = 1000

// ParseCSV reads a plan CSV (firmware-specs/rollout-plan.md §2): a header
// row naming at least the required columns, then one row per community.
// file names the input in errors. It returns the plan sorted by code, or
// the first problem as a *ParseError (wrapping ErrInvalid) naming file,
// line and column: a missing or repeated header column, a code that is
// not 12 digits, an empty name, an area other than urban/rural, a count
// that is not an integer in [0, 1000], a repeated community code, or two
// rows giving one upper-level region different names.
func ParseCSV(r io.Reader, file string) (*Plan, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	perr := func(line, col int, format string, a ...any) error {
		return &ParseError{File: file, Line: line, Column: col, Msg: fmt.Sprintf(format, a...)}
	}
	header, err := cr.Read()
	if err == io.EOF {
		return nil, perr(1, 0, "empty file: a header row is required")
	}
	if err != nil {
		return nil, csvErr(file, err)
	}
	cols := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if _, dup := cols[h]; dup {
			return nil, perr(1, i+1, "column %q repeated", h)
		}
		cols[h] = i
	}
	for _, c := range required {
		if _, ok := cols[c]; !ok {
			return nil, perr(1, 0, "header lacks column %q (required: %s)", c, strings.Join(required, ","))
		}
	}
	p := &Plan{Names: map[string]string{}, Source: filepath.Base(file)}
	seen := map[string]int{}     // community code → line
	nameLine := map[string]int{} // upper code → line that named it
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvErr(file, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // a blank line
		}
		if len(rec) != len(header) {
			return nil, perr(line, 0, "%d fields, the header has %d", len(rec), len(header))
		}
		field := func(name string) (string, int) {
			i := cols[name]
			return strings.TrimSpace(rec[i]), i + 1
		}
		var c Community
		code, col := field(colCode)
		if !isCode(code, 12) {
			return nil, perr(line, col, "region_code %q: want 12 digits (GB/T 2260 community or village)", code)
		}
		if prev, dup := seen[code]; dup {
			return nil, perr(line, col, "region_code %s repeated (first on line %d)", code, prev)
		}
		seen[code] = line
		c.Code = code
		name, col := field(colName)
		if name == "" {
			return nil, perr(line, col, "community name is empty")
		}
		c.Name = name
		area, col := field(colArea)
		switch Area(strings.ToLower(area)) {
		case Urban:
			c.Area = Urban
		case Rural:
			c.Area = Rural
		default:
			return nil, perr(line, col, "area %q: want urban or rural", area)
		}
		for _, n := range []struct {
			col string
			dst *int
		}{{colKiosks, &c.PlannedKiosks}, {colGates, &c.PlannedGates}} {
			s, col := field(n.col)
			v, err := strconv.Atoi(s)
			if err != nil || v < 0 || v > maxCount {
				return nil, perr(line, col, "%s %q: want an integer from 0 to %d", n.col, s, maxCount)
			}
			*n.dst = v
		}
		for _, u := range []struct {
			col string
			n   int
		}{{colTownship, 9}, {colCounty, 6}, {colCity, 4}} {
			if _, ok := cols[u.col]; !ok {
				continue
			}
			s, col := field(u.col)
			if s == "" {
				continue
			}
			parent := code[:u.n]
			if prev, ok := p.Names[parent]; ok && prev != s {
				return nil, perr(line, col, "%s %q for %s differs from %q on line %d", u.col, s, parent, prev, nameLine[parent])
			}
			if _, ok := p.Names[parent]; !ok {
				p.Names[parent], nameLine[parent] = s, line
			}
		}
		p.Communities = append(p.Communities, c)
	}
	if len(p.Communities) == 0 {
		return nil, perr(1, 0, "no communities: the plan is empty")
	}
	slices.SortFunc(p.Communities, func(a, b Community) int { return strings.Compare(a.Code, b.Code) })
	return p, nil
}

func csvErr(file string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &ParseError{File: file, Line: pe.Line, Column: pe.Column, Msg: pe.Err.Error()}
	}
	return fmt.Errorf("hubplan: read %s: %w", file, err)
}

// isCode reports whether s is n ASCII digits.
func isCode(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// PlanFile is the plan's file name inside its directory.
const PlanFile = "plan.json"

// storedVersion is the stored file's format version.
const storedVersion = 1

type stored struct {
	Version int `json:"version"`
	*Plan
}

// Save stores p in dir (created if missing) as PlanFile, atomically: it
// writes a temporary file, syncs it, renames it over the old plan and
// syncs the directory, so a crash leaves the old plan or the new one. It
// returns the first file-system error.
func Save(dir string, p *Plan) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("hubplan: %w", err)
	}
	raw, err := json.MarshalIndent(stored{Version: storedVersion, Plan: p}, "", " ")
	if err != nil {
		return fmt.Errorf("hubplan: %w", err)
	}
	if err := atomicfile.Replace(filepath.Join(dir, PlanFile), append(raw, '\n'), 0o600); err != nil {
		return fmt.Errorf("hubplan: %w", err)
	}
	return nil
}

// Load reads the plan stored in dir. It returns ErrNoPlan when dir holds
// none, ErrCorrupt (wrapped) when the file does not decode or breaks the
// plan's invariants, or the file-system error.
func Load(dir string) (*Plan, error) {
	raw, err := os.ReadFile(filepath.Join(dir, PlanFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoPlan
	}
	if err != nil {
		return nil, fmt.Errorf("hubplan: %w", err)
	}
	return decodeStored(raw)
}

func decodeStored(raw []byte) (*Plan, error) {
	st := stored{Plan: &Plan{}}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if st.Version != storedVersion {
		return nil, fmt.Errorf("%w: version %d", ErrCorrupt, st.Version)
	}
	p := st.Plan
	for i, c := range p.Communities {
		if !isCode(c.Code, 12) || (c.Area != Urban && c.Area != Rural) || c.PlannedKiosks < 0 || c.PlannedGates < 0 {
			return nil, fmt.Errorf("%w: community %d", ErrCorrupt, i)
		}
		if i > 0 && p.Communities[i-1].Code >= c.Code {
			return nil, fmt.Errorf("%w: communities not sorted or repeated at %d", ErrCorrupt, i)
		}
	}
	return p, nil
}
