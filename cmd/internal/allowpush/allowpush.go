package allowpush

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kioskedge/kioskedge/agent/allowlist"
	"github.com/kioskedge/kioskedge/agent/privacy"
	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/drivers/wiegand"
	"github.com/kioskedge/kioskedge/sync/hubal"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// Publish encodes entries and schedules as the next version, with the
// delta from the latest when its schedules are the same, and publishes it.
func Publish(dir *hubal.Dir, version uint64, entries []allowlist.Entry, schedules []allowlist.Schedule, perChunk int) (hubal.Info, error) {
	latest, err := dir.Latest()
	if err != nil {
		return hubal.Info{}, err
	}
	if version == 0 {
		version = latest + 1
	}
	if version <= latest {
		return hubal.Info{}, fmt.Errorf("allowlist push: -version %d is not above the latest, %d", version, latest)
	}
	chunks, err := allowlist.EncodeSnapshot(entries, schedules, perChunk)
	if err != nil {
		return hubal.Info{}, fmt.Errorf("allowlist push: %w", err)
	}
	p := hubal.Publication{Version: version, Chunks: chunks, Entries: uint64(len(entries)), Schedules: uint64(len(schedules))}
	if latest > 0 {
		if p.Delta, err = deltaFrom(dir, latest, version, entries, schedules); err != nil {
			return hubal.Info{}, err
		}
	}
	return dir.Publish(p)
}

// deltaFrom returns the delta from version from (read back from dir) to
// entries, or nil when the schedules changed (they change only by
// snapshot) or the delta does not fit one message.
func deltaFrom(dir *hubal.Dir, from, to uint64, entries []allowlist.Entry, schedules []allowlist.Schedule) (*wire.Delta, error) {
	chunks, err := dir.Chunks(from)
	if err != nil {
		return nil, err
	}
	var old []allowlist.Entry
	oldSched := map[uint32][]byte{}
	for _, c := range chunks {
		dc, err := allowlist.DecodeChunk(c)
		if err != nil {
			return nil, fmt.Errorf("allowlist push: version %d: %w", from, err)
		}
		old = append(old, dc.Entries...)
		for i := range dc.Schedules {
			b, err := allowlist.AppendSchedule(nil, &dc.Schedules[i])
			if err != nil {
				return nil, err
			}
			oldSched[dc.Schedules[i].ID] = b
		}
	}
	if len(oldSched) != len(schedules) {
		return nil, nil
	}
	for i := range schedules {
		b, err := allowlist.AppendSchedule(nil, &schedules[i])
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(oldSched[schedules[i].ID], b) {
			return nil, nil
		}
	}
	d := &wire.Delta{From: from, To: to}
	// Both lists are in ascending key order: merge.
	i, j := 0, 0
	for i < len(old) || j < len(entries) {
		var c int
		switch {
		case i == len(old):
			c = 1
		case j == len(entries):
			c = -1
		default:
			c = bytes.Compare(old[i].Key[:], entries[j].Key[:])
		}
		switch {
		case c < 0:
			d.Deletes = append(d.Deletes, wire.DeltaKey(old[i].Key))
			i++
		case c > 0:
			v, err := allowlist.AppendEntryValue(nil, &entries[j])
			if err != nil {
				return nil, err
			}
			d.Upserts = append(d.Upserts, wire.DeltaUpsert{Key: wire.DeltaKey(entries[j].Key), Value: v})
			j++
		default:
			a, err1 := allowlist.AppendEntryValue(nil, &old[i])
			b, err2 := allowlist.AppendEntryValue(nil, &entries[j])
			if err := errors.Join(err1, err2); err != nil {
				return nil, err
			}
			if !bytes.Equal(a, b) {
				d.Upserts = append(d.Upserts, wire.DeltaUpsert{Key: wire.DeltaKey(entries[j].Key), Value: b})
			}
			i++
			j++
		}
	}
	if _, err := wire.AppendDeltaMessage(nil, d); err != nil {
		return nil, nil // too big for one message: agents take the snapshot
	}
	return d, nil
}

