package allowlist

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"

	"github.com/kioskedge/kioskedge/agent/access"
)

// GroupID is the number the allowlist stores for a door group or an
// anti-passback group named in the agent's config and in the hub's list
// (firmware-specs/allowlist.md §2): the first four bytes, big-endian, of
// SHA-256("kioskedge/group\x00" + name), never 0 (0 means "none"). Both
// ends derive it from the name, so neither has to ship a table of names.
func GroupID(name string) uint32 {
	sum := sha256.Sum256(append([]byte("kioskedge/group\x00"), name...))
	if id := binary.BigEndian.Uint32(sum[:4]); id != 0 {
		return id
	}
	return 1
}

// EngineView is the store as the decision engine sees it
// (access.Allowlist): entries with their groups named, schedules in the
// engine's shape. Group ids no configured door uses are dropped from the
// entries it returns, since no door here can match them. It is safe for
// concurrent use.
type EngineView struct {
	a     *Allowlist
	names map[uint32]string

	mu      sync.Mutex
	version uint64 // the list version scheds was read from
	loaded  bool
	scheds  map[uint32]access.Schedule
}

// NewEngineView returns a view of a whose entries name the given door and
// anti-passback groups (the names the engine's doors use).
func NewEngineView(a *Allowlist, groups []string) *EngineView {
	names := make(map[uint32]string, len(groups))
	for _, g := range groups {
		names[GroupID(g)] = g
	}
	return &EngineView{a: a, names: names}
}

// Lookup returns the entry for a keyed credential hash. The error is the
// store's (the engine then fails closed).
func (v *EngineView) Lookup(hash [16]byte) (access.Entry, bool, error) {
	var e Entry
	ok, err := v.a.LookupInto(Key(hash), &e)
	if err != nil || !ok {
		return access.Entry{}, false, err
	}
	out := access.Entry{ValidFrom: e.ValidFrom, ValidTo: e.ValidTo, ScheduleID: e.Schedule, Staff: e.Staff}
	for _, g := range e.DoorGroups {
		if name, known := v.names[g]; known {
			out.DoorGroups = append(out.DoorGroups, name)
		}
	}
	if e.AntiPassback != 0 {
		// A group no door here checks is left empty: the engine only
		// compares it with a door's group.
		out.AntiPassbackGroup = v.names[e.AntiPassback]
	}
	return out, true, nil
}

// Schedule returns the schedule with the given id of the list in effect.
// Schedules are read once per list version; a store error reads as "no
// such schedule", which the engine denies.
func (v *EngineView) Schedule(id uint32) (access.Schedule, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if ver := v.a.Version(); !v.loaded || ver != v.version {
		all, err := v.a.Schedules()
		if err != nil {
			return access.Schedule{}, false
		}
		v.scheds = make(map[uint32]access.Schedule, len(all))
		for _, s := range all {
			v.scheds[s.ID] = engineSchedule(s)
		}
		v.version, v.loaded = ver, true
	}
	s, ok := v.scheds[id]
	return s, ok
}

func engineSchedule(s Schedule) access.Schedule {
	var out access.Schedule
	for _, w := range s.Windows {
		for d := time.Sunday; d <= time.Saturday; d++ {
			if w.Days.Has(d) {
				out.Windows = append(out.Windows, access.Window{
					Day:   d,
					Start: time.Duration(w.From) * time.Minute,
					End:   time.Duration(w.To) * time.Minute,
				})
			}
		}
	}
	for _, h := range s.Holidays {
		y, m, d := time.Unix(int64(h)*86400, 0).UTC().Date()
		out.Holidays = append(out.Holidays, access.Date{Year: y, Month: m, Day: d})
	}
	return out
}
