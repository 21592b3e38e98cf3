package devices

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/drivers/devstatus"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// Record kinds of the transitions the Monitor records.
const (
	KindUp          = "device.up"
	KindDown        = "device.down"
	KindReconnected = "device.reconnected"
	KindStatus      = "device.status"
)

// Defaults of Options.
const (
	DefaultEvery = 250 * time.Millisecond
	DefaultGrace = 3 * time.Second
)

// Errors.
var (
	ErrOptions       = errors.New("devices: bad options")
	ErrDuplicate     = errors.New("devices: duplicate device name")
	ErrUnknownDevice = errors.New("devices: unknown device")
	ErrBadEvent      = errors.New("devices: bad event")
	ErrPersonalData  = errors.New("devices: personal data in an event")
)

// Device is what the Monitor needs of a device: its health.
type Device interface {
	Health() devstatus.Snapshot
}

// DeviceFunc adapts a function to Device, e.g. one reader of an OSDP bus.
type DeviceFunc func() devstatus.Snapshot

// Health calls f.
func (f DeviceFunc) Health() devstatus.Snapshot { return f() }

// Outbox is where the Monitor appends its records (sync/outbox in kioskd).
type Outbox interface {
	Append(ctx context.Context, r wire.Record) (uint64, error)
}

// Options configures a Monitor. Zero values pick the defaults in brackets.
type Options struct {
	Outbox Outbox // required
	// Every is the sampling period of Run [DefaultEvery].
	Every time.Duration
	// Grace is how long a device that has never been up may stay so
	// before it is reported down [DefaultGrace].
	Grace time.Duration
	// Now stamps records and measures Grace [time.Now].
	Now func() time.Time
	// After is Run's timer [time.After].
	After  func(time.Duration) <-chan time.Time
	Logger *slog.Logger // transitions and append failures; nil discards
}

// Monitor watches a fixed set of named devices; see the package doc.
// Its methods are safe for concurrent use.
type Monitor struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex // guards devices, order, start
	devices map[string]*entry
	order   []string
	start   time.Time // first Sample; zero before

	sampling sync.Mutex // one Sample at a time
}

type entry struct {
	name, kind string
	dev        Device
	// Last recorded state, owned by Sample (under sampling).
	known      bool // a state was recorded
	up         bool
	reconnects uint64
	detail     string
}

