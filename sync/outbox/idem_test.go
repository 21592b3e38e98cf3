package outbox

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kioskedge/kioskedge/sync/outbox/outboxtest"
	"github.com/kioskedge/kioskedge/sync/wire"
)

// keyRec is a record whose body names its idempotency key, so tests can
// count the records stored per key.
func keyRec(key string) wire.Record {
	return wire.Record{Kind: "test.idem", Class: wire.ClassCritical, Time: time.Unix(1_700_000_000, 0).UTC(), Body: []byte(key)}
}

// perKey counts the stored records per key (keyRec bodies).
func perKey(t testing.TB, o *Outbox) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, e := range outboxtest.ReadAll(t, o, 0) {
		r, err := wire.UnmarshalRecord(e.Seq, "", e.Raw)
		if err != nil {
			t.Fatal(err)
		}
		if r.Kind == "test.idem" {
			n[string(r.Body)]++
		}
	}
	return n
}

// fakeClock is a settable Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func appendOnce(t testing.TB, o *Outbox, key, meta string) (uint64, []byte) {
	t.Helper()
	seq, prior, err := o.AppendOnce(bg, keyRec(key), []byte(key), []byte(meta))
	if err != nil {
		t.Fatalf("AppendOnce(%s): %v", key, err)
	}
	return seq, prior
}

// TestAppendOnce: the first call with a key stores, later ones (whatever
// their meta) store nothing and return the first sequence and meta, also
// after Close and Open; an empty meta comes back non-nil; bad keys fail.
func TestAppendOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := openT(t, dir, 0)
	s1, p := appendOnce(t, o, "a", "meta-a")
	if p != nil {
		t.Fatalf("first AppendOnce returned prior %q", p)
	}
	seqPlain, err := o.Append(bg, outboxtest.Rec(wire.ClassEvent, 1, 10))
	if err != nil {
		t.Fatal(err)
	}
	s2, p := appendOnce(t, o, "a", "other")
	if s2 != s1 || string(p) != "meta-a" {
		t.Fatalf("replay: seq %d prior %q, want %d %q", s2, p, s1, "meta-a")
	}
	sb, p := appendOnce(t, o, "b", "")
	if p != nil || sb != seqPlain+1 {
		t.Fatalf("new key b: seq %d prior %q, want %d nil", sb, p, seqPlain+1)
	}
	if _, p = appendOnce(t, o, "b", "x"); p == nil || len(p) != 0 {
		t.Fatalf("replay of an empty meta: %q (nil %v)", p, p == nil)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o = openT(t, dir, 0)
	defer o.Close()
	if s, p := appendOnce(t, o, "a", "again"); s != s1 || string(p) != "meta-a" {
		t.Fatalf("replay after reopen: seq %d prior %q", s, p)
	}
	if n := o.IdemEntries(); n != 2 {
		t.Fatalf("IdemEntries: %d, want 2", n)
	}
	if got := perKey(t, o); got["a"] != 1 || got["b"] != 1 || len(got) != 2 {
		t.Fatalf("records per key: %v", got)
	}
	if st := o.Stats(); st.NextSeq != sb+1 {
		t.Fatalf("next seq %d, want %d: a replay took a sequence", st.NextSeq, sb+1)
	}
	for _, tc := range []struct {
		name      string
		key, meta []byte
	}{
		{"empty key", nil, nil},
		{"long key", bytes.Repeat([]byte("k"), MaxIdemKey+1), nil},
		{"long meta", []byte("k"), make([]byte, MaxIdemMeta+1)},
	} {
		if _, _, err := o.AppendOnce(bg, keyRec("k"), tc.key, tc.meta); !errors.Is(err, ErrBadKey) {
			t.Errorf("%s: %v, want ErrBadKey", tc.name, err)
		}
	}
}

