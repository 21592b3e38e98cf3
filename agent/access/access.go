package access

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kioskedge/kioskedge/agent/privacy"
	"github.com/kioskedge/kioskedge/drivers/credential"
)

// Code is the reason of a Decision. It is a stable string: records carry it
// to the hub and operators read it.
type Code string

// The reason codes. Only Granted and FreePassage come with Granted=true.
const (
	// Granted: every check passed.
	Granted Code = "granted"
	// FreePassage: the door is in free passage (emergency, fire); granted
	// without a lookup.
	FreePassage Code = "free_passage"
	// BadFrame: the reader reported a garbled read (parity, length,
	// noise); never granted, not even in free passage.
	BadFrame Code = "bad_frame"
	// UnknownDoor: the door id is not configured.
	UnknownDoor Code = "unknown_door"
	// LookupError: the allowlist failed; the engine fails closed.
	LookupError Code = "lookup_error"
	// Unknown: the credential is not on the allowlist.
	Unknown Code = "unknown"
	// LockedDown: the door is locked down and the entry is not staff.
	LockedDown Code = "locked_down"
	// NotYetValid: now is before the entry's ValidFrom.
	NotYetValid Code = "not_yet_valid"
	// Expired: now is after the entry's ValidTo.
	Expired Code = "expired"
	// WrongDoor: the entry shares no door group with the door.
	WrongDoor Code = "wrong_door"
	// UnknownSchedule: the entry names a schedule the allowlist lacks.
	UnknownSchedule Code = "unknown_schedule"
	// OutsideSchedule: now is in none of the schedule's weekly windows.
	OutsideSchedule Code = "outside_schedule"
	// Holiday: now is in a weekly window that a holiday closes.
	Holiday Code = "holiday"
	// AntiPassback: the entry went in through this anti-passback group and
	// has not come out (nor has the timeout passed).
	AntiPassback Code = "anti_passback"
)

// countsAsWrongCredential reports whether a denial counts towards the
// repeated-denials alarm (GB 50396: repeated wrong credentials at one
// reader). Denials that say nothing about the credential (a lockdown, a
// schedule, anti-passback, a failing store) do not.
func countsAsWrongCredential(c Code) bool {
	switch c {
	case BadFrame, Unknown, Expired, NotYetValid, WrongDoor:
		return true
	}
	return false
}

// Mode is a door's operating mode.
type Mode uint8

// The door modes.
const (
	// Normal: the full decision.
	Normal Mode = iota
	// LockedDownMode: only staff entries, which still pass every other
	// check.
	LockedDownMode
	// FreePassageMode: emergency or fire; every well-formed read is granted
	// without a lookup.
	FreePassageMode
)

