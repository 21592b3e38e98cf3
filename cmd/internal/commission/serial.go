package commission

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/cmd/internal/devices"
	"github.com/kioskedge/kioskedge/drivers/credential"
	"github.com/kioskedge/kioskedge/drivers/escpos"
	"github.com/kioskedge/kioskedge/drivers/idcard"
	"github.com/kioskedge/kioskedge/drivers/osdp"
	"github.com/kioskedge/kioskedge/drivers/qrscan"
	"github.com/kioskedge/kioskedge/drivers/serialport"
	"github.com/kioskedge/kioskedge/drivers/sscard"
)

// checkName is a device's name in the report.
func checkName(name string) string { return "device:" + name }

// testSerial runs the interactive test of serial device d (for an OSDP bus,
// of reader only, or of every reader when only is "").
func (t *Tester) testSerial(ctx context.Context, d config.Device, only string) (Check, error) {
	name := d.Name
	if only != "" {
		name = only
	}
	port, fail, err := t.openPort(checkName(name), d)
	if port == nil {
		return fail, err
	}
	switch d.Kind {
	case config.KindIDCard:
		return t.testIDCard(ctx, d, port), nil
	case config.KindSSCard:
		return t.testSSCard(ctx, d, port), nil
	case config.KindQRScan:
		return t.testQRScan(ctx, d, port), nil
	case config.KindESCPOS:
		return t.testPrinter(ctx, d, port), nil
	case config.KindOSDP:
		cs := t.osdp(ctx, d, port, only, true)
		if len(cs) == 1 {
			return cs[0], nil
		}
		return merge(checkName(name), cs), nil
	}
	_ = port.Close() // nothing was done on it
	return failed(checkName(name), d.Kind, "unknown kind"), nil
}

// probeSerial runs the non-interactive check of serial device d; an OSDP
// bus gives one check per reader.
func (t *Tester) probeSerial(ctx context.Context, d config.Device) ([]Check, error) {
	port, fail, err := t.openPort(checkName(d.Name), d)
	if port == nil {
		if d.Kind == config.KindOSDP && d.OSDP != nil && err == nil {
			var cs []Check
			for _, r := range d.OSDP.Readers {
				f := fail
				f.Name = checkName(d.ReaderName(r))
				cs = append(cs, f)
			}
			return cs, nil
		}
		return []Check{fail}, err
	}
	name := checkName(d.Name)
	rctx, cancel := context.WithTimeout(ctx, t.o.ReplyTimeout*3)
	defer cancel()
	switch d.Kind {
	case config.KindIDCard:
		r, err := idcard.New(port, idcard.Options{Name: d.Name, ReplyTimeout: t.o.ReplyTimeout, Retries: 1})
		if err != nil {
			_ = port.Close() // New failed before owning it
			return []Check{failed(name, d.Path, err.Error())}, nil
		}
		defer r.Close()
		if err := r.Status(rctx); err != nil {
			return []Check{failed(name, "ID card reader at "+d.Path, idcardReason(err))}, nil
		}
		return []Check{pass(name, "ID card reader at %s: SAM module ok", d.Path)}, nil
	case config.KindSSCard:
		r, err := sscard.New(port, sscard.Options{Name: d.Name, ResponseTimeout: t.o.ReplyTimeout})
		if err != nil {
			_ = port.Close() // New failed before owning it
			return []Check{failed(name, d.Path, err.Error())}, nil
		}
		defer r.Close()
		present, err := r.Present(rctx)
		if err != nil {
			return []Check{failed(name, "social security card reader at "+d.Path, sscardReason(err))}, nil
		}
		card := "no card in the slot"
		if present {
			card = "a card is in the slot"
		}
		return []Check{pass(name, "social security card reader at %s answers; %s", d.Path, card)}, nil
	case config.KindQRScan:
		// A scanner speaks only when it scans: an open port is all a
		// probe can see without a person (qrscan.md §5).
		_ = port.Close() // only opened to see it is there
		return []Check{pass(name, "QR scanner port %s open; scanners are silent until they scan (kioskctl test %s to scan one)", d.Path, d.Name)}, nil
	case config.KindESCPOS:
		p, err := escpos.New(port, escpos.Options{Name: d.Name, ReplyTimeout: t.o.ReplyTimeout})
		if err != nil {
			_ = port.Close() // New failed before owning it
			return []Check{failed(name, d.Path, err.Error())}, nil
		}
		defer p.Close()
		st, err := p.Status(rctx)
		if err != nil {
			return []Check{failed(name, "printer at "+d.Path, printerReason(err, st))}, nil
		}
		if r := statusReason(st); r != "" {
			return []Check{failed(name, "printer at "+d.Path+": "+st.String(), r)}, nil
		}
		return []Check{pass(name, "printer at %s: %s", d.Path, st)}, nil
	case config.KindOSDP:
		return t.osdp(ctx, d, port, "", false), nil
	}
	_ = port.Close() // nothing was done on it
	return []Check{failed(name, d.Kind, "unknown kind")}, nil
}

