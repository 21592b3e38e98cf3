package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kioskedge/kioskedge/agent/allowlist"
	"github.com/kioskedge/kioskedge/agent/privacy"
	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/drivers/wiegand"
	"github.com/kioskedge/kioskedge/sync/hub/hubrun"
	"github.com/kioskedge/kioskedge/sync/hubal"
	"github.com/kioskedge/kioskedge/sync/uplink"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// allowlistCmd runs "hubd allowlist push|show" (firmware-specs/hub-allowlist.md §7).
func allowlistCmd(args []string, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("allowlist: want a subcommand: push or show")
	}
	switch args[0] {
	case "push":
		return allowlistPush(args[1:], stderr)
	case "show":
		return allowlistShow(args[1:], stderr)
	}
	return fmt.Errorf("allowlist: unknown subcommand %q (push, show)", args[0])
}

type agentList []string

func (a *agentList) String() string { return strings.Join(*a, ",") }
func (a *agentList) Set(s string) error {
	if err := wire.ValidateID("agent", s); err != nil {
		return err
	}
	*a = append(*a, s)
	return nil
}

type groupList []string

func (g *groupList) String() string { return strings.Join(*g, ",") }
func (g *groupList) Set(s string) error {
	if err := wire.ValidateID("group", s); err != nil {
		return err
	}
	*g = append(*g, s)
	return nil
}

func allowlistPush(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("hubd allowlist push", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		csvPath   = fs.String("csv", "", "the list: CSV with a header row (firmware-specs/hub-allowlist.md §7); required")
		schedPath = fs.String("schedules", "", "schedules CSV (id,windows,holidays); needed when entries name schedules")
		keyPath   = fs.String("site-key", "", "the site key file (64 hex digits) the agents hash credentials with; required")
		dirPath   = fs.String("dir", "", "the list directory (hubd -allowlist-dir); required")
		tz        = fs.String("tz", "Local", "time zone of date-only valid_from/valid_to, e.g. Asia/Shanghai")
		version   = fs.Uint64("version", 0, "version to publish; 0 means the latest + 1")
		perChunk  = fs.Int("per-chunk", 10000, "records per snapshot chunk")
		keep      = fs.Int("keep", 0, "after publishing, keep only this many newest versions; 0 keeps all")
		broker    = fs.String("broker", "", "if set, publish the new version now to each -agent through this broker")
		root      = fs.String("root", "kioskedge", "topic root")
		clientID  = fs.String("client-id", "kioskedge-hubd-allowlist", "MQTT client id for -broker")
		tlsCA     = fs.String("tls-ca", "", "CA certificate (PEM) of the broker")
		tlsCert   = fs.String("tls-cert", "", "client certificate (PEM)")
		tlsKey    = fs.String("tls-key", "", "client key (PEM)")
		plaintext = fs.Bool("plaintext", false, "allow a plaintext tcp:// broker (lab only)")
		timeout   = fs.Duration("timeout", 30*time.Second, "how long to try publishing with -broker")
		agents    agentList
		groups    groupList
	)
	fs.Var(&agents, "agent", "agent id to publish to now (repeatable; needs -broker)")
	fs.Var(&groups, "group", "group to publish to now on its group topic (repeatable; needs -broker)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() != 0:
		return fmt.Errorf("allowlist push: unexpected arguments %q", fs.Args())
	case *csvPath == "" || *keyPath == "" || *dirPath == "":
		return errors.New("allowlist push: -csv, -site-key and -dir are required")
	case len(agents)+len(groups) > 0 && *broker == "":
		return errors.New("allowlist push: -agent and -group need -broker")
	case *perChunk < 1:
		return errors.New("allowlist push: -per-chunk must be at least 1")
	}
	loc, err := time.LoadLocation(*tz)
	if err != nil {
		return fmt.Errorf("allowlist push: -tz: %w", err)
	}
	siteKey, err := privacy.LoadSiteKey(*keyPath)
	if err != nil {
		return fmt.Errorf("allowlist push: -site-key: %w", err)
	}
	var schedules []allowlist.Schedule
	if *schedPath != "" {
		if schedules, err = readSchedulesFile(*schedPath); err != nil {
			return err
		}
	}
	f, err := os.Open(*csvPath)
	if err != nil {
		return fmt.Errorf("allowlist push: %w", err)
	}
	entries, err := parseEntries(f, *csvPath, siteKey, loc, schedules)
	// A read-only file's close error changes nothing.
	_ = f.Close()
	if err != nil {
		return err
	}
	dir, err := hubal.Open(*dirPath)
	if err != nil {
		return err
	}
	info, err := publishList(dir, *version, entries, schedules, *perChunk)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "published allowlist version %d: %d entries, %d schedules, %d chunks, %d bytes",
		info.Version, info.Entries, info.Schedules, info.Chunks, info.Bytes)
	if info.HasDelta() {
		fmt.Fprintf(stderr, "; delta from %d: %d upserts, %d deletes, %d bytes", info.DeltaFrom, info.Upserts, info.Deletes, info.DeltaBytes)
	}
	fmt.Fprintln(stderr)
	if *keep > 0 {
		if err := dir.Prune(*keep); err != nil {
			return err
		}
	}
	if *broker == "" || len(agents)+len(groups) == 0 {
		return nil
	}
	opts := uplink.SessionOptions{Broker: *broker, ClientID: *clientID, AllowPlaintext: *plaintext}
	if *tlsCert != "" || *tlsKey != "" || *tlsCA != "" {
		opts.TLS = &uplink.TLSFiles{CAFile: *tlsCA, CertFile: *tlsCert, KeyFile: *tlsKey}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var topics []string
	for _, a := range agents {
		topics = append(topics, wire.Topics{Root: *root, Agent: a}.Allowlist())
	}
	for _, g := range groups {
		topics = append(topics, wire.GroupAllowlistTopic(*root, g))
	}
	return pushNow(ctx, opts, dir, info, topics, stderr)
}