func (m Mode) String() string {
	switch m {
	case Normal:
		return "normal"
	case LockedDownMode:
		return "locked_down"
	case FreePassageMode:
		return "free_passage"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// Direction says which way a door lets people through, for anti-passback.
type Direction uint8

// The directions.
const (
	Through Direction = iota // no anti-passback role
	In
	Out
)

// Entry is what the allowlist holds for one credential hash.
type Entry struct {
	// ValidFrom and ValidTo bound the entry's validity, both inclusive:
	// valid when ValidFrom <= now <= ValidTo. A zero time is unbounded.
	ValidFrom, ValidTo time.Time
	// DoorGroups the entry may open; it must share one with the door.
	DoorGroups []string
	// ScheduleID names the entry's schedule; 0 means at any time.
	ScheduleID uint32
	// Staff entries may pass a locked-down door.
	Staff bool
	// AntiPassbackGroup, when not empty, subjects the entry to
	// anti-passback at doors of that group.
	AntiPassbackGroup string
}

// Window is one weekly time window, in the door's local time. It opens on
// Day at Start (inclusive) and closes at End (exclusive), both durations
// since local midnight in [0, 24h]. When End <= Start the window crosses
// midnight and closes at End on the following day (Start == End is a full
// 24 hours).
type Window struct {
	Day        time.Weekday
	Start, End time.Duration
}

// Date is a civil date in the door's time zone.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// Schedule is a set of weekly windows and the holidays that close them. A
// holiday closes the windows that open on that date; a window opened the
// day before a holiday and crossing midnight stays open until its end.
type Schedule struct {
	Windows  []Window
	Holidays []Date
}

// Allowlist is what the engine needs of the allowlist store. Lookup returns
// the entry for a keyed credential hash, whether there is one, and an error
// when the store failed (the engine then fails closed).
type Allowlist interface {
	Lookup(hash [16]byte) (Entry, bool, error)
	Schedule(id uint32) (Schedule, bool)
}

// Hasher turns a credential into its keyed hash.
type Hasher interface {
	Hash(c credential.Credential) [16]byte
}

// HasherFunc adapts a function to Hasher.
type HasherFunc func(c credential.Credential) [16]byte

// Hash returns f(c).
func (f HasherFunc) Hash(c credential.Credential) [16]byte { return f(c) }

// SiteKeyHasher returns the Hasher of the site key: the same bytes as
// privacy.KeyedHash(siteKey, c), decoded from hex (privacy.Hasher.Sum).
func SiteKeyHasher(siteKey []byte) Hasher {
	return HasherFunc(privacy.NewHasher(siteKey).Sum)
}

// Door is the configuration of one door.
type Door struct {
	ID     string
	Groups []string // door groups this door belongs to
	Mode   Mode     // initial mode
	// Location is the door's time zone for schedules; nil means UTC.
	Location *time.Location
	// AntiPassbackGroup and Direction make the door part of an
	// anti-passback group: In doors refuse an entry of the same group that
	// is in; Out doors let it out.
	AntiPassbackGroup string
	Direction         Direction
}

// Defaults for Config's zero values.
const (
	DefaultAntiPassbackTimeout = 30 * time.Minute
	DefaultAntiPassbackMax     = 100_000
	DefaultDenialThreshold     = 5
	DefaultDenialWindow        = time.Minute
	maxReaders                 = 4096
)

// Config builds an Engine.
type Config struct {
	Hasher    Hasher
	Allowlist Allowlist
	Doors     []Door
	// AntiPassbackTimeout: how long an entry counts as in after passing an
	// In door without passing an Out door. Zero means the default.
	AntiPassbackTimeout time.Duration
	// AntiPassbackMax bounds the anti-passback memory; when full, the
	// oldest passage is forgotten. Zero means the default.
	AntiPassbackMax int
	// DenialThreshold (1..5) wrong-credential denials at one reader within
	// DenialWindow raise the repeated-denials alarm. Zero means the
	// defaults.
	DenialThreshold int
	DenialWindow    time.Duration
}

// Errors returned by this package.
var (
	ErrConfig      = errors.New("access: bad config")
	ErrUnknownDoor = errors.New("access: unknown door")
)

// Alarm is raised by a Decision.
type Alarm string

// The alarms.
const (
	NoAlarm Alarm = ""
	// RepeatedDenials: the threshold of wrong-credential denials at one
	// reader was reached within the window (GB 50396). It is raised once
	// and the count starts again.
	RepeatedDenials Alarm = "repeated_denials"
)

// Decision is the outcome of one presentation. It holds the credential's
// keyed hash, never its number.
type Decision struct {
	Granted bool
	Reason  Code
	Door    string
	Reader  string
	Kind    credential.Kind
	Mode    Mode
	// CredentialHash is the keyed hash; Hashed says whether it was
	// computed (not for a bad frame or an unknown door).
	CredentialHash [16]byte
	Hashed         bool
	Staff          bool
	// Time is the decision time; ReadAt the time the read completed (the
	// credential's Time), so the caller can measure read-to-decision
	// latency.
	Time, ReadAt time.Time
	// Alarm, when set, is to be raised with this decision; Denials is the
	// count of wrong-credential denials at the reader in the window.
	Alarm   Alarm
	Denials int
}

type doorState struct {
	Door
	mode Mode
}

type readerKey struct{ door, reader string }

type apbKey struct {
	hash  [16]byte
	group string
}

type apbItem struct {
	key apbKey
	at  time.Time
}

// Engine decides access. It does no I/O of its own (the allowlist is
// called) and starts no goroutines; its small state (door modes,
// anti-passback, denial counts) is guarded by a mutex so doors may decide
// concurrently.
type Engine struct {
	hasher    Hasher
	allowlist Allowlist
	apbTTL    time.Duration
	apbMax    int
	threshold int
	window    time.Duration

	mu      sync.Mutex
	doors   map[string]*doorState
	apb     map[apbKey]time.Time
	apbFIFO []apbItem // in passage order, for expiry and eviction
	apbHead int
	denials map[readerKey][]time.Time
}

// New validates cfg and returns an Engine, or an error wrapping ErrConfig
// naming what is wrong.
func New(cfg Config) (*Engine, error) {
	if cfg.Hasher == nil || cfg.Allowlist == nil {
		return nil, fmt.Errorf("%w: hasher and allowlist are required", ErrConfig)
	}
	e := &Engine{
		hasher: cfg.Hasher, allowlist: cfg.Allowlist,
		apbTTL: cfg.AntiPassbackTimeout, apbMax: cfg.AntiPassbackMax,
		threshold: cfg.DenialThreshold, window: cfg.DenialWindow,
		doors:   make(map[string]*doorState, len(cfg.Doors)),
		apb:     map[apbKey]time.Time{},
		denials: map[readerKey][]time.Time{},
	}
	if e.apbTTL == 0 {
		e.apbTTL = DefaultAntiPassbackTimeout
	}
	if e.apbMax == 0 {
		e.apbMax = DefaultAntiPassbackMax
	}
	if e.threshold == 0 {
		e.threshold = DefaultDenialThreshold
	}
	if e.window == 0 {
		e.window = DefaultDenialWindow
	}
	switch {
	case e.apbTTL < 0, e.apbMax < 0, e.window < 0:
		return nil, fmt.Errorf("%w: negative anti-passback or denial setting", ErrConfig)
	case e.threshold < 1 || e.threshold > 5:
		return nil, fmt.Errorf("%w: denial threshold %d not in 1..5 (GB 50396)", ErrConfig, e.threshold)
	}
	for _, d := range cfg.Doors {
		if d.ID == "" {
			return nil, fmt.Errorf("%w: door without id", ErrConfig)
		}
		if _, dup := e.doors[d.ID]; dup {
			return nil, fmt.Errorf("%w: door %q twice", ErrConfig, d.ID)
		}
		if d.Mode > FreePassageMode || d.Direction > Out {
			return nil, fmt.Errorf("%w: door %q: bad mode or direction", ErrConfig, d.ID)
		}
		if d.Location == nil {
			d.Location = time.UTC
		}
		d.Groups = append([]string(nil), d.Groups...)
		e.doors[d.ID] = &doorState{Door: d, mode: d.Mode}
	}
	return e, nil
}

// SetMode sets a door's mode (a lockdown, a fire alarm, a remote
// door.mode). It returns ErrUnknownDoor for a door not configured.
func (e *Engine) SetMode(door string, m Mode) error {
	if m > FreePassageMode {
		return fmt.Errorf("%w: bad mode %d", ErrConfig, m)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	d, ok := e.doors[door]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownDoor, door)
	}
	d.mode = m
	return nil
}

// Mode returns a door's mode, and false for a door not configured.
func (e *Engine) Mode(door string) (Mode, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d, ok := e.doors[door]
	if !ok {
		return Normal, false
	}
	return d.mode, true
}

// Decide decides a presentation of c at door at time now; frameOK is false
// when the reader reported a bad read. The checks run in the order of the
// package documentation and the first that fails is the reason; every
// failure, including an allowlist error, denies. A grant at an
// anti-passback door updates the anti-passback state; a wrong-credential
// denial counts towards the repeated-denials alarm of c.Reader.
func (e *Engine) Decide(door string, c credential.Credential, frameOK bool, now time.Time) Decision {
	d := Decision{Door: door, Reader: c.Reader, Kind: c.Kind, Time: now, ReadAt: c.Time}
	e.mu.Lock()
	defer e.mu.Unlock()
	ds, known := e.doors[door]
	if known {
		d.Mode = ds.mode
	}
	d.Reason = e.decide(ds, c, frameOK, now, &d)
	d.Granted = d.Reason == Granted || d.Reason == FreePassage
	if known && countsAsWrongCredential(d.Reason) {
		d.Denials, d.Alarm = e.countDenial(readerKey{door, c.Reader}, now)
	}
	return d
}

func (e *Engine) decide(ds *doorState, c credential.Credential, frameOK bool, now time.Time, d *Decision) Code {
	if !frameOK {
		return BadFrame
	}
	if ds == nil {
		return UnknownDoor
	}
	d.CredentialHash, d.Hashed = e.hasher.Hash(c), true
	if ds.mode == FreePassageMode {
		return FreePassage
	}
	ent, found, err := e.allowlist.Lookup(d.CredentialHash)
	switch {
	case err != nil:
		return LookupError
	case !found:
		return Unknown
	}
	d.Staff = ent.Staff
	if ds.mode == LockedDownMode && !ent.Staff {
		return LockedDown
	}
	if !ent.ValidFrom.IsZero() && now.Before(ent.ValidFrom) {
		return NotYetValid
	}
	if !ent.ValidTo.IsZero() && now.After(ent.ValidTo) {
		return Expired
	}
	if !shareGroup(ds.Groups, ent.DoorGroups) {
		return WrongDoor
	}
	if ent.ScheduleID != 0 {
		s, ok := e.allowlist.Schedule(ent.ScheduleID)
		if !ok {
			return UnknownSchedule
		}
		if code := s.check(now.In(ds.Location)); code != Granted {
			return code
		}
	}
	if g := ds.AntiPassbackGroup; g != "" && g == ent.AntiPassbackGroup && ds.Direction != Through {
		k := apbKey{d.CredentialHash, g}
		if ds.Direction == In {
			if at, in := e.apb[k]; in && now.Sub(at) < e.apbTTL {
				return AntiPassback
			}
			e.apbEnter(k, now)
		} else {
			delete(e.apb, k)
		}
	}
	return Granted
}

func shareGroup(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

// check returns Granted when local is inside an open window, Holiday when
// it is inside windows only a holiday closes, OutsideSchedule otherwise.
func (s Schedule) check(local time.Time) Code {
	y, m, dd := local.Date()
	today := Date{y, m, dd}
	hh, mm, ss := local.Clock()
	tod := time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute +
		time.Duration(ss)*time.Second + time.Duration(local.Nanosecond())
	wd := local.Weekday()
	closedByHoliday := false
	for _, w := range s.Windows {
		crosses := w.End <= w.Start
		var opened Date
		switch {
		case w.Day == wd && tod >= w.Start && (crosses || tod < w.End):
			opened = today
		case crosses && w.Day == (wd+6)%7 && tod < w.End:
			py, pm, pd := local.AddDate(0, 0, -1).Date()
			opened = Date{py, pm, pd}
		default:
			continue
		}
		if s.isHoliday(opened) {
			closedByHoliday = true
			continue
		}
		return Granted
	}
	if closedByHoliday {
		return Holiday
	}
	return OutsideSchedule
}

func (s Schedule) isHoliday(d Date) bool {
	for _, h := range s.Holidays {
		if h == d {
			return true
		}
	}
	return false
}

// apbEnter records a passage through an In door, dropping expired
// passages and, when the memory is full, the oldest one. The queue holds
// at most 2*apbMax items, superseded ones included.
func (e *Engine) apbEnter(k apbKey, now time.Time) {
	for e.apbHead < len(e.apbFIFO) {
		it := e.apbFIFO[e.apbHead]
		at, ok := e.apb[it.key]
		stale := !ok || !at.Equal(it.at) // superseded or let out
		if !stale && now.Sub(it.at) < e.apbTTL && len(e.apb) < e.apbMax && len(e.apbFIFO)-e.apbHead < 2*e.apbMax {
			break
		}
		if !stale {
			delete(e.apb, it.key)
		}
		e.apbFIFO[e.apbHead] = apbItem{}
		e.apbHead++
	}
	if e.apbHead > len(e.apbFIFO)/2 {
		n := copy(e.apbFIFO, e.apbFIFO[e.apbHead:])
		clear(e.apbFIFO[n:])
		e.apbFIFO, e.apbHead = e.apbFIFO[:n], 0
	}
	e.apb[k] = now
	e.apbFIFO = append(e.apbFIFO, apbItem{k, now})
}

// antiPassbackLen is the number of passages remembered, for tests.
func (e *Engine) antiPassbackLen() (int, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.apb), len(e.apbFIFO) - e.apbHead
}

func (e *Engine) countDenial(k readerKey, now time.Time) (int, Alarm) {
	times, ok := e.denials[k]
	if !ok && len(e.denials) >= maxReaders {
		k.reader = "" // bounded: unknown readers beyond the cap share the door's count
		times = e.denials[k]
	}
	kept := times[:0]
	for _, t := range times {
		if now.Sub(t) < e.window {
			kept = append(kept, t)
		}
	}
	kept = append(kept, now)
	if len(kept) >= e.threshold {
		e.denials[k] = kept[:0]
		return len(kept), RepeatedDenials
	}
	e.denials[k] = kept
	return len(kept), NoAlarm
}
