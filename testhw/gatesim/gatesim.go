// Package gatesim is a whole virtual gate for tests, the demo and kbench:
// from an agent config's [[door]] and [[wiegand]] entries it builds a
// simulated door (testhw/doorsim) per door and a pair of simulated data
// lines (testhw/gpiosim) per Wiegand reader, and resolves the config's line
// names to them (Lines), so cmd/internal/gate runs over it exactly as it
// runs over real GPIO. Residents swipe with Swipe; doors are pushed,
// forced, held and set on fire through Door.
package gatesim

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/testhw/doorsim"
	"github.com/kioskedge/kioskedge/testhw/gpiosim"
)

// ErrUnknown is returned for a line, door or reader the config does not
// name.
var ErrUnknown = errors.New("gatesim: not in the config")

// Reader is one simulated Wiegand reader's data lines.
type Reader struct {
	Name   string
	Door   string
	D0, D1 *gpiosim.Line

	mu sync.Mutex // one frame on the wire at a time
}

// Gate is the simulated hardware of one gate.
type Gate struct {
	doors   map[string]*doorsim.Door
	readers map[string]*Reader
	lines   map[string]gpio.PinIO
}

// New builds the hardware c's doors and readers describe; now stamps the
// lines' edges (nil: time.Now).
func New(c config.Config, now func() time.Time) (*Gate, error) {
	g := &Gate{doors: map[string]*doorsim.Door{}, readers: map[string]*Reader{}, lines: map[string]gpio.PinIO{}}
	add := func(spec string, l *gpiosim.Line) {
		if spec != "" {
			g.lines[spec] = l
		}
	}
	for _, d := range c.Doors {
		ds := doorsim.New(doorsim.Options{
			FailSafe: d.Lock == config.LockFailSafe, RelayActiveLow: d.RelayActiveLow,
			ContactActiveLow: d.ContactActiveLow, ExitActiveLow: d.ExitActiveLow,
			FireActiveLow: d.FireActiveLow, TamperActiveLow: d.TamperActiveLow, Now: now,
		})
		g.doors[d.ID] = ds
		add(d.Relay, ds.Relay)
		add(d.Contact, ds.Contact)
		add(d.Exit, ds.Exit)
		add(d.Fire, ds.Fire)
		add(d.Tamper, ds.Tamper)
	}
	for i, w := range c.Wiegand {
		r := &Reader{Name: w.Name, Door: w.Door,
			D0: gpiosim.NewLine(w.Name+"-d0", 2*i, now), D1: gpiosim.NewLine(w.Name+"-d1", 2*i+1, now)}
		g.readers[w.Name] = r
		add(w.D0, r.D0)
		add(w.D1, r.D1)
	}
	return g, nil
}

// Lines resolves a configured line to its simulated line; it has the
// signature of cmd/internal/gate.Lines.
func (g *Gate) Lines(key, spec string) (gpio.PinIO, error) {
	l, ok := g.lines[spec]
	if !ok {
		return nil, fmt.Errorf("%w: %s = %q", ErrUnknown, key, spec)
	}
	return l, nil
}

// Door returns the simulated door with the given id, or nil.
func (g *Gate) Door(id string) *doorsim.Door { return g.doors[id] }

// Reader returns the simulated reader with the given name, or nil.
func (g *Gate) Reader(name string) *Reader { return g.readers[name] }

// Default timing of a swipe: firmware-specs/wiegand.md §2.
const (
	DefaultPulse    = gpiosim.DefaultPulse
	DefaultInterval = gpiosim.DefaultInterval
)

// Swipe clocks bits onto the reader's lines at the default timing (or
// o's), pacing them in real time unless o.NoPace, and returns the time of
// the last edge. Concurrent swipes on one reader are sent one after the
// other.
func (g *Gate) Swipe(reader string, bits []bool, o gpiosim.TxOptions) (time.Time, error) {
	r := g.readers[reader]
	if r == nil {
		return time.Time{}, fmt.Errorf("%w: reader %q", ErrUnknown, reader)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return gpiosim.Transmit(r.D0, r.D1, bits, DefaultPulse, DefaultInterval, o), nil
}
