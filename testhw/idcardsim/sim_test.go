package idcardsim

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	v "github.com/kioskedge/kioskedge/firmware-specs/idcardvectors"
)

// exchange writes req and reads one whole response frame by its length.
func exchange(t *testing.T, c net.Conn, req []byte) []byte {
	t.Helper()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	return readFrame(t, c)
}

func readFrame(t *testing.T, c net.Conn) []byte {
	t.Helper()
	hdr := make([]byte, 7)
	if _, err := io.ReadFull(c, hdr); err != nil {
		t.Fatal(err)
	}
	rest := make([]byte, int(hdr[5])<<8|int(hdr[6]))
	if _, err := io.ReadFull(c, rest); err != nil {
		t.Fatal(err)
	}
	return append(hdr, rest...)
}

func start(t *testing.T) (*Sim, net.Conn) {
	s := New()
	a, b := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(b) // returns when the pipe is closed; nothing to report
	}()
	t.Cleanup(func() { a.Close(); b.Close(); <-done })
	return s, a
}

func vec(name string) []byte {
	set := v.MustLoad()
	for _, r := range set.Requests {
		if r.Name == name {
			return v.Bytes(r.Hex)
		}
	}
	for _, r := range set.Responses {
		if r.Name == name {
			return v.Bytes(r.Hex)
		}
	}
	for _, r := range set.Cards {
		if r.Name == name {
			return v.Bytes(r.Hex)
		}
	}
	panic("no vector " + name)
}

// The simulator's frames are byte for byte the spec vectors.
func TestAgainstVectors(t *testing.T) {
	s, c := start(t)
	if got := exchange(t, c, vec("find_card")); !bytes.Equal(got, vec("find_no_card")) {
		t.Errorf("find without card: % X", got)
	}
	card := vec("male-dated")
	p := Fake()
	p.Photo = card[len(card)-1-1024 : len(card)-1]
	s.Insert(p)
	if got := exchange(t, c, vec("read_base")); !bytes.Equal(got, vec("read_failed")) {
		t.Errorf("read before select: % X", got)
	}
	if got := exchange(t, c, vec("find_card")); !bytes.Equal(got, vec("find_ok")) {
		t.Errorf("find: % X", got)
	}
	if got := exchange(t, c, vec("select_card")); !bytes.Equal(got, vec("select_ok")) {
		t.Errorf("select: % X", got)
	}
	if got := exchange(t, c, vec("read_base")); !bytes.Equal(got, card) {
		t.Error("read base info differs from the vector card")
	}
	if got := exchange(t, c, vec("reset")); !bytes.Equal(got, vec("ok_no_data")) {
		t.Errorf("reset: % X", got)
	}
	bad := vec("sam_status")
	bad[len(bad)-1] ^= 1
	if got := exchange(t, c, append([]byte{0x01, 0x02}, bad...)); !bytes.Equal(got, vec("checksum_error_reported")) {
		t.Errorf("bad checksum: % X", got)
	}
	if got := exchange(t, c, []byte{0xAA, 0xAA, 0xAA, 0x96, 0x69, 0x00, 0x03, 0x77, 0x01, 0x75}); !bytes.Equal(got, vec("unknown_command")) {
		t.Errorf("unknown command: % X", got)
	}
	if st := s.Stats(); st.BadRequests != 1 || st.Requests[[2]byte{0x20, 0x01}] != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestFaults(t *testing.T) {
	s, c := start(t)
	s.Insert(Fake())
	s.Inject(0x20, 0x01, Fault{Garbage: []byte{1, 2, 3}, Truncated: 6}, Fault{BadChecksum: true}, Fault{Status: 0x60})
	if _, err := c.Write(vec("find_card")); err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte{1, 2, 3}, vec("find_ok")[:6]...), vec("find_ok")...)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, want) {
		t.Errorf("garbage+truncated: % X", got)
	}
	if got := exchange(t, c, vec("find_card")); bytes.Equal(got, vec("find_ok")) || len(got) != len(vec("find_ok")) {
		t.Errorf("bad checksum not applied: % X", got)
	}
	if got := exchange(t, c, vec("find_card")); !bytes.Equal(got, vec("sam_self_test_failed")) {
		t.Errorf("status fault: % X", got)
	}
	s.Inject(0x20, 0x02, Fault{RemoveCard: true})
	exchange(t, c, vec("find_card"))
	if got := exchange(t, c, vec("select_card")); !bytes.Equal(got, vec("select_failed")) {
		t.Errorf("removed mid-read: % X", got)
	}
}
