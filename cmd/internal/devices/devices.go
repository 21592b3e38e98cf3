// Package devices builds the serial devices of an agent's config
// ([[device]] entries) with their concrete drivers, registers each with
// the agent's device Monitor (agent/devices), runs the drivers and forwards
// their events to the Monitor as records. It lives under cmd/ because
// wiring concrete drivers is the mains' job (DESIGN.md §3): the switch on
// the kind in Open is the only place that knows which driver a kind is.
//
// Lifecycle: Open opens every device (an absent device is not an error:
// its driver keeps reopening the path, and the Monitor reports it down);
// Run runs every driver's Run and the event forwarder in goroutines it
// owns and waits for them; Close closes every driver.
package devices

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/kioskedge/kioskedge/agent/config"
	agentdevices "github.com/kioskedge/kioskedge/agent/devices"
	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/drivers/devstatus"
	"github.com/kioskedge/kioskedge/drivers/escpos"
	"github.com/kioskedge/kioskedge/drivers/idcard"
	"github.com/kioskedge/kioskedge/drivers/osdp"
	"github.com/kioskedge/kioskedge/drivers/qrscan"
	"github.com/kioskedge/kioskedge/drivers/serialport"
	"github.com/kioskedge/kioskedge/drivers/sscard"
)

// eventQueue bounds the driver events waiting to be appended.
const eventQueue = 256

// Options are what Open needs besides the config entries.
type Options struct {
	Devices []config.Device
	// Monitor receives every device (by name; OSDP readers one by one) and
	// their events. Required.
	Monitor *agentdevices.Monitor
	// OnCredential receives card reads and scans for the access engine,
	// from the drivers' goroutines; nil drops them.
	OnCredential func(credential.Credential)
	// OnEvent receives every driver event for the kiosk UI (the local
	// API's /v1/events), from the drivers' goroutines; it must not block.
	// A code.scanned Event carries the payload in Payload: it is for the
	// local UI only and must never be logged or recorded. nil drops them.
	OnEvent func(Event)
	Logger  *slog.Logger // nil discards
}

// Event is a driver event as the kiosk UI sees it.
type Event struct {
	Device string
	Name   string         // "card.inserted", "card.removed", "card.read", "code.scanned", …
	Fields map[string]any // the record's fields: facts about the device only
	// Payload is a scanned code's content (code.scanned only): possibly
	// personal data, never logged nor recorded.
	Payload string
	Time    time.Time
}

// Set is the running device set.
type Set struct {
	mon     *agentdevices.Monitor
	log     *slog.Logger
	onCred  func(credential.Credential)
	onEvent func(Event)
	devices []*device
	idcards map[string]*idcard.Reader
	sscards map[string]*sscard.Reader
	printer map[string]*escpos.Printer
	events  chan event
	mu      sync.Mutex
	closed  bool
}

// device is one opened driver.
type device struct {
	name, kind string
	run        func(ctx context.Context) error
	close      func() error
}

// event is a driver event on its way to Monitor.RecordEvent.
type event struct {
	device, name string
	fields       map[string]any
}

