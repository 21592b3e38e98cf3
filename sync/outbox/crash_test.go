package outbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/outbox/outboxtest"
	"github.com/kioskedge/kioskedge/sync/wire"
)

const crashChildEnv = "OUTBOX_CRASH_CHILD"

// Further settings of the crash child: a budget for its appends, or a
// crash point (crashHook) at which it kills itself.
const (
	crashBudgetEnv = "OUTBOX_CRASH_BUDGET"
	crashAtEnv     = "OUTBOX_CRASH_AT"
	// crashKeysEnv makes the child use AppendOnce with keys
	// "<value>-<goroutine>-<i>" and print "key seq" lines.
	crashKeysEnv = "OUTBOX_CRASH_KEYS"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		if at := os.Getenv(crashAtEnv); at != "" {
			crashAtChild(path, at)
		}
		if prefix := os.Getenv(crashKeysEnv); prefix != "" {
			crashKeysChild(path, prefix)
		}
		crashChild(path)
		return
	}
	os.Exit(m.Run())
}

// crashAtChild opens the outbox (replacing a damaged file) and acks all of
// it with a reclaim threshold of 1 byte, and SIGKILLs itself when it
// reaches crash point at. It exits 5 if it never got there.
func crashAtChild(path, at string) {
	crashHook = func(point string) {
		if point == at {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL) // the kill is the point
			select {}
		}
	}
	o, err := Open(Options{Path: path, ReclaimAbove: 1})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	if st := o.Stats(); st.NextSeq-1 > st.AckedThrough {
		if err := o.Ack(st.NextSeq - 1); err != nil {
			fmt.Fprintln(os.Stderr, "ack:", err)
			os.Exit(3)
		}
	}
	os.Exit(5)
}

// runCrashAt runs the child on path until it kills itself at point.
func runCrashAt(t *testing.T, path, point string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path, crashAtEnv+"="+point)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die at %s: %v: %s", point, err, out)
	}
}

// crashChild appends from several goroutines forever and prints each seq
// once Append has returned; the parent kills it.
func crashChild(path string) {
	budget, _ := strconv.ParseInt(os.Getenv(crashBudgetEnv), 10, 64) // unset: no budget
	o, err := Open(Options{Path: path, BudgetBytes: budget})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	appendForever(func(p, i int) (string, error) {
		seq, err := o.Append(context.Background(), outboxtest.Rec(wire.Class(i%3+1), p, 300))
		return strconv.FormatUint(seq, 10), err
	})
}

// crashKeysChild calls AppendOnce from several goroutines forever, each
// with its own run of keys, and prints "key seq" once it returned; every
// tenth call repeats the goroutine's previous key.
func crashKeysChild(path, prefix string) {
	o, err := Open(Options{Path: path})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	appendForever(func(p, i int) (string, error) {
		n := i
		if i%10 == 9 {
			n = i - 1
		}
		key := crashKey(prefix, p, n)
		seq, _, err := o.AppendOnce(context.Background(), keyRec(key), []byte(key), []byte(key))
		return fmt.Sprintf("%s %d", key, seq), err
	})
}

// appendForever calls op (the p-th of 8 goroutines, its i-th call)
// forever and prints each line op returns once it returned; an op error
// exits 3, a failed print 4. The parent kills the process.
func appendForever(op func(p, i int) (string, error)) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for p := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				line, err := op(p, i)
				if err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(3)
				}
				mu.Lock()
				_, err = os.Stdout.WriteString(line + "\n")
				mu.Unlock()
				if err != nil {
					os.Exit(4)
				}
			}
		})
	}
	wg.Wait()
}

func crashKey(prefix string, p, i int) string { return fmt.Sprintf("%s-%d-%d", prefix, p, i) }

