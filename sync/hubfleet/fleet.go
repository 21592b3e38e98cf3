package hubfleet

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kioskedge/kioskedge/sync/hubstore"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// ErrOptions is returned by New for missing options.
var ErrOptions = errors.New("hubfleet: invalid options")

// Source is what the fleet reads agent state from; *hubstore.Store is one.
type Source interface {
	Agents() []hubstore.AgentState
	AgentState(id string) (hubstore.AgentState, bool)
}

// Options configures New.
type Options struct {
	Source Source // required
}

// Row is the fleet's summary of one agent.
type Row struct {
	ID     string
	Site   string // from the latest birth
	Region string // administrative region code from the latest birth (GB/T 2260)
	// Online is the latest accepted status; Since is that status's time
	// (for a will, the time the agent set it at connect). HasStatus is
	// false until the hub saw any status.
	HasStatus bool
	Online    bool
	Since     time.Time
	Version   string // from the latest health, else the latest birth
	BootID    string // from the latest health, else the latest status
	// Outbox backlog from the latest health; HasHealth is false before the
	// first health snapshot.
	HasHealth    bool
	OutboxDepth  uint64
	OldestUnsent time.Duration
	LastHealth   time.Time // the health snapshot's own time
	// Faults lists what the latest health reports wrong: "device <name>"
	// for each device not connected and "door <id>: <alarm>" for each
	// active door alarm; nil when nothing is.
	Faults []string
	// AllowlistVersion is the gate's allowlist version in effect; HasAllowlist
	// is false for agents whose health carries no allowlist (not a gate).
	HasAllowlist     bool
	AllowlistVersion uint64
	// ClockOffset is how far the hub's clock is ahead of the agent's, as
	// the agent last measured it over time/req (health "clock", hub-protocol
	// §6); HasClock is false until an agent reports one (older agents
	// never do). ClockSkewed says the agent found it beyond its bound.
	HasClock    bool
	ClockOffset time.Duration
	ClockSkewed bool

	Received   uint64 // records stored
	Contiguous uint64 // highest contiguous sequence stored
	// Bad says the latest status or health held by the store did not
	// decode; the row shows what did.
	Bad bool
}

// RowFrom derives a row from one agent's stored state. It never fails:
// what does not decode is left out and Bad is set.
func RowFrom(a hubstore.AgentState) Row {
	r := Row{ID: a.ID, HasStatus: a.HasStatus, Online: a.Online, Received: a.Received, Contiguous: a.Contiguous}
	if len(a.Birth) > 0 {
		if b, err := wire.DecodeStatus(a.Birth); err == nil {
			r.Site, r.Region, r.Version, r.BootID = b.Site, b.Region, b.Version, b.BootID
		} else {
			r.Bad = true
		}
	}
	if len(a.Status) > 0 {
		if st, err := wire.DecodeStatus(a.Status); err == nil {
			r.Since = st.Time
			if st.BootID != "" {
				r.BootID = st.BootID
			}
			// A death carries site and region too when the agent set them.
			if r.Site == "" {
				r.Site = st.Site
			}
			if r.Region == "" {
				r.Region = st.Region
			}
		} else {
			r.Bad = true
		}
	}
	if len(a.Health) > 0 {
		h, err := wire.DecodeHealth(a.Health)
		if err != nil {
			r.Bad = true
			return r
		}
		r.HasHealth = true
		r.LastHealth = h.Time
		r.OutboxDepth = h.Outbox.Depth
		r.OldestUnsent = time.Duration(h.Outbox.OldestUnsentS * float64(time.Second))
		if h.Version != "" {
			r.Version = h.Version
		}
		if h.BootID != "" {
			r.BootID = h.BootID
		}
		if h.Allowlist != nil {
			r.HasAllowlist, r.AllowlistVersion = true, h.Allowlist.Version
		}
		if h.Clock != nil {
			r.HasClock, r.ClockSkewed = true, h.Clock.Skewed
			r.ClockOffset = time.Duration(h.Clock.OffsetMS * float64(time.Millisecond))
		}
		r.Faults = Faults(h)
	}
	return r
}