// Open opens every configured device and registers it with the Monitor.
// It fails, naming the device, when a device cannot be opened for a reason
// waiting will not fix (a path that is not a serial device, permission
// denied, an unreadable OSDP key file, a baud rate the driver cannot use);
// everything opened so far is then closed.
func Open(o Options) (*Set, error) {
	if o.Monitor == nil {
		return nil, errors.New("devices: Monitor is required")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Set{mon: o.Monitor, log: log, onCred: o.OnCredential, onEvent: o.OnEvent, events: make(chan event, eventQueue),
		idcards: map[string]*idcard.Reader{}, sscards: map[string]*sscard.Reader{}, printer: map[string]*escpos.Printer{}}
	for i, c := range o.Devices {
		d, err := s.open(c)
		if err != nil {
			// The open error is the one worth returning.
			_ = s.Close()
			return nil, fmt.Errorf("device[%d] %q (%s at %s): %w", i, c.Name, c.Kind, c.Path, err)
		}
		s.devices = append(s.devices, d)
	}
	return s, nil
}

// open builds the driver for one config entry: an explicit switch on the
// kind, no registry.
func (s *Set) open(c config.Device) (*device, error) {
	log := s.log.With("device", c.Name)
	mode := serialport.Mode{BaudRate: c.Baud}
	ro := serialport.ReconnectOptions{MaxBackoff: c.ReconnectMax.D(), Logger: log}
	d := &device{name: c.Name, kind: c.Kind}
	switch c.Kind {
	case config.KindIDCard:
		if c.Baud != idcard.Mode.BaudRate {
			return nil, fmt.Errorf("the idcard driver runs at %d baud only, not %d", idcard.Mode.BaudRate, c.Baud)
		}
		o := idcard.Options{Name: c.Name, Logger: log, DownAfter: c.DownAfter,
			OnEvent: func(e idcard.Event) { s.idcardEvent(c.Name, e) }}
		if c.IDCard != nil {
			o.PollInterval = c.IDCard.PollInterval.D()
		}
		r, err := idcard.Open(c.Path, o, ro)
		if err != nil {
			return nil, err
		}
		d.run, d.close = r.Run, r.Close
		s.idcards[c.Name] = r
		return d, s.add(d, r)
	case config.KindSSCard:
		o := sscard.Options{Name: c.Name, Logger: log, DownAfter: c.DownAfter,
			OnEvent: func(e sscard.Event) { s.sscardEvent(c.Name, e) }}
		if c.SSCard != nil {
			o.PollInterval = c.SSCard.PollInterval.D()
		}
		r, err := sscard.Open(c.Path, mode, o, ro)
		if err != nil {
			return nil, err
		}
		d.run, d.close = r.Run, r.Close
		s.sscards[c.Name] = r
		return d, s.add(d, r)
	case config.KindQRScan:
		sc, err := qrscan.Open(c.Path, mode, ro, qrscan.Options{Name: c.Name, Framer: QRFramer(c.QRScan), DownAfter: c.DownAfter,
			Logger: log,
			OnScan: func(cr credential.Credential) {
				// The payload may be personal data: the record carries its length only.
				s.queue(c.Name, "code.scanned", map[string]any{"bytes": len(cr.Raw)})
				s.notify(Event{Device: c.Name, Name: "code.scanned", Fields: map[string]any{"bytes": len(cr.Raw)}, Payload: cr.Number, Time: cr.Time})
				s.credential(cr)
			}})
		if err != nil {
			return nil, err
		}
		d.run, d.close = sc.Run, sc.Close
		return d, s.add(d, sc)
	case config.KindESCPOS:
		o := escpos.Options{Name: c.Name, DownAfter: c.DownAfter, Logger: log}
		if c.ESCPOS != nil {
			o.PollEvery = c.ESCPOS.PollInterval.D()
		}
		// Status changes (paper near end, cover open) reach the outbox as
		// device.status records: the printer's health Detail is its status.
		p, err := escpos.Open(c.Path, mode, ro, o)
		if err != nil {
			return nil, err
		}
		d.run, d.close = p.Run, p.Close
		s.printer[c.Name] = p
		return d, s.add(d, p)
	case config.KindOSDP:
		return s.openOSDP(c, d, mode, ro, log)
	}
	return nil, fmt.Errorf("unknown kind %q", c.Kind)
}

func (s *Set) openOSDP(c config.Device, d *device, mode serialport.Mode, ro serialport.ReconnectOptions, log *slog.Logger) (*device, error) {
	o := osdp.Options{DownAfter: c.DownAfter, Logger: log,
		OnEvent: s.osdpEvent, OnCredential: s.credential}
	if c.OSDP == nil {
		return nil, errors.New("no [device.osdp] readers")
	}
	o.PollInterval = c.OSDP.PollInterval.D()
	for _, r := range c.OSDP.Readers {
		rc := osdp.ReaderConfig{Address: byte(r.Address), Name: r.Name, Checksum: r.Checksum,
			Install: r.InstallMode, RequireSecure: r.RequireSecure}
		if r.KeyFile != "" {
			k, err := ReadKey(r.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("reader %q: %w", r.Name, err)
			}
			rc.Key = k
		}
		o.Readers = append(o.Readers, rc)
	}
	port, err := serialport.OpenReconnecting(c.Path, mode, ro)
	if err != nil {
		return nil, err
	}
	cp, err := osdp.New(port, o)
	if err != nil {
		// The port is ours and unused; the New error is the one worth returning.
		_ = port.Close()
		return nil, err
	}
	d.run, d.close = cp.Run, cp.Close
	for j, r := range c.OSDP.Readers {
		err := s.mon.Add(r.Name, config.KindOSDP, agentdevices.DeviceFunc(func() devstatus.Snapshot {
			if h := cp.Health(); j < len(h) {
				return h[j]
			}
			return devstatus.Snapshot{Name: r.Name, Kind: config.KindOSDP}
		}))
		if err != nil {
			_ = cp.Close() // the registration error is the one worth returning
			return nil, err
		}
	}
	return d, nil
}

// ReadKey reads a 16-byte key (an OSDP reader's key_file) written as 32
// hex digits. Its errors never echo the file's content.
func ReadKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key_file: %w", err)
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) != 16 {
		// Never echo the file's content: it is a key.
		return nil, fmt.Errorf("key_file %s: want 32 hex digits (a 16-byte key)", path)
	}
	return k, nil
}

// QRFramer is the framing of a QR scanner's config section; q may be nil
// (the defaults).
func QRFramer(q *config.QRScan) qrscan.FramerConfig {
	if q == nil {
		q = &config.QRScan{}
	}
	fc := qrscan.FramerConfig{Terminator: terminator(q.Terminator), StripAIM: q.StripAIM,
		MaxLen: q.MaxLen, CharTimeout: q.CharTimeout.D()}
	if q.Prefix != "" {
		fc.Prefixes = [][]byte{[]byte(q.Prefix)}
	}
	if q.Suffix != "" {
		fc.Suffixes = [][]byte{[]byte(q.Suffix)}
	}
	return fc
}

