package commission

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/drivers/door"
	"github.com/kioskedge/kioskedge/drivers/wiegand"
)

// Reasons a door check fails or is not verified (firmware-specs/commissioning-report.md §2).
const (
	ReasonNoFeedback = "relay without door feedback: check the lock's power and the contact wiring"
	DetailNoContact  = "no door contact fitted: relay pulsed, not verified"
)

func doorName(id string) string { return "door:" + id }

// lineError turns a failure to resolve a line into a check or, for a busy
// line, ErrBusy.
func lineError(name string, err error) (Check, error) {
	if errors.Is(err, ErrBusy) {
		return Check{}, err
	}
	return failed(name, "GPIO lines", fmt.Sprintf("cannot open the line: %v", err)), nil
}

// door checks door d's lines and, with pulse, releases its lock for at most
// Timeout and requires its contact to change (someone opens the door) in
// that time, then secures it again.
func (t *Tester) door(ctx context.Context, d config.Door, pulse bool) (Check, error) {
	name := doorName(d.ID)
	lo := &lineOpener{lines: t.o.Lines}
	defer lo.close()
	relay, err := lo.open("door."+d.ID+".relay", d.Relay)
	if err != nil {
		return lineError(name, err)
	}
	dc := door.Config{Name: d.ID, Relay: relay, RelayActiveLow: d.RelayActiveLow, FailSafe: d.Lock == config.LockFailSafe,
		Logger: t.o.Logger, Clock: t.o.DoorClock}
	inputs := []struct {
		key, spec string
		activeLow bool
		dst       **door.Input
	}{{"contact", d.Contact, d.ContactActiveLow, &dc.Contact}, {"fire", d.Fire, d.FireActiveLow, &dc.Fire}, {"tamper", d.Tamper, d.TamperActiveLow, &dc.Tamper}}
	for _, in := range inputs {
		if in.spec == "" {
			continue
		}
		pin, err := lo.open("door."+d.ID+"."+in.key, in.spec)
		if err != nil {
			return lineError(name, err)
		}
		*in.dst = &door.Input{Pin: pin, ActiveLow: in.activeLow, Pull: gpio.PullNoChange}
	}
	dd, err := door.New(dc)
	if err != nil {
		return failed(name, "door driver", err.Error()), nil
	}
	relayFailed := func(err error) (Check, error) {
		return failed(name, "relay "+d.Relay, "relay write failed: "+err.Error()), nil
	}
	// door.New left the relay in its safe state; a fail-safe lock is
	// released there, so hold it locked until the pulse.
	if err := dd.Secure(); err != nil {
		return relayFailed(err)
	}
	events := make(chan door.Event, 16)
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	runErr := make(chan error, 1)
	wg.Go(func() {
		runErr <- dd.Run(rctx, func(e door.Event) {
			select {
			case events <- e:
			default:
			}
		})
	})
	defer func() {
		cancel()
		wg.Wait()
		// The test leaves the relay in its safe state, as a stopped kioskd
		// does: a fail-safe lock (an escape route) released, a fail-secure
		// one locked. A failed write is counted in the driver's health,
		// which nobody reads after this.
		_ = dd.Halt()
	}()

	// The initial levels: fire and contact are reported first (door.md).
	state := map[door.InputKind]bool{}
	want := 0
	for _, in := range inputs {
		if in.spec != "" {
			want++
		}
	}
	deadline := time.After(t.o.ReplyTimeout * 2)
	for len(state) < want {
		select {
		case e := <-events:
			state[e.Input] = e.Active
		case err := <-runErr:
			return failed(name, "door inputs", fmt.Sprintf("cannot read the inputs: %v", err)), nil
		case <-deadline:
			return failed(name, "door inputs", "the inputs were not read in time"), nil
		case <-ctx.Done():
			return Check{}, ctx.Err()
		}
	}
	var notes string
	if state[door.Fire] {
		notes += "; fire alarm input active"
	}
	if state[door.Tamper] {
		notes += "; tamper input active (enclosure open)"
	}
	contactState := "no contact fitted"
	if d.Contact != "" {
		contactState = "contact closed"
		if state[door.Contact] {
			contactState = "contact open"
		}
	}
	if !pulse {
		return pass(name, "lines ok, %s%s; relay not pulsed (--no-actuate)", contactState, notes), nil
	}
	if d.Contact != "" && state[door.Contact] {
		return failed(name, "door is open before the test"+notes, "close the door and test again: the contact must change when the lock releases"), nil
	}
	if err := dd.Release(); err != nil {
		return relayFailed(err)
	}
	start := time.Now()
	if d.Contact == "" {
		p := min(d.UnlockPulse.D(), t.o.Timeout)
		if p <= 0 {
			p = min(5*time.Second, t.o.Timeout)
		}
		sleep(ctx, p)
		if err := dd.Secure(); err != nil {
			return relayFailed(err)
		}
		return pass(name, "%s%s", DetailNoContact, notes), nil
	}
	timeout := time.After(t.o.Timeout)
	for {
		select {
		case e := <-events:
			if e.Input != door.Contact || !e.Active {
				continue
			}
			took := time.Since(start).Round(time.Millisecond)
			if err := dd.Secure(); err != nil {
				return relayFailed(err)
			}
			return pass(name, "relay pulsed; door contact opened after %v%s", took, notes), nil
		case <-timeout:
			if err := dd.Secure(); err != nil {
				return relayFailed(err)
			}
			return failed(name, fmt.Sprintf("relay pulsed for %v, the door contact did not change%s", t.o.Timeout, notes), ReasonNoFeedback), nil
		case <-ctx.Done():
			return Check{}, ctx.Err()
		}
	}
}

