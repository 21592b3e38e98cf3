package outbox

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kioskedge/kioskedge/sync/outbox/outboxtest"
	"github.com/kioskedge/kioskedge/sync/wire"
	"github.com/kioskedge/kioskedge/testhw/fakeclock"
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
	clk := fakeclock.New(time.Unix(1_800_000_000, 0))
	o, err := Open(Options{Path: filepath.Join(t.TempDir(), "o.db"), IdemTTL: time.Hour, IdemEntries: 5, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	first := map[string]uint64{}
	for i := range 8 {
		k := fmt.Sprintf("k%d", i)
		first[k], _ = appendOnce(t, o, k, k)
		clk.Advance(time.Second)
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
	clk.Advance(time.Hour)
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
			b := tx.Bucket(idemTailBucket) // ten small packs: all in the tail
			k, _ := b.Cursor().First()
			return b.Put(append([]byte(nil), k...), []byte("bad"))
		}},
		{"pack", func(tx *bolt.Tx) error {
			b := tx.Bucket(idemTailBucket)
			k, v := b.Cursor().Last()
			return b.Put(append([]byte(nil), k...), append(append([]byte(nil), v...), 3, 'k'))
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

// commitKeys commits one group of AppendOnce requests, key i with meta
// "<key>#<i>", through the committer's own path (the committer is idle:
// the test makes no other appends meanwhile), so a group's keys land in
// one pack deterministically.
func commitKeys(t testing.TB, o *Outbox, keys ...string) []*request {
	t.Helper()
	group := make([]*request, len(keys))
	for i, k := range keys {
		val, err := wire.MarshalRecord(keyRec(k))
		if err != nil {
			t.Fatal(err)
		}
		group[i] = &request{val: val, cls: wire.ClassCritical, key: []byte(k),
			meta: fmt.Appendf(nil, "%s#%d", k, i), done: make(chan struct{}, 1)}
	}
	o.commitGroup(group)
	for _, r := range group {
		<-r.done
		if r.err != nil {
			t.Fatalf("commit of %v: %v", keys, r.err)
		}
	}
	return group
}

// idemFile lists the index entries of o's file per bucket (keys in
// order), and the keys each bucket's entries name.
func idemFile(t testing.TB, o *Outbox) (entries map[string][][2]string, keys map[string][]string) {
	t.Helper()
	entries, keys = map[string][][2]string{}, map[string][]string{}
	err := o.db.View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{idemBucket, idemTailBucket} {
			b := tx.Bucket(name)
			if b == nil {
				continue
			}
			err := b.ForEach(func(k, v []byte) error {
				entries[string(name)] = append(entries[string(name)], [2]string{string(k), string(v)})
				return scanEntry(k, v, func(key []byte, _ idemEnt, _ []byte) bool {
					keys[string(name)] = append(keys[string(name)], string(key))
					return true
				})
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return entries, keys
}

// TestAppendOncePack: a group's keys are stored in one pack, a key twice
// in the group once (the second request sees the first's sequence and
// meta), also after Close and Open.
func TestAppendOncePack(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := openT(t, dir, 0)
	g := commitKeys(t, o, "a", "b", "a", "c")
	if g[0].prior != nil || g[1].prior != nil || g[3].prior != nil {
		t.Fatal("a new key returned a prior")
	}
	if g[2].seq != g[0].seq || string(g[2].prior) != "a#0" {
		t.Fatalf("second a in the group: seq %d prior %q, want %d %q", g[2].seq, g[2].prior, g[0].seq, "a#0")
	}
	if g[1].seq != g[0].seq+1 || g[3].seq != g[0].seq+2 {
		t.Fatalf("sequences %d %d %d", g[0].seq, g[1].seq, g[3].seq)
	}
	ents, keys := idemFile(t, o)
	if n := len(ents["idem"]) + len(ents["idem.tail"]); n != 1 || len(keys["idem.tail"]) != 3 {
		t.Fatalf("%d entries, keys %v; want one pack of a, b, c", n, keys)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o = openT(t, dir, 0)
	defer o.Close()
	if n := o.IdemEntries(); n != 3 {
		t.Fatalf("IdemEntries %d after reopen, want 3", n)
	}
	g2 := commitKeys(t, o, "c", "a", "b", "d")
	for i, want := range []*request{g[3], g[0], g[1]} {
		if g2[i].seq != want.seq || string(g2[i].prior) != string(want.meta) {
			t.Fatalf("%s after reopen: seq %d prior %q, want %d %q", g2[i].key, g2[i].seq, g2[i].prior, want.seq, want.meta)
		}
	}
	if g2[3].prior != nil || o.IdemEntries() != 4 {
		t.Fatalf("d: prior %q, %d entries", g2[3].prior, o.IdemEntries())
	}
	if got := perKey(t, o); len(got) != 4 || got["a"] != 1 || got["d"] != 1 {
		t.Fatalf("records per key: %v", got)
	}
}

// TestAppendOnceOldLayout: a file whose index holds single entries (the
// layout before packs) opens with its keys, replays them, and prunes them
// oldest first together with the packs written since, also across a
// reopen of the mixed file.
func TestAppendOnceOldLayout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "o.db")
	t0 := time.Unix(1_800_000_000, 0)
	clk := fakeclock.New(t0)
	opts := Options{Path: path, IdemTTL: time.Hour, IdemEntries: 4, Now: clk.Now}
	o, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for i := range 3 {
		s, err := o.Append(bg, keyRec(fmt.Sprintf("old%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, s)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	// The index as the previous version wrote it: key = stored-at + key,
	// value = 0xA1, sequence, meta.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("idem"))
		if err != nil {
			return err
		}
		for i, s := range seqs {
			k := binary.BigEndian.AppendUint64(nil, uint64(t0.Add(time.Duration(i)*time.Second).UnixNano()))
			v := binary.BigEndian.AppendUint64([]byte{0xA1}, s)
			if err := b.Put(fmt.Appendf(k, "old%d", i), fmt.Appendf(v, "meta%d", i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	clk.Advance(30 * time.Minute)
	if o, err = Open(opts); err != nil {
		t.Fatal(err)
	}
	if st := o.Stats(); st.Corruptions != 0 || o.IdemEntries() != 3 {
		t.Fatalf("old file: %d entries, %+v", o.IdemEntries(), st)
	}
	if s, p := appendOnce(t, o, "old1", "x"); s != seqs[1] || string(p) != "meta1" {
		t.Fatalf("old1: seq %d prior %q, want %d meta1", s, p, seqs[1])
	}
	// Two new keys: five in all, over the maximum of 4, so the oldest
	// (old0) goes.
	g := commitKeys(t, o, "n0", "n1")
	if n := o.IdemEntries(); n != 4 {
		t.Fatalf("%d entries, want 4", n)
	}
	if _, keys := idemFile(t, o); !slices.Equal(keys["idem"], []string{"old1", "old2"}) {
		t.Fatalf("single entries left %v, want old1 old2", keys["idem"])
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	clk.Advance(20 * time.Minute)
	if o, err = Open(opts); err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if o.IdemEntries() != 4 {
		t.Fatalf("mixed file: %d entries, want 4", o.IdemEntries())
	}
	for _, c := range []struct {
		key, meta string
		seq       uint64
	}{{"old2", "meta2", seqs[2]}, {"n1", "n1#1", g[1].seq}} {
		if s, p := appendOnce(t, o, c.key, "x"); s != c.seq || string(p) != c.meta {
			t.Fatalf("%s in the mixed file: seq %d prior %q, want %d %q", c.key, s, p, c.seq, c.meta)
		}
	}
	// 15 minutes on, the single entries (stored 30 min before the first
	// Open) have expired and go; the packs (35 min old) stay.
	clk.Advance(15 * time.Minute)
	if s, p := appendOnce(t, o, "old1", "again"); p != nil || s <= g[1].seq {
		t.Fatalf("expired old1: seq %d prior %q, want a new record", s, p)
	}
	if ents, _ := idemFile(t, o); len(ents["idem"]) != 0 {
		t.Fatalf("expired single entries left: %d", len(ents["idem"]))
	}
	if n := o.IdemEntries(); n != 3 {
		t.Fatalf("%d entries, want n0 n1 old1", n)
	}
}

// TestAppendOnceStoredAgainAfterExpiry: a key found expired is stored
// again in a newer pack while its old pack stays (pruning is bounded per
// commit); the newer entry wins, also after Close and Open, whatever
// order the loader meets them in.
func TestAppendOnceStoredAgainAfterExpiry(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clk := fakeclock.New(time.Unix(1_800_000_000, 0))
	opts := Options{Path: filepath.Join(dir, "o.db"), IdemTTL: time.Hour, Now: clk.Now}
	o, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	// A pack of more keys than the next commit may prune, then last's.
	var many []string
	for i := range idemPruneSlack + 36 {
		many = append(many, fmt.Sprintf("k%d", i))
	}
	commitKeys(t, o, many...)
	const last = "last"
	commitKeys(t, o, last)
	clk.Advance(time.Hour)
	g := commitKeys(t, o, last)
	if g[0].prior != nil {
		t.Fatalf("expired %s replayed", last)
	}
	count := func() int {
		c := 0
		_, keys := idemFile(t, o)
		for _, k := range slices.Concat(keys["idem"], keys["idem.tail"]) {
			if k == last {
				c++
			}
		}
		return c
	}
	if c := count(); c != 2 {
		t.Fatalf("%s in %d entries, want its expired one and its new one", last, c)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if o, err = Open(opts); err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if s, p := appendOnce(t, o, last, "x"); s != g[0].seq || string(p) != string(g[0].meta) {
		t.Fatalf("%s after reopen: seq %d prior %q, want the newer %d %q", last, s, p, g[0].seq, g[0].meta)
	}
	if got := o.IdemEntries(); got != 1 {
		t.Fatalf("IdemEntries %d, want 1 (the big pack was pruned)", got)
	}
}

// TestLoadIdemNewestWins: loadIdem keeps, for a key in several entries,
// the one with the highest sequence, whichever bucket or time holds it
// (a clock set back).
func TestLoadIdemNewestWins(t *testing.T) {
	t.Parallel()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "i.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pack := func(first uint64, keys ...string) []byte {
		v := []byte{idemPackVer}
		for i, k := range keys {
			v = binary.AppendUvarint(v, uint64(len(k)))
			v = append(v, k...)
			v = binary.AppendUvarint(v, uint64(i))
			v = binary.AppendUvarint(v, 1)
			v = append(v, 'm')
		}
		return v
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(idemBucket)
		if err != nil {
			return err
		}
		tail, err := tx.CreateBucket(idemTailBucket)
		if err != nil {
			return err
		}
		if err := b.Put(packKey(5, 20), pack(20, "x", "y")); err != nil { // newest x
			return err
		}
		if err := b.Put(timeKey(7, []byte("y")), append(binary.BigEndian.AppendUint64([]byte{idemValVersion}, 30), 'm')); err != nil { // newest y
			return err
		}
		return tail.Put(packKey(9, 10), pack(10, "x", "y", "z"))
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := loadIdem(db)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]idemEnt{"x": {at: 5, seq: 20, pack: 20}, "y": {at: 7, seq: 30}, "z": {at: 9, seq: 12, pack: 10}}
	if !maps.Equal(m, want) {
		t.Fatalf("loaded %+v, want %+v", m, want)
	}
}

// TestAppendOncePruneAcrossPacks: over IdemEntries, whole packs go,
// oldest first, down to a little below the maximum; a commit prunes at
// most idemPruneSlack keys more than it adds.
func TestAppendOncePruneAcrossPacks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "o.db")
	o, err := Open(Options{Path: path, IdemEntries: 20})
	if err != nil {
		t.Fatal(err)
	}
	group := func(g int) []string {
		var keys []string
		for i := range 6 {
			keys = append(keys, fmt.Sprintf("g%d-%d", g, i))
		}
		return keys
	}
	for g := range 5 {
		commitKeys(t, o, group(g)...)
		if n := o.IdemEntries(); n > 20 {
			t.Fatalf("after group %d: %d entries", g, n)
		}
	}
	// 30 keys, maximum 20: g0 and g1 went whole (the prune goes down to
	// 20 - 20/8 = 18); g2..g4 stay.
	want := slices.Concat(group(2), group(3), group(4))
	_, keys := idemFile(t, o)
	if got := slices.Concat(keys["idem"], keys["idem.tail"]); !slices.Equal(got, want) {
		t.Fatalf("keys in the file %v, want %v", got, want)
	}
	if n := o.IdemEntries(); n != len(want) {
		t.Fatalf("IdemEntries %d, want %d", n, len(want))
	}
	// 200 keys in single-key packs, then a maximum of 10: each keyed
	// commit prunes down to 9, at most 1 + idemPruneSlack keys more than
	// it moved from the tail.
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if o, err = Open(Options{Path: path, IdemEntries: 1000}); err != nil {
		t.Fatal(err)
	}
	for i := range 200 - len(want) {
		commitKeys(t, o, fmt.Sprintf("s%d", i))
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if o, err = Open(Options{Path: path, IdemEntries: 10}); err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	n := o.IdemEntries()
	if n != 200 {
		t.Fatalf("%d entries, want 200", n)
	}
	for i := 0; n > 9; i++ {
		if i == 10 {
			t.Fatalf("still %d entries after 10 commits", n)
		}
		_, keys := idemFile(t, o)
		tail := len(keys["idem.tail"])
		commitKeys(t, o, fmt.Sprintf("t%d", i))
		budget := 1 + idemPruneSlack
		if _, keys := idemFile(t, o); len(keys["idem.tail"]) == 1 && tail > 0 {
			budget += tail // the tail was moved
		}
		want := max(9, n+1-budget)
		if n = o.IdemEntries(); n != want {
			t.Fatalf("commit %d: %d entries, want %d", i, n, want)
		}
	}
}

// TestAppendOnceReclaimKeepsPacks: the file swap after a drained Ack
// copies the index bucket and the tail entry for entry.
func TestAppendOnceReclaimKeepsPacks(t *testing.T) {
	t.Parallel()
	var logs safeBuf
	o, err := Open(Options{Path: filepath.Join(t.TempDir(), "o.db"), ReclaimAbove: 1,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	var all []*request
	for g := range 20 {
		var keys []string
		for i := range 10 {
			keys = append(keys, fmt.Sprintf("key-%d-%d", g, i))
		}
		all = append(all, commitKeys(t, o, keys...)...)
	}
	before, _ := idemFile(t, o)
	if len(before["idem"]) == 0 || len(before["idem.tail"]) == 0 {
		t.Fatalf("want packs in both buckets: %d and %d", len(before["idem"]), len(before["idem.tail"]))
	}
	if err := o.Ack(o.Stats().NextSeq - 1); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "file swapped") {
		t.Fatalf("the ack did not reclaim the file: %s", logs.String())
	}
	if after, _ := idemFile(t, o); !maps.EqualFunc(before, after, slices.Equal) {
		t.Fatal("the index changed in the swap")
	}
	for _, r := range all {
		if s, p := appendOnce(t, o, string(r.key), "x"); s != r.seq || string(p) != string(r.meta) {
			t.Fatalf("%s after the swap: seq %d prior %q, want %d %q", r.key, s, p, r.seq, r.meta)
		}
	}
}

// FuzzIdemEntry: scanEntry never panics and returns keys and metas within
// the limits; a pack it accepts re-encodes to the same bytes.
func FuzzIdemEntry(f *testing.F) {
	f.Add(packKey(1, 5), []byte{idemPackVer, 1, 'a', 0, 2, 'm', 'x', 2, 'b', 'c', 1, 0})
	f.Add(timeKey(1, []byte("key")), append(binary.BigEndian.AppendUint64([]byte{idemValVersion}, 9), "meta"...))
	f.Add(packKey(1, 5), []byte{idemPackVer, 3, 'a'})
	f.Fuzz(func(t *testing.T, k, v []byte) {
		var re []byte
		err := scanEntry(k, v, func(key []byte, e idemEnt, meta []byte) bool {
			if len(key) == 0 || len(key) > MaxIdemKey || (e.pack != 0 && len(meta) > MaxIdemMeta) {
				t.Fatalf("key of %d bytes, meta of %d", len(key), len(meta))
			}
			if e.pack != 0 {
				re = binary.AppendUvarint(re, uint64(len(key)))
				re = append(re, key...)
				re = binary.AppendUvarint(re, e.seq-e.pack)
				re = binary.AppendUvarint(re, uint64(len(meta)))
				re = append(re, meta...)
			}
			return true
		})
		if err == nil && v[0] == idemPackVer && !bytes.Equal(re, v[1:]) {
			t.Fatalf("pack %x re-encodes to %x", v[1:], re)
		}
	})
}