func idcardReason(err error) string {
	switch {
	case errors.Is(err, idcard.ErrTimeout):
		return "no reply: check the reader's power and that it is set to 115200 baud"
	case errors.Is(err, idcard.ErrOffline):
		return "not connected: check the cable"
	}
	return fmt.Sprintf("reader error: %v", err)
}

func sscardReason(err error) string {
	switch {
	case errors.Is(err, sscard.ErrTimeout):
		return "no reply: check the reader's power and baud rate"
	case errors.Is(err, sscard.ErrOffline):
		return "not connected: check the cable"
	}
	return fmt.Sprintf("reader error: %v", err)
}

// statusReason names the condition of a printer status that stops it
// printing; "" when it can print.
func statusReason(st escpos.Status) string {
	switch {
	case st.PaperOut:
		return "paper out: load a paper roll"
	case st.CoverOpen:
		return "cover open: close the printer's cover"
	case st.Error || st.CutterError || st.Unrecoverable:
		return "printer error: " + st.String() + "; power-cycle the printer"
	case st.Offline:
		return "printer offline: " + st.String()
	}
	return ""
}

func printerReason(err error, st escpos.Status) string {
	code, _ := escpos.CodeOf(err)
	switch code {
	case escpos.PaperOut, escpos.CoverOpen, escpos.PrinterError, escpos.Offline:
		var pe *escpos.Error
		if errors.As(err, &pe) {
			st = pe.Status
		}
		if r := statusReason(st); r != "" {
			return r
		}
		return code.String()
	case escpos.NoReply:
		return "no reply: check the printer's power and that it is set to the configured baud rate"
	case escpos.BadReply:
		return "bad reply: check the baud rate"
	case escpos.Disconnected:
		return "not connected: check the cable"
	}
	return fmt.Sprintf("printer error: %v", err)
}

// testPrinter prints the test receipt and reads the status after it.
func (t *Tester) testPrinter(ctx context.Context, d config.Device, port serialport.Port) Check {
	name := checkName(d.Name)
	p, err := escpos.New(port, escpos.Options{Name: d.Name, ReplyTimeout: t.o.ReplyTimeout})
	if err != nil {
		_ = port.Close() // New failed before owning it
		return failed(name, d.Path, err.Error())
	}
	defer p.Close()
	now := t.o.Now()
	agent := t.o.Config.Agent.ID
	r := escpos.Receipt{
		Title: "KioskEdge test receipt",
		Lines: []escpos.Line{
			{Text: now.Format("2006-01-02 15:04:05 -0700")},
			{Text: "agent " + agent},
			{Text: "printer " + d.Name},
			{Text: "version " + t.o.Version},
		},
		QR:  &escpos.QR{Data: "kioskedge:test:" + agent + ":" + now.UTC().Format(time.RFC3339), Align: escpos.Center},
		Cut: escpos.PartialCut,
	}
	pctx, cancel := context.WithTimeout(ctx, t.o.Timeout)
	defer cancel()
	st, err := p.Print(pctx, r)
	if err != nil {
		return failed(name, "printer at "+d.Path, printerReason(err, st))
	}
	if st.PaperNearEnd {
		return pass(name, "test receipt printed at %s; paper near end: load a new roll soon", d.Path)
	}
	return pass(name, "test receipt printed at %s; status %s", d.Path, st)
}

// errNoCardInTime is waitForCard's answer when no card came.
var errNoCardInTime = errors.New("commission: no card in time")

// waitForCard calls read every interval until a card is read (returning its
// masked number and nil), ctx ends (the last read error other than noCard,
// or errNoCardInTime), or stop says an error ends the wait (that error).
func waitForCard(ctx context.Context, every time.Duration, noCard error, stop func(error) bool, read func(context.Context) (string, error)) (string, error) {
	lastErr := errNoCardInTime
	for {
		masked, err := read(ctx)
		if err == nil {
			return masked, nil
		}
		if ctx.Err() != nil {
			return "", lastErr
		}
		if stop != nil && stop(err) {
			return "", err
		}
		if !errors.Is(err, noCard) {
			lastErr = err
		}
		if !sleep(ctx, every) {
			return "", lastErr
		}
	}
}

