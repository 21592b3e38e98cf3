package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kioskedge/kioskedge/sync/outbox/outboxtest"
	"github.com/kioskedge/kioskedge/sync/wire"
)

var bg = context.Background()

func appendN(t testing.TB, o *Outbox, n int, cls wire.Class, size int) []uint64 {
	t.Helper()
	seqs := make([]uint64, 0, n)
	for i := range n {
		seq, err := o.Append(bg, outboxtest.Rec(cls, i, size))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	return seqs
}

// appendBulk appends n records concurrently (fast) and returns nothing.
func appendBulk(t testing.TB, o *Outbox, n int, cls wire.Class, size int) {
	t.Helper()
	errs := make(chan error, 64)
	for p := range 64 {
		go func() {
			var err error
			for i := p; i < n && err == nil; i += 64 {
				_, err = o.Append(bg, outboxtest.Rec(cls, 0, size))
			}
			errs <- err
		}()
	}
	for range 64 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestErrors(t *testing.T) {
	o := openT(t, t.TempDir(), 10_000)
	if _, err := o.Append(bg, outboxtest.Rec(wire.ClassEvent, 0, 20_000)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized record: %v", err)
	}
	if _, err := o.Append(bg, wire.Record{Kind: "", Class: wire.ClassEvent}); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("empty kind: %v", err)
	}
	if _, err := o.Append(bg, wire.Record{Kind: "x", Class: 9}); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("bad class: %v", err)
	}
	if err := o.Ack(5); !errors.Is(err, ErrBadAck) {
		t.Fatalf("ack on empty outbox: %v", err)
	}
	ctx, cancel := context.WithCancel(bg)
	cancel()
	// A cancelled context may still win the race against a free channel
	// slot; either outcome is consistent.
	if seq, err := o.Append(ctx, outboxtest.Rec(wire.ClassEvent, 0, 10)); err != nil && !errors.Is(err, context.Canceled) || err == nil && seq == 0 {
		t.Fatalf("cancelled append: %d %v", seq, err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Append(bg, outboxtest.Rec(wire.ClassEvent, 0, 10)); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if _, err := o.Read(0, 1, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if err := o.Ack(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("ack after close: %v", err)
	}
	if _, err := Open(Options{}); !errors.Is(err, ErrBadOptions) {
		t.Fatalf("empty path: %v", err)
	}
}

func TestSegmentsDroppedAndStatsKept(t *testing.T) {
	dir := t.TempDir()
	o := openT(t, dir, 0)
	appendBulk(t, o, 3*segSpan+500, wire.ClassEvent, 100)
	appendN(t, o, 10, wire.ClassHealth, 100)
	st := o.Stats()
	if st.Depth != 3*segSpan+510 || st.NextSeq != 3*segSpan+511 {
		t.Fatalf("stats %+v", st)
	}
	through := uint64(2*segSpan + 17)
	if err := o.Ack(through); err != nil {
		t.Fatal(err)
	}
	err := o.db.View(func(tx *bolt.Tx) error {
		for g := uint64(0); g < 2; g++ {
			if tx.Bucket(segName(g)) != nil {
				t.Errorf("segment %d still present after ack through %d", g, through)
			}
		}
		if tx.Bucket(segName(2)) == nil {
			t.Error("partly acked segment 2 was dropped")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := o.Stats()
	if want.Depth != st.Depth-through || want.Bytes >= st.Bytes {
		t.Fatalf("after ack: %+v", want)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o = openT(t, dir, 0)
	defer o.Close()
	got := o.Stats()
	if got.Depth != want.Depth || got.Bytes != want.Bytes || got.NextSeq != want.NextSeq || got.AckedThrough != through {
		t.Fatalf("reopen lost the counters: got %+v want %+v", got, want)
	}
	if n := len(outboxtest.ReadAll(t, o, 0)); uint64(n) != got.Depth {
		t.Fatalf("read %d records, Depth %d", n, got.Depth)
	}
	if got.Oldest.IsZero() {
		t.Fatal("Oldest unset with records waiting")
	}
}

func TestEvictionLowestClassFirstWithGap(t *testing.T) {
	dir := t.TempDir()
	const budget = 120 << 10
	o, err := Open(Options{Path: filepath.Join(dir, "o.db"), BudgetBytes: budget, Now: func() time.Time { return time.Unix(1, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	crit := appendN(t, o, 100, wire.ClassCritical, 300)
	health := appendN(t, o, 300, wire.ClassHealth, 300)
	events := appendN(t, o, 100, wire.ClassEvent, 300)
	st := o.Stats()
	if st.Evicted == 0 || st.GapRecords == 0 {
		t.Fatalf("no eviction at %d bytes over a %d budget: %+v", 500*350, budget, st)
	}
	if st.Bytes > budget {
		t.Fatalf("Bytes %d over budget %d", st.Bytes, budget)
	}
	present := map[uint64]bool{}
	var gaps []GapBody
	for _, e := range outboxtest.ReadAll(t, o, 0) {
		present[e.Seq] = true
		r, _ := wire.UnmarshalRecord(e.Seq, "", e.Raw)
		if r.Kind == wire.KindGap {
			if r.Class != wire.ClassCritical {
				t.Fatalf("gap record of class %v", r.Class)
			}
			g, err := DecodeGapBody(r.Body)
			if err != nil {
				t.Fatal(err)
			}
			gaps = append(gaps, g)
		}
	}
	for _, s := range append(crit, events...) {
		if !present[s] {
			t.Fatalf("seq %d of a higher class evicted while health records existed", s)
		}
	}
	var named uint64
	for _, g := range gaps {
		if g.Class != "health" || g.Reason != "disk_budget" {
			t.Fatalf("gap %+v", g)
		}
		for _, r := range g.Ranges {
			for q := r[0]; q <= r[1]; q++ {
				if present[q] {
					t.Fatalf("seq %d named in a gap but present", q)
				}
			}
		}
		named += g.Count
	}
	missing := 0
	for _, s := range health {
		if !present[s] {
			missing++
		}
	}
	if named != st.Evicted || uint64(missing) != named {
		t.Fatalf("evicted %d, named %d, missing %d", st.Evicted, named, missing)
	}
	// Only critical left: the oldest critical goes next, never silently.
	appendN(t, o, 400, wire.ClassCritical, 300)
	if present := outboxtest.ReadAll(t, o, 0); present[0].Seq == crit[0] {
		t.Fatal("oldest critical kept though only critical records remain over budget")
	}
}

func TestReclaimShrinksDrainedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "o.db")
	o, err := Open(Options{Path: path, ReclaimAbove: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	appendBulk(t, o, 12_000, wire.ClassEvent, 300)
	big := o.Stats()
	if big.FileBytes <= 1<<20 {
		t.Fatalf("file only %d bytes", big.FileBytes)
	}
	if err := o.Ack(big.NextSeq - 1); err != nil {
		t.Fatal(err)
	}
	small := o.Stats()
	if small.FileBytes >= big.FileBytes/4 || small.Depth != 0 || small.AckedThrough != big.NextSeq-1 {
		t.Fatalf("after drain: %d bytes (was %d), %+v", small.FileBytes, big.FileBytes, small)
	}
	seq, err := o.Append(bg, outboxtest.Rec(wire.ClassEvent, 1, 10))
	if err != nil || seq != big.NextSeq {
		t.Fatalf("append after reclaim: %d, %v (want %d)", seq, err, big.NextSeq)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o = openT(t, dir, 0)
	o.Close()
	if _, err := os.Stat(path + ".fresh"); !os.IsNotExist(err) {
		t.Fatalf("reclaim left its temp file: %v", err)
	}
	o, err = Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if st := o.Stats(); st.NextSeq != big.NextSeq+1 || st.Depth != 1 || st.Corruptions != 0 {
		t.Fatalf("reopen after reclaim: %+v", st)
	}
}

func TestReservationSurvivesLostFile(t *testing.T) {
	dir := t.TempDir()
	o := openT(t, dir, 0)
	seqs := appendN(t, o, 5, wire.ClassEvent, 50)
	o.Close()
	if err := os.Remove(filepath.Join(dir, "outbox.db")); err != nil {
		t.Fatal(err)
	}
	o = openT(t, dir, 0)
	defer o.Close()
	seq, err := o.Append(bg, outboxtest.Rec(wire.ClassEvent, 0, 50))
	if err != nil || seq <= seqs[4] {
		t.Fatalf("fresh file handed out %d after %d: %v", seq, seqs[4], err)
	}
}

// damage builds a file of n records (acked through ack), closes it, then
// applies f to the file's bytes.
func damage(t *testing.T, n int, ack uint64, f func(b []byte) []byte) (dir string, seqs []uint64) {
	dir = t.TempDir()
	o := openT(t, dir, 0)
	appendBulk(t, o, n, wire.ClassCritical, 300)
	for i := range n {
		seqs = append(seqs, uint64(i+1))
	}
	if ack > 0 {
		if err := o.Ack(ack); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "outbox.db")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, f(b), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, seqs
}

// checkRecovered opens a damaged file and checks the alarm, the quarantined
// copy, that sequences stay above everything handed out, and that at least
// minSalvaged records came back with their values.
func checkRecovered(t *testing.T, dir string, seqs []uint64, minSalvaged int) {
	t.Helper()
	o := openT(t, dir, 0)
	defer o.Close()
	st := o.Stats()
	if st.Corruptions != 1 {
		t.Fatalf("Corruptions %d", st.Corruptions)
	}
	moved, _ := filepath.Glob(filepath.Join(dir, "outbox.db.corrupt-*"))
	if len(moved) != 1 {
		t.Fatalf("quarantined files: %v", moved)
	}
	ents := outboxtest.ReadAll(t, o, 0)
	if len(ents) == 0 {
		t.Fatal("no alarm record")
	}
	last := ents[len(ents)-1]
	r, err := wire.UnmarshalRecord(last.Seq, "", last.Raw)
	if err != nil || r.Kind != wire.KindOutboxAlarm || r.Class != wire.ClassCritical {
		t.Fatalf("last record %+v, %v", r, err)
	}
	var a AlarmBody
	if err := json.Unmarshal(r.Body, &a); err != nil || a.MovedTo != moved[0] {
		t.Fatalf("alarm body %s: %v", r.Body, err)
	}
	if last.Seq <= seqs[len(seqs)-1] {
		t.Fatalf("alarm seq %d not above the last handed out %d", last.Seq, seqs[len(seqs)-1])
	}
	want := map[uint64]string{}
	for _, s := range seqs {
		v, _ := wire.MarshalRecord(outboxtest.Rec(wire.ClassCritical, 0, 300))
		want[s] = string(v)
	}
	n := 0
	for _, e := range ents[:len(ents)-1] {
		if w, ok := want[e.Seq]; !ok || w != string(e.Raw) {
			t.Fatalf("salvaged seq %d does not match what was appended", e.Seq)
		}
		n++
	}
	if n < minSalvaged || uint64(n) != a.Salvaged {
		t.Fatalf("salvaged %d records (alarm says %d), want at least %d", n, a.Salvaged, minSalvaged)
	}
	seq, err := o.Append(bg, outboxtest.Rec(wire.ClassEvent, 0, 10))
	if err != nil || seq <= last.Seq {
		t.Fatalf("append after recovery: %d, %v", seq, err)
	}
	t.Logf("salvaged %d of %d via %s: %s", n, len(seqs), a.Method, a.Error)
}

func TestCorruptZeroLength(t *testing.T) {
	dir, seqs := damage(t, 20, 0, func([]byte) []byte { return nil })
	checkRecovered(t, dir, seqs, 0)
}

func TestCorruptNotBolt(t *testing.T) {
	dir, seqs := damage(t, 20, 0, func(b []byte) []byte {
		return []byte(strings.Repeat("this is not a database\n", 1000))
	})
	checkRecovered(t, dir, seqs, 0)
}

func TestCorruptTruncated(t *testing.T) {
	dir, seqs := damage(t, 3000, 0, func(b []byte) []byte { return b[:len(b)/2] })
	checkRecovered(t, dir, seqs, 100)
}

func TestCorruptMetaPagesOverwritten(t *testing.T) {
	ps := os.Getpagesize()
	dir, seqs := damage(t, 3000, 0, func(b []byte) []byte {
		for i := range 2 * ps {
			b[i] = byte(i * 7)
		}
		return b
	})
	// Neither meta page is valid: the raw page scan must find most records.
	checkRecovered(t, dir, seqs, 2500)
}

func TestCorruptGarbageInDataPages(t *testing.T) {
	ps := os.Getpagesize()
	dir, seqs := damage(t, 3000, 0, func(b []byte) []byte {
		// Overwrite every 7th page after the metas with garbage.
		for p := 4; (p+1)*ps <= len(b); p += 7 {
			for i := p * ps; i < (p+1)*ps; i++ {
				b[i] = byte(i*131 + p)
			}
		}
		return b
	})
	// Open reads only the meta, so it may not see damage in data pages;
	// the first Read walks them, replaces the file and reads the salvage.
	o := openT(t, dir, 0)
	if _, err := o.Read(0, 100000, 1<<30); err != nil {
		t.Fatalf("read of damaged pages: %v", err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	checkRecovered(t, dir, seqs, 1)
}

func TestCorruptSegmentStatsSalvagesUnacked(t *testing.T) {
	dir, seqs := damage(t, 3000, 1000, func(b []byte) []byte { return b })
	breakSegStats(t, filepath.Join(dir, "outbox.db"))
	checkRecovered(t, dir, seqs, 2000)
	o := openT(t, dir, 0)
	defer o.Close()
	ents := outboxtest.ReadAll(t, o, 0)
	if ents[0].Seq != 1001 || o.AckedThrough() != 1000 {
		t.Fatalf("salvage starts at %d, acked %d: acked records came back", ents[0].Seq, o.AckedThrough())
	}
}

// breakSegStats damages one meta value through bbolt itself: the file is
// valid bolt, every record is readable, but its bookkeeping fails Open's
// checks.
func breakSegStats(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(metaBucket).Put(segStatsKey(0), []byte("bad"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}