// Faults lists what h reports wrong: devices not connected, then active
// door alarms; nil when nothing is.
func Faults(h wire.Health) []string {
	var out []string
	for _, d := range h.Devices {
		if !d.Connected {
			out = append(out, "device "+d.Name)
		}
	}
	for _, d := range h.Doors {
		for _, a := range d.Alarms {
			out = append(out, fmt.Sprintf("door %s: %s", d.ID, a))
		}
	}
	return out
}

// Fleet holds a row per agent. It is safe for concurrent use.
type Fleet struct {
	src Source

	mu   sync.RWMutex
	rows map[string]*Row // rows are never modified once installed
	subs map[*Subscription]struct{}
}

// New builds the fleet from every agent src knows. It returns ErrOptions
// without a source.
func New(opts Options) (*Fleet, error) {
	if opts.Source == nil {
		return nil, fmt.Errorf("%w: no source", ErrOptions)
	}
	f := &Fleet{src: opts.Source, rows: map[string]*Row{}, subs: map[*Subscription]struct{}{}}
	for _, a := range opts.Source.Agents() {
		r := RowFrom(a)
		f.rows[a.ID] = &r
	}
	return f, nil
}

// Update re-reads agent id from the source, replaces its row and tells
// subscribers. An id the source does not know is ignored. The hub calls it
// after each commit carrying the agent's status or health
// (hub.Options.OnAgentChange).
func (f *Fleet) Update(id string) {
	a, ok := f.src.AgentState(id)
	if !ok {
		return
	}
	r := RowFrom(a)
	f.mu.Lock()
	f.rows[id] = &r
	subs := make([]*Subscription, 0, len(f.subs))
	for s := range f.subs {
		subs = append(subs, s)
	}
	f.mu.Unlock()
	for _, s := range subs {
		s.add(id)
	}
}

// Row returns agent id's row, and false if the fleet has none.
func (f *Fleet) Row(id string) (Row, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	r, ok := f.rows[id]
	if !ok {
		return Row{}, false
	}
	return *r, true
}

// Counts summarises the whole fleet.
type Counts struct {
	Agents, Online, Offline, Faulted int
}

// Counts returns the fleet's totals (Offline counts agents whose latest
// status is offline or who never sent one).
func (f *Fleet) Counts() Counts {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var c Counts
	for _, r := range f.rows {
		c.Agents++
		if r.Online {
			c.Online++
		} else {
			c.Offline++
		}
		if len(r.Faults) > 0 {
			c.Faulted++
		}
	}
	return c
}

// Status filter values of Query.Status.
const (
	StatusAny     = ""
	StatusOnline  = "online"
	StatusOffline = "offline"
)

// Sort keys of Query.Sort.
const (
	SortID         = "id"
	SortSite       = "site"
	SortRegion     = "region"
	SortStatus     = "status" // online first, then by Since
	SortVersion    = "version"
	SortOutbox     = "outbox"
	SortOldest     = "oldest"
	SortFaults     = "faults"
	SortLastHealth = "health"
)

// SortKeys lists the accepted Query.Sort values.
var SortKeys = []string{SortID, SortSite, SortRegion, SortStatus, SortVersion, SortOutbox, SortOldest, SortFaults, SortLastHealth}

// Paging bounds of Query.PerPage.
const (
	DefaultPerPage = 50
	MaxPerPage     = 500
)

// Query selects, orders and pages rows. The zero value lists the first
// DefaultPerPage rows by id.
type Query struct {
	Region  string // region code prefix ("33" a province, "3301" a city…)
	Status  string // StatusAny, StatusOnline or StatusOffline
	Fault   bool   // only rows with faults
	Text    string // case-insensitive substring of id or site
	Sort    string // one of SortKeys; unknown or "" means SortID
	Desc    bool
	Page    int // 0-based; past the end gives an empty page
	PerPage int // <= 0 means DefaultPerPage; capped at MaxPerPage
}

// Page is one page of a List.
type Page struct {
	Rows    []Row // never nil
	Total   int   // rows matching the filters
	Page    int   // the page returned (0-based)
	PerPage int
	Pages   int // pages of Total rows (at least 1)
}