func terminator(name string) []byte {
	switch name {
	case "LF":
		return qrscan.LF
	case "CRLF":
		return qrscan.CRLF
	}
	return qrscan.CR
}

// add registers a single-device driver with the Monitor; on failure it
// closes the driver.
func (s *Set) add(d *device, h agentdevices.Device) error {
	if err := s.mon.Add(d.name, d.kind, h); err != nil {
		_ = d.close() // the registration error is the one worth returning
		return err
	}
	return nil
}

func (s *Set) credential(c credential.Credential) {
	if s.onCred != nil {
		s.onCred(c)
	}
}

// The event mappers: facts about the device only, never what a card holds.

func (s *Set) idcardEvent(name string, e idcard.Event) {
	switch e.Kind {
	case idcard.CardInserted:
		s.queue(name, "card.inserted", nil)
		s.credential(e.Card.Credential())
	case idcard.CardRemoved:
		s.queue(name, "card.removed", nil)
	}
}

func (s *Set) sscardEvent(name string, e sscard.Event) {
	switch e.Kind {
	case sscard.CardInserted:
		s.queue(name, "card.inserted", nil)
	case sscard.CardRead:
		s.queue(name, "card.read", nil)
		s.credential(e.Card.Credential())
	case sscard.CardReadFailed:
		// sscard errors never carry personal data (sscard.ReadCard).
		s.queue(name, "card.read_failed", map[string]any{"error": errText(e.Err)})
	case sscard.CardRemoved:
		s.queue(name, "card.removed", nil)
	}
	// ReaderDown/ReaderUp are the Monitor's device.down/device.up.
}

func (s *Set) osdpEvent(e osdp.Event) {
	switch e.Kind {
	case osdp.EventLocalStatus:
		s.queue(e.Reader, "local_status", map[string]any{"tamper": e.Tamper, "power_failure": e.Power})
	case osdp.EventSecure:
		s.queue(e.Reader, "secure.open", nil)
	case osdp.EventSecureRefused:
		s.queue(e.Reader, "secure.refused", map[string]any{"error": errText(e.Err)})
	case osdp.EventPlaintext:
		s.queue(e.Reader, "secure.plaintext", nil)
	case osdp.EventKeySet:
		s.queue(e.Reader, "key_set", map[string]any{"ok": e.Err == nil, "error": errText(e.Err)})
	case osdp.EventNAK:
		s.queue(e.Reader, "nak", map[string]any{"error": errText(e.Err)})
	}
	// EventOnline/EventOffline are the Monitor's device.up/device.down.
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// IDCardReaders returns the configured ID-card readers by name.
func (s *Set) IDCardReaders() map[string]*idcard.Reader { return s.idcards }

// SSCardReaders returns the configured social security card readers by name.
func (s *Set) SSCardReaders() map[string]*sscard.Reader { return s.sscards }

// Printers returns the configured receipt printers by name.
func (s *Set) Printers() map[string]*escpos.Printer { return s.printer }

func (s *Set) notify(e Event) {
	if s.onEvent != nil {
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		s.onEvent(e)
	}
}

// queue hands an event to the forwarder without blocking the driver; a
// full queue drops it with a warning (the device's health is unaffected).
// Every queued event except code.scanned (notified with its payload by the
// scanner) also goes to OnEvent.
func (s *Set) queue(dev, name string, fields map[string]any) {
	if name != "code.scanned" {
		s.notify(Event{Device: dev, Name: name, Fields: fields})
	}
	select {
	case s.events <- event{device: dev, name: name, fields: fields}:
	default:
		s.log.Warn("device event dropped: queue full", "component", "devices", "device", dev, "event", name)
	}
}

// Run runs every driver and the event forwarder until ctx ends, then waits
// for them. Events still queued then are appended with a short deadline.
// A driver whose Run fails before ctx ends is logged; the others go on
// (its device is then reported down by the Monitor). Run returns nil.
func (s *Set) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, d := range s.devices {
		wg.Go(func() {
			if err := d.run(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("device driver stopped", "component", "devices", "device", d.name, "kind", d.kind, "err", err)
			}
		})
	}
	wg.Go(func() { s.forward(ctx) })
	wg.Wait()
	return nil
}

func (s *Set) forward(ctx context.Context) {
	record := func(ctx context.Context, e event) {
		if err := s.mon.RecordEvent(ctx, e.device, e.name, e.fields); err != nil {
			s.log.Warn("device event not recorded", "component", "devices", "device", e.device, "event", e.name, "err", err)
		}
	}
	for {
		select {
		case e := <-s.events:
			record(ctx, e)
		case <-ctx.Done():
			drain, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			defer cancel()
			for {
				select {
				case e := <-s.events:
					record(drain, e)
				default:
					return
				}
			}
		}
	}
}

// Close closes every driver (which ends their Run). None of these devices
// has an actuator with a safe state to return to: the printer and the
// readers simply stop. It is idempotent and returns the drivers' errors
// joined.
func (s *Set) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	var errs []error
	for _, d := range s.devices {
		if err := d.close(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d.name, err))
		}
	}
	return errors.Join(errs...)
}
