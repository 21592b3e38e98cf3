package gate

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/agent/access"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// step is one action of a door scenario.
type step struct {
	advance time.Duration // first move the clock
	present string        // card number presented at d1 ("" none)
	badRead bool
	input   Input
	active  bool
	remote  string // command id of a remote open of d1
}

func TestDoorScenarios(t *testing.T) {
	cred := hex.EncodeToString(func() []byte { h := hasher.Hash(card("1-100", t0)); return h[:] }())
	open, shut := step{input: InputContact, active: true}, step{input: InputContact}
	adv := func(d time.Duration) step { return step{advance: d} }
	grant := step{present: "1-100"}
	tests := []struct {
		name    string
		tweak   func(*DoorConfig)
		steps   []step
		relay   []string // d1's relay calls
		records []string
		alarms  []Alarm // d1's active alarms at the end
	}{
		{
			name:  "grant releases, pulse end secures",
			steps: []step{grant, adv(4999 * time.Millisecond), adv(time.Millisecond), adv(time.Minute)},
			relay: []string{"release@0s", "secure@5s"},
			records: []string{
				`access.decision {"door":"d1","reader":"in","cred":"` + cred + `","result":"granted","reason":"allowlist","latency_us":0}`,
				`door.event {"door":"d1","event":"released","by":"grant"}`,
				`door.event {"door":"d1","event":"secured","by":"pulse_end"}`,
			},
		},
		{
			name:  "second grant extends the pulse",
			steps: []step{grant, adv(3 * time.Second), grant, adv(4 * time.Second), adv(time.Second)},
			relay: []string{"release@0s", "release@3s", "secure@8s"},
			records: []string{
				`access.decision {"door":"d1","reader":"in","cred":"` + cred + `","result":"granted","reason":"allowlist","latency_us":0}`,
				`door.event {"door":"d1","event":"released","by":"grant"}`,
				`access.decision {"door":"d1","reader":"in","cred":"` + cred + `","result":"granted","reason":"allowlist","latency_us":0}`,
				`door.event {"door":"d1","event":"secured","by":"pulse_end"}`,
			},
		},
		{
			name:  "relock on close",
			steps: []step{grant, adv(time.Second), open, adv(time.Second), shut, adv(time.Minute)},
			relay: []string{"release@0s", "secure@2s"},
			records: []string{
				`access.decision {"door":"d1","reader":"in","cred":"` + cred + `","result":"granted","reason":"allowlist","latency_us":0}`,
				`door.event {"door":"d1","event":"released","by":"grant"}`,
				`door.event {"door":"d1","event":"opened"}`,
				`door.event {"door":"d1","event":"closed"}`,
				`door.event {"door":"d1","event":"secured","by":"closed"}`,
			},
		},
		{
			name:  "denied card does not release",
			steps: []step{{present: "9-999"}, {present: "1-100", badRead: true}},
			records: []string{
				`access.decision {"door":"d1","reader":"in","cred":"` + hex.EncodeToString(func() []byte { h := hasher.Hash(card("9-999", t0)); return h[:] }()) + `","result":"denied","reason":"unknown","latency_us":0}`,
				`access.decision {"door":"d1","reader":"in","result":"denied","reason":"bad_frame","latency_us":0}`,
			},
		},
		{
			name:  "exit button releases for a pulse",
			steps: []step{{input: InputExit, active: true}, {input: InputExit}, adv(5 * time.Second)},
			relay: []string{"release@0s", "secure@5s"},
			records: []string{
				`door.event {"door":"d1","event":"exit"}`,
				`door.event {"door":"d1","event":"released","by":"exit"}`,
				`door.event {"door":"d1","event":"secured","by":"pulse_end"}`,
			},
		},
		{
			name:    "exit button only recorded with NoExitRelease",
			tweak:   func(dc *DoorConfig) { dc.NoExitRelease = true },
			steps:   []step{{input: InputExit, active: true}, adv(time.Minute)},
			records: []string{`door.event {"door":"d1","event":"exit"}`},
		},
		{
			name:  "forced open raised and cleared",
			steps: []step{open, open, adv(time.Minute), shut},
			records: []string{
				`door.event {"door":"d1","event":"opened"}`,
				`door.alarm {"door":"d1","alarm":"forced_open","active":true}`,
				`door.event {"door":"d1","event":"closed"}`,
				`door.alarm {"door":"d1","alarm":"forced_open","active":false}`,
			},
		},
		{
			name:   "forced open still active",
			steps:  []step{open},
			alarms: []Alarm{AlarmForcedOpen},
			records: []string{
				`door.event {"door":"d1","event":"opened"}`,
				`door.alarm {"door":"d1","alarm":"forced_open","active":true}`,
			},
		},
		{
			name:   "held open after a legit open",
			steps:  []step{grant, adv(time.Second), open, adv(30*time.Second - time.Millisecond)},
			relay:  []string{"release@0s", "secure@5s"},
			alarms: nil,
			records: []string{
				`access.decision {"door":"d1","reader":"in","cred":"` + cred + `","result":"granted","reason":"allowlist","latency_us":0}`,
				`door.event {"door":"d1","event":"released","by":"grant"}`,
				`door.event {"door":"d1","event":"opened"}`,
				`door.event {"door":"d1","event":"secured","by":"pulse_end"}`,
			},
		},
		{
			name:   "held open raised",
			tweak:  func(dc *DoorConfig) { dc.HeldOpen = 10 * time.Second },
			steps:  []step{grant, adv(time.Second), open, adv(10 * time.Second)},
			relay:  []string{"release@0s", "secure@5s"},
			alarms: []Alarm{AlarmHeldOpen},
			records: []string{
				`access.decision {"door":"d1","reader":"in","cred":"` + cred + `","result":"granted","reason":"allowlist","latency_us":0}`,
				`door.event {"door":"d1","event":"released","by":"grant"}`,
				`door.event {"door":"d1","event":"opened"}`,
				`door.event {"door":"d1","event":"secured","by":"pulse_end"}`,
				`door.alarm {"door":"d1","alarm":"held_open","active":true}`,
			},
		},
		{
			name:  "held open cleared on close",
			steps: []step{grant, adv(time.Second), open, adv(time.Minute), shut, adv(time.Minute)},
			relay: []string{"release@0s", "secure@5s"},
			records: []string{
				`access.decision {"door":"d1","reader":"in","cred":"` + cred + `","result":"granted","reason":"allowlist","latency_us":0}`,
				`door.event {"door":"d1","event":"released","by":"grant"}`,
				`door.event {"door":"d1","event":"opened"}`,
				`door.event {"door":"d1","event":"secured","by":"pulse_end"}`,
				`door.alarm {"door":"d1","alarm":"held_open","active":true}`,
				`door.event {"door":"d1","event":"closed"}`,
				`door.alarm {"door":"d1","alarm":"held_open","active":false}`,
			},
		},
		{
			name:  "remote open",
			steps: []step{{remote: "c-7"}, adv(5 * time.Second)},
			relay: []string{"release@0s", "secure@5s"},
			records: []string{
				`door.event {"door":"d1","event":"remote_open","command_id":"c-7"}`,
				`door.event {"door":"d1","event":"released","by":"remote","command_id":"c-7"}`,
				`door.event {"door":"d1","event":"secured","by":"pulse_end"}`,
			},
		},
		{
			name:  "no contact: contact events ignored",
			tweak: func(dc *DoorConfig) { dc.HasContact = false },
			steps: []step{open, grant, adv(time.Second), shut, adv(5 * time.Second)},
			relay: []string{"release@0s", "secure@5s"},
			records: []string{
				`access.decision {"door":"d1","reader":"in","cred":"` + cred + `","result":"granted","reason":"allowlist","latency_us":0}`,
				`door.event {"door":"d1","event":"released","by":"grant"}`,
				`door.event {"door":"d1","event":"secured","by":"pulse_end"}`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, func(c *Config) {
				if tt.tweak != nil {
					tt.tweak(&c.Doors[0])
				}
			})
			for _, s := range tt.steps {
				r.clk.Advance(s.advance)
				switch {
				case s.present != "":
					r.present("d1", s.present, !s.badRead)
				case s.remote != "":
					if err := r.g.RemoteOpen("d1", s.remote); err != nil {
						t.Fatal(err)
					}
				case s.input != 0:
					r.input("d1", s.input, s.active)
				}
			}
			if got := r.doors["d1"].calls(); !slices.Equal(got, tt.relay) {
				t.Errorf("relay calls\n got %q\nwant %q", got, tt.relay)
			}
			if got := r.doors["d2"].calls(); len(got) != 0 {
				t.Errorf("d2 touched: %q", got)
			}
			if got := r.taken(); !slices.Equal(got, tt.records) {
				t.Errorf("records\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.records, "\n     "))
			}
			if got := r.g.Status()[0].Alarms; !slices.Equal(got, tt.alarms) {
				t.Errorf("alarms %v, want %v", got, tt.alarms)
			}
		})
	}
}

