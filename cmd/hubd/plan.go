package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/kioskedge/kioskedge/sync/hubplan"
)

// planCmd runs "hubd plan import -csv FILE -dir DIR" (validate the
// roll-out plan and store it, firmware-specs/rollout-plan.md §2) and "hubd
// plan show -dir DIR" (print the stored plan's totals). A running hub
// started with -plan-dir DIR shows a new import on its next request.
func planCmd(args []string, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("plan: want a subcommand: import or show")
	}
	switch args[0] {
	case "import":
		return planImport(args[1:], stderr, time.Now)
	case "show":
		return planShow(args[1:], stderr)
	}
	return fmt.Errorf("plan: unknown subcommand %q: want import or show", args[0])
}

// planImport validates the CSV and, only if every row is valid, replaces
// the stored plan. It reports what it stored on stderr.
func planImport(args []string, stderr io.Writer, now func() time.Time) error {
	fs := flag.NewFlagSet("hubd plan import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	csvFile := fs.String("csv", "", "the roll-out plan, CSV (firmware-specs/rollout-plan.md); required")
	dir := fs.String("dir", "", "plan directory the hub serves with -plan-dir; required")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("plan import: unexpected arguments %q", fs.Args())
	}
	if *csvFile == "" || *dir == "" {
		return errors.New("plan import: -csv and -dir are required")
	}
	f, err := os.Open(*csvFile)
	if err != nil {
		return fmt.Errorf("plan import: %w", err)
	}
	defer f.Close()
	p, err := hubplan.ParseCSV(f, *csvFile)
	if err != nil {
		return fmt.Errorf("plan import: %w", err)
	}
	p.Imported = now().UTC()
	if err := hubplan.Save(*dir, p); err != nil {
		return fmt.Errorf("plan import: %w", err)
	}
	t := hubplan.Compute(p, nil).Total
	fmt.Fprintf(stderr, "plan import: stored %d communities (%d urban, %d rural; %d kiosks, %d gates planned) in %s\n",
		t.Communities(), t.Urban, t.Rural, t.PlannedKiosks, t.PlannedGates, *dir)
	return nil
}

// planShow prints the stored plan's source and totals on stderr.
func planShow(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("hubd plan show", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "plan directory; required")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("plan show: -dir is required")
	}
	p, err := hubplan.Load(*dir)
	if err != nil {
		return fmt.Errorf("plan show: %w", err)
	}
	t := hubplan.Compute(p, nil).Total
	fmt.Fprintf(stderr, "plan %s imported %s: %d communities (%d urban, %d rural); %d kiosks, %d gates planned\n",
		p.Source, p.Imported.Format(time.RFC3339), t.Communities(), t.Urban, t.Rural, t.PlannedKiosks, t.PlannedGates)
	return nil
}
