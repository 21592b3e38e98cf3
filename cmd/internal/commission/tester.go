package commission

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/drivers/door"
	"github.com/kioskedge/kioskedge/drivers/gpioline"
	"github.com/kioskedge/kioskedge/drivers/serialport"
)

// Lines resolves a configured GPIO line ("gpiochip0:17", "name:DOOR_RELAY")
// to a pin; key is the config key naming it, for errors. It has the shape
// of cmd/internal/gate.Lines. A line another program holds should return
// an error wrapping gpioline.ErrBusy.
type Lines func(key, spec string) (gpio.PinIO, error)

// DefaultTimeout is how long Test waits for a person (a card, a scan, a
// door opened) and Probe for a door contact, when Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Options configure a Tester.
type Options struct {
	Config config.Config
	// Lines resolves the gate's GPIO lines; nil makes every door and Wiegand
	// check fail with "no GPIO lines".
	Lines Lines
	// Timeout bounds each wait for a person or a door; 0 means DefaultTimeout.
	Timeout time.Duration
	// NoActuate: Probe does not pulse door relays.
	NoActuate bool
	// ReplyTimeout bounds one exchange with a serial device that should
	// answer at once (a printer's status, a reader's presence); 0 means 1 s.
	ReplyTimeout time.Duration
	// DoorClock drives the door driver's debounce; nil means the system clock.
	DoorClock door.Clock
	// Now stamps the receipt; nil means time.Now.
	Now func() time.Time
	// Version goes on the test receipt.
	Version string
	Logger  *slog.Logger // nil discards
}

// Tester runs device tests and probes. Its methods may be called from
// several goroutines for different devices.
type Tester struct {
	o Options
}

// New returns a Tester over o. It opens nothing.
func New(o Options) *Tester {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.ReplyTimeout <= 0 {
		o.ReplyTimeout = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Tester{o: o}
}

// Names lists what Test accepts: device names, OSDP reader names, door ids
// and Wiegand reader names, in config order.
func (t *Tester) Names() []string {
	var n []string
	c := t.o.Config
	for _, d := range c.Devices {
		n = append(n, d.Name)
		if d.OSDP != nil {
			for _, r := range d.OSDP.Readers {
				if rn := d.ReaderName(r); rn != d.Name {
					n = append(n, rn)
				}
			}
		}
	}
	for _, d := range c.Doors {
		n = append(n, d.ID)
	}
	for _, w := range c.Wiegand {
		n = append(n, w.Name)
	}
	return n
}

// Test exercises the device, reader or door called name and returns the
// check: osdp readers flash their LED and beep, card readers read a card,
// the printer prints a test receipt, the scanner waits for a scan, a door
// pulses its relay and watches its contact, a Wiegand reader waits for a
// frame. It returns ErrUnknown when nothing has that name, and an error
// wrapping ErrBusy when the port or a line is held by another process; a
// device that is absent or faulty is a failed Check, not an error.
func (t *Tester) Test(ctx context.Context, name string) (Check, error) {
	c := t.o.Config
	for _, d := range c.Devices {
		if d.Name == name {
			return t.testSerial(ctx, d, "")
		}
		if d.OSDP != nil {
			for _, r := range d.OSDP.Readers {
				if d.ReaderName(r) == name {
					return t.testSerial(ctx, d, name)
				}
			}
		}
	}
	for _, d := range c.Doors {
		if d.ID == name {
			return t.door(ctx, d, true)
		}
	}
	for _, w := range c.Wiegand {
		if w.Name == name {
			return t.wiegand(ctx, w, true)
		}
	}
	return Check{}, fmt.Errorf("%w: %q (configured: %s)", ErrUnknown, name, strings.Join(t.Names(), ", "))
}

// Probe checks every configured device without waiting for a person, all at
// once: presence and status of each serial device (a printer's paper and
// cover, a reader's answer, an OSDP reader coming online), the GPIO lines
// of each door and Wiegand reader, and, unless NoActuate, a relay pulse per
// door that its contact must follow within Timeout. Checks come back in
// config order. It returns an error wrapping ErrBusy as soon as one port or
// line is held by another process (the checks are then incomplete).
func (t *Tester) Probe(ctx context.Context) ([]Check, error) {
	c := t.o.Config
	type job func(context.Context) ([]Check, error)
	var jobs []job
	for _, d := range c.Devices {
		jobs = append(jobs, func(ctx context.Context) ([]Check, error) { return t.probeSerial(ctx, d) })
	}
	for _, d := range c.Doors {
		jobs = append(jobs, func(ctx context.Context) ([]Check, error) {
			ch, err := t.door(ctx, d, !t.o.NoActuate)
			return []Check{ch}, err
		})
	}
	for _, w := range c.Wiegand {
		jobs = append(jobs, func(ctx context.Context) ([]Check, error) {
			ch, err := t.wiegand(ctx, w, false)
			return []Check{ch}, err
		})
	}
	results := make([][]Check, len(jobs))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() { results[i], errs[i] = j(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return slices.Concat(results...), err
	}
	return slices.Concat(results...), nil
}

// openPort opens a serial device for one test. ok is false with the check
// to report when the device is absent; err wraps ErrBusy when another
// process holds it.
func (t *Tester) openPort(name string, d config.Device) (p serialport.Port, fail Check, err error) {
	p, err = serialport.Open(d.Path, serialport.Mode{BaudRate: d.Baud})
	switch {
	case err == nil:
		return p, Check{}, nil
	case serialport.Is(err, serialport.Busy):
		return nil, Check{}, fmt.Errorf("%s (%s): %w", name, d.Path, ErrBusy)
	case serialport.IsNotFound(err), serialport.IsDisconnected(err):
		return nil, failed(name, d.Path+" is not there", "not connected: check the cable and the USB adapter (kioskctl ports lists the serial ports)"), nil
	case serialport.Is(err, serialport.Permission):
		return nil, failed(name, d.Path, "permission denied: run as root or add the user to group dialout"), nil
	}
	return nil, failed(name, d.Path, fmt.Sprintf("cannot open: %v", err)), nil
}

// lineOpener resolves lines for one door or reader and closes them after.
type lineOpener struct {
	lines  Lines
	opened []gpio.PinIO
}

func (l *lineOpener) open(key, spec string) (gpio.PinIO, error) {
	if l.lines == nil {
		return nil, errors.New("no GPIO lines on this machine")
	}
	p, err := l.lines(key, spec)
	if err != nil {
		if errors.Is(err, gpioline.ErrBusy) {
			return nil, fmt.Errorf("%s (%s): %w", key, spec, ErrBusy)
		}
		return nil, err
	}
	l.opened = append(l.opened, p)
	return p, nil
}

func (l *lineOpener) close() {
	for _, p := range l.opened {
		if c, ok := p.(io.Closer); ok {
			// A line that fails to close is released by the process's exit.
			_ = c.Close()
		}
	}
}

// waitUntil polls cond every step until it holds or ctx ends.
func waitUntil(ctx context.Context, step time.Duration, cond func() bool) bool {
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return cond()
		case <-time.After(step):
		}
	}
}
