package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"syscall"
	"time"
)

// Config is what every suite gets from the command line.
type Config struct {
	Quick bool   // small sizes: every suite finishes in under a minute
	N     int    // records for the sync suite's backlog
	Cold  bool   // drop the page cache before the sync drain, where allowed
	Dir   string // base for temporary directories ("" = os.TempDir())
	// Progress receives human-readable progress lines (stderr).
	Progress io.Writer
}

// progressf writes one progress line.
func (c Config) progressf(format string, args ...any) {
	if c.Progress != nil {
		fmt.Fprintf(c.Progress, "kbench: "+format+"\n", args...)
	}
}

// tempDir makes a fresh directory under c.Dir for one measurement; the
// caller removes it.
func (c Config) tempDir(pattern string) (string, error) {
	return os.MkdirTemp(c.Dir, "kbench-"+pattern+"-")
}

// suiteFunc runs one suite and returns its rows, each with a baseline
// measured in the same run. It stops early, returning ctx.Err(), when ctx
// ends, and removes every file it created.
type suiteFunc func(ctx context.Context, cfg Config) ([]Row, error)

// suite names a suiteFunc for -suite.
type suite struct {
	name string
	run  suiteFunc
}

// suites is the full list, in the order -suite all runs them. To add a
// suite, write a suiteFunc in its own file and add it here.
func suites() []suite {
	return []suite{
		{"outbox", outboxSuite}, // outbox.go
		{"sync", syncSuite},     // sync.go
		{"kiosk", kioskSuite},   // kiosk.go
		{"gate", gateSuite},     // gate.go
		{"footprint", footprintSuite},
		{"fleet", fleetSuite}, // fleet.go
	}
}

func main() {
	if os.Getenv(envAgentChild) != "" {
		os.Exit(runAgentChild()) // the sync suite's draining agent (sync.go)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the exit: it parses args, runs the chosen suites and
// returns the exit code (0 ok, 1 a suite failed, 2 bad usage).
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var names []string
	for _, s := range suites() {
		names = append(names, s.name)
	}
	which := fs.String("suite", "all", "suite to run: "+strings.Join(names, "|")+"|all")
	asJSON := fs.Bool("json", false, "print one JSON object per row and line")
	quick := fs.Bool("quick", false, "small sizes: each suite finishes in under a minute")
	n := fs.Int("n", 1_000_000, "records in the sync suite's backlog")
	cold := fs.Bool("cold", false, "drop the page cache before the sync drain (needs root)")
	dir := fs.String("dir", "", "base directory for temporary files (default the system temp dir)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	traceOut := fs.String("trace", "", "write an execution trace of the whole run to this file (go tool trace)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || *n <= 0 {
		fmt.Fprintln(stderr, "kbench: unexpected arguments; see -h")
		return 2
	}
	var chosen []suite
	for _, s := range suites() {
		if *which == "all" || *which == s.name {
			chosen = append(chosen, s)
		}
	}
	if len(chosen) == 0 {
		fmt.Fprintf(stderr, "kbench: unknown suite %q (want %s or all)\n", *which, strings.Join(names, ", "))
		return 2
	}
	cfg := Config{Quick: *quick, N: *n, Cold: *cold, Dir: *dir, Progress: stderr}
	for _, rec := range []struct {
		path  string
		start func(io.Writer) error
		stop  func()
	}{
		{*cpuProfile, pprof.StartCPUProfile, pprof.StopCPUProfile},
		{*traceOut, trace.Start, trace.Stop},
	} {
		if rec.path == "" {
			continue
		}
		stopRec, err := record(rec.path, rec.start, rec.stop)
		if err != nil {
			fmt.Fprintf(stderr, "kbench: %v\n", err)
			return 1
		}
		defer stopRec()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	code := 0
	var all []Row
	for _, s := range chosen {
		start := time.Now()
		cfg.progressf("suite %s: start", s.name)
		rows, err := s.run(ctx, cfg)
		if err != nil {
			fmt.Fprintf(stderr, "kbench: suite %s failed: %v\n", s.name, err)
			code = 1
		}
		cfg.progressf("suite %s: %d rows in %v", s.name, len(rows), time.Since(start).Round(time.Millisecond))
		if *asJSON {
			if err := writeJSON(stdout, rows); err != nil {
				fmt.Fprintf(stderr, "kbench: %v\n", err)
				return 1
			}
		}
		all = append(all, rows...)
		if errors.Is(err, context.Canceled) {
			break
		}
	}
	if !*asJSON {
		if err := writeTable(stdout, all); err != nil {
			fmt.Fprintf(stderr, "kbench: %v\n", err)
			return 1
		}
	}
	return code
}

// record starts a whole-run recording (a CPU profile, an execution trace)
// into a new file at path; the returned func stops it and closes the file.
func record(path string, start func(io.Writer) error, stop func()) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := start(f); err != nil {
		_ = f.Close() // the start error is what matters
		return nil, err
	}
	return func() {
		stop()
		_ = f.Close() // at exit; nothing to do about a close error
	}, nil
}