// testIDCard waits for an ID card and reads it.
func (t *Tester) testIDCard(ctx context.Context, d config.Device, port serialport.Port) Check {
	name := checkName(d.Name)
	r, err := idcard.New(port, idcard.Options{Name: d.Name, ReplyTimeout: t.o.ReplyTimeout})
	if err != nil {
		_ = port.Close() // New failed before owning it
		return failed(name, d.Path, err.Error())
	}
	defer r.Close()
	wctx, cancel := context.WithTimeout(ctx, t.o.Timeout)
	defer cancel()
	if err := r.Status(wctx); err != nil {
		return failed(name, "ID card reader at "+d.Path, idcardReason(err))
	}
	masked, lastErr := waitForCard(wctx, 250*time.Millisecond, idcard.ErrNoCard, nil, func(ctx context.Context) (string, error) {
		card, err := r.ReadCard(ctx)
		return credential.Mask(card.Number), err
	})
	if lastErr == nil {
		return pass(name, "ID card read: %s", masked)
	}
	if !errors.Is(lastErr, errNoCardInTime) {
		return failed(name, "ID card reader at "+d.Path, "card not read: "+idcardReason(lastErr))
	}
	return failed(name, "ID card reader at "+d.Path, fmt.Sprintf("no card within %v: place an ID card on the reader", t.o.Timeout))
}

// testSSCard waits for a social security card and reads it.
func (t *Tester) testSSCard(ctx context.Context, d config.Device, port serialport.Port) Check {
	name := checkName(d.Name)
	r, err := sscard.New(port, sscard.Options{Name: d.Name, ResponseTimeout: t.o.ReplyTimeout})
	if err != nil {
		_ = port.Close() // New failed before owning it
		return failed(name, d.Path, err.Error())
	}
	defer r.Close()
	wctx, cancel := context.WithTimeout(ctx, t.o.Timeout)
	defer cancel()
	readerDown := func(err error) bool { return errors.Is(err, sscard.ErrOffline) || errors.Is(err, sscard.ErrTimeout) }
	masked, lastErr := waitForCard(wctx, 200*time.Millisecond, sscard.ErrNoCard, readerDown, func(ctx context.Context) (string, error) {
		card, err := r.ReadCard(ctx)
		return credential.Mask(card.SSN), err
	})
	if lastErr == nil {
		return pass(name, "social security card read: %s", masked)
	}
	if readerDown(lastErr) {
		return failed(name, "social security card reader at "+d.Path, sscardReason(lastErr))
	}
	if !errors.Is(lastErr, errNoCardInTime) {
		return failed(name, "social security card reader at "+d.Path, "card not read: "+sscardReason(lastErr))
	}
	return failed(name, "social security card reader at "+d.Path, fmt.Sprintf("no card within %v: insert a social security card", t.o.Timeout))
}

// testQRScan waits for one scan.
func (t *Tester) testQRScan(ctx context.Context, d config.Device, port serialport.Port) Check {
	name := checkName(d.Name)
	scans := make(chan credential.Credential, 1)
	s, err := qrscan.New(port, qrscan.Options{Name: d.Name, Framer: devices.QRFramer(d.QRScan), OnScan: func(c credential.Credential) {
		select {
		case scans <- c:
		default:
		}
	}})
	if err != nil {
		_ = port.Close() // New failed before owning it
		return failed(name, d.Path, err.Error())
	}
	wctx, cancel := context.WithTimeout(ctx, t.o.Timeout)
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.Run(wctx) }) // ends with wctx; port errors show in Health
	defer func() {
		cancel()
		wg.Wait()
		_ = s.Close() // the result is decided
	}()
	select {
	case c := <-scans:
		return pass(name, "scanned %d bytes: %s", len(c.Raw), credential.Mask(c.Number))
	case <-wctx.Done():
	}
	if h := s.Health(); !h.Connected {
		return failed(name, "QR scanner at "+d.Path, "not connected: check the cable")
	}
	if st := s.Stats(); st.Garbage+st.Overlong+st.Truncated > 0 {
		return failed(name, "QR scanner at "+d.Path, "lines arrived but did not frame: check terminator, prefix and suffix in the config")
	}
	return failed(name, "QR scanner at "+d.Path, fmt.Sprintf("no scan within %v: scan any QR code", t.o.Timeout))
}

