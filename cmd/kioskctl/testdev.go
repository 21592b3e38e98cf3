package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/cmd/internal/commission"
	"github.com/kioskedge/kioskedge/drivers/gpioline"
)

// gpioLines resolves the gate's lines; tests replace it with simulated
// lines (testhw/gatesim).
var gpioLines commission.Lines = openGPIOLine

func openGPIOLine(_, spec string) (gpio.PinIO, error) {
	s, err := gpioline.ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	return gpioline.Open(s, gpioline.Options{Consumer: "kioskctl"})
}

func testFlags() *flag.FlagSet {
	fs := flag.NewFlagSet("kioskctl test", flag.ContinueOnError)
	fs.Duration("timeout", commission.DefaultTimeout, "how long to wait for a card, a scan or the door contact")
	return fs
}

// runTest runs "test DEVICE": it exercises one device, OSDP reader, door or
// Wiegand reader named in the config and prints PASS or FAIL with the
// reason. Exit 0 pass, 1 fail, 2 unknown name, 3 busy or no config.
func runTest(ctx context.Context, e *env, args []string) int {
	fs := testFlags()
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if code, ok := parseFlags(e, fs, args); !ok {
		return code
	}
	if name == "" && fs.NArg() == 1 {
		name = fs.Arg(0)
	} else if fs.NArg() > 0 || name == "" {
		return fail(e, "test", exitUsage, "want: kioskctl test DEVICE [--timeout 10s] (DEVICE is a [[device]] name, an OSDP reader, a [[door]] id or a [[wiegand]] name)")
	}
	timeout := fs.Lookup("timeout").Value.(flag.Getter).Get().(time.Duration)
	cfg, err := config.Load(e.Config)
	if err != nil {
		return fail(e, "test", exitUnusable, "%v (kioskctl config check says more)", err)
	}
	t := commission.New(commission.Options{Config: cfg, Lines: gpioLines, Timeout: timeout, Version: version})
	if !e.JSON {
		fmt.Fprintf(e.Stderr, "testing %s (waits up to %v for a card, a scan or the door)…\n", name, timeout)
	}
	c, err := t.Test(ctx, name)
	switch {
	case errors.Is(err, commission.ErrUnknown):
		return fail(e, "test", exitUsage, "%v", err)
	case errors.Is(err, commission.ErrBusy):
		return fail(e, "test", exitUnusable, "%v", err)
	case err != nil:
		return fail(e, "test", exitUnusable, "%v", err)
	}
	code := exitOK
	if !c.OK {
		code = exitFailed
	}
	if e.JSON {
		return printJSONCode(e, c, code)
	}
	fmt.Fprintln(e.Stdout, checkLine(c))
	return code
}

// checkLine is one check as "PASS name: detail" or "FAIL name: detail: reason".
func checkLine(c commission.Check) string {
	if c.OK {
		return fmt.Sprintf("PASS %s: %s", c.Name, c.Detail)
	}
	return fmt.Sprintf("FAIL %s: %s: %s", c.Name, c.Detail, c.Reason)
}
