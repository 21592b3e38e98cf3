package qrscan

import (
	"bytes"
	"errors"
	"time"
	"unicode/utf8"
)

// Sentinel errors returned by NewFramer and New.
var (
	// ErrConfig: an option is out of range (empty terminator, MaxLen < 1,
	// negative timeout, a nil port).
	ErrConfig = errors.New("qrscan: bad configuration")
)

// Common terminators (firmware-specs/qrscan.md §2).
var (
	CR   = []byte{'\r'}
	LF   = []byte{'\n'}
	CRLF = []byte{'\r', '\n'}
)

// DefaultMaxLen is the longest line accepted when FramerConfig.MaxLen is
// zero: the signed visitor and resident tokens are a few hundred bytes.
const DefaultMaxLen = 1024

// FramerConfig configures a [Framer]. The zero value frames CR-terminated
// lines of up to DefaultMaxLen bytes, with no stripping and no timeout.
type FramerConfig struct {
	// Terminator ends a line; nil means CR. Any non-empty byte sequence is
	// allowed (CR, LF, CRLF, ETX, "\r\x04"...).
	Terminator []byte
	// StripAIM removes a leading AIM symbology identifier ("]" + code
	// character + modifier, e.g. "]Q1" for QR, "]C0" for Code 128) and
	// reports it in Event.Symbology (§3).
	StripAIM bool
	// Prefixes and Suffixes are stripped from a line when present, after the
	// AIM identifier; the first one that matches of each list is removed.
	Prefixes, Suffixes [][]byte
	// MaxLen is the longest line (bytes before the terminator, before
	// stripping) that is accepted; 0 means DefaultMaxLen. Longer lines are
	// discarded up to the next terminator and reported once as Overlong.
	MaxLen int
	// CharTimeout is the longest gap allowed between two bytes of one line.
	// A partial line older than that is discarded (Truncated) when the next
	// byte arrives or when Expire is called. 0 disables the timeout.
	CharTimeout time.Duration
}

// EventKind says what a [Framer] found.
type EventKind int

// The events a Framer emits (§4).
const (
	// Line is a valid line; Payload holds it stripped.
	Line EventKind = iota + 1
	// Empty is a terminator with nothing (after stripping) before it.
	Empty
	// Garbage is a complete line holding a control byte or invalid UTF-8;
	// it is dropped.
	Garbage
	// Overlong is a line longer than MaxLen, dropped; Len is its length
	// in bytes, as far as it was received.
	Overlong
	// Truncated is a partial line dropped by the inter-character timeout;
	// Len is how many bytes were dropped.
	Truncated
)

var kindNames = [...]string{Line: "line", Empty: "empty", Garbage: "garbage", Overlong: "overlong", Truncated: "truncated"}

