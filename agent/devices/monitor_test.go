package devices

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/drivers/devstatus"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/fakeclock"
)

// fakeOutbox stores records in memory; fail makes the next Appends fail.
type fakeOutbox struct {
	mu   sync.Mutex
	recs []wire.Record
	fail int
}

func (o *fakeOutbox) Append(_ context.Context, r wire.Record) (uint64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fail > 0 {
		o.fail--
		return 0, errors.New("disk full")
	}
	o.recs = append(o.recs, r)
	return uint64(len(o.recs)), nil
}

// take returns and forgets the records stored so far.
func (o *fakeOutbox) take() []wire.Record {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.recs
	o.recs = nil
	return r
}

func kinds(rs []wire.Record) []string {
	var k []string
	for _, r := range rs {
		k = append(k, r.Kind)
	}
	return k
}

// fakeDevice is a device whose health the test sets.
type fakeDevice struct {
	mu sync.Mutex
	s  devstatus.Snapshot
}

func (d *fakeDevice) Health() devstatus.Snapshot {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.s
}

func (d *fakeDevice) set(f func(*devstatus.Snapshot)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(&d.s)
}

func newMonitor(t *testing.T) (*Monitor, *fakeOutbox, *fakeclock.Clock) {
	t.Helper()
	ob := &fakeOutbox{}
	clk := fakeclock.New(time.Date(2026, 11, 28, 9, 0, 0, 0, time.FixedZone("CST", 8*3600)))
	m, err := NewMonitor(Options{Outbox: ob, Now: clk.Now, Grace: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return m, ob, clk
}

func TestTransitions(t *testing.T) {
	m, ob, clk := newMonitor(t)
	ctx := context.Background()
	id := &fakeDevice{}
	if err := m.Add("id-1", "idcard", id); err != nil {
		t.Fatal(err)
	}
	sample := func() []string {
		t.Helper()
		if err := m.Sample(ctx); err != nil {
			t.Fatal(err)
		}
		return kinds(ob.take())
	}
	steps := []struct {
		name string
		do   func()
		want []string
	}{
		{"absent within grace: nothing", func() {}, nil},
		{"absent past grace: down", func() { clk.Advance(2 * time.Second) }, []string{KindDown}},
		{"still down: nothing", func() { clk.Advance(time.Second) }, nil},
		{"connected: up", func() { id.set(func(s *devstatus.Snapshot) { s.Connected = true }) }, []string{KindUp}},
		{"failures mark it down", func() {
			id.set(func(s *devstatus.Snapshot) { s.Down = true; s.Errors = map[string]uint64{"timeout": 3} })
		}, []string{KindDown}},
		{"answers again: up", func() { id.set(func(s *devstatus.Snapshot) { s.Down = false }) }, []string{KindUp}},
		{"unplugged: down", func() { id.set(func(s *devstatus.Snapshot) { s.Connected = false }) }, []string{KindDown}},
		{"replugged: up", func() { id.set(func(s *devstatus.Snapshot) { s.Connected = true; s.Reconnects = 1 }) }, []string{KindUp}},
		{"quick replug between samples: reconnected", func() { id.set(func(s *devstatus.Snapshot) { s.Reconnects = 2 }) }, []string{KindReconnected}},
		{"detail changes: status", func() { id.set(func(s *devstatus.Snapshot) { s.Detail = "paper near end" }) }, []string{KindStatus}},
		{"steady: nothing", func() {}, nil},
	}
	for _, st := range steps {
		st.do()
		if got := sample(); !slices.Equal(got, st.want) {
			t.Fatalf("%s: records %v, want %v", st.name, got, st.want)
		}
	}
}

func TestFirstSeenUpWithinGrace(t *testing.T) {
	m, ob, _ := newMonitor(t)
	d := &fakeDevice{s: devstatus.Snapshot{Connected: true}}
	m.Add("qr", "qrscan", d)
	m.Sample(context.Background())
	if got := kinds(ob.take()); !slices.Equal(got, []string{KindUp}) {
		t.Fatalf("records %v, want [device.up]", got)
	}
}

func TestRecordBody(t *testing.T) {
	m, ob, clk := newMonitor(t)
	d := &fakeDevice{s: devstatus.Snapshot{Name: "driver-name", Connected: true, Reconnects: 4,
		Errors: map[string]uint64{"framing": 2}, Detail: "ok"}}
	m.Add("printer", "escpos", d)
	m.Sample(context.Background())
	rs := ob.take()
	if len(rs) != 1 {
		t.Fatalf("%d records", len(rs))
	}
	r := rs[0]
	if r.Class != wire.ClassEvent || !r.Time.Equal(clk.Now()) || r.Kind != KindUp {
		t.Errorf("record %+v", r)
	}
	var b struct {
		Name, Kind      string
		Connected, Down bool
		Errors          map[string]uint64
		Reconnects      uint64
		Detail          string
	}
	if err := json.Unmarshal(r.Body, &b); err != nil {
		t.Fatal(err)
	}
	if b.Name != "printer" || b.Kind != "escpos" || !b.Connected || b.Down || b.Errors["framing"] != 2 || b.Reconnects != 4 || b.Detail != "ok" {
		t.Errorf("body %s", r.Body)
	}
}

func TestAppendFailureRetried(t *testing.T) {
	m, ob, clk := newMonitor(t)
	d := &fakeDevice{}
	m.Add("id-1", "idcard", d)
	ctx := context.Background()
	m.Sample(ctx)
	clk.Advance(3 * time.Second)
	ob.fail = 1
	if err := m.Sample(ctx); err == nil {
		t.Fatal("a failed append was not reported")
	}
	if got := kinds(ob.take()); len(got) != 0 {
		t.Fatalf("records %v after a failed append", got)
	}
	if err := m.Sample(ctx); err != nil {
		t.Fatal(err)
	}
	if got := kinds(ob.take()); !slices.Equal(got, []string{KindDown}) {
		t.Fatalf("the transition was not retried: %v", got)
	}
}

func TestRecordEvent(t *testing.T) {
	m, ob, _ := newMonitor(t)
	m.Add("id-1", "idcard", &fakeDevice{})
	ctx := context.Background()
	if err := m.RecordEvent(ctx, "id-1", "card.inserted", map[string]any{"slot": 1}); err != nil {
		t.Fatal(err)
	}
	rs := ob.take()
	if len(rs) != 1 || rs[0].Kind != "device.card.inserted" || rs[0].Class != wire.ClassEvent {
		t.Fatalf("records %+v", rs)
	}
	var b map[string]any
	json.Unmarshal(rs[0].Body, &b)
	if b["name"] != "id-1" || b["kind"] != "idcard" || b["slot"] != 1.0 {
		t.Errorf("body %s", rs[0].Body)
	}

	cred := credential.Credential{Kind: credential.IDCard, Number: "990101199001011234"}
	for _, tc := range []struct {
		name, dev, event string
		fields           map[string]any
		want             error
	}{
		{"unknown device", "nope", "tamper", nil, ErrUnknownDevice},
		{"empty event", "id-1", "", nil, ErrBadEvent},
		{"reserved field", "id-1", "tamper", map[string]any{"name": "x"}, ErrBadEvent},
		{"unencodable field", "id-1", "tamper", map[string]any{"f": func() {}}, ErrBadEvent},
		{"credential", "id-1", "card.read", map[string]any{"card": cred}, ErrPersonalData},
		{"credential pointer", "id-1", "card.read", map[string]any{"card": &cred}, ErrPersonalData},
	} {
		if err := m.RecordEvent(ctx, tc.dev, tc.event, tc.fields); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if rs := ob.take(); len(rs) != 0 {
		t.Errorf("refused events were stored: %+v", rs)
	}
}

func TestHealth(t *testing.T) {
	m, _, _ := newMonitor(t)
	seen := time.Date(2026, 11, 28, 8, 59, 0, 0, time.UTC)
	m.Add("id-1", "idcard", &fakeDevice{s: devstatus.Snapshot{Connected: true, LastSeen: seen,
		Errors: map[string]uint64{"framing": 2, "timeout": 1}}})
	m.Add("qr", "qrscan", &fakeDevice{})
	m.Add("printer", "escpos", &fakeDevice{s: devstatus.Snapshot{Connected: true, Down: true, Detail: "paper out"}})
	m.Add("gate-in", "osdp", DeviceFunc(func() devstatus.Snapshot { return devstatus.Snapshot{Connected: true, Detail: "secure channel"} }))
	want := []wire.DeviceHealth{
		{Name: "id-1", Connected: true, LastSeen: seen, Errors: 3, Detail: "idcard"},
		{Name: "qr", Detail: "qrscan: disconnected"},
		{Name: "printer", Detail: "escpos: down, paper out"},
		{Name: "gate-in", Connected: true, Detail: "osdp: secure channel"},
	}
	if got := m.Health(); !slices.Equal(got, want) {
		t.Errorf("Health\n got %+v\nwant %+v", got, want)
	}
}

func TestAddValidation(t *testing.T) {
	m, _, _ := newMonitor(t)
	if err := m.Add("a", "idcard", &fakeDevice{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, dev, kind string
		d               Device
		want            error
	}{
		{"duplicate", "a", "qrscan", &fakeDevice{}, ErrDuplicate},
		{"bad name", "a/b", "qrscan", &fakeDevice{}, ErrOptions},
		{"no kind", "b", "", &fakeDevice{}, ErrOptions},
		{"nil device", "b", "qrscan", nil, ErrOptions},
	} {
		if err := m.Add(tc.dev, tc.kind, tc.d); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := NewMonitor(Options{}); !errors.Is(err, ErrOptions) {
		t.Errorf("NewMonitor without outbox: %v", err)
	}
}

// TestRunSamplesOnTheInjectedTimer drives Run with a fake timer: each tick
// is one sample, and Run returns when ctx ends.
func TestRunSamplesOnTheInjectedTimer(t *testing.T) {
	ob := &fakeOutbox{}
	ticks := make(chan time.Time)
	var asked []time.Duration
	var mu sync.Mutex
	m, err := NewMonitor(Options{Outbox: ob, Every: time.Second, After: func(d time.Duration) <-chan time.Time {
		mu.Lock()
		asked = append(asked, d)
		mu.Unlock()
		return ticks
	}})
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDevice{s: devstatus.Snapshot{Connected: true}}
	m.Add("qr", "qrscan", d)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	ticks <- time.Time{} // the first sample (up) happened before Run waited
	d.set(func(s *devstatus.Snapshot) { s.Connected = false })
	ticks <- time.Time{} // second sample (down) runs; Run waits again
	ticks <- time.Time{} // ensures the second sample completed
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := kinds(ob.take()); !slices.Equal(got, []string{KindUp, KindDown}) {
		t.Fatalf("records %v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) < 3 || asked[0] != time.Second {
		t.Errorf("timer asked for %v", asked)
	}
}
