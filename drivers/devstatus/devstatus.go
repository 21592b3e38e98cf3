package devstatus

import (
	"maps"
	"sync"
	"time"
)

// Error kinds counted by drivers. Drivers may add their own.
const (
	ErrFraming  = "framing"  // a frame that does not parse
	ErrChecksum = "checksum" // a frame whose CRC or checksum is wrong
	ErrTimeout  = "timeout"  // no answer in time
	ErrNAK      = "nak"      // the device refused a command
	ErrIO       = "io"       // the port failed (unplugged, closed)
)

// Snapshot is a device's health at one moment.
type Snapshot struct {
	Name       string            `json:"name"`
	Kind       string            `json:"kind"` // "osdp", "idcard", …
	Connected  bool              `json:"connected"`
	Down       bool              `json:"down"`
	LastSeen   time.Time         `json:"last_seen,omitzero"`
	Errors     map[string]uint64 `json:"errors,omitempty"`
	Reconnects uint64            `json:"reconnects"`
	Detail     string            `json:"detail,omitempty"` // e.g. "secure channel", "paper near end"
}

// Tracker records one device's health.
type Tracker struct {
	downAfter int
	now       func() time.Time

	mu       sync.Mutex
	s        Snapshot
	failures int  // consecutive failed exchanges
	wasUp    bool // has ever been connected
}

// New returns a tracker for the device name of kind. downAfter is how many
// consecutive failures mark the device down (values below 1 mean 3); now
// is the clock (nil means time.Now). A new device is neither connected nor
// down.
func New(name, kind string, downAfter int, now func() time.Time) *Tracker {
	if downAfter < 1 {
		downAfter = 3
	}
	if now == nil {
		now = time.Now
	}
	return &Tracker{downAfter: downAfter, now: now, s: Snapshot{Name: name, Kind: kind, Errors: map[string]uint64{}}}
}

// Seen records a good exchange: the device answered. It clears the failure
// run and the down mark.
func (t *Tracker) Seen() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.s.LastSeen = t.now()
	t.s.Down = false
	t.failures = 0
}

// Error counts an error of kind that did not by itself fail the exchange
// (a garbled frame skipped before a good one).
func (t *Tracker) Error(kind string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.s.Errors[kind]++
}

// Failed counts an exchange that failed with an error of kind, and marks
// the device down once downAfter exchanges in a row have failed. It reports
// whether this call marked it down.
func (t *Tracker) Failed(kind string) (wentDown bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.s.Errors[kind]++
	t.failures++
	if t.failures >= t.downAfter && !t.s.Down {
		t.s.Down = true
		return true
	}
	return false
}

// Connected records whether the port (or bus) is open. Coming up again
// after having been up before counts as a reconnect.
func (t *Tracker) Connected(up bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if up && !t.s.Connected && t.wasUp {
		t.s.Reconnects++
	}
	t.s.Connected = up
	t.wasUp = t.wasUp || up
}

// SetDetail sets the free-text detail shown with the health.
func (t *Tracker) SetDetail(d string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.s.Detail = d
}

// Down reports whether the device is marked down.
func (t *Tracker) Down() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.s.Down
}

// Snapshot returns a copy of the current health.
func (t *Tracker) Snapshot() Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.s
	s.Errors = maps.Clone(t.s.Errors)
	return s
}