// publishList encodes entries and schedules as the next version, with the
// delta from the latest when its schedules are the same, and publishes it.
func publishList(dir *hubal.Dir, version uint64, entries []allowlist.Entry, schedules []allowlist.Schedule, perChunk int) (hubal.Info, error) {
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
	upsert := func(e *allowlist.Entry) error {
		v, err := allowlist.AppendEntryValue(nil, e)
		if err != nil {
			return err
		}
		d.Upserts = append(d.Upserts, wire.DeltaUpsert{Key: wire.DeltaKey(e.Key), Value: v})
		return nil
	}
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
			if err := upsert(&entries[j]); err != nil {
				return nil, err
			}
			j++
		default:
			a, err1 := allowlist.AppendEntryValue(nil, &old[i])
			b, err2 := allowlist.AppendEntryValue(nil, &entries[j])
			if err := errors.Join(err1, err2); err != nil {
				return nil, err
			}
			if !bytes.Equal(a, b) {
				if err := upsert(&entries[j]); err != nil {
					return nil, err
				}
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

// pushNow publishes version info's delta (or, without one, its snapshot)
// to each agent.
func pushNow(ctx context.Context, opts uplink.SessionOptions, dir *hubal.Dir, info hubal.Info, topics []string, stderr io.Writer) error {
	msgs, err := dir.Snapshot(info.Version)
	if err != nil {
		return err
	}
	what := "snapshot"
	if m, _, ok, err := dir.Delta(info.Version); err != nil {
		return err
	} else if ok {
		msgs, what = [][]byte{m}, "delta"
	}
	connected := make(chan struct{})
	opts.OnConnect = func(context.Context, *uplink.Session) {
		select {
		case <-connected:
		default:
			close(connected)
		}
	}
	s, err := uplink.NewSession(opts)
	if err != nil {
		return fmt.Errorf("allowlist push: %w", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	defer func() {
		// Closing after the publishes were acknowledged; nothing is lost.
		_ = s.Close(nil)
		stop()
		<-done
	}()
	select {
	case <-connected:
	case <-ctx.Done():
		return fmt.Errorf("allowlist push: broker not reached: %w", ctx.Err())
	}
	tr := hubrun.Adapt(s)
	for _, topic := range topics {
		if err := hubal.Send(ctx, tr, topic, msgs); err != nil {
			return fmt.Errorf("allowlist push: publishing on %s: %w", topic, err)
		}
		fmt.Fprintf(stderr, "sent version %d %s on %s\n", info.Version, what, topic)
	}
	return nil
}

func allowlistShow(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("hubd allowlist show", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dirPath := fs.String("dir", "", "the list directory; required")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *dirPath == "" {
		return errors.New("allowlist show: -dir is required, nothing else")
	}
	if _, err := os.Stat(*dirPath); err != nil {
		return fmt.Errorf("allowlist show: %w", err)
	}
	dir, err := hubal.Open(*dirPath)
	if err != nil {
		return err
	}
	vs, err := dir.List()
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%-8s %10s %9s %7s %12s  %-28s %s\n", "version", "entries", "schedules", "chunks", "bytes", "delta", "published")
	for _, v := range vs {
		info, err := dir.Info(v)
		if err != nil {
			fmt.Fprintf(stderr, "%-8d unreadable: %v\n", v, err)
			continue
		}
		delta := "-"
		if info.HasDelta() {
			delta = fmt.Sprintf("from %d: +%d -%d, %dB", info.DeltaFrom, info.Upserts, info.Deletes, info.DeltaBytes)
		}
		fmt.Fprintf(stderr, "%-8d %10d %9d %7d %12d  %-28s %s\n", v, info.Entries, info.Schedules, info.Chunks, info.Bytes, delta,
			info.Published.Format(time.RFC3339))
	}
	if len(vs) == 0 {
		fmt.Fprintln(stderr, "(no versions)")
	}
	return nil
}

// csvError names the file, line and column of a bad CSV field; it never
// holds a raw credential number.
func csvError(file string, line int, col, msg string) error {
	return fmt.Errorf("allowlist: %s line %d column %s: %s", file, line, col, msg)
}

var entryColumns = []string{"credential", "valid_from", "valid_to", "groups", "schedule", "staff", "apb"}

// parseEntries reads the entries CSV and returns the entries sorted by key.
func parseEntries(r io.Reader, file string, siteKey []byte, loc *time.Location, schedules []allowlist.Schedule) ([]allowlist.Entry, error) {
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
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, csvError(file, pe.Line, strconv.Itoa(pe.Column), pe.Err.Error())
			}
			return nil, fmt.Errorf("allowlist: %s: %w", file, err)
		}
		line, _ := cr.FieldPos(0)
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

func readSchedulesFile(path string) ([]allowlist.Schedule, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("allowlist push: %w", err)
	}
	defer f.Close()
	return parseSchedules(f, path)
}

// parseSchedules reads the schedules CSV: id, windows, holidays.
func parseSchedules(r io.Reader, file string) ([]allowlist.Schedule, error) {
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
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, csvError(file, pe.Line, strconv.Itoa(pe.Column), pe.Err.Error())
			}
			return nil, fmt.Errorf("allowlist: %s: %w", file, err)
		}
		line, _ := cr.FieldPos(0)
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