// Messages returns what to push to online agents for version info: its
// delta when it has one, else its snapshot's chunk messages; what is
// "delta" or "snapshot".
func Messages(dir *hubal.Dir, info hubal.Info) (msgs [][]byte, what string, err error) {
	if m, _, ok, err := dir.Delta(info.Version); err != nil {
		return nil, "", err
	} else if ok {
		return [][]byte{m}, "delta", nil
	}
	msgs, err = dir.Snapshot(info.Version)
	if err != nil {
		return nil, "", err
	}
	return msgs, "snapshot", nil
}

// nextRecord reads the next CSV record and its line; io.EOF at the end, or
// an error naming the file, line and column.
func nextRecord(cr *csv.Reader, file string) (rec []string, line int, err error) {
	rec, err = cr.Read()
	if err == io.EOF {
		return nil, 0, err
	}
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, 0, csvError(file, pe.Line, strconv.Itoa(pe.Column), pe.Err.Error())
		}
		return nil, 0, fmt.Errorf("allowlist: %s: %w", file, err)
	}
	line, _ = cr.FieldPos(0)
	return rec, line, nil
}

// csvError names the file, line and column of a bad CSV field; it never
// holds a raw credential number.
func csvError(file string, line int, col, msg string) error {
	return fmt.Errorf("allowlist: %s line %d column %s: %s", file, line, col, msg)
}

var entryColumns = []string{"credential", "valid_from", "valid_to", "groups", "schedule", "staff", "apb"}

