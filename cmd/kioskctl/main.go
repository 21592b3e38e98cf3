// Command kioskctl is the technician's CLI for a KioskEdge box: provision
// its identity, find which serial port has which device, test devices, run
// the commissioning self-test, see what the running agent is doing, move an
// offline box's records on a USB stick, and check a config file.
//
// Every command prints a human table by default and JSON with --json (a
// global flag, before or after the command name). Exit codes scripts can
// rely on:
//
//	0  done; every check passed
//	1  done, but a check failed (a device test, the self-test, config problems)
//	2  bad usage: unknown command or flag, missing argument
//	3  could not do it: a file, the daemon, the hub or a device was not reachable
//
// Errors say what to do next. Commands live one per file; each registers
// itself in commands() below.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"
)

// Exit codes.
const (
	exitOK       = 0
	exitFailed   = 1
	exitUsage    = 2
	exitUnusable = 3
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// env is what every command gets.
type env struct {
	Stdout, Stderr io.Writer
	JSON           bool   // --json: machine-readable output on Stdout
	Config         string // --config: the agent's config file
}

// command is one kioskctl subcommand.
type command struct {
	name    string
	summary string
	// run gets the arguments after the command name; it returns an exit
	// code. Usage errors should return exitUsage after printing why.
	run func(ctx context.Context, e *env, args []string) int
	// flags, when set, returns the command's flag set (for completions and
	// help); run builds its own from the same function.
	flags func() *flag.FlagSet
	// sub lists subcommand names (e.g. outbox export), for completions.
	sub []string
}

// commands is the full list. To add a command, write it in its own file
// and add it here.
func commands() []command {
	return []command{
		{name: "version", summary: "print kioskctl's version", run: runVersion},
		{name: "config", summary: "config check [FILE]: validate a config file, naming every problem's key", run: runConfig, flags: configFlags, sub: []string{"check"}},
		{name: "test", summary: "test DEVICE: exercise one device, OSDP reader, door or Wiegand reader; PASS/FAIL with the reason", run: runTest, flags: testFlags},
		{name: "selftest", summary: "check every device, the clock, disk, outbox, hub and TLS; save, send and print the commissioning report", run: runSelftest, flags: selftestFlags},
		{name: "status", summary: "what the running kioskd is doing: hub link, last sync, outbox backlog, allowlist, alarms, devices", run: runStatus, flags: statusFlags},
		{name: "outbox", summary: "outbox export --out FILE|DIR: write the unacked records to a signed file for hubd import (kioskd stopped)", run: runOutbox, flags: outboxFlags, sub: []string{"export"}},
		{name: "completion", summary: "print a bash or zsh completion script", run: runCompletion, sub: []string{"bash", "zsh"}},
		{name: "provision", summary: "give the box its identity and certificate: --claim TOKEN (online), --offline, --import-cert", run: runProvision, flags: provisionFlags},
		{name: "ports", summary: "list serial ports with USB details and which device answers on each", run: runPorts, flags: portsFlags},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses the global flags, finds the command and runs it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{Stdout: stdout, Stderr: stderr, Config: "/etc/kioskedge/kioskd.toml"}
	var rest []string
	for i := 0; i < len(args); i++ { // global flags may come anywhere
		switch a := args[i]; {
		case a == "--json" || a == "-json":
			e.JSON = true
		case a == "--config" || a == "-config":
			if i+1 >= len(args) {
				fmt.Fprintln(stderr, "kioskctl: --config needs a file")
				return exitUsage
			}
			i++
			e.Config = args[i]
		case strings.HasPrefix(a, "--config=") || strings.HasPrefix(a, "-config="):
			e.Config = a[strings.Index(a, "=")+1:]
		default:
			rest = append(rest, a)
		}
	}
	if len(rest) == 0 || rest[0] == "help" || rest[0] == "-h" || rest[0] == "--help" {
		usage(stderr)
		if len(rest) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmds := commands()
	i := slices.IndexFunc(cmds, func(c command) bool { return c.name == rest[0] })
	if i < 0 {
		fmt.Fprintf(stderr, "kioskctl: unknown command %q; run kioskctl help\n", rest[0])
		return exitUsage
	}
	return cmds[i].run(ctx, e, rest[1:])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: kioskctl [--json] [--config FILE] COMMAND [ARGS]")
	fmt.Fprintln(w, "\ncommands:")
	cmds := commands()
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nexit codes: 0 ok, 1 a check failed, 2 bad usage, 3 could not do it")
}

func runVersion(_ context.Context, e *env, args []string) int {
	if len(args) > 0 {
		fmt.Fprintf(e.Stderr, "kioskctl version: unexpected arguments %q\n", args)
		return exitUsage
	}
	if e.JSON {
		return printJSON(e, map[string]string{"version": version})
	}
	fmt.Fprintln(e.Stdout, "kioskctl", version)
	return exitOK
}

// parseFlags parses a command's flags, printing the error and the flags
// on failure; ok is false then, with the exit code to return.
func parseFlags(e *env, fs *flag.FlagSet, args []string) (code int, ok bool) {
	fs.SetOutput(e.Stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	return exitOK, true
}
