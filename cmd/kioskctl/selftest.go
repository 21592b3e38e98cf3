package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/cmd/internal/commission"
	"github.com/kioskedge/kioskedge/drivers/escpos"
	"github.com/kioskedge/kioskedge/drivers/serialport"
	"github.com/kioskedge/kioskedge/sync/outbox"
	"github.com/kioskedge/kioskedge/sync/wire"
)

func selftestFlags() *flag.FlagSet {
	fs := flag.NewFlagSet("kioskctl selftest", flag.ContinueOnError)
	fs.Bool("no-actuate", false, "do not pulse door relays")
	fs.Duration("timeout", 5*time.Second, "how long a door's contact may take to follow its relay, and the hub to answer")
	fs.Bool("no-print", false, "do not print the report on the receipt printer")
	return fs
}

// selftestResult is selftest's --json output.
type selftestResult struct {
	Report  commission.Report `json:"report"`
	Saved   []string          `json:"saved"`
	Sent    string            `json:"sent"`    // how the record went to the hub, or why not
	Printed string            `json:"printed"` // the printer it was printed on, or why not
}

// runSelftest runs every non-interactive check, saves the commissioning
// report in <data_dir>/commissioning, sends it to the hub as a
// commissioning.report record (through kioskd, or into the outbox when
// kioskd is stopped) and prints it on the receipt printer. Exit 0 when every
// check passed, 1 when one failed, 3 when it could not run.
func runSelftest(ctx context.Context, e *env, args []string) int {
	fs := selftestFlags()
	if code, ok := parseFlags(e, fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return fail(e, "selftest", exitUsage, "unexpected arguments %q", fs.Args())
	}
	noActuate := fs.Lookup("no-actuate").Value.String() == "true"
	noPrint := fs.Lookup("no-print").Value.String() == "true"
	timeout := fs.Lookup("timeout").Value.(flag.Getter).Get().(time.Duration)
	cfg, err := config.Load(e.Config)
	if err != nil {
		return fail(e, "selftest", exitUnusable, "%v (kioskctl config check says more)", err)
	}
	start := time.Now()
	r := commission.Report{Agent: cfg.Agent.ID, Site: cfg.Agent.Site, Region: cfg.Agent.Region, Time: start, Version: version}

	// Is kioskd running? Then it holds the devices and the files, and what
	// they are doing comes from its status.
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	status, statusErr := adminStatus(sctx, cfg)
	cancel()
	running := statusErr == nil

	var (
		wg                   sync.WaitGroup
		devChecks, hubChecks []commission.Check
		devErr               error
	)
	wg.Go(func() {
		if running {
			devChecks = daemonDeviceChecks(cfg, status.Health)
			return
		}
		t := commission.New(commission.Options{Config: cfg, Lines: gpioLines, Timeout: timeout, NoActuate: noActuate, Version: version})
		devChecks, devErr = t.Probe(ctx)
	})
	wg.Go(func() {
		hubChecks = commission.HubChecks(ctx, commission.HubOptions{Config: cfg, Timeout: timeout})
	})
	sysChecks := []commission.Check{commission.DiskCheck(cfg.Agent.DataDir)}
	if running {
		sysChecks = append(sysChecks, commission.OutboxCheck(status.Health.Outbox, "kioskd"))
		if len(cfg.Doors) > 0 {
			a := status.Health.Allowlist
			if a == nil {
				a = &wire.AllowlistHealth{}
			}
			sysChecks = append(sysChecks, commission.AllowlistCheck(a.Version, a.Entries, "kioskd"))
		}
	} else {
		h, err := commission.ReadOutbox(outboxPath(cfg), start)
		if err != nil {
			sysChecks = append(sysChecks, commission.Check{Name: "outbox", Detail: "outbox file", Reason: fmt.Sprintf("cannot read it: %v (is kioskd running with [admin] disabled?)", err)})
		} else {
			sysChecks = append(sysChecks, commission.OutboxCheck(h, "file"))
		}
		if len(cfg.Doors) > 0 {
			v, n, err := commission.ReadAllowlistVersion(cfg.Gate.AllowlistFile)
			if err != nil {
				sysChecks = append(sysChecks, commission.Check{Name: "allowlist", Detail: cfg.Gate.AllowlistFile, Reason: fmt.Sprintf("cannot read it: %v", err)})
			} else {
				sysChecks = append(sysChecks, commission.AllowlistCheck(v, n, "file"))
			}
		}
	}
	wg.Wait()
	if errors.Is(devErr, commission.ErrBusy) {
		return fail(e, "selftest", exitUnusable, "%v", devErr)
	}
	if devErr != nil {
		return fail(e, "selftest", exitUnusable, "%v", devErr)
	}
	r.Checks = append(append(devChecks, hubChecks...), sysChecks...)
	r.Summarize()
	elapsed := time.Since(start)

	res := selftestResult{Report: r}
	jp, tp, err := commission.Save(filepath.Join(cfg.Agent.DataDir, "commissioning"), r)
	if err != nil {
		fmt.Fprintf(e.Stderr, "kioskctl selftest: the report was not saved: %v\n", err)
	} else {
		res.Saved = []string{jp, tp}
	}
	res.Sent = sendReport(ctx, cfg, r, running)
	res.Printed = "not printed: --no-print"
	if !noPrint {
		res.Printed = printReport(ctx, cfg, r, running)
	}

	code := exitOK
	if !r.Summary.OK {
		code = exitFailed
	}
	if e.JSON {
		return printJSONCode(e, res, code)
	}
	fmt.Fprint(e.Stdout, r.Text())
	fmt.Fprintf(e.Stdout, "\nchecked in %v\n", elapsed.Round(10*time.Millisecond))
	if len(res.Saved) > 0 {
		fmt.Fprintf(e.Stdout, "saved    %s\n", strings.Join(res.Saved, "\n         "))
	}
	fmt.Fprintf(e.Stdout, "hub      %s\n", res.Sent)
	fmt.Fprintf(e.Stdout, "printer  %s\n", res.Printed)
	return code
}