// TestCrashAppendOnce SIGKILLs a child calling AppendOnce mid-stream and
// checks after each kill that every key whose AppendOnce returned is in
// the index with its record under the returned sequence, and that retrying
// every key the child may have tried (returned or not) leaves exactly one
// record per key.
func TestCrashAppendOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	total := 0
	for round := range 5 {
		prefix := fmt.Sprintf("r%d", round)
		printed := map[string]uint64{}
		killChild(t, round, time.Duration(150+50*round)*time.Millisecond, func(line string) error {
			var key string
			var seq uint64
			if _, err := fmt.Sscanf(line, "%s %d", &key, &seq); err != nil {
				return fmt.Errorf("child printed %q", line)
			}
			if old, ok := printed[key]; ok && old != seq {
				return fmt.Errorf("key %s got seq %d, then %d", key, old, seq)
			}
			printed[key] = seq
			return nil
		}, crashChildEnv+"="+path, crashKeysEnv+"="+prefix)
		o, err := Open(Options{Path: path})
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		bySeq := map[uint64]string{}
		for _, e := range outboxtest.ReadAll(t, o, 0) {
			r, err := wire.UnmarshalRecord(e.Seq, "", e.Raw)
			if err != nil {
				t.Fatal(err)
			}
			bySeq[e.Seq] = string(r.Body)
		}
		for key, seq := range printed {
			if bySeq[seq] != key {
				t.Fatalf("round %d: %s returned seq %d, which holds %q after the kill", round, key, seq, bySeq[seq])
			}
		}
		// Retry every key: those that returned replay their sequence; the
		// one in flight per goroutine (and a few never tried) store once.
		last := make([]int, 8)
		for key := range printed {
			var p, i int
			if _, err := fmt.Sscanf(strings.TrimPrefix(key, prefix+"-"), "%d-%d", &p, &i); err != nil {
				t.Fatal(err)
			}
			last[p] = max(last[p], i)
		}
		for p := range 8 {
			for i := 0; i <= last[p]+2; i++ {
				key := crashKey(prefix, p, i)
				seq, prior, err := o.AppendOnce(bg, keyRec(key), []byte(key), []byte(key))
				if err != nil {
					t.Fatal(err)
				}
				if want, ok := printed[key]; ok && (prior == nil || seq != want || string(prior) != key) {
					t.Fatalf("round %d: retry of %s: seq %d prior %q, want a replay of %d", round, key, seq, prior, want)
				}
			}
		}
		counts := perKey(t, o)
		for p := range 8 {
			for i := 0; i <= last[p]+2; i++ {
				if n := counts[crashKey(prefix, p, i)]; n != 1 {
					t.Fatalf("round %d: %d records for key %s, want 1", round, n, crashKey(prefix, p, i))
				}
			}
		}
		total += len(printed)
		if round%2 == 1 { // drain sometimes: the index must outlive its records
			if err := o.Ack(o.Stats().NextSeq - 1); err != nil {
				t.Fatal(err)
			}
		}
		if err := o.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if total == 0 {
		t.Fatal("children never returned from AppendOnce")
	}
	t.Logf("%d returned AppendOnce calls checked over 5 kills", total)
}