func TestFireReleasesEveryDoor(t *testing.T) {
	r := newRig(t, nil)
	r.present("d1", "1-100", true) // a pulse is running on d1
	if err := r.g.SetMode("d2", access.LockedDownMode, "lockdown"); err != nil {
		t.Fatal(err)
	}
	r.clk.Advance(time.Second)
	r.g.Input(InputEvent{Door: "", Input: InputFire, Active: true, At: r.clk.Now()})
	// Released at the input's clock time, before Input returned.
	if got := r.doors["d1"].calls(); !slices.Equal(got, []string{"release@0s", "release@1s"}) {
		t.Errorf("d1 %q", got)
	}
	if got := r.doors["d2"].calls(); !slices.Equal(got, []string{"release@1s"}) {
		t.Errorf("d2 %q", got)
	}
	for _, id := range []string{"d1", "d2"} {
		if m, _ := r.eng.Mode(id); m != access.FreePassageMode {
			t.Errorf("%s mode %v during fire", id, m)
		}
	}
	// Bad frames are still denied; anything readable passes; nothing
	// pulses or relocks while the fire lasts.
	if d := r.present("d1", "1-100", false); d.Granted || d.Reason != access.BadFrame {
		t.Errorf("bad frame during fire: %+v", d.Reason)
	}
	if d := r.present("d2", "5-555", true); !d.Granted || d.Reason != access.FreePassage {
		t.Errorf("unknown card during fire: %v", d.Reason)
	}
	r.input("d1", InputContact, true)
	r.input("d1", InputExit, true)
	r.clk.Advance(time.Hour)
	r.input("d1", InputContact, false)
	if err := r.g.SetMode("d1", access.LockedDownMode, "c-9"); err != nil {
		t.Fatal(err)
	}
	if m, _ := r.eng.Mode("d1"); m != access.FreePassageMode {
		t.Errorf("SetMode during fire changed the engine: %v", m)
	}
	if got := r.doors["d1"].calls(); len(got) != 2 {
		t.Errorf("d1 actuated during fire: %q", got)
	}
	st := r.g.Status()
	if !st[0].Released || st[0].Mode != access.FreePassageMode || !slices.Contains(st[0].Alarms, AlarmFire) {
		t.Errorf("status during fire %+v", st[0])
	}
	r.input("", InputFire, false)
	at := "@1h0m1s"
	if got := r.doors["d1"].calls(); !slices.Equal(got, []string{"release@0s", "release@1s", "secure" + at}) {
		t.Errorf("d1 %q", got)
	}
	if got := r.doors["d2"].calls(); !slices.Equal(got, []string{"release@1s", "secure" + at}) {
		t.Errorf("d2 %q", got)
	}
	for id, want := range map[string]access.Mode{"d1": access.LockedDownMode, "d2": access.LockedDownMode} {
		if m, _ := r.eng.Mode(id); m != want {
			t.Errorf("%s mode %v after fire, want %v", id, m, want)
		}
	}
	recs := r.taken()
	for _, want := range []string{
		`door.event {"door":"d1","event":"released","by":"fire"}`,
		`door.event {"door":"d2","event":"released","by":"fire"}`,
		`door.alarm {"door":"","alarm":"fire","active":true}`,
		`door.alarm {"door":"","alarm":"fire","active":false}`,
		`door.event {"door":"d1","event":"secured","by":"fire_clear"}`,
		`door.event {"door":"d2","event":"secured","by":"fire_clear"}`,
		`door.event {"door":"d1","event":"mode","by":"c-9","mode":"locked_down"}`,
	} {
		if !slices.Contains(recs, want) {
			t.Errorf("missing %s", want)
		}
	}
	for _, rec := range recs {
		if strings.Contains(rec, "forced_open") {
			t.Errorf("forced open during fire: %s", rec)
		}
	}
}