// daemonDeviceChecks turns the running kioskd's device health into checks:
// it holds the ports and lines, so nothing is probed or pulsed.
func daemonDeviceChecks(cfg config.Config, h wire.Health) []commission.Check {
	var cs []commission.Check
	seen := map[string]wire.DeviceHealth{}
	for _, d := range h.Devices {
		seen[d.Name] = d
	}
	names := []string{}
	for _, d := range cfg.Devices {
		if d.Kind == config.KindOSDP && d.OSDP != nil {
			for _, r := range d.OSDP.Readers {
				names = append(names, d.ReaderName(r))
			}
			continue
		}
		names = append(names, d.Name)
	}
	for _, n := range names {
		d, ok := seen[n]
		c := commission.Check{Name: "device:" + n}
		switch {
		case !ok:
			c.Detail, c.Reason = "not in kioskd's health", "kioskd does not run it: restart kioskd after changing the config"
		case !d.Connected:
			c.Detail, c.Reason = "from kioskd: "+d.Detail, "not connected: check the cable and the USB adapter"
		default:
			c.OK, c.Detail = true, "from kioskd: connected "+d.Detail
		}
		cs = append(cs, c)
	}
	doors := map[string]wire.DoorHealth{}
	for _, d := range h.Doors {
		doors[d.ID] = d
	}
	for _, d := range cfg.Doors {
		dh, ok := doors[d.ID]
		c := commission.Check{Name: "door:" + d.ID, OK: ok, Detail: "from kioskd: relay not pulsed (stop kioskd to pulse it)"}
		if !ok {
			c.Detail, c.Reason = "not in kioskd's health", "kioskd does not run it: restart kioskd after changing the config"
		} else if len(dh.Alarms) > 0 {
			c.OK, c.Reason = false, "alarms active: "+strings.Join(dh.Alarms, ", ")
		}
		cs = append(cs, c)
	}
	return cs
}

// sendReport hands the report to the hub as a commissioning.report record:
// through kioskd when it runs, else appended to the outbox file, which
// kioskd drains when it starts. It returns what happened.
func sendReport(ctx context.Context, cfg config.Config, r commission.Report, running bool) string {
	if running {
		seq, err := adminPostRecord(ctx, cfg, commission.RecordKind, r)
		if err == nil {
			return fmt.Sprintf("sent through kioskd as record %d", seq)
		}
		return fmt.Sprintf("NOT sent: kioskd refused it: %v", err)
	}
	rec, err := r.Record()
	if err != nil {
		return fmt.Sprintf("NOT sent: %v", err)
	}
	ob, err := outbox.Open(outbox.Options{Path: outboxPath(cfg), BudgetBytes: int64(cfg.Outbox.Budget), ReclaimAbove: -1})
	if err != nil {
		return fmt.Sprintf("NOT sent: the outbox cannot be opened: %v", err)
	}
	seq, err := ob.Append(ctx, rec)
	if cerr := ob.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Sprintf("NOT sent: %v", err)
	}
	return fmt.Sprintf("queued in the outbox as record %d: it goes to the hub when kioskd starts", seq)
}

// printReport prints the short report on the first configured receipt
// printer, when kioskd does not hold it.
func printReport(ctx context.Context, cfg config.Config, r commission.Report, running bool) string {
	var dev *config.Device
	for i := range cfg.Devices {
		if cfg.Devices[i].Kind == config.KindESCPOS {
			dev = &cfg.Devices[i]
			break
		}
	}
	switch {
	case dev == nil:
		return "not printed: no receipt printer configured"
	case running:
		return "not printed: kioskd holds the printer (stop it to print the report)"
	}
	port, err := serialport.Open(dev.Path, serialport.Mode{BaudRate: dev.Baud})
	if err != nil {
		return fmt.Sprintf("not printed: %s: %v", dev.Name, err)
	}
	p, err := escpos.New(port, escpos.Options{Name: dev.Name})
	if err != nil {
		_ = port.Close() // New failed before owning it
		return fmt.Sprintf("not printed: %v", err)
	}
	defer p.Close()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := p.Print(pctx, r.Receipt()); err != nil {
		return fmt.Sprintf("not printed on %s: %v", dev.Name, err)
	}
	return "printed on " + dev.Name
}
