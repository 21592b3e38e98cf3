package kioskedge_test

// The import rules of DESIGN.md §3 and CONVENTIONS.md ("one importer per
// heavy dependency"), checked on every package of the module with go list.
// When a new package legitimately needs one of these dependencies, add it
// to the allowed set here in the same change, so the reviewer sees it.

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/kioskedge/kioskedge"

type listedPackage struct {
	ImportPath string
	Imports    []string
	Deps       []string
	GoFiles    []string
}

func listPackages(t *testing.T) map[string]listedPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "./...")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]listedPackage{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p listedPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		pkgs[p.ImportPath] = p
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no packages")
	}
	return pkgs
}

// heavy maps a dependency (import path prefix) to the only packages of this
// module allowed to import it directly.
var heavy = map[string][]string{
	"github.com/eclipse/paho.mqtt.golang": {"sync/uplink"},
	"go.etcd.io/bbolt":                    {"sync/outbox", "sync/hubstore", "cmd/kbench", "agent/allowlist"}, // kbench: the raw one-commit-per-record baseline; allowlist: the gate's allowlist store, its own file (DESIGN.md §5)
	"go.bug.st/serial":                    {"drivers/serialport"},
	"github.com/jackc/pgx":                {"sync/hubpg"}, // the hub's PostgreSQL store
	"periph.io/x/host":                    {"drivers/gpioline"},
	"github.com/mochi-mqtt/server":        {"testhw/"},
	"github.com/creack/pty":               {"testhw/pty"},
	"github.com/chromedp/chromedp":        {}, // _test.go files only (cmd/hubd's browser test): go list's Imports has no test imports
}

func local(path string) string { return strings.TrimPrefix(strings.TrimPrefix(path, module), "/") }

func hasPrefixPath(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/") || (strings.HasSuffix(prefix, "/") && strings.HasPrefix(path, prefix))
}

func TestHeavyDependenciesHaveOneImporter(t *testing.T) {
	for _, p := range listPackages(t) {
		for _, imp := range p.Imports {
			for dep, allowed := range heavy {
				if !hasPrefixPath(imp, dep) {
					continue
				}
				ok := false
				for _, a := range allowed {
					ok = ok || hasPrefixPath(local(p.ImportPath), a)
				}
				if !ok {
					t.Errorf("%s imports %s; only %v may (DESIGN.md §3)", local(p.ImportPath), imp, allowed)
				}
			}
		}
	}
}

// forbidden lists, per area of the tree, module areas it must not import.
var forbidden = map[string][]string{
	"drivers": {"agent", "sync", "testhw", "cmd"},
	"agent":   {"testhw", "cmd"},
	"sync":    {"agent", "drivers", "testhw", "cmd"},
}

func TestImportArrows(t *testing.T) {
	for _, p := range listPackages(t) {
		from := local(p.ImportPath)
		for area, bad := range forbidden {
			if !hasPrefixPath(from, area) {
				continue
			}
			for _, imp := range p.Imports {
				if !strings.HasPrefix(imp, module+"/") {
					continue
				}
				for _, b := range bad {
					if hasPrefixPath(local(imp), b) {
						t.Errorf("%s imports %s: %s/ must not import %s/ (DESIGN.md §3)", from, local(imp), area, b)
					}
				}
			}
		}
	}
}

// agentDrivers are the only drivers/ packages agent/ may import: the shared
// leaf types. Concrete drivers are wired in cmd/ and reach the agent
// through the small interfaces it declares (CONVENTIONS.md).
var agentDrivers = []string{"drivers/credential", "drivers/devstatus"}

func TestAgentImportsNoConcreteDriver(t *testing.T) {
	for _, p := range listPackages(t) {
		from := local(p.ImportPath)
		if !hasPrefixPath(from, "agent") {
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module+"/") || !hasPrefixPath(local(imp), "drivers") {
				continue
			}
			ok := false
			for _, a := range agentDrivers {
				ok = ok || local(imp) == a
			}
			if !ok {
				t.Errorf("%s imports %s: agent/ may import only %v of drivers/; wire concrete drivers in cmd/", from, local(imp), agentDrivers)
			}
		}
	}
}

func TestSyncHasNoRootPackage(t *testing.T) {
	if _, ok := listPackages(t)[module+"/sync"]; ok {
		t.Error("sync/ has Go files at its root; a package named sync would shadow the standard library")
	}
}

func TestKioskdHasNoTestHardware(t *testing.T) {
	p, ok := listPackages(t)[module+"/cmd/kioskd"]
	if !ok {
		t.Fatal("cmd/kioskd not found")
	}
	for _, d := range p.Deps {
		if hasPrefixPath(local(d), "testhw") && strings.HasPrefix(d, module) {
			t.Errorf("cmd/kioskd depends on %s: no testhw package may end up in the daemon", d)
		}
		if d == "testing" {
			t.Error("cmd/kioskd depends on package testing")
		}
		if strings.HasPrefix(d, "github.com/mochi-mqtt/") {
			t.Errorf("cmd/kioskd depends on the test broker %s", d)
		}
	}
}