func (q Query) match(r *Row, text string) bool {
	if q.Region != "" && !strings.HasPrefix(r.Region, q.Region) {
		return false
	}
	switch q.Status {
	case StatusOnline:
		if !r.Online {
			return false
		}
	case StatusOffline:
		if r.Online {
			return false
		}
	}
	if q.Fault && len(r.Faults) == 0 {
		return false
	}
	if text != "" && !strings.Contains(strings.ToLower(r.ID), text) && !strings.Contains(strings.ToLower(r.Site), text) {
		return false
	}
	return true
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return -1
	default:
		return 1
	}
}

func compare(key string) func(a, b *Row) int {
	var by func(a, b *Row) int
	switch key {
	case SortSite:
		by = func(a, b *Row) int { return cmp.Compare(a.Site, b.Site) }
	case SortRegion:
		by = func(a, b *Row) int { return cmp.Compare(a.Region, b.Region) }
	case SortStatus:
		by = func(a, b *Row) int {
			if c := boolCmp(a.Online, b.Online); c != 0 {
				return c
			}
			return a.Since.Compare(b.Since)
		}
	case SortVersion:
		by = func(a, b *Row) int { return cmp.Compare(a.Version, b.Version) }
	case SortOutbox:
		by = func(a, b *Row) int { return cmp.Compare(a.OutboxDepth, b.OutboxDepth) }
	case SortOldest:
		by = func(a, b *Row) int { return cmp.Compare(a.OldestUnsent, b.OldestUnsent) }
	case SortFaults:
		by = func(a, b *Row) int { return cmp.Compare(len(a.Faults), len(b.Faults)) }
	case SortLastHealth:
		by = func(a, b *Row) int { return a.LastHealth.Compare(b.LastHealth) }
	default:
		by = func(*Row, *Row) int { return 0 }
	}
	return func(a, b *Row) int {
		if c := by(a, b); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	}
}

// List returns the page q asks for: the rows matching every filter of q,
// sorted by q.Sort (ties by id), q.PerPage of them from q.Page on.
func (f *Fleet) List(q Query) Page {
	per := q.PerPage
	if per <= 0 {
		per = DefaultPerPage
	}
	per = min(per, MaxPerPage)
	page := max(q.Page, 0)
	text := strings.ToLower(strings.TrimSpace(q.Text))

	f.mu.RLock()
	matched := make([]*Row, 0, len(f.rows))
	for _, r := range f.rows {
		if q.match(r, text) {
			matched = append(matched, r)
		}
	}
	f.mu.RUnlock()
	// Installed rows are immutable: sorting and copying them needs no lock.
	by := compare(q.Sort)
	if q.Desc {
		asc := by
		by = func(a, b *Row) int { return asc(b, a) }
	}
	slices.SortFunc(matched, by)
	out := Page{Rows: []Row{}, Total: len(matched), Page: page, PerPage: per, Pages: max(1, (len(matched)+per-1)/per)}
	if start := page * per; start < len(matched) && start >= 0 {
		for _, r := range matched[start:min(start+per, len(matched))] {
			out.Rows = append(out.Rows, *r)
		}
	}
	return out
}

// Subscription receives the ids of rows that changed since it last took
// them. Create it with Fleet.Subscribe and Close it when done.
type Subscription struct {
	f       *Fleet
	ready   chan struct{} // holds a token while ids are pending
	mu      sync.Mutex
	pending map[string]struct{}
}

// Subscribe starts telling the caller about changed rows.
func (f *Fleet) Subscribe() *Subscription {
	s := &Subscription{f: f, ready: make(chan struct{}, 1), pending: map[string]struct{}{}}
	f.mu.Lock()
	f.subs[s] = struct{}{}
	f.mu.Unlock()
	return s
}

func (s *Subscription) add(id string) {
	s.mu.Lock()
	s.pending[id] = struct{}{}
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// Ready receives a value when changed ids are waiting for Take.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// Take returns the ids changed since the last Take, sorted, and forgets
// them; nil if none. Bursts coalesce: an agent changed many times appears
// once.
func (s *Subscription) Take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) == 0 {
		return nil
	}
	out := make([]string, 0, len(s.pending))
	for id := range s.pending {
		out = append(out, id)
	}
	clear(s.pending)
	slices.Sort(out)
	return out
}

// Close stops the subscription; it is idempotent.
func (s *Subscription) Close() {
	s.f.mu.Lock()
	delete(s.f.subs, s)
	s.f.mu.Unlock()
}
