package allowlist

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

const (
	crashChildEnv = "ALLOWLIST_CRASH_CHILD"
	crashAtEnv    = "ALLOWLIST_CRASH_AT"
	crashEntries  = 20_000
)

// crashList is the list of version v in the crash tests.
func crashList(v uint64) []Entry { return testEntries(crashEntries, 100+v, uint32(v)) }

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path, os.Getenv(crashAtEnv))
		return
	}
	os.Exit(m.Run())
}

// crashChild sends snapshots of versions current+1, current+2, … and
// SIGKILLs itself at crash point at: "chunk:N" after chunk N of the first,
// "commit" inside the first swap transaction, "swapped" after it; with
// "loop" it goes on until the parent kills it. It exits 5 if it never got
// to its point.
func crashChild(path, at string) {
	die := func() {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL) // the kill is the point
		select {}
	}
	crashHook = func(point string) {
		if point == at {
			die()
		}
	}
	a, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	for v := a.Version() + 1; ; v++ {
		chunks, err := EncodeSnapshot(crashList(v), testSchedules, 1000)
		if err != nil {
			os.Exit(3)
		}
		if err := a.BeginSnapshot(v, uint64(len(chunks)), sumOf(chunks)); err != nil {
			fmt.Fprintln(os.Stderr, "begin:", err)
			os.Exit(3)
		}
		for i, c := range chunks {
			if err := a.PutChunk(uint64(i), c); err != nil {
				fmt.Fprintln(os.Stderr, "chunk:", err)
				os.Exit(3)
			}
			if at == "chunk:"+strconv.Itoa(i) {
				die()
			}
		}
		if err := a.CommitSnapshot(); err != nil {
			fmt.Fprintln(os.Stderr, "commit:", err)
			os.Exit(3)
		}
		if at != "loop" {
			os.Exit(5)
		}
	}
}

func startCrashChild(t *testing.T, path, at string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path, crashAtEnv+"="+at)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func waitKilled(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child was not killed: %v", err)
	}
}

// reopenCheck opens path and asserts it holds one whole list of a version
// in [lo, hi], and returns that version.
func reopenCheck(t *testing.T, path string, lo, hi uint64) uint64 {
	t.Helper()
	a, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	v := a.Version()
	if v < lo || v > hi {
		t.Fatalf("version %d after crash, want %d to %d", v, lo, hi)
	}
	checkList(t, a, v, crashList(v))
	if s, err := a.Schedules(); err != nil || len(s) != len(testSchedules) {
		t.Fatalf("schedules after crash: %v %v", s, err)
	}
	return v
}

func prepareCrash(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "allowlist.db")
	a, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	loadSnapshot(t, a, 1, crashList(1), 1000)
	a.Close()
	return path
}

// A child killed at each point of a snapshot leaves the old list or the new
// one, whole.
func TestCrashDuringSnapshot(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		at   string
		want uint64
	}{
		{"chunk:0", 1}, {"chunk:7", 1}, {"chunk:19", 1}, {"commit", 1}, {"swapped", 2},
	} {
		t.Run(tc.at, func(t *testing.T) {
			t.Parallel()
			path := prepareCrash(t)
			waitKilled(t, startCrashChild(t, path, tc.at))
			if v := reopenCheck(t, path, 1, 2); v != tc.want {
				t.Errorf("version %d, want %d", v, tc.want)
			}
			// The store takes the next snapshot after the crash.
			waitKilled(t, startCrashChild(t, path, "swapped"))
			reopenCheck(t, path, tc.want+1, tc.want+1)
		})
	}
}

// SIGKILL at random moments of back-to-back snapshots.
func TestCrashRandom(t *testing.T) {
	t.Parallel()
	path := prepareCrash(t)
	low := uint64(1)
	for i := 0; i < 4; i++ {
		cmd := startCrashChild(t, path, "loop")
		time.Sleep(time.Duration(50+rand.IntN(400)) * time.Millisecond) // a random moment to kill
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		waitKilled(t, cmd)
		low = reopenCheck(t, path, low, 1<<62)
	}
}
