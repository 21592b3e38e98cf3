package outbox

import (
	"bytes"
	"errors"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/wire"
)

func TestSnapshotReadsUnackedRecordsOnly(t *testing.T) {
	dir := t.TempDir()
	o := openT(t, dir, 0)
	appendN(t, o, 25, wire.ClassEvent, 40)
	if err := o.Ack(10); err != nil {
		t.Fatal(err)
	}
	want, err := o.Read(0, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := OpenSnapshot(filepath.Join(dir, "outbox.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.AckedThrough() != 10 || s.NextSeq() != 26 {
		t.Fatalf("acked %d next %d, want 10 26", s.AckedThrough(), s.NextSeq())
	}
	for _, tc := range []struct {
		after, n, last uint64
	}{{0, 15, 25}, {10, 15, 25}, {20, 5, 25}, {25, 0, 0}, {99, 0, 0}} {
		n, last, err := s.Count(tc.after)
		if err != nil || n != tc.n || last != tc.last {
			t.Errorf("Count(%d) = %d, %d, %v; want %d, %d", tc.after, n, last, err, tc.n, tc.last)
		}
	}
	var got []wire.Entry
	for after := uint64(0); ; {
		ents, err := s.Read(after, 4, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) == 0 {
			break
		}
		got = append(got, ents...)
		after = ents[len(ents)-1].Seq
	}
	if len(got) != len(want) {
		t.Fatalf("snapshot read %d records, outbox %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Seq != want[i].Seq || !bytes.Equal(got[i].Raw, want[i].Raw) {
			t.Fatalf("record %d differs: seq %d vs %d", i, got[i].Seq, want[i].Seq)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Read(0, 1, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
}

func TestSnapshotRefusesAFileInUse(t *testing.T) {
	dir := t.TempDir()
	o := openT(t, dir, 0)
	defer o.Close()
	_, err := OpenSnapshot(filepath.Join(dir, "outbox.db"), 50*time.Millisecond)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("got %v, want ErrLocked", err)
	}
}

func TestSnapshotMissingFile(t *testing.T) {
	_, err := OpenSnapshot(filepath.Join(t.TempDir(), "outbox.db"), 0)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v, want fs.ErrNotExist", err)
	}
}