func TestFireSeveralInputs(t *testing.T) {
	r := newRig(t, nil)
	r.input("d1", InputFire, true)
	r.input("d2", InputFire, true)
	r.input("d1", InputFire, true) // repeated level: nothing
	r.input("d1", InputFire, false)
	if got := r.doors["d2"].calls(); !slices.Equal(got, []string{"release@0s"}) {
		t.Fatalf("secured while a fire input is active: %q", got)
	}
	r.clk.Advance(time.Second)
	r.input("d2", InputFire, false)
	for id, fd := range r.doors {
		if got := fd.calls(); !slices.Equal(got, []string{"release@0s", "secure@1s"}) {
			t.Errorf("%s %q", id, got)
		}
	}
	n := 0
	for _, rec := range r.taken() {
		if strings.Contains(rec, `"alarm":"fire"`) {
			n++
		}
	}
	if n != 4 {
		t.Errorf("%d fire alarm records, want 4", n)
	}
}

// TestFireAtStartup: the wiring reports a fire input already active as the
// first event, before Run; the doors release then and the records follow
// once Run writes.
func TestFireAtStartup(t *testing.T) {
	r := newRig(t, nil)
	r.g.Input(InputEvent{Door: "d2", Input: InputFire, Active: true, At: t0})
	r.input("d1", InputContact, false) // initial levels of the rest
	r.input("d1", InputTamper, false)
	for id, fd := range r.doors {
		if got := fd.calls(); !slices.Equal(got, []string{"release@0s"}) {
			t.Errorf("%s %q", id, got)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.g.Run(ctx) }()
	waitRecords(t, r.out, 3)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, rec := range r.out.records() {
		kinds = append(kinds, rec.Kind+" "+string(rec.Body))
	}
	want := []string{
		`door.event {"door":"d1","event":"released","by":"fire"}`,
		`door.event {"door":"d2","event":"released","by":"fire"}`,
		`door.alarm {"door":"d2","alarm":"fire","active":true}`,
		`door.event {"door":"d1","event":"halted"}`,
		`door.event {"door":"d2","event":"halted"}`,
	}
	if !slices.Equal(kinds, want) {
		t.Errorf("records\n got %q\nwant %q", kinds, want)
	}
}

func TestTamper(t *testing.T) {
	r := newRig(t, nil)
	r.input("d2", InputTamper, true)
	r.input("d2", InputTamper, true)
	st := r.g.Status()
	if len(st[0].Alarms) != 0 || !slices.Equal(st[1].Alarms, []Alarm{AlarmTamper}) {
		t.Errorf("status %+v", st)
	}
	r.input("d2", InputTamper, false)
	want := []string{
		`door.alarm {"door":"d2","alarm":"tamper","active":true}`,
		`door.alarm {"door":"d2","alarm":"tamper","active":false}`,
	}
	if got := r.taken(); !slices.Equal(got, want) {
		t.Errorf("records %q", got)
	}
	if got := r.g.Status()[1].Alarms; len(got) != 0 {
		t.Errorf("alarms after clear %v", got)
	}
}

func TestRepeatedDenialsAlarm(t *testing.T) {
	r := newRig(t, nil)
	for range access.DefaultDenialThreshold {
		r.present("d1", "6-666", true)
	}
	recs := r.taken()
	if len(recs) != access.DefaultDenialThreshold+1 {
		t.Fatalf("%d records: %q", len(recs), recs)
	}
	if want := `door.alarm {"door":"d1","alarm":"repeated_denials","active":true,"reader":"in","denials":5}`; recs[len(recs)-1] != want {
		t.Errorf("got %s, want %s", recs[len(recs)-1], want)
	}
}

func TestModeAndErrors(t *testing.T) {
	r := newRig(t, nil)
	if err := r.g.SetMode("d9", access.Normal, "x"); !errors.Is(err, ErrUnknownDoor) {
		t.Errorf("unknown door: %v", err)
	}
	if err := r.g.SetMode("d1", access.Mode(9), "x"); !errors.Is(err, ErrBadMode) {
		t.Errorf("bad mode: %v", err)
	}
	if err := r.g.RemoteOpen("d9", "c"); !errors.Is(err, ErrUnknownDoor) {
		t.Errorf("remote unknown door: %v", err)
	}
	if err := r.g.SetMode("d1", access.LockedDownMode, "c-1"); err != nil {
		t.Fatal(err)
	}
	if d := r.present("d1", "1-100", true); d.Granted || d.Reason != access.LockedDown {
		t.Errorf("locked down: %v", d.Reason)
	}
	if len(r.doors["d1"].calls()) != 0 {
		t.Error("released while locked down")
	}
	// Free passage: an opening is not forced.
	if err := r.g.SetMode("d2", access.FreePassageMode, "c-2"); err != nil {
		t.Fatal(err)
	}
	r.input("d2", InputContact, true)
	if got := r.g.Status()[1].Alarms; len(got) != 0 {
		t.Errorf("alarms in free passage: %v", got)
	}
	// Unknown door presentations are decided and recorded, nothing moves.
	if d := r.present("d9", "1-100", true); d.Granted || d.Reason != access.UnknownDoor {
		t.Errorf("unknown door: %v", d.Reason)
	}
	r.input("d9", InputContact, true) // logged and ignored
}

func TestRelayFault(t *testing.T) {
	r := newRig(t, nil)
	r.doors["d1"].fail = errors.New("gpio write failed")
	if err := r.g.RemoteOpen("d1", "c-1"); !errors.Is(err, ErrRelay) {
		t.Errorf("remote open with a failing relay: %v", err)
	}
	if got := r.g.Status()[0].Alarms; !slices.Equal(got, []Alarm{AlarmRelayFault}) {
		t.Errorf("alarms %v", got)
	}
	r.doors["d1"].fail = nil
	r.clk.Advance(5 * time.Second)
	want := []string{
		`door.event {"door":"d1","event":"remote_open","command_id":"c-1"}`,
		`door.event {"door":"d1","event":"released","by":"remote","command_id":"c-1"}`,
		`door.alarm {"door":"d1","alarm":"relay_fault","active":true,"op":"release","error":"gpio write failed"}`,
		`door.event {"door":"d1","event":"secured","by":"pulse_end"}`,
		`door.alarm {"door":"d1","alarm":"relay_fault","active":false,"op":"secure"}`,
	}
	if got := r.taken(); !slices.Equal(got, want) {
		t.Errorf("records\n got %q\nwant %q", got, want)
	}
}

func TestDriverPanicHalts(t *testing.T) {
	r := newRig(t, nil)
	r.doors["d1"].boom = true
	if d := r.present("d1", "1-100", true); !d.Granted {
		t.Fatal("not granted")
	}
	if got := r.doors["d1"].calls(); !slices.Equal(got, []string{"release@0s", "halt@0s"}) {
		t.Errorf("relay %q", got)
	}
	if got := r.g.Status()[0].Alarms; !slices.Equal(got, []Alarm{AlarmRelayFault}) {
		t.Errorf("alarms %v", got)
	}
}

func TestCloseHaltsEveryDoor(t *testing.T) {
	r := newRig(t, nil)
	r.present("d1", "1-100", true)
	for range 2 {
		if err := r.g.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.doors["d1"].calls(); !slices.Equal(got, []string{"release@0s", "halt@0s"}) {
		t.Errorf("d1 %q", got)
	}
	if got := r.doors["d2"].calls(); !slices.Equal(got, []string{"halt@0s"}) {
		t.Errorf("d2 %q", got)
	}
	// No actuation after Close: not by a grant, a timer, an input, a
	// command or a fire.
	r.present("d2", "1-100", true)
	r.input("d2", InputExit, true)
	r.input("", InputFire, true)
	r.clk.Advance(time.Hour)
	if err := r.g.RemoteOpen("d2", "c"); !errors.Is(err, ErrClosed) {
		t.Errorf("remote open after close: %v", err)
	}
	if got := r.doors["d2"].calls(); len(got) != 1 {
		t.Errorf("d2 actuated after close: %q", got)
	}
	if err := r.g.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close: %v", err)
	}
}

func TestCloseStopsRun(t *testing.T) {
	r := newRig(t, nil)
	done := make(chan error, 1)
	go func() { done <- r.g.Run(context.Background()) }()
	r.present("d1", "1-100", true)
	waitRecords(t, r.out, 2)
	if err := r.g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Run is over when Close returns: its records are all written.
	last := r.out.records()
	if k := last[len(last)-1]; string(k.Body) != `{"door":"d2","event":"halted"}` {
		t.Errorf("last record %s", k.Body)
	}
	if err := r.g.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("second Run: %v", err)
	}
}