func wiegandName(n string) string { return "wiegand:" + n }

// wiegand opens reader w's lines and, with wait, waits up to Timeout for a
// frame.
func (t *Tester) wiegand(ctx context.Context, w config.Wiegand, wait bool) (Check, error) {
	name := wiegandName(w.Name)
	lo := &lineOpener{lines: t.o.Lines}
	defer lo.close()
	d0, err := lo.open("wiegand."+w.Name+".d0", w.D0)
	if err != nil {
		return lineError(name, err)
	}
	d1, err := lo.open("wiegand."+w.Name+".d1", w.D1)
	if err != nil {
		return lineError(name, err)
	}
	if !wait {
		return pass(name, "lines %s and %s open; a Wiegand reader sends only when a card is shown (kioskctl test %s)", w.D0, w.D1, w.Name), nil
	}
	frames := make(chan wiegand.Frame, 4)
	r, err := wiegand.NewReader(d0, d1, wiegand.ReaderConfig{
		Config: wiegand.Config{Reader: w.Name, Gap: w.Gap.D(), RawBits: w.RawBits, CompleteAt: w.CompleteAt},
		OnFrame: func(f wiegand.Frame) {
			select {
			case frames <- f:
			default:
			}
		},
		AllowUnstamped: true,
		Logger:         t.o.Logger,
	})
	if err != nil {
		return failed(name, "Wiegand reader", err.Error()), nil
	}
	rctx, cancel := context.WithTimeout(ctx, t.o.Timeout)
	var wg sync.WaitGroup
	runErr := make(chan error, 1)
	wg.Go(func() { runErr <- r.Run(rctx) })
	defer func() {
		cancel()
		wg.Wait()
	}()
	select {
	case f := <-frames:
		if c, ok := f.Credential(); ok {
			return pass(name, "card read: %s %s", c.Encoding, credential.Mask(c.Number)), nil
		}
		return failed(name, "a frame arrived: "+f.String(), "the frame did not decode: check the reader's output format (26, 34 or 37 bits) and the D0/D1 wiring"), nil
	case err := <-runErr:
		if err != nil {
			return failed(name, "Wiegand lines", fmt.Sprintf("cannot read the lines: %v", err)), nil
		}
	case <-rctx.Done():
	}
	if ctx.Err() != nil {
		return Check{}, ctx.Err()
	}
	return failed(name, "Wiegand reader on "+w.D0+"/"+w.D1, fmt.Sprintf("no card within %v: show a card to the reader; if you did, check its power and the D0/D1 wiring", t.o.Timeout)), nil
}
