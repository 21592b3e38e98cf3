package hubal

import (
	"os"
	"os/exec"
	"testing"
)

// TestCrashDuringPublish kills a child process at points of a publish and
// checks that the directory then holds version 2 whole or not at all.
func TestCrashDuringPublish(t *testing.T) {
	if dir := os.Getenv("HUBAL_CRASH_DIR"); dir != "" {
		point := os.Getenv("HUBAL_CRASH_AT")
		n := 0
		crashHook = func(at string) {
			if at == point {
				n++
				if at != "file" || n == 2 {
					os.Exit(3)
				}
			}
		}
		d, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Publish(Publication{Version: 2, Chunks: chunks(3, 2), Delta: delta(1, 2)}); err != nil {
			t.Fatal(err)
		}
		os.Exit(0)
	}
	for _, c := range []struct {
		at       string
		haveNew  bool
		exitCode int
	}{
		{"file", false, 3}, {"rename", false, 3}, {"renamed", true, 3}, {"none", true, 0},
	} {
		t.Run(c.at, func(t *testing.T) {
			dir := t.TempDir()
			d, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			publishN(t, d, 1)
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashDuringPublish$")
			cmd.Env = append(os.Environ(), "HUBAL_CRASH_DIR="+dir, "HUBAL_CRASH_AT="+c.at)
			err = cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != c.exitCode {
				t.Fatalf("child exited %d, want %d", code, c.exitCode)
			}
			d, err = Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			latest, err := d.Latest()
			if err != nil {
				t.Fatal(err)
			}
			want := uint64(1)
			if c.haveNew {
				want = 2
			}
			if latest != want {
				t.Fatalf("latest %d, want %d", latest, want)
			}
			// Whatever is listed reads back whole.
			if _, err := d.Snapshot(latest); err != nil {
				t.Fatal(err)
			}
			des, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(des) != int(want) {
				t.Fatalf("%d entries in the directory, want %d (no leftovers)", len(des), want)
			}
		})
	}
}
