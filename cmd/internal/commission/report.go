package commission

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kioskedge/kioskedge/drivers/escpos"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// RecordKind is the kind of the record a report is sent to the hub as
// (class critical; firmware-specs/commissioning-report.md §4).
const RecordKind = "commissioning.report"

// RecordClass is the report record's eviction class.
const RecordClass = wire.ClassCritical

// Errors of the package.
var (
	// ErrUnknown: no device, OSDP reader, door or Wiegand reader has that
	// name in the config.
	ErrUnknown = errors.New("commission: no such device in the config")
	// ErrBusy: the device's port or line is held by another process,
	// normally the running kioskd.
	ErrBusy = errors.New("busy: kioskd is running; stop it (systemctl stop kioskd) to test devices")
)

// Check is one result (firmware-specs/commissioning-report.md §2).
type Check struct {
	Name   string `json:"name"`             // "device:printer", "clock", "hub", …
	OK     bool   `json:"ok"`               // passed
	Detail string `json:"detail"`           // what was seen, on success and failure
	Reason string `json:"reason,omitempty"` // why it failed and what to do; empty when OK
}

func pass(name, format string, args ...any) Check {
	return Check{Name: name, OK: true, Detail: fmt.Sprintf(format, args...)}
}

func failed(name, detail, reason string) Check {
	return Check{Name: name, Detail: detail, Reason: reason}
}

// Summary counts a report's checks.
type Summary struct {
	OK     bool `json:"ok"` // every check passed
	Passed int  `json:"passed"`
	Failed int  `json:"failed"`
}

// Report is a commissioning report (firmware-specs/commissioning-report.md §2).
type Report struct {
	Agent   string    `json:"agent"`
	Site    string    `json:"site,omitempty"`
	Region  string    `json:"region,omitempty"`
	Time    time.Time `json:"time"`
	Version string    `json:"version"`
	Checks  []Check   `json:"checks"`
	Summary Summary   `json:"summary"`
}

// Summarize sets r.Summary from r.Checks and returns it.
func (r *Report) Summarize() Summary {
	s := Summary{}
	for _, c := range r.Checks {
		if c.OK {
			s.Passed++
		} else {
			s.Failed++
		}
	}
	s.OK = s.Failed == 0
	r.Summary = s
	return s
}

// Text renders the report for a person: a header, one line per check, the
// reason under each failure, and the summary.
func (r Report) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "KioskEdge commissioning report\n")
	fmt.Fprintf(&b, "agent    %s\n", r.Agent)
	if r.Site != "" {
		fmt.Fprintf(&b, "site     %s\n", r.Site)
	}
	if r.Region != "" {
		fmt.Fprintf(&b, "region   %s\n", r.Region)
	}
	fmt.Fprintf(&b, "time     %s\n", r.Time.Format(time.RFC3339))
	fmt.Fprintf(&b, "version  %s\n\n", r.Version)
	w := 0
	for _, c := range r.Checks {
		w = max(w, len(c.Name))
	}
	for _, c := range r.Checks {
		res := "PASS"
		if !c.OK {
			res = "FAIL"
		}
		fmt.Fprintf(&b, "%s  %-*s  %s\n", res, w, c.Name, c.Detail)
		if !c.OK && c.Reason != "" {
			fmt.Fprintf(&b, "      %-*s  → %s\n", w, "", c.Reason)
		}
	}
	fmt.Fprintf(&b, "\n%s\n", r.Summary.line())
	return b.String()
}

func (s Summary) line() string {
	if s.OK {
		return fmt.Sprintf("all %d checks passed", s.Passed)
	}
	return fmt.Sprintf("%d of %d checks failed", s.Failed, s.Passed+s.Failed)
}

// Receipt is the report's short form for the receipt printer: identity,
// one line per check, failures with their reason, the summary.
func (r Report) Receipt() escpos.Receipt {
	lines := []escpos.Line{
		{Text: "agent " + r.Agent},
		{Text: r.Time.Format("2006-01-02 15:04:05 -0700")},
	}
	if r.Site != "" {
		lines = append(lines, escpos.Line{Text: r.Site})
	}
	for _, c := range r.Checks {
		if c.OK {
			lines = append(lines, escpos.Line{Text: "ok   " + c.Name})
			continue
		}
		lines = append(lines, escpos.Line{Text: "FAIL " + c.Name, Bold: true})
		if c.Reason != "" {
			lines = append(lines, escpos.Line{Text: "     " + c.Reason})
		}
	}
	lines = append(lines, escpos.Line{Text: r.Summary.line(), Bold: true})
	return escpos.Receipt{Title: "Commissioning report", Lines: lines, Cut: escpos.PartialCut}
}

// Save writes the report as <dir>/report-<UTC time to the millisecond>.json
// and .txt (report-20261128T201503.123Z.json) and
// returns the two paths. It creates dir (mode 0700) if needed. Errors are
// the file system's.
func Save(dir string, r Report) (jsonPath, textPath string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("commission: %w", err)
	}
	base := filepath.Join(dir, "report-"+r.Time.UTC().Format("20060102T150405.000Z"))
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", "", fmt.Errorf("commission: %w", err)
	}
	jsonPath, textPath = base+".json", base+".txt"
	if err := os.WriteFile(jsonPath, append(b, '\n'), 0o600); err != nil {
		return "", "", fmt.Errorf("commission: %w", err)
	}
	if err := os.WriteFile(textPath, []byte(r.Text()), 0o600); err != nil {
		return "", "", fmt.Errorf("commission: %w", err)
	}
	return jsonPath, textPath, nil
}

// Record returns the report as the record sent to the hub.
func (r Report) Record() (wire.Record, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return wire.Record{}, fmt.Errorf("commission: %w", err)
	}
	return wire.Record{Kind: RecordKind, Class: RecordClass, Time: r.Time, Body: b}, nil
}