// TestCrashKeepsAppended SIGKILLs a child mid-append many times and checks
// that every seq it reported is present after reopen and that sequences
// never repeat.
func TestCrashKeepsAppended(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	var maxPrinted, acked uint64
	total := 0
	for round := range 20 {
		var printed []uint64
		killChild(t, round, time.Duration(100+rng.IntN(300))*time.Millisecond, func(line string) error {
			seq, err := strconv.ParseUint(line, 10, 64)
			if err != nil {
				return fmt.Errorf("child printed %q", line)
			}
			printed = append(printed, seq)
			return nil
		}, crashChildEnv+"="+path)
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

// killChild runs the crash child with env added to the test's, hands
// each line it prints to line, SIGKILLs it after the given time and waits
// for it. It fails the test if line returned an error, if the child ended
// on its own or if it wrote to stderr.
func killChild(t *testing.T, round int, after time.Duration, line func(string) error, env ...string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr safeBuf
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if err := line(sc.Text()); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	time.Sleep(after) // the kill lands mid-stream: no condition to wait for
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("round %d: %v", round, err)
	}
	if werr := cmd.Wait(); werr == nil {
		t.Fatalf("round %d: child exited cleanly; stderr: %s", round, stderr.String())
	}
	if s := stderr.String(); s != "" {
		t.Fatalf("round %d: child stderr: %s", round, s)
	}
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

// TestCrashDuringQuarantine kills the process at each step of replacing a
// damaged file and checks that the next Open still salvages every unacked
// record, raises the alarm and keeps sequences above everything handed out.
func TestCrashDuringQuarantine(t *testing.T) {
	for _, point := range []string{"salvage-written", "quarantine-renamed"} {
		t.Run(point, func(t *testing.T) {
			dir, seqs := damage(t, 3000, 1000, func(b []byte) []byte { return b })
			path := filepath.Join(dir, "outbox.db")
			breakSegStats(t, path)
			runCrashAt(t, path, point)
			checkRecovered(t, dir, seqs, 2000)
		})
	}
}

// TestCrashDuringReclaim kills the process at each step of swapping a
// drained file for a fresh one and checks that the next Open finds the ack
// durable, the sequences intact and no damage.
func TestCrashDuringReclaim(t *testing.T) {
	for _, point := range []string{"reclaim-fresh-written", "reclaim-renamed"} {
		t.Run(point, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "outbox.db")
			o := openT(t, dir, 0)
			appendBulk(t, o, 2000, wire.ClassEvent, 300)
			last := o.Stats().NextSeq - 1
			if err := o.Close(); err != nil {
				t.Fatal(err)
			}
			runCrashAt(t, path, point)
			o = openT(t, dir, 0)
			defer o.Close()
			st := o.Stats()
			if st.Corruptions != 0 || st.Depth != 0 || st.AckedThrough != last || st.NextSeq != last+1 {
				t.Fatalf("after a crash in the reclaim: %+v, want acked through %d", st, last)
			}
			if _, err := os.Stat(path + ".fresh"); !os.IsNotExist(err) {
				t.Fatalf("Open left the reclaim's temp file: %v", err)
			}
			if seq, err := o.Append(bg, outboxtest.Rec(wire.ClassEvent, 0, 10)); err != nil || seq != last+1 {
				t.Fatalf("append after the crash: %d, %v (want %d)", seq, err, last+1)
			}
		})
	}
}

// TestCrashDuringEviction SIGKILLs children appending under a small budget
// (so most commits evict) and checks after each kill that every seq whose
// Append returned is stored, named by a gap record or acked, and that the
// counters equal a recount.
func TestCrashDuringEviction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	const budget = 256 << 10
	var maxPrinted uint64
	for round := range 6 {
		var printed []uint64
		killChild(t, round, time.Duration(150+50*round)*time.Millisecond, func(line string) error {
			seq, err := strconv.ParseUint(line, 10, 64)
			if err != nil {
				return fmt.Errorf("child printed %q", line)
			}
			printed = append(printed, seq)
			return nil
		}, crashChildEnv+"="+path, crashBudgetEnv+"="+strconv.Itoa(budget))
		o, err := Open(Options{Path: path, BudgetBytes: budget})
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		st := o.Stats()
		if st.Corruptions != 0 {
			t.Fatalf("round %d: a kill left a damaged file", round)
		}
		snap := takeSnapshot(t, o)
		checkAccounting(t, o, snap)
		for _, seq := range printed {
			_, stored := snap.cls[seq]
			if seq <= maxPrinted {
				t.Fatalf("round %d: seq %d handed out again", round, seq)
			}
			if !stored && !snap.named[seq] && seq > st.AckedThrough {
				t.Fatalf("round %d: seq %d returned by Append, gone without a gap record", round, seq)
			}
		}
		for _, seq := range printed {
			maxPrinted = max(maxPrinted, seq)
		}
		if round == 5 && st.Evicted == 0 {
			t.Fatalf("no eviction under a %d-byte budget: %+v", budget, st)
		}
		if round%2 == 1 && len(printed) > 0 {
			if err := o.Ack(max(printed[len(printed)/3], o.AckedThrough())); err != nil {
				t.Fatal(err)
			}
		}
		if err := o.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