// ParseEntries reads the entries CSV and returns the entries sorted by key.
func ParseEntries(r io.Reader, file string, siteKey []byte, loc *time.Location, schedules []allowlist.Schedule) ([]allowlist.Entry, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("allowlist: %s: reading the header: %w", file, err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		if !slices.Contains(entryColumns, h) {
			return nil, csvError(file, 1, strconv.Itoa(i+1), fmt.Sprintf("unknown column %q (known: %s)", h, strings.Join(entryColumns, ", ")))
		}
		if _, dup := col[h]; dup {
			return nil, csvError(file, 1, h, "column given twice")
		}
		col[h] = i
	}
	if _, ok := col["credential"]; !ok {
		return nil, fmt.Errorf("allowlist: %s: no credential column", file)
	}
	known := map[uint32]bool{}
	for _, s := range schedules {
		known[s.ID] = true
	}
	seen := map[allowlist.Key]int{}
	var out []allowlist.Entry
	for {
		rec, line, err := nextRecord(cr, file)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(rec) != len(header) {
			return nil, csvError(file, line, "-", fmt.Sprintf("%d fields, the header has %d", len(rec), len(header)))
		}
		field := func(name string) string {
			if i, ok := col[name]; ok {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		e, ferr := parseEntry(field, siteKey, loc, known)
		if ferr != nil {
			return nil, csvError(file, line, ferr.col, ferr.msg)
		}
		if prev, dup := seen[e.Key]; dup {
			return nil, csvError(file, line, "credential", fmt.Sprintf("same credential as line %d", prev))
		}
		seen[e.Key] = line
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b allowlist.Entry) int { return bytes.Compare(a.Key[:], b.Key[:]) })
	return out, nil
}

type fieldError struct{ col, msg string }

// singleEncoding gives the encoding of kinds whose credentials have only
// one, so "idcard:<number>" may omit it.
var singleEncoding = map[credential.Kind]string{
	credential.IDCard: "",
	credential.SSCard: "ssn",
	credential.QR:     "",
}

var kinds = []credential.Kind{credential.Wiegand, credential.OSDP, credential.Keypad, credential.IDCard, credential.SSCard, credential.QR}

// parseCredential parses "kind:encoding:number" (the agent's normalised
// form) or, for kinds with one encoding, "kind:number".
func parseCredential(s string) (credential.Credential, *fieldError) {
	bad := func(msg string) (credential.Credential, *fieldError) {
		return credential.Credential{}, &fieldError{"credential", msg}
	}
	parts := strings.SplitN(s, ":", 3)
	kind := credential.Kind(strings.ToLower(parts[0]))
	if !slices.Contains(kinds, kind) {
		return bad(fmt.Sprintf("unknown kind %q, want one of %v", credential.Mask(parts[0]), kinds))
	}
	var c credential.Credential
	switch len(parts) {
	case 1:
		return bad("want kind:encoding:number")
	case 2:
		enc, ok := singleEncoding[kind]
		if !ok {
			return bad(fmt.Sprintf("%s needs kind:encoding:number", kind))
		}
		c = credential.Credential{Kind: kind, Encoding: enc, Number: parts[1]}
	default:
		c = credential.Credential{Kind: kind, Encoding: parts[1], Number: parts[2]}
	}
	if strings.TrimSpace(c.Number) == "" {
		return bad("empty number")
	}
	if c.Kind == credential.Wiegand {
		n, err := wiegand.CanonicalNumber(c.Encoding, c.Number)
		if err != nil {
			return bad(strings.TrimPrefix(err.Error(), wiegand.ErrConfig.Error()+": "))
		}
		c.Number = n
	}
	return c, nil
}

func parseEntry(field func(string) string, siteKey []byte, loc *time.Location, schedules map[uint32]bool) (allowlist.Entry, *fieldError) {
	var e allowlist.Entry
	c, ferr := parseCredential(field("credential"))
	if ferr != nil {
		return e, ferr
	}
	k, err := allowlist.ParseKey(privacy.KeyedHash(siteKey, c))
	if err != nil {
		return e, &fieldError{"credential", err.Error()}
	}
	e.Key = k
	if e.ValidFrom, err = parseTime(field("valid_from"), loc, false); err != nil {
		return e, &fieldError{"valid_from", err.Error()}
	}
	if e.ValidTo, err = parseTime(field("valid_to"), loc, true); err != nil {
		return e, &fieldError{"valid_to", err.Error()}
	}
	if !e.ValidFrom.IsZero() && !e.ValidTo.IsZero() && !e.ValidTo.After(e.ValidFrom) {
		return e, &fieldError{"valid_to", "not after valid_from"}
	}
	if g := field("groups"); g != "" {
		for _, s := range strings.Split(g, ";") {
			name := strings.TrimSpace(s)
			if name == "" {
				return e, &fieldError{"groups", "empty group name"}
			}
			e.DoorGroups = append(e.DoorGroups, allowlist.GroupID(name))
		}
		slices.Sort(e.DoorGroups)
		e.DoorGroups = slices.Compact(e.DoorGroups)
		if len(e.DoorGroups) > allowlist.MaxDoorGroups {
			return e, &fieldError{"groups", fmt.Sprintf("more than %d groups", allowlist.MaxDoorGroups)}
		}
	}
	if s := field("schedule"); s != "" {
		if e.Schedule, err = parseUint32(s); err != nil {
			return e, &fieldError{"schedule", err.Error()}
		}
		if e.Schedule != 0 && !schedules[e.Schedule] {
			return e, &fieldError{"schedule", fmt.Sprintf("schedule %d is not defined (-schedules)", e.Schedule)}
		}
	}
	switch strings.ToLower(field("staff")) {
	case "", "0", "false", "no", "n":
	case "1", "true", "yes", "y":
		e.Staff = true
	default:
		return e, &fieldError{"staff", "want yes or no"}
	}
	if s := strings.TrimSpace(field("apb")); s != "" {
		e.AntiPassback = allowlist.GroupID(s)
	}
	return e, nil
}

func parseUint32(s string) (uint32, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number from 0 to 4294967295", s)
	}
	return uint32(n), nil
}

// parseTime parses "" (unbounded), RFC 3339, or a date in loc: the start
// of the day, or for an end (end true) its last second.
func parseTime(s string, loc *time.Location, end bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	t, err := time.ParseInLocation(time.DateOnly, s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither YYYY-MM-DD nor RFC 3339", s)
	}
	if end {
		t = t.AddDate(0, 0, 1).Add(-time.Second)
	}
	return t, nil
}

