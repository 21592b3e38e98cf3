package outbox

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/outbox/outboxtest"
	"github.com/kioskedge/kioskedge/sync/wire"
)

const crashChildEnv = "OUTBOX_CRASH_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		return
	}
	os.Exit(m.Run())
}

// crashChild appends from several goroutines forever and prints each seq
// once Append has returned; the parent kills it.
func crashChild(path string) {
	o, err := Open(Options{Path: path})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for p := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				seq, err := o.Append(context.Background(), outboxtest.Rec(wire.Class(i%3+1), p, 300))
				if err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(3)
				}
				mu.Lock()
				_, err = os.Stdout.WriteString(strconv.FormatUint(seq, 10) + "\n")
				mu.Unlock()
				if err != nil {
					os.Exit(4)
				}
			}
		})
	}
	wg.Wait()
}

// TestCrashKeepsAppended SIGKILLs a child mid-append many times and checks
// that every seq it reported is present after reopen and that sequences
// never repeat.
func TestCrashKeepsAppended(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "outbox.db")
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	var maxPrinted, acked uint64
	total := 0
	for round := range 20 {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr safeBuf
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var printed []uint64
		done := make(chan error, 1)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				seq, err := strconv.ParseUint(sc.Text(), 10, 64)
				if err != nil {
					done <- fmt.Errorf("child printed %q", sc.Text())
					return
				}
				printed = append(printed, seq)
			}
			done <- nil
		}()
		time.Sleep(time.Duration(100+rng.IntN(300)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if werr := cmd.Wait(); werr == nil {
			t.Fatalf("round %d: child exited cleanly; stderr: %s", round, stderr.String())
		}
		if s := stderr.String(); s != "" {
			t.Fatalf("round %d: child stderr: %s", round, s)
		}
		for _, seq := range printed {
			if seq <= maxPrinted {
				t.Fatalf("round %d: seq %d handed out again (previous max %d)", round, seq, maxPrinted)
			}
		}
		o, err := Open(Options{Path: path})
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		if st := o.Stats(); st.Corruptions != 0 {
			t.Fatalf("round %d: a kill left a damaged file", round)
		}
		present := map[uint64]bool{}
		for _, e := range outboxtest.ReadAll(t, o, 0) {
			present[e.Seq] = true
		}
		for _, seq := range printed {
			if seq > acked && !present[seq] {
				t.Fatalf("round %d: seq %d was returned by Append but is gone after SIGKILL", round, seq)
			}
			maxPrinted = max(maxPrinted, seq)
		}
		total += len(printed)
		// Ack part of the backlog sometimes, so segments get dropped.
		if round%3 == 2 && len(printed) > 0 {
			if err := o.Ack(max(printed[len(printed)/2], o.AckedThrough())); err != nil {
				t.Fatal(err)
			}
			acked = o.AckedThrough()
		}
		if err := o.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if total == 0 {
		t.Fatal("children never appended anything")
	}
	t.Logf("%d acknowledged appends checked over 20 kills", total)
}

type safeBuf struct {
	mu sync.Mutex
	b  []byte
}

func (s *safeBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *safeBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}
