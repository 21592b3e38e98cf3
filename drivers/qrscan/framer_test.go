package qrscan

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/firmware-specs/qrscanvectors"
)

var t0 = time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)

func configOf(c qrscanvectors.Case) FramerConfig {
	cfg := FramerConfig{StripAIM: c.StripAIM, MaxLen: c.MaxLen, CharTimeout: time.Duration(c.CharTimeoutMS) * time.Millisecond}
	if c.Terminator != "" {
		cfg.Terminator = []byte(c.Terminator)
	}
	for _, p := range c.Prefixes {
		cfg.Prefixes = append(cfg.Prefixes, []byte(p))
	}
	for _, s := range c.Suffixes {
		cfg.Suffixes = append(cfg.Suffixes, []byte(s))
	}
	return cfg
}

func format(evs []Event) string {
	var b bytes.Buffer
	for _, e := range evs {
		switch e.Kind {
		case Line:
			fmt.Fprintf(&b, "line(%q,%q) ", e.Payload, e.Symbology)
		case Empty:
			b.WriteString("empty ")
		default:
			fmt.Fprintf(&b, "%s(%d) ", e.Kind, e.Len)
		}
	}
	return b.String()
}

func TestFramerVectors(t *testing.T) {
	cases, err := qrscanvectors.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			f, err := NewFramer(configOf(c))
			if err != nil {
				t.Fatal(err)
			}
			var got []Event
			for _, ch := range c.Chunks {
				p, _ := ch.Bytes() // checked by qrscanvectors' own test
				got = f.Feed(got, t0.Add(time.Duration(ch.AtMS)*time.Millisecond), p)
			}
			if c.ExpireAtMS != 0 {
				if ev, ok := f.Expire(t0.Add(time.Duration(c.ExpireAtMS) * time.Millisecond)); ok {
					got = append(got, ev)
				}
			}
			var want []Event
			for _, e := range c.Events {
				ev := Event{Len: e.Len, Symbology: e.Symbology}
				switch e.Kind {
				case qrscanvectors.KindLine:
					ev.Kind, ev.Payload = Line, []byte(e.Payload)
				case qrscanvectors.KindEmpty:
					ev.Kind = Empty
				case qrscanvectors.KindGarbage:
					ev.Kind = Garbage
				case qrscanvectors.KindOverlong:
					ev.Kind = Overlong
				case qrscanvectors.KindTruncated:
					ev.Kind = Truncated
				}
				want = append(want, ev)
			}
			if g, w := format(got), format(want); g != w {
				t.Errorf("got  %s\nwant %s", g, w)
			}
		})
	}
}

// Feeding a stream byte by byte gives the same events as feeding it whole.
func TestFramerChunkingIndependent(t *testing.T) {
	cases, err := qrscanvectors.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		if c.CharTimeoutMS != 0 {
			continue
		}
		var all []byte
		for _, ch := range c.Chunks {
			p, _ := ch.Bytes()
			all = append(all, p...)
		}
		f1, _ := NewFramer(configOf(c))
		f2, _ := NewFramer(configOf(c))
		whole := f1.Feed(nil, t0, all)
		var bytewise []Event
		for i := range all {
			bytewise = f2.Feed(bytewise, t0, all[i:i+1])
		}
		if format(whole) != format(bytewise) {
			t.Errorf("%s: whole %s, bytewise %s", c.Name, format(whole), format(bytewise))
		}
	}
}

func TestNewFramerRejects(t *testing.T) {
	for _, cfg := range []FramerConfig{
		{Terminator: []byte{}},
		{MaxLen: -1},
		{CharTimeout: -time.Second},
	} {
		if _, err := NewFramer(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

// FuzzFramer checks the framer's invariants on any stream: it never
// panics, a Line payload is non-empty, printable and within MaxLen, the
// bytes accounted for never exceed those fed, and pending stays bounded.
func FuzzFramer(f *testing.F) {
	cases, err := qrscanvectors.Load()
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range cases {
		var all []byte
		for _, ch := range c.Chunks {
			p, _ := ch.Bytes()
			all = append(all, p...)
		}
		term := c.Terminator
		if term == "" {
			term = "\r"
		}
		f.Add([]byte(term), uint8(c.MaxLen), all, uint8(7))
	}
	f.Fuzz(func(t *testing.T, term []byte, maxLen uint8, data []byte, split uint8) {
		if len(term) == 0 || len(term) > 4 {
			return
		}
		cfg := FramerConfig{Terminator: term, StripAIM: split&1 == 1, MaxLen: int(maxLen), CharTimeout: 10 * time.Millisecond,
			Prefixes: [][]byte{[]byte("#")}, Suffixes: [][]byte{[]byte(";")}}
		fr, err := NewFramer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		max := int(maxLen)
		if max == 0 {
			max = DefaultMaxLen
		}
		step := int(split%16) + 1
		var evs []Event
		now := t0
		for i := 0; i < len(data); i += step {
			j := min(i+step, len(data))
			if split&0x80 != 0 {
				now = now.Add(time.Duration(data[i]%16) * time.Millisecond)
			}
			evs = fr.Feed(evs, now, data[i:j])
			if fr.Pending() > len(data) || len(fr.buf) > max+len(term) {
				t.Fatalf("pending %d buf %d", fr.Pending(), len(fr.buf))
			}
		}
		if ev, ok := fr.Expire(now.Add(time.Second)); ok {
			evs = append(evs, ev)
		}
		if fr.Pending() != 0 {
			t.Fatalf("pending %d after expiry", fr.Pending())
		}
		accounted := 0
		for _, e := range evs {
			switch e.Kind {
			case Line:
				if len(e.Payload) == 0 || len(e.Payload) > max || !printable(e.Payload) {
					t.Fatalf("bad line %q", e.Payload)
				}
				accounted += len(e.Payload)
			case Garbage, Overlong, Truncated:
				accounted += e.Len
			case Empty:
			default:
				t.Fatalf("unknown event %v", e.Kind)
			}
		}
		if accounted > len(data) {
			t.Fatalf("accounted %d bytes of %d", accounted, len(data))
		}
	})
}