// String returns "line", "empty", "garbage", "overlong" or "truncated".
func (k EventKind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Event is one result of framing.
type Event struct {
	Kind EventKind
	// Payload is the line with its terminator, AIM identifier, prefix and
	// suffix removed (Line only). It is owned by the caller.
	Payload []byte
	// Symbology is the stripped AIM identifier, e.g. "]Q1" (Line only,
	// when StripAIM is set and the line had one).
	Symbology string
	// Len is the raw length of the dropped bytes (Garbage, Overlong,
	// Truncated), terminator excluded.
	Len int
}

// Framer splits a scanner's byte stream into lines. It is a pure function
// of the bytes and the times they arrived: no I/O, no clock of its own. It
// is not safe for concurrent use.
type Framer struct {
	cfg      FramerConfig
	buf      []byte
	discard  int // >0: bytes dropped so far in an overlong line
	last     time.Time
	maxTotal int // MaxLen + len(Terminator) - 1
}

// NewFramer validates cfg and returns a Framer. It returns an error wrapping
// ErrConfig when MaxLen or CharTimeout is negative or Terminator is empty
// but not nil.
func NewFramer(cfg FramerConfig) (*Framer, error) {
	if cfg.Terminator == nil {
		cfg.Terminator = CR
	}
	if len(cfg.Terminator) == 0 || cfg.MaxLen < 0 || cfg.CharTimeout < 0 {
		return nil, ErrConfig
	}
	if cfg.MaxLen == 0 {
		cfg.MaxLen = DefaultMaxLen
	}
	cfg.Terminator = bytes.Clone(cfg.Terminator)
	return &Framer{cfg: cfg, maxTotal: cfg.MaxLen + len(cfg.Terminator) - 1}, nil
}

// Pending returns how many bytes of an unfinished line the framer holds
// (including those of an overlong line being discarded).
func (f *Framer) Pending() int { return len(f.buf) + f.discard }

// Expire drops a partial line whose last byte arrived more than CharTimeout
// before now, and returns the Truncated (or, for an overlong line being
// discarded, Overlong) event; ok is false when nothing was dropped.
func (f *Framer) Expire(now time.Time) (ev Event, ok bool) {
	if f.cfg.CharTimeout == 0 || f.Pending() == 0 || now.Sub(f.last) <= f.cfg.CharTimeout {
		return Event{}, false
	}
	if f.discard > 0 {
		ev = Event{Kind: Overlong, Len: f.discard + len(f.buf)}
	} else {
		ev = Event{Kind: Truncated, Len: len(f.buf)}
	}
	f.buf, f.discard = f.buf[:0], 0
	return ev, true
}

// Feed frames p, which arrived at now, and appends the events it completes
// to evs, returning the extended slice. A partial line older than
// CharTimeout is first dropped (Truncated). Bytes after the last terminator
// are kept for the next call.
func (f *Framer) Feed(evs []Event, now time.Time, p []byte) []Event {
	if len(p) == 0 {
		return evs
	}
	if ev, ok := f.Expire(now); ok {
		evs = append(evs, ev)
	}
	f.last = now
	term := f.cfg.Terminator
	for _, b := range p {
		f.buf = append(f.buf, b)
		if bytes.HasSuffix(f.buf, term) {
			line := f.buf[:len(f.buf)-len(term)]
			if f.discard > 0 {
				evs = append(evs, Event{Kind: Overlong, Len: f.discard + len(line)})
			} else {
				evs = append(evs, f.line(line))
			}
			f.buf, f.discard = f.buf[:0], 0
			continue
		}
		if f.discard > 0 {
			// Keep only what could still be the start of a terminator.
			if keep := len(term) - 1; len(f.buf) > keep {
				n := len(f.buf) - keep
				f.discard += n
				f.buf = append(f.buf[:0], f.buf[n:]...)
			}
			continue
		}
		if len(f.buf) > f.maxTotal {
			// The content is now certainly over MaxLen.
			keep := len(term) - 1
			n := len(f.buf) - keep
			f.discard = n
			f.buf = append(f.buf[:0], f.buf[n:]...)
		}
	}
	return evs
}

// line classifies a complete raw line (terminator removed).
func (f *Framer) line(raw []byte) Event {
	if len(raw) > f.cfg.MaxLen {
		return Event{Kind: Overlong, Len: len(raw)}
	}
	if !printable(raw) {
		return Event{Kind: Garbage, Len: len(raw)}
	}
	s := raw
	var sym string
	if f.cfg.StripAIM && len(s) >= 3 && s[0] == ']' {
		sym = string(s[:3])
		s = s[3:]
	}
	for _, pre := range f.cfg.Prefixes {
		if len(pre) > 0 && bytes.HasPrefix(s, pre) {
			s = s[len(pre):]
			break
		}
	}
	for _, suf := range f.cfg.Suffixes {
		if len(suf) > 0 && bytes.HasSuffix(s, suf) {
			s = s[:len(s)-len(suf)]
			break
		}
	}
	if len(s) == 0 {
		return Event{Kind: Empty}
	}
	return Event{Kind: Line, Payload: bytes.Clone(s), Symbology: sym}
}

// printable reports whether b is valid UTF-8 with no C0 control byte and
// no DEL (§4).
func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return utf8.Valid(b)
}