// TestAppendOnceTTLAndMax: a key older than IdemTTL is forgotten (the
// next AppendOnce stores again) and at most IdemEntries keys are kept,
// the oldest going first.
func TestAppendOnceTTLAndMax(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	o, err := Open(Options{Path: filepath.Join(t.TempDir(), "o.db"), IdemTTL: time.Hour, IdemEntries: 5, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	first := map[string]uint64{}
	for i := range 8 {
		k := fmt.Sprintf("k%d", i)
		first[k], _ = appendOnce(t, o, k, k)
		clk.Add(time.Second)
	}
	if n := o.IdemEntries(); n != 5 {
		t.Fatalf("%d entries, want the maximum 5", n)
	}
	// The newest five replay; the three oldest were pruned and store anew
	// (each new store prunes the oldest again, so go newest first).
	for i := 7; i >= 3; i-- {
		k := fmt.Sprintf("k%d", i)
		if s, p := appendOnce(t, o, k, "x"); p == nil || s != first[k] {
			t.Fatalf("%s: seq %d prior %q, want a replay of %d", k, s, p, first[k])
		}
	}
	if _, p := appendOnce(t, o, "k0", "x"); p != nil {
		t.Fatalf("k0 beyond the maximum still replayed")
	}
	// An hour after k0's new entry every key has expired.
	clk.Add(time.Hour)
	s, p := appendOnce(t, o, "k0", "y")
	if p != nil || s <= first["k7"] {
		t.Fatalf("k0 after the TTL: seq %d prior %q, want a new record", s, p)
	}
	if n := o.IdemEntries(); n != 1 {
		t.Fatalf("%d entries after the TTL, want only k0's", n)
	}
	if got := perKey(t, o); got["k0"] != 3 || got["k7"] != 1 {
		t.Fatalf("records per key: %v", got)
	}
}

// TestAppendOnceDuplicateInGroup: requests with one key committed in one
// group store one record; the others see it.
func TestAppendOnceDuplicateInGroup(t *testing.T) {
	t.Parallel()
	o, err := Open(Options{Path: filepath.Join(t.TempDir(), "o.db"), Linger: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	entered := make(chan int, 8)
	release := make(chan struct{})
	o.beforeCommit = func(n int) {
		entered <- n
		if n == 1 {
			<-release // hold the first commit while the others queue
		}
	}
	type res struct {
		seq   uint64
		prior []byte
		err   error
	}
	first := make(chan error, 1)
	go func() { _, err := o.Append(bg, outboxtest.Rec(wire.ClassEvent, 0, 10)); first <- err }()
	if n := <-entered; n != 1 {
		t.Fatalf("first group %d", n)
	}
	keys := []string{"dup", "dup", "other", "dup"}
	out := make(chan res, len(keys))
	for i, k := range keys {
		go func() {
			s, p, err := o.AppendOnce(bg, keyRec(k), []byte(k), fmt.Appendf(nil, "m%d", i))
			out <- res{s, p, err}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(o.reqs) != len(keys) {
		if time.Now().After(deadline) {
			t.Fatalf("%d queued", len(o.reqs))
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if n := <-entered; n != len(keys) {
		t.Fatalf("second group of %d, want %d", n, len(keys))
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	seqs := map[uint64]int{}
	fresh := 0
	for range keys {
		r := <-out
		if r.err != nil {
			t.Fatal(r.err)
		}
		seqs[r.seq]++
		if r.prior == nil {
			fresh++
		}
	}
	if fresh != 2 || len(seqs) != 2 {
		t.Fatalf("%d stored, sequences %v; want 2 stored, 2 sequences", fresh, seqs)
	}
	if got := perKey(t, o); got["dup"] != 1 || got["other"] != 1 {
		t.Fatalf("records per key: %v", got)
	}
	if st := o.Stats(); st.Appended != 3 {
		t.Fatalf("appended %d, want 3", st.Appended)
	}
}

// TestAppendOnceSurvivesReclaimAndEviction: the index is copied into the
// fresh file of a drained Ack, and eviction under the budget leaves it.
func TestAppendOnceSurvivesReclaimAndEviction(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var logs safeBuf
	o, err := Open(Options{Path: filepath.Join(dir, "o.db"), ReclaimAbove: 1, BudgetBytes: 64 << 10,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	first := map[string]uint64{}
	for i := range 50 {
		k := fmt.Sprintf("key-%d", i)
		first[k], _ = appendOnce(t, o, k, k)
	}
	appendBulk(t, o, 2000, wire.ClassCritical, 300) // evicts the keyed records
	if st := o.Stats(); st.Evicted == 0 {
		t.Fatalf("no eviction: %+v", st)
	}
	if err := o.Ack(o.Stats().NextSeq - 1); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "file swapped") {
		t.Fatalf("the ack did not reclaim the file: %s", logs.String())
	}
	for k, seq := range first {
		if s, p := appendOnce(t, o, k, "x"); p == nil || string(p) != k || s != seq {
			t.Fatalf("%s after eviction and reclaim: seq %d prior %q, want %d", k, s, p, seq)
		}
	}
	if n := o.IdemEntries(); n != 50 {
		t.Fatalf("%d entries, want 50", n)
	}
	if st := o.Stats(); st.Depth != 0 {
		t.Fatalf("replays stored records: %+v", st)
	}
}

// TestAppendOnceDamagedFile: a damaged file (here a broken index entry,
// or broken segment stats) is replaced as Open does: the records are
// salvaged, the index is lost with the old file, so a retried key stores
// a second record.
func TestAppendOnceDamagedFile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		damage func(tx *bolt.Tx) error
	}{
		{"index entry", func(tx *bolt.Tx) error {
			k, _ := tx.Bucket(idemBucket).Cursor().First()
			return tx.Bucket(idemBucket).Put(append([]byte(nil), k...), []byte("bad"))
		}},
		{"segment stats", func(tx *bolt.Tx) error { return tx.Bucket(metaBucket).Put(segStatsKey(0), []byte("bad")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			o := openT(t, dir, 0)
			for i := range 10 {
				appendOnce(t, o, fmt.Sprintf("k%d", i), "m")
			}
			if err := o.Close(); err != nil {
				t.Fatal(err)
			}
			db, err := bolt.Open(filepath.Join(dir, "outbox.db"), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(tc.damage); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			o = openT(t, dir, 0)
			defer o.Close()
			if st := o.Stats(); st.Corruptions != 1 {
				t.Fatalf("not replaced: %+v", st)
			}
			if n := o.IdemEntries(); n != 0 {
				t.Fatalf("%d index entries survived the replacement", n)
			}
			if _, p := appendOnce(t, o, "k0", "m"); p != nil {
				t.Fatal("a key replayed from a replaced file")
			}
			if got := perKey(t, o); got["k0"] != 2 || got["k9"] != 1 {
				t.Fatalf("records per key: %v", got)
			}
		})
	}
}
