package main

// kioskctl status: what the running agent is doing now, from kioskd's
// admin endpoint (GET /v1/status): the hub link and last sync, the
// outbox backlog, the allowlist, active alarms and every device.

import (
	"context"
	"flag"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kioskedge/kioskedge/agent/config"
	"github.com/kioskedge/kioskedge/sync/wire"
)

func statusFlags() *flag.FlagSet {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.Duration("timeout", 5*time.Second, "how long to wait for kioskd's answer")
	return fs
}

// runStatus prints the running daemon's status: exit 0 when it answered
// (whatever it says: status reports, it does not judge), 3 when it could
// not be asked (not running, no admin endpoint, token unreadable, bad
// config), 2 for bad usage.
func runStatus(ctx context.Context, e *env, args []string) int {
	fs := statusFlags()
	if code, ok := parseFlags(e, fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return fail(e, "status", exitUsage, "unexpected arguments %q", fs.Args())
	}
	timeout := fs.Lookup("timeout").Value.(flag.Getter).Get().(time.Duration)
	cfg, err := config.Load(e.Config)
	if err != nil {
		return fail(e, "status", exitUnusable, "%v (kioskctl config check says more)", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := adminStatus(ctx, cfg)
	if err != nil {
		// errDaemonDown says "kioskd is not running: systemctl start
		// kioskd"; the others say what to do too.
		return fail(e, "status", exitUnusable, "%v", err)
	}
	if e.JSON {
		return printJSON(e, st)
	}
	printStatus(e, st, time.Now())
	return exitOK
}

// printStatus writes the human view of st as seen at now.
func printStatus(e *env, st adminStatusResponse, now time.Time) {
	h := st.Health
	w := e.Stdout
	fmt.Fprintf(w, "agent      %s  version %s  boot %s  up %s\n", h.Agent, orDash(h.Version), orDash(h.BootID), ago(time.Duration(h.UptimeS*float64(time.Second))))
	hub := "disconnected"
	if h.Uplink.Connected {
		hub = "connected"
	}
	fmt.Fprintf(w, "hub        %s (reconnects %d, batches sent %d, in flight %d)\n", hub, h.Uplink.Reconnects, h.Uplink.Batches, h.Uplink.InFlight)
	if st.LastSync == nil {
		fmt.Fprintln(w, "last sync  none since kioskd started")
	} else {
		fmt.Fprintf(w, "last sync  %s (%s ago)\n", st.LastSync.Local().Format(time.RFC3339), ago(now.Sub(*st.LastSync)))
	}
	o := h.Outbox
	oldest := "empty"
	if o.Depth > 0 {
		oldest = "oldest " + ago(time.Duration(o.OldestUnsentS*float64(time.Second)))
	}
	budget := "no budget"
	if o.BudgetBytes > 0 {
		budget = "budget " + bytesText(o.BudgetBytes)
	}
	fmt.Fprintf(w, "outbox     %d records, %s; %s on disk, %s; evicted %d\n", o.Depth, oldest, bytesText(o.DiskBytes), budget, o.Evicted)
	if a := h.Allowlist; a != nil {
		recv := ""
		if a.Receiving != "" {
			recv = ", receiving a snapshot (chunk " + a.Receiving + ")"
		}
		fmt.Fprintf(w, "allowlist  version %d, %d entries%s\n", a.Version, a.Entries, recv)
	} else {
		fmt.Fprintln(w, "allowlist  none (no [[door]] on this box)")
	}
	alarms := activeAlarms(h)
	if len(alarms) == 0 {
		fmt.Fprintln(w, "alarms     none")
	} else {
		fmt.Fprintf(w, "alarms     %s\n", strings.Join(alarms, "; "))
	}
	if errs := nonZeroCounters(h.Counters); len(errs) > 0 {
		fmt.Fprintf(w, "errors     %s\n", strings.Join(errs, ", "))
	}
	fmt.Fprintln(w)
	if len(h.Devices) == 0 {
		fmt.Fprintln(w, "no devices configured")
		return
	}
	rows := make([][]string, 0, len(h.Devices))
	for _, d := range h.Devices {
		up := "DOWN"
		if d.Connected {
			up = "up"
		}
		seen := "never"
		if !d.LastSeen.IsZero() {
			seen = ago(now.Sub(d.LastSeen)) + " ago"
		}
		rows = append(rows, []string{d.Name, up, seen, fmt.Sprint(d.Errors), orDash(d.Detail)})
	}
	table(e, []string{"DEVICE", "STATE", "LAST SEEN", "ERRORS", "DETAIL"}, rows)
}

// activeAlarms lists "door main: fire, held_open" per door with alarms,
// and devices that are down.
func activeAlarms(h wire.Health) []string {
	var out []string
	for _, d := range h.Doors {
		if len(d.Alarms) > 0 {
			out = append(out, fmt.Sprintf("door %s: %s", d.ID, strings.Join(d.Alarms, ", ")))
		}
	}
	for _, d := range h.Devices {
		if !d.Connected {
			out = append(out, fmt.Sprintf("device %s down", d.Name))
		}
	}
	return out
}

func nonZeroCounters(m map[string]uint64) []string {
	var out []string
	for k, v := range m {
		if v > 0 {
			out = append(out, fmt.Sprintf("%s %d", k, v))
		}
	}
	sort.Strings(out)
	return out
}

// ago prints a duration for people: 45s, 12m, 3h12m, 4d3h.
func ago(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// orDash is s, or "-" for an empty table cell.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