// osdp drives the bus: it waits for each reader (or only) to come online;
// with actuate it flashes the LED green and beeps, and passes when the
// reader acknowledges (answers without a NAK).
func (t *Tester) osdp(ctx context.Context, d config.Device, port serialport.Port, only string, actuate bool) []Check {
	var (
		mu   sync.Mutex
		naks = map[byte]error{}
	)
	o := osdp.Options{ReplyTimeout: t.o.ReplyTimeout / 4, OnEvent: func(e osdp.Event) {
		if e.Kind == osdp.EventNAK {
			mu.Lock()
			naks[e.Addr] = e.Err
			mu.Unlock()
		}
	}}
	if d.OSDP != nil {
		o.PollInterval = d.OSDP.PollInterval.D()
	}
	var readers []config.OSDPReader
	var cs []Check
	for _, r := range d.OSDP.Readers {
		rc := osdp.ReaderConfig{Address: byte(r.Address), Name: d.ReaderName(r), Checksum: r.Checksum,
			Install: r.InstallMode, RequireSecure: r.RequireSecure}
		if r.KeyFile != "" {
			k, err := devices.ReadKey(r.KeyFile)
			if err != nil {
				_ = port.Close() // nothing ran on it
				return []Check{failed(checkName(d.ReaderName(r)), d.Path, err.Error())}
			}
			rc.Key = k
		}
		o.Readers = append(o.Readers, rc)
		if only == "" || only == d.ReaderName(r) {
			readers = append(readers, r)
		}
	}
	cp, err := osdp.New(port, o)
	if err != nil {
		_ = port.Close() // New failed before owning it
		return []Check{failed(checkName(d.Name), d.Path, err.Error())}
	}
	wait := t.o.Timeout
	if !actuate {
		wait = min(wait, 3*time.Second)
	}
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = cp.Run(rctx) }) // ends with rctx
	defer func() {
		cancel()
		wg.Wait()
		_ = cp.Close() // the results are decided
	}()
	for _, r := range readers {
		name := checkName(d.ReaderName(r))
		addr := byte(r.Address)
		wctx, wcancel := context.WithTimeout(ctx, wait)
		online := waitUntil(wctx, 20*time.Millisecond, func() bool {
			s, err := cp.Status(addr)
			return err == nil && s.Online
		})
		wcancel()
		st, _ := cp.Status(addr) // the address is configured
		if !online {
			reason := fmt.Sprintf("no answer from the reader at address %d: check its power, the RS-485 wiring (A/B) and its address and baud rate", r.Address)
			if st.Refused {
				reason = "secure channel refused: check the reader's key (key_file)"
			}
			cs = append(cs, failed(name, "OSDP reader on "+d.Path, reason))
			continue
		}
		channel := "plaintext"
		if st.Secure {
			channel = "secure channel"
		}
		if !actuate {
			cs = append(cs, pass(name, "OSDP reader %d on %s online (%s)", r.Address, d.Path, channel))
			continue
		}
		sent := time.Now()
		if err := cp.LED(addr, osdp.LEDCommand{TempOn: 2, TempOff: 2, TempOnColor: 2, TempOffColor: 0, TempTimer: 20, PermOnColor: 0}); err != nil {
			cs = append(cs, failed(name, "OSDP reader on "+d.Path, err.Error()))
			continue
		}
		if err := cp.Buzzer(addr, osdp.BuzzerCommand{Tone: 2, On: 2, Off: 1, Count: 2}); err != nil {
			cs = append(cs, failed(name, "OSDP reader on "+d.Path, err.Error()))
			continue
		}
		// Both commands go before the next poll; two answers after them
		// (the commands' and a poll's) mean both were taken.
		seen := 0
		var last time.Time
		wctx, wcancel = context.WithTimeout(ctx, wait)
		acked := waitUntil(wctx, 10*time.Millisecond, func() bool {
			mu.Lock()
			nak := naks[addr]
			mu.Unlock()
			if nak != nil {
				return true
			}
			s, err := cp.Status(addr)
			if err == nil && s.Health.LastSeen.After(sent) && !s.Health.LastSeen.Equal(last) {
				last = s.Health.LastSeen
				seen++
			}
			return seen >= 3
		})
		wcancel()
		mu.Lock()
		nak := naks[addr]
		mu.Unlock()
		switch {
		case nak != nil:
			cs = append(cs, failed(name, "OSDP reader on "+d.Path, "the reader refused LED/buzzer: "+nak.Error()))
		case !acked:
			cs = append(cs, failed(name, "OSDP reader on "+d.Path, "the reader stopped answering after the LED/buzzer command"))
		default:
			cs = append(cs, pass(name, "OSDP reader %d (%s) acknowledged LED and buzzer: it should have flashed green and beeped twice", r.Address, channel))
		}
	}
	return cs
}

// merge folds several checks into one named name.
func merge(name string, cs []Check) Check {
	out := Check{Name: name, OK: true}
	for i, c := range cs {
		sep := ""
		if i > 0 {
			sep = "; "
		}
		out.Detail += sep + c.Name + ": " + c.Detail
		if !c.OK {
			out.OK = false
			if out.Reason != "" {
				out.Reason += "; "
			}
			out.Reason += c.Name + ": " + c.Reason
		}
	}
	return out
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
