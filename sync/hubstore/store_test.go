package hubstore

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kioskedge/kioskedge/sync/wire"
)

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

var t0 = time.Date(2025, 3, 1, 8, 0, 0, 0, time.FixedZone("CST", 8*3600))

func record(t testing.TB, seq uint64) []byte {
	b, err := wire.MarshalRecord(wire.Record{Kind: wire.KindAccess, Class: wire.ClassCritical,
		Time: t0.Add(time.Duration(seq) * time.Millisecond), Body: fmt.Appendf(nil, `{"n":%d}`, seq)})
	if err != nil {
		panic(err)
	}
	return b
}

func gapRecord(t testing.TB, count uint64, ranges ...[2]uint64) []byte {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"reason": "budget", "class": "health", "ranges": ranges, "count": count, "bytes": 100})
	b, err := wire.MarshalRecord(wire.Record{Kind: wire.KindGap, Class: wire.ClassCritical, Time: t0, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// batch makes a batch of agent covering [first, last] carrying every
// sequence in it.
func batch(t testing.TB, agent string, first, last uint64) Ingested {
	b := Ingested{Agent: agent, First: first, Last: last}
	for s := first; s <= last; s++ {
		b.Entries = append(b.Entries, wire.Entry{Seq: s, Raw: record(t, s)})
	}
	return b
}

func mustApply(t *testing.T, s *Store, w Write) Result {
	t.Helper()
	res, err := s.Apply(w)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestApplyReopen covers what the shared contract (contract_test.go, the
// same reopen case over Apply) does not: status and health written through
// PutStatus and PutHealth survive a reopen, Apply after Close is ErrClosed,
// and Get finds each record or says ErrNotFound.
func TestApplyReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, Write{Batches: []Ingested{batch(t, "a1", 1, 10), batch(t, "a2", 1, 5), batch(t, "a1", 11, 20)}})
	birth := []byte(`{"state":"online","agent":"a1","bdseq":3}`)
	if ok, err := s.PutStatus(wire.Status{State: wire.StateOnline, Agent: "a1", BdSeq: 3}, birth); !ok || err != nil {
		t.Fatalf("status: %v %v", ok, err)
	}
	if err := s.PutHealth("a2", []byte(`{"agent":"a2"}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(Write{Batches: []Ingested{batch(t, "a1", 21, 21)}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("apply after close: %v", err)
	}

	s = open(t, path)
	a1, ok := s.AgentState("a1")
	if !ok || a1.Received != 20 || !a1.Online || a1.BdSeq != 3 || string(a1.Birth) != string(birth) || string(a1.Status) != string(birth) {
		t.Fatalf("a1 after reopen: %+v", a1)
	}
	a2, ok := s.AgentState("a2")
	if !ok || a2.Received != 5 || string(a2.Health) != `{"agent":"a2"}` || a2.HasStatus {
		t.Fatalf("a2 after reopen: %+v", a2)
	}
	for seq := uint64(1); seq <= 20; seq++ {
		got, err := s.Get("a1", seq)
		if err != nil || string(got) != string(record(t, seq)) {
			t.Fatalf("Get(a1, %d) = %x, %v", seq, got, err)
		}
	}
	if _, err := s.Get("a1", 21); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get beyond: %v", err)
	}
	if _, err := s.Get("nobody", 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get unknown agent: %v", err)
	}
}

func TestStaleStatus(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	s := open(t, path)
	st := func(state string, bd uint64) StatusUpdate {
		return StatusUpdate{Status: wire.Status{State: state, Agent: "a", BdSeq: bd}, Raw: fmt.Appendf(nil, `{"state":%q,"bdseq":%d}`, state, bd)}
	}
	res := mustApply(t, s, Write{Statuses: []StatusUpdate{st("online", 5), st("offline", 4), st("offline", 5)}})
	if res.Stale != 1 {
		t.Fatalf("stale %d", res.Stale)
	}
	a, _ := s.AgentState("a")
	if a.Online || a.BdSeq != 5 || string(a.Birth) != `{"state":"online","bdseq":5}` {
		t.Fatalf("state %+v", a)
	}
	if ok, err := s.PutStatus(st("online", 4).Status, st("online", 4).Raw); ok || err != nil {
		t.Fatalf("older birth accepted: %v %v", ok, err)
	}
	if ok, _ := s.PutStatus(st("online", 6).Status, st("online", 6).Raw); !ok {
		t.Fatal("newer birth rejected")
	}
	if a, _ := s.AgentState("a"); !a.Online || a.BdSeq != 6 {
		t.Fatalf("state %+v", a)
	}
}

func TestOpenCorruptState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, Write{Batches: []Ingested{batch(t, "a", 1, 3)}})
	// Damage the state value through bbolt itself.
	if err := s.db.Update(func(tx *boltTx) error {
		return tx.Bucket(bucketAgents).Bucket([]byte("a")).Put(keyState, []byte{9, 9})
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open with corrupt state: %v", err)
	}
}

func TestGapCount(t *testing.T) {
	if n, ok := GapCount(record(t, 1)); ok || n != 0 {
		t.Errorf("access record: %d %v", n, ok)
	}
	if n, ok := GapCount(gapRecord(t, 12)); !ok || n != 12 {
		t.Errorf("gap: %d %v", n, ok)
	}
	if n, ok := GapCount(gapRecord(t, 0, [2]uint64{1, 5}, [2]uint64{8, 8})); !ok || n != 6 {
		t.Errorf("gap by ranges: %d %v", n, ok)
	}
	for _, in := range [][]byte{nil, {1}, {1, 3, 10, 'o'}, {2, 3, 1, 'x'}} {
		if _, ok := GapCount(in); ok {
			t.Errorf("%x taken for a gap", in)
		}
	}
}

// TestCrashKeepsCommitted kills a child process that applies batches in a
// loop and reports each commit, then reopens the file: everything reported
// committed must be there, with coverage matching the records.
func TestCrashKeepsCommitted(t *testing.T) {
	if os.Getenv("HUBSTORE_CRASH_CHILD") != "" {
		crashChild(os.Getenv("HUBSTORE_CRASH_CHILD"))
		return
	}
	path := filepath.Join(t.TempDir(), "hub.db")
	for round := 0; round < 3; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKeepsCommitted$")
		cmd.Env = append(os.Environ(), "HUBSTORE_CRASH_CHILD="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		var committed uint64
		for lines := 0; lines < 20+round*7 && sc.Scan(); lines++ {
			committed, _ = strconv.ParseUint(sc.Text(), 10, 64)
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait() // killed: its exit status is expected to be an error
		if committed == 0 {
			t.Fatal("child reported no commit")
		}
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		st, _ := s.AgentState("crash")
		if st.Contiguous < committed || st.Missing != nil || st.Received != st.Contiguous {
			t.Fatalf("round %d: reported %d committed, reopened state %+v", round, committed, st)
		}
		n := uint64(0)
		err = s.ForEach("crash", 1, func(seq uint64, raw []byte) error {
			n++
			if seq != n || string(raw) != string(record(t, seq)) {
				return fmt.Errorf("record %d: seq %d", n, seq)
			}
			return nil
		})
		if err != nil || n != st.Received {
			t.Fatalf("round %d: %d records, state says %d: %v", round, n, st.Received, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func crashChild(path string) {
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	st, _ := s.AgentState("crash")
	next := st.Contiguous + 1
	for {
		b := batch(nil, "crash", next, next+199)
		res, err := s.Apply(Write{Batches: []Ingested{b, batch(nil, "crash", next, next+9)}})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println(res.Acks[0].Through)
		next += 200
	}
}

type boltTx = bolt.Tx