func TestWriterPanicHalts(t *testing.T) {
	r := newRig(t, nil)
	r.out.panicky = true
	r.present("d1", "9-999", true)
	err := r.g.Run(context.Background())
	if !errors.Is(err, ErrPanic) {
		t.Fatalf("Run: %v", err)
	}
	for id, fd := range r.doors {
		if got := fd.calls(); !slices.Equal(got, []string{"halt@0s"}) {
			t.Errorf("%s %q", id, got)
		}
	}
}

func waitRecords(t *testing.T, o *fakeOutbox, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for len(o.records()) < n {
		select {
		case <-o.tried:
		case <-timeout:
			t.Fatalf("%d records written, want %d", len(o.records()), n)
		}
	}
}

// TestOutboxFailureKeepsOrder: Append fails three times; the writer backs
// off on the clock (100, 200, 400 ms), keeps the head, and then writes
// everything in order.
func TestOutboxFailureKeepsOrder(t *testing.T) {
	r := newRig(t, nil)
	r.out.fail = 3
	for i := range 5 {
		r.present("d1", fmt.Sprintf("7-%d", i), true)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.g.Run(ctx) }()
	for _, backoff := range []time.Duration{100, 200, 400} {
		r.clk.WaitPending(t, 1)
		if got := r.out.records(); len(got) != 0 {
			t.Fatalf("written past a failure: %d", len(got))
		}
		r.clk.Advance(backoff*time.Millisecond - time.Nanosecond)
		r.clk.Advance(time.Nanosecond)
	}
	waitRecords(t, r.out, 5)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	recs := r.out.records()
	for i := range 5 {
		h := hasher.Hash(card(fmt.Sprintf("7-%d", i), t0))
		if !strings.Contains(string(recs[i].Body), hex.EncodeToString(h[:])) {
			t.Errorf("record %d out of order: %s", i, recs[i].Body)
		}
	}
	st := r.g.Stats()
	if st.AppendErrors != 3 || st.Written != uint64(len(recs)) || st.Dropped != 0 || st.Queued != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestQueueFull: with no room, records are dropped (Present still
// decides) and a gate.dropped record takes their place.
func TestQueueFull(t *testing.T) {
	r := newRig(t, func(c *Config) { c.QueueSize = 4 })
	// Locked down: denials that do not count towards repeated_denials.
	if err := r.g.SetMode("d1", access.LockedDownMode, "test"); err != nil {
		t.Fatal(err)
	}
	r.taken()
	for i := range 7 {
		r.clk.Advance(time.Second)
		if d := r.present("d1", "1-100", true); d.Reason != access.LockedDown {
			t.Fatalf("present %d: %v", i, d.Reason)
		}
	}
	if st := r.g.Stats(); st.Queued != 4 || st.Dropped != 3 {
		t.Fatalf("stats %+v", st)
	}
	recs := r.taken()
	if len(recs) != 5 {
		t.Fatalf("%d records: %q", len(recs), recs)
	}
	if want := `gate.dropped {"reason":"queue_full","count":3,"until":"2026-05-01T08:30:07Z"}`; recs[4] != want {
		t.Errorf("got %s, want %s", recs[4], want)
	}
	r.present("d1", "1-100", true)
	if got := r.taken(); len(got) != 1 || !strings.HasPrefix(got[0], "access.decision") {
		t.Errorf("after drain %q", got)
	}
}

// TestRecordsGolden checks what reaches the outbox: kind, class, time and
// body, in order, for a grant with a read latency.
func TestRecordsGolden(t *testing.T) {
	r := newRig(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.g.Run(ctx) }()
	c := card("1-100", t0)
	r.clk.Advance(1834 * time.Microsecond)
	r.g.Present("d1", "in", c, true)
	r.input("d1", InputContact, true)
	waitRecords(t, r.out, 3)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	h := hasher.Hash(c)
	at := t0.Add(1834 * time.Microsecond)
	want := []wire.Record{
		{Kind: "access.decision", Class: wire.ClassCritical, Time: at, Body: []byte(`{"door":"d1","reader":"in","cred":"` + hex.EncodeToString(h[:]) + `","result":"granted","reason":"allowlist","latency_us":1834}`)},
		{Kind: "door.event", Class: wire.ClassCritical, Time: at, Body: []byte(`{"door":"d1","event":"released","by":"grant"}`)},
		{Kind: "door.event", Class: wire.ClassCritical, Time: at, Body: []byte(`{"door":"d1","event":"opened"}`)},
		{Kind: "door.event", Class: wire.ClassCritical, Time: at, Body: []byte(`{"door":"d1","event":"halted"}`)},
		{Kind: "door.event", Class: wire.ClassCritical, Time: at, Body: []byte(`{"door":"d2","event":"halted"}`)},
	}
	got := r.out.records()
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Kind != w.Kind || g.Class != w.Class || !g.Time.Equal(w.Time) || string(g.Body) != string(w.Body) {
			t.Errorf("record %d\n got %s %v %v %s\nwant %s %v %v %s", i, g.Kind, g.Class, g.Time, g.Body, w.Kind, w.Class, w.Time, w.Body)
		}
		if _, err := wire.MarshalRecord(g); err != nil {
			t.Errorf("record %d does not encode: %v", i, err)
		}
	}
}

func TestConcurrentPresents(t *testing.T) {
	r := newRig(t, func(c *Config) { c.QueueSize = 1 << 14 })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.g.Run(ctx) }()
	const readers, each = 8, 200
	var wg sync.WaitGroup
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			door := []string{"d1", "d2"}[i%2]
			for j := range each {
				number := "1-100"
				if j%3 == 0 {
					number = "5-555"
				}
				r.present(door, number, true)
				switch j % 10 {
				case 4:
					r.input(door, InputContact, true)
				case 5:
					r.input(door, InputContact, false)
				case 7:
					r.clk.Advance(time.Second)
				}
				_ = r.g.Status()
			}
		}()
	}
	wg.Wait()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, rec := range r.out.records() {
		if rec.Kind == KindDecision {
			n++
		}
	}
	if n != readers*each {
		t.Errorf("%d decision records, want %d", n, readers*each)
	}
	if st := r.g.Stats(); st.Dropped != 0 || st.Queued != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestNewValidates(t *testing.T) {
	eng, err := access.New(access.Config{Hasher: hasher, Allowlist: mapAllowlist{}, Doors: []access.Door{{ID: "d1"}}})
	if err != nil {
		t.Fatal(err)
	}
	fd := &fakeDoor{clk: newFakeClock(t0)}
	ok := Config{Engine: eng, Outbox: newFakeOutbox(), Doors: []DoorConfig{{ID: "d1", Door: fd}}}
	for name, tweak := range map[string]func(*Config){
		"no engine":     func(c *Config) { c.Engine = nil },
		"no outbox":     func(c *Config) { c.Outbox = nil },
		"no doors":      func(c *Config) { c.Doors = nil },
		"no relay":      func(c *Config) { c.Doors = []DoorConfig{{ID: "d1"}} },
		"no id":         func(c *Config) { c.Doors = []DoorConfig{{Door: fd}} },
		"twice":         func(c *Config) { c.Doors = append(c.Doors, c.Doors[0]) },
		"not in engine": func(c *Config) { c.Doors = []DoorConfig{{ID: "d2", Door: fd}} },
		"negative":      func(c *Config) { c.Doors = []DoorConfig{{ID: "d1", Door: fd, UnlockPulse: -1}} },
		"tiny queue":    func(c *Config) { c.QueueSize = 1 },
		"retry":         func(c *Config) { c.RetryMin, c.RetryMax = time.Second, time.Millisecond },
	} {
		c := ok
		c.Doors = slices.Clone(ok.Doors)
		tweak(&c)
		if _, err := New(c); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
	g, err := New(ok)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRunShutdown: when Run's context ends, the doors are halted and what
// is queued is written with a fresh context, one attempt each, for at most
// DrainTimeout on the clock.
func TestRunShutdown(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	t.Run("drained", func(t *testing.T) {
		r := newRig(t, nil)
		r.present("d1", "1-100", true)
		if err := r.g.Run(cancelled); err != nil {
			t.Fatal(err)
		}
		if got := len(r.out.records()); got != 4 { // decision, released, halted ×2
			t.Errorf("%d records written, want 4", got)
		}
		for id, fd := range r.doors {
			if got := fd.calls(); got[len(got)-1] != "halt@0s" {
				t.Errorf("%s not halted: %q", id, got)
			}
		}
	})
	t.Run("outbox failing", func(t *testing.T) {
		r := newRig(t, nil)
		r.out.fail = 1000
		r.present("d1", "9-999", true)
		if err := r.g.Run(cancelled); !errors.Is(err, ErrUndrained) {
			t.Fatalf("Run: %v", err)
		}
		if st := r.g.Stats(); st.Queued != 3 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("drain timeout", func(t *testing.T) {
		r := newRig(t, func(c *Config) { c.DrainTimeout = 3 * time.Second })
		r.out.block = true
		r.present("d1", "9-999", true)
		done := make(chan error, 1)
		go func() { done <- r.g.Run(cancelled) }()
		r.clk.WaitPending(t, 1)
		r.clk.Advance(3 * time.Second)
		if err := <-done; !errors.Is(err, ErrUndrained) {
			t.Fatalf("Run: %v", err)
		}
	})
}

// TestInputTime: records of an input carry the edge's time, not the time
// the gate handled it.
func TestInputTime(t *testing.T) {
	r := newRig(t, nil)
	edge := t0.Add(-40 * time.Millisecond)
	r.g.Input(InputEvent{Door: "d1", Input: InputTamper, Active: true, At: edge})
	r.g.Input(InputEvent{Door: "d1", Input: InputContact, Active: true, At: edge})
	for i := 0; ; i++ {
		e, ok := r.g.q.peek()
		if !ok {
			if i != 3 {
				t.Errorf("%d records, want 3", i)
			}
			return
		}
		r.g.q.pop(true)
		if rec := record(e); !rec.Time.Equal(edge) {
			t.Errorf("%s at %v, want %v", rec.Body, rec.Time, edge)
		}
	}
}

type signalDoor struct{ secured chan struct{} }

func (d signalDoor) Release() error { return nil }
func (d signalDoor) Secure() error  { d.secured <- struct{}{}; return nil }
func (d signalDoor) Halt() error    { return nil }

// TestSystemClock runs grants and relocks on the real clock, where timers
// fire on their own goroutines (under -race).
func TestSystemClock(t *testing.T) {
	al := mapAllowlist{hasher.Hash(card("1-100", t0)): {DoorGroups: []string{"g"}}}
	eng, err := access.New(access.Config{Hasher: hasher, Allowlist: al, Doors: []access.Door{{ID: "d1", Groups: []string{"g"}}}})
	if err != nil {
		t.Fatal(err)
	}
	door := signalDoor{secured: make(chan struct{}, 1)}
	g, err := New(Config{Engine: eng, Outbox: newFakeOutbox(), Doors: []DoorConfig{{ID: "d1", Door: door, UnlockPulse: time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for range 20 {
		if !g.Present("d1", "in", card("1-100", time.Now()), true).Granted {
			t.Fatal("denied")
		}
		select {
		case <-door.secured:
		case <-time.After(10 * time.Second):
			t.Fatal("not secured after the pulse")
		}
	}
	if st := g.Status()[0]; st.Released {
		t.Errorf("still released: %+v", st)
	}
}