// NewMonitor returns a Monitor with no devices. It fails (ErrOptions) only
// without an Outbox or with a negative period.
func NewMonitor(o Options) (*Monitor, error) {
	if o.Outbox == nil {
		return nil, fmt.Errorf("%w: Outbox is required", ErrOptions)
	}
	if o.Every < 0 || o.Grace < 0 {
		return nil, fmt.Errorf("%w: negative Every or Grace", ErrOptions)
	}
	if o.Every == 0 {
		o.Every = DefaultEvery
	}
	if o.Grace == 0 {
		o.Grace = DefaultGrace
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.After == nil {
		o.After = time.After
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Monitor{opts: o, log: log.With("component", "devices"), devices: map[string]*entry{}}, nil
}

// Add registers device d under name, of kind ("idcard", "osdp", …). It
// returns ErrDuplicate for a name already added, ErrOptions for an invalid
// name (wire.ValidateID rules) or kind, or a nil d.
func (m *Monitor) Add(name, kind string, d Device) error {
	if err := wire.ValidateID("device name", name); err != nil {
		return fmt.Errorf("%w: %v", ErrOptions, err)
	}
	if kind == "" || d == nil {
		return fmt.Errorf("%w: device %q needs a kind and a Device", ErrOptions, name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.devices[name]; ok {
		return fmt.Errorf("%w: %q", ErrDuplicate, name)
	}
	m.devices[name] = &entry{name: name, kind: kind, dev: d}
	m.order = append(m.order, name)
	return nil
}

func (m *Monitor) entries() []*entry {
	m.mu.Lock()
	defer m.mu.Unlock()
	es := make([]*entry, len(m.order))
	for i, n := range m.order {
		es[i] = m.devices[n]
	}
	return es
}

// Run samples every Options.Every until ctx ends, then returns nil. Append
// failures are logged and retried at the next sample; they do not end Run.
func (m *Monitor) Run(ctx context.Context) error {
	for {
		if err := m.Sample(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("device records not stored; retrying at the next sample", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-m.opts.After(m.opts.Every):
		}
	}
}

// Sample reads every device's health once and appends a record for each
// transition since the last recorded state (see the package doc). It
// returns the first Append error (joined with later ones); the devices
// whose record was not stored keep their old state, so the next Sample
// records the transition again.
func (m *Monitor) Sample(ctx context.Context) error {
	m.sampling.Lock()
	defer m.sampling.Unlock()
	now := m.opts.Now()
	m.mu.Lock()
	if m.start.IsZero() {
		m.start = now
	}
	start := m.start
	m.mu.Unlock()

	var errs []error
	for _, e := range m.entries() {
		s := e.dev.Health()
		up := s.Connected && !s.Down
		var kinds []string
		switch {
		case !e.known && up:
			kinds = append(kinds, KindUp)
		case !e.known && now.Sub(start) >= m.opts.Grace:
			kinds = append(kinds, KindDown)
		case !e.known:
			// Still within the grace period: not yet known.
		case up != e.up:
			kinds = append(kinds, map[bool]string{true: KindUp, false: KindDown}[up])
		case up && s.Reconnects > e.reconnects:
			kinds = append(kinds, KindReconnected)
		}
		if e.known && s.Detail != e.detail {
			kinds = append(kinds, KindStatus)
		}
		if len(kinds) == 0 {
			if e.known {
				e.reconnects = s.Reconnects
			}
			continue
		}
		failed := false
		for _, k := range kinds {
			if err := m.append(ctx, now, k, transitionBody(e, s)); err != nil {
				errs = append(errs, fmt.Errorf("%s %s: %w", e.name, k, err))
				failed = true
				break
			}
			m.log.Info(k, "device", e.name, "kind", e.kind, "connected", s.Connected, "down", s.Down,
				"reconnects", s.Reconnects, "detail", s.Detail)
		}
		if failed {
			continue
		}
		e.known, e.up, e.reconnects, e.detail = true, up, s.Reconnects, s.Detail
	}
	return errors.Join(errs...)
}

// transitionBody is the JSON body of a transition record: facts about the
// device, never what it read.
func transitionBody(e *entry, s devstatus.Snapshot) map[string]any {
	b := map[string]any{
		"name": e.name, "kind": e.kind,
		"connected": s.Connected, "down": s.Down,
		"errors": s.Errors, "reconnects": s.Reconnects,
	}
	if s.Detail != "" {
		b["detail"] = s.Detail
	}
	if !s.LastSeen.IsZero() {
		b["last_seen"] = s.LastSeen
	}
	return b
}

func (m *Monitor) append(ctx context.Context, now time.Time, kind string, body map[string]any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadEvent, err)
	}
	_, err = m.opts.Outbox.Append(ctx, wire.Record{Kind: kind, Class: wire.ClassEvent, Time: now, Body: raw})
	return err
}

// reserved are the body keys the Monitor sets itself.
var reserved = map[string]bool{"name": true, "kind": true}

// RecordEvent appends a ClassEvent record "device.<event>" for device name
// (e.g. event "card.inserted" gives "device.card.inserted"), with a JSON
// body holding the device's name and kind and fields. It returns
// ErrUnknownDevice for a name never added; ErrBadEvent for an empty event
// (or one over wire.MaxKindLen), a field named "name" or "kind", or a field
// that does not encode as JSON; ErrPersonalData for a field holding a
// credential.Credential; otherwise the outbox's error. The record is
// durable when it returns nil.
//
// Fields must carry facts about the device, never what a card or code
// held: the Monitor cannot recognise every personal datum.
func (m *Monitor) RecordEvent(ctx context.Context, name, event string, fields map[string]any) error {
	m.mu.Lock()
	e, ok := m.devices[name]
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownDevice, name)
	}
	kind := "device." + event
	if event == "" || len(kind) > wire.MaxKindLen || strings.ContainsAny(event, " \t\r\n") {
		return fmt.Errorf("%w: event name %q", ErrBadEvent, event)
	}
	body := make(map[string]any, len(fields)+2)
	for k, v := range fields {
		if reserved[k] {
			return fmt.Errorf("%w: field %q is set by the monitor", ErrBadEvent, k)
		}
		switch v.(type) {
		case credential.Credential, *credential.Credential:
			return fmt.Errorf("%w: field %q is a credential", ErrPersonalData, k)
		}
		body[k] = v
	}
	body["name"], body["kind"] = e.name, e.kind
	if err := m.append(ctx, m.opts.Now(), kind, body); err != nil {
		return fmt.Errorf("devices: %s %s: %w", name, kind, err)
	}
	return nil
}

// Health returns every device's current health in the order they were
// added, for the hub's health snapshot: Connected is true when the device
// is connected and not down; Errors sums its error counters; Detail is
// its kind, then "disconnected" or "down" when so, then the driver's detail
// ("escpos: paper near end").
func (m *Monitor) Health() []wire.DeviceHealth {
	es := m.entries()
	out := make([]wire.DeviceHealth, 0, len(es))
	for _, e := range es {
		s := e.dev.Health()
		var errs uint64
		for _, n := range s.Errors {
			errs += n
		}
		parts := []string{}
		switch {
		case !s.Connected:
			parts = append(parts, "disconnected")
		case s.Down:
			parts = append(parts, "down")
		}
		if s.Detail != "" {
			parts = append(parts, s.Detail)
		}
		detail := e.kind
		if len(parts) > 0 {
			detail += ": " + strings.Join(parts, ", ")
		}
		out = append(out, wire.DeviceHealth{
			Name: e.name, Connected: s.Connected && !s.Down, LastSeen: s.LastSeen, Errors: errs, Detail: detail,
		})
	}
	return out
}

// Names returns the device names in the order they were added.
func (m *Monitor) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.order...)
}