// ParseSchedules reads the schedules CSV: id, windows, holidays.
func ParseSchedules(r io.Reader, file string) ([]allowlist.Schedule, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("allowlist: %s: reading the header: %w", file, err)
	}
	want := []string{"id", "windows", "holidays"}
	for i := range header {
		header[i] = strings.ToLower(strings.TrimSpace(header[i]))
	}
	if !slices.Equal(header, want) {
		return nil, csvError(file, 1, "-", fmt.Sprintf("header %q, want %q", header, want))
	}
	var out []allowlist.Schedule
	seen := map[uint32]int{}
	for {
		rec, line, err := nextRecord(cr, file)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		var s allowlist.Schedule
		if s.ID, err = parseUint32(rec[0]); err != nil || s.ID == 0 {
			return nil, csvError(file, line, "id", "want a number from 1")
		}
		if prev, dup := seen[s.ID]; dup {
			return nil, csvError(file, line, "id", fmt.Sprintf("schedule %d also on line %d", s.ID, prev))
		}
		seen[s.ID] = line
		if s.Windows, err = parseWindows(rec[1]); err != nil {
			return nil, csvError(file, line, "windows", err.Error())
		}
		if h := strings.TrimSpace(rec[2]); h != "" {
			for _, d := range strings.Split(h, ";") {
				t, err := time.Parse(time.DateOnly, strings.TrimSpace(d))
				if err != nil {
					return nil, csvError(file, line, "holidays", fmt.Sprintf("%q is not YYYY-MM-DD", d))
				}
				s.Holidays = append(s.Holidays, allowlist.DateOf(t))
			}
			slices.Sort(s.Holidays)
			s.Holidays = slices.Compact(s.Holidays)
		}
		if _, err := allowlist.AppendSchedule(nil, &s); err != nil {
			return nil, csvError(file, line, "windows", err.Error())
		}
		out = append(out, s)
	}
	return out, nil
}

var dayNames = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// parseWindows parses "Mon-Fri 07:00-22:00; Sat,Sun 09:00-12:00". A window
// ending at or before its start runs over midnight and becomes two.
func parseWindows(s string) ([]allowlist.Window, error) {
	var out []allowlist.Window
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		daysText, span, ok := strings.Cut(part, " ")
		if !ok {
			return nil, fmt.Errorf("window %q: want DAYS HH:MM-HH:MM", part)
		}
		days, err := parseDays(daysText)
		if err != nil {
			return nil, fmt.Errorf("window %q: %w", part, err)
		}
		fromText, toText, ok := strings.Cut(strings.TrimSpace(span), "-")
		if !ok {
			return nil, fmt.Errorf("window %q: want HH:MM-HH:MM", part)
		}
		from, err1 := allowlist.ParseTimeOfDay(strings.TrimSpace(fromText))
		to, err2 := allowlist.ParseTimeOfDay(strings.TrimSpace(toText))
		if err1 != nil || err2 != nil || from == 1440 {
			return nil, fmt.Errorf("window %q: times must be 00:00 to 24:00", part)
		}
		if from < to {
			out = append(out, allowlist.Window{Days: days, From: from, To: to})
			continue
		}
		// Over midnight: the rest of each day, then the start of the next.
		out = append(out, allowlist.Window{Days: days, From: from, To: 1440})
		if to > 0 {
			next := (days<<1 | days>>6) & allowlist.AllDays
			out = append(out, allowlist.Window{Days: next, From: 0, To: to})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no windows")
	}
	return out, nil
}

// parseDays parses "Mon-Fri", "Sat,Sun", "Mon,Wed-Fri" or "*" (every day).
func parseDays(s string) (allowlist.Days, error) {
	if s == "*" {
		return allowlist.AllDays, nil
	}
	var d allowlist.Days
	for _, item := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(strings.ToLower(strings.TrimSpace(item)), "-")
		from, ok1 := dayNames[a]
		to := from
		ok2 := true
		if isRange {
			to, ok2 = dayNames[b]
		}
		if !ok1 || !ok2 {
			return 0, fmt.Errorf("days %q: want Mon, Mon-Fri, Sat,Sun or *", s)
		}
		for w := from; ; w = (w + 1) % 7 {
			d |= 1 << uint(w)
			if w == to {
				break
			}
		}
	}
	return d, nil
}
