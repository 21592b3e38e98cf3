package escpossim

import (
	"testing"

	"github.com/kioskedge/kioskedge/firmware-specs/escposvectors"
)

// Every command vector's bytes render as the vector says, fed whole and
// byte by byte.
func TestCommandVectorsRender(t *testing.T) {
	cmds, err := escposvectors.LoadCommands()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		b, _ := escposvectors.Bytes(c.Hex) // checked by escposvectors' own test
		if len(b) > 0 && b[0] == 0x10 {
			continue // status queries: see TestStatusReplies
		}
		whole, bytewise := New(), New()
		whole.Feed(b)
		for i := range b {
			bytewise.Feed(b[i : i+1])
		}
		if whole.Unknown() != 0 || whole.Paper() != c.Render || bytewise.Paper() != c.Render {
			t.Errorf("%s: rendered %q / %q, want %q (unknown %d)", c.Name, whole.Paper(), bytewise.Paper(), c.Render, whole.Unknown())
		}
	}
}

func TestStatusReplies(t *testing.T) {
	p := New()
	q := []byte{0x10, 4, 1, 0x10, 4, 2, 0x10, 4, 3, 0x10, 4, 4}
	if got := p.Feed(q); string(got) != "\x12\x12\x12\x12" {
		t.Fatalf("idle: % x", got)
	}
	p.SetCoverOpen(true)
	p.SetPaperNearEnd(true)
	if got := p.Feed(q); string(got) != "\x1a\x16\x12\x1e" {
		t.Fatalf("cover open, near end: % x", got)
	}
	p.SetCoverOpen(false)
	p.SetPaperOut(true)
	if got := p.Feed(q); string(got) != "\x1a\x32\x12\x7e" {
		t.Fatalf("paper out: % x", got)
	}
	p.Feed([]byte("lost\n"))
	if p.Paper() != "" {
		t.Fatalf("printed without paper: %q", p.Paper())
	}
	p.SetFault(Silent)
	if got := p.Feed(q); len(got) != 0 {
		t.Fatalf("silent replied % x", got)
	}
	p.SetFault(Garbage)
	if got := p.Feed(q[:3]); string(got) != "\xff" {
		t.Fatalf("garbage % x", got)
	}
	if p.Queries() != 17 {
		t.Fatalf("queries %d", p.Queries())
	}
}

func TestStylesAndUnknown(t *testing.T) {
	p := New()
	p.Feed([]byte("\x1b@\x1c&\x1ba\x02\x1bE\x01\xb7\xc3\x1bE\x00 x\x1d!\x11W\x1d!\x00\n\x1bX\n\x1d(k\x03\x00\x31\x51\x30"))
	want := "R|<b>访</b> x<wh>W</wh>\nR|[?1b58]\n"
	if p.Paper() != want || p.Unknown() != 1 {
		t.Fatalf("paper %q (unknown %d), want %q", p.Paper(), p.Unknown(), want)
	}
}
