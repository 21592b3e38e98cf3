package wiegand

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kioskedge/kioskedge/drivers/credential"
)

// Line names a Wiegand data line.
type Line uint8

// The two data lines: a pulse on D0 is a 0 bit, on D1 a 1 bit.
const (
	D0 Line = 0
	D1 Line = 1
)

// Pulse is one low pulse on a data line.
type Pulse struct {
	Line Line
	Time time.Time // the falling edge
	// Width is how long the line stayed low; 0 when unknown (then glitch
	// and overlap rejection cannot apply).
	Width time.Duration
}

// Status says what a frame is good for.
type Status uint8

// Frame statuses (wiegand.md §4–5).
const (
	Good Status = iota // decoded; Credential is set
	Raw                // an unknown length: reported, no credential
	Bad                // rejected with a Reason; no credential
)

func (s Status) String() string {
	switch s {
	case Good:
		return "good"
	case Raw:
		return "raw"
	case Bad:
		return "bad"
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// Reason is why a frame is Bad; its text is the reason in wiegand.md §5.
type Reason string

// Reasons for a bad frame.
const (
	ReasonParity   Reason = "parity"
	ReasonTooShort Reason = "too short"
	ReasonTooLong  Reason = "too long"
	ReasonBothLow  Reason = "both lines low"
	// ReasonIrregular: the intervals between the frame's pulses are not
	// regular (wiegand.md §3.2): a pulse was inserted or lost.
	ReasonIrregular Reason = "irregular"
	// ReasonTrailing: the frame began within Gap of an early-completed
	// frame (wiegand.md §3.3): the tail of a longer frame, or noise.
	ReasonTrailing Reason = "trailing"
)

// The band of regular timing (wiegand.md §3.2): every interval between
// two consecutive pulses of a frame lies within [regularLow, regularHigh]
// times the frame's median interval.
const (
	regularLow  = 0.7
	regularHigh = 1.5
)

// Defaults for Config.
const (
	DefaultGap      = 25 * time.Millisecond
	DefaultMinPulse = 10 * time.Microsecond
	DefaultMinBits  = 26
	DefaultMaxBits  = 128
)

// ErrConfig is returned by NewDecoder and NewReader for invalid settings.
var ErrConfig = errors.New("wiegand: invalid config")

// Config tunes a Decoder. Zero fields take the defaults.
type Config struct {
	Reader   string        // the reader's name, copied into credentials
	Gap      time.Duration // silence that ends a frame (DefaultGap)
	MinPulse time.Duration // shorter pulses are glitches (DefaultMinPulse)
	MinBits  int           // shorter frames are bad unless in RawBits (DefaultMinBits)
	MaxBits  int           // longer frames are bad (DefaultMaxBits)
	// RawBits lists the lengths, other than 26, 34 and 37, whose frames
	// are turned into raw credentials (see wiegand.md §4.4). Frames of
	// other unknown lengths are reported as Raw without a credential.
	RawBits []int
	// CompleteAt, when not zero, is the site's card format length: 26, 34
	// or 37, the longest length in use (wiegand.md §3.1). A frame whose
	// CompleteAt-th pulse arrives is delivered at once, without waiting for
	// Gap, if it decodes Good, its timing is regular, every pulse's width
	// is known and no glitch was seen; otherwise it is framed by Gap.
	// Frames longer than CompleteAt are bad (too long). It must be at
	// least MinBits, at most MaxBits, and longer than every RawBits length.
	CompleteAt int
}

func (c Config) withDefaults() (Config, error) {
	if c.Gap == 0 {
		c.Gap = DefaultGap
	}
	if c.MinPulse == 0 {
		c.MinPulse = DefaultMinPulse
	}
	if c.MinBits == 0 {
		c.MinBits = DefaultMinBits
	}
	if c.MaxBits == 0 {
		c.MaxBits = DefaultMaxBits
	}
	if c.Gap < 0 || c.MinPulse < 0 || c.MinBits < 1 || c.MaxBits < c.MinBits {
		return c, fmt.Errorf("%w: gap %v, min pulse %v, bits %d..%d", ErrConfig, c.Gap, c.MinPulse, c.MinBits, c.MaxBits)
	}
	for _, n := range c.RawBits {
		if n < 1 || n > c.MaxBits {
			return c, fmt.Errorf("%w: raw length %d", ErrConfig, n)
		}
		if c.CompleteAt != 0 && n >= c.CompleteAt {
			return c, fmt.Errorf("%w: raw length %d not shorter than complete-at %d (a longer frame would be cut)", ErrConfig, n, c.CompleteAt)
		}
	}
	if c.CompleteAt != 0 {
		if _, ok := formats[c.CompleteAt]; !ok || c.CompleteAt < c.MinBits || c.CompleteAt > c.MaxBits {
			return c, fmt.Errorf("%w: complete-at %d (want 26, 34 or 37, within bits %d..%d)", ErrConfig, c.CompleteAt, c.MinBits, c.MaxBits)
		}
	}
	return c, nil
}

// Frame is one decoded frame.
type Frame struct {
	Status Status
	Reason Reason // for Bad frames
	Bits   []bool // the bits, first on the wire first (at most MaxBits+1)
	Count  int    // how many bits were received (may exceed len(Bits))
	Start  time.Time
	End    time.Time // the last pulse's falling edge
	// Early is set when the frame was completed at its CompleteAt-th
	// pulse rather than by Gap.
	Early bool
	// Glitches is how many pulses shorter than MinPulse were dropped.
	Glitches int
	// Encoding, Facility and Card are set for the known formats.
	Encoding string
	Facility uint32
	Card     uint32
	cred     credential.Credential
}

// Credential returns the frame's credential and true for a Good frame;
// the zero Credential and false otherwise.
func (f Frame) Credential() (credential.Credential, bool) {
	if f.Status != Good {
		return credential.Credential{}, false
	}
	c := f.cred
	c.Raw = slices.Clone(c.Raw)
	return c, true
}

// String describes the frame without its number (personal data).
func (f Frame) String() string {
	s := fmt.Sprintf("wiegand %s frame, %d bits", f.Status, f.Count)
	if f.Reason != "" {
		s += " (" + string(f.Reason) + ")"
	}
	if f.Encoding != "" {
		s += " " + f.Encoding
	}
	return s
}

// Stats counts what a Decoder has seen.
type Stats struct {
	Frames, Good, Raw, Bad uint64
	// Bad frames by reason.
	Parity, TooShort    uint64
	TooLong, BothLow    uint64
	Irregular, Trailing uint64
	Early               uint64 // frames completed at CompleteAt (all Good)
	Glitches            uint64 // pulses dropped as shorter than MinPulse
	// Late counts pulses dropped because they fell before the end of a
	// frame already delivered (wiegand.md §3.4).
	Late uint64
}

// Decoder assembles pulses into frames. It is a pure state machine: no
// clock, no goroutine; the caller supplies every time. It is not safe for
// concurrent use.
type Decoder struct {
	cfg Config
	// The open frame: its bits and their falling edges in time order (at
	// most MaxBits+1 kept), how many pulses it has had, its first and
	// latest falling edge.
	bits         []bool
	times        []time.Time
	count        int
	start, last  time.Time
	lastOf       [2]Pulse
	bothLow      bool
	unknownWidth bool // a pulse of unknown width: no early completion
	trailing     bool // began within Gap of an early frame
	glitches     int
	glitchAt     time.Time // the last glitch, to count one just before a frame
	// The last frame closed: its End, and whether it was early.
	closed      bool
	closedEnd   time.Time
	closedEarly bool
	stats       Stats
}

// NewDecoder returns a decoder for cfg; it fails with ErrConfig when a
// setting is negative, the bit bounds are inconsistent, or CompleteAt is
// not a format length within them and longer than every RawBits length.
func NewDecoder(cfg Config) (*Decoder, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Decoder{cfg: cfg}, nil
}

// Feed adds one pulse and returns the frame it completes, if any, with
// true:
//
//   - A pulse shorter than MinPulse (width known) is counted as a glitch and
//     dropped.
//   - A pulse that falls no later than the End of the last frame returned
//     is late (its frame was already delivered): it is dropped and counted
//     in Stats.Late.
//   - A pulse Gap or more after the open frame's latest pulse first closes
//     the open frame, which is returned; the pulse then starts a new frame.
//   - Otherwise the pulse joins the open frame at its place in time order
//     (two watchers may hand pulses over out of order, by any amount); if
//     that makes the frame CompleteAt pulses long and the frame qualifies
//     (wiegand.md §3.1), it is closed and returned at once, with Early set.
//
// Pulse times must come from a monotonic clock (wiegand.md §3.4).
func (d *Decoder) Feed(p Pulse) (Frame, bool) {
	if p.Width > 0 && p.Width < d.cfg.MinPulse {
		d.glitches++
		d.glitchAt = p.Time
		d.stats.Glitches++
		return Frame{}, false
	}
	if d.closed && !p.Time.After(d.closedEnd) {
		d.stats.Late++
		return Frame{}, false
	}
	var f Frame
	var closed bool
	if d.count > 0 && p.Time.Sub(d.last) >= d.cfg.Gap {
		f, closed = d.close(d.judge(), false), true
	}
	if d.count == 0 {
		d.start, d.last = p.Time, p.Time
		d.trailing = d.closed && d.closedEarly && p.Time.Sub(d.closedEnd) < d.cfg.Gap
		if d.glitches > 0 && p.Time.Sub(d.glitchAt) >= d.cfg.Gap {
			d.glitches = 0 // noise long before this frame is not in it
		}
	}
	o := d.lastOf[1-p.Line&1]
	if p.Width > 0 && o.Width > 0 && !o.Time.IsZero() &&
		o.Time.Before(p.Time.Add(p.Width)) && p.Time.Before(o.Time.Add(o.Width)) {
		d.bothLow = true
	}
	if p.Width <= 0 {
		d.unknownWidth = true
	}
	d.count++
	if len(d.bits) <= d.cfg.MaxBits {
		i := len(d.times)
		for i > 0 && d.times[i-1].After(p.Time) {
			i--
		}
		d.bits = slices.Insert(d.bits, i, p.Line == D1)
		d.times = slices.Insert(d.times, i, p.Time)
	}
	if p.Time.Before(d.start) {
		d.start = p.Time
	}
	if p.Time.After(d.last) {
		d.last = p.Time
	}
	if p.Time.After(d.lastOf[p.Line&1].Time) {
		d.lastOf[p.Line&1] = p
	}
	if !closed && d.count == d.cfg.CompleteAt && d.mayCompleteEarly() {
		// The frame is judged once: when it qualifies, that judgement is
		// the frame delivered.
		if f := d.judge(); f.Status == Good {
			return d.close(f, true), true
		}
	}
	return f, closed
}

// mayCompleteEarly reports whether nothing but its decoding and timing
// keeps the open frame from completing now, before Gap (wiegand.md §3.1):
// it then completes if judge finds it Good.
func (d *Decoder) mayCompleteEarly() bool {
	return !d.trailing && !d.bothLow && !d.unknownWidth && d.glitches == 0 && len(d.bits) == d.count
}

// regular reports whether every interval between consecutive times lies
// within [regularLow, regularHigh] times their median, which must be
// positive (wiegand.md §3.2). Fewer than three times are regular.
func regular(times []time.Time) bool {
	if len(times) < 3 {
		return true
	}
	// Sorted, the intervals give their median, and every one lies in the
	// band if the shortest and the longest do.
	iv := make([]time.Duration, len(times)-1)
	for i := range iv {
		iv[i] = times[i+1].Sub(times[i])
	}
	slices.Sort(iv)
	m := float64(iv[len(iv)/2])
	return m > 0 && float64(iv[0]) >= regularLow*m && float64(iv[len(iv)-1]) <= regularHigh*m
}

// Flush closes the open frame if now is Gap or more after its latest
// pulse, returning it with true; otherwise it returns false.
func (d *Decoder) Flush(now time.Time) (Frame, bool) {
	if d.count == 0 || now.Sub(d.last) < d.cfg.Gap {
		return Frame{}, false
	}
	return d.close(d.judge(), false), true
}

// Pending returns the time of the open frame's latest pulse and true, or
// false when no frame is open. A reader arms its gap timer from it.
func (d *Decoder) Pending() (time.Time, bool) {
	return d.last, d.count > 0
}

// Stats returns the counters so far.
func (d *Decoder) Stats() Stats { return d.stats }

// judge decodes the open frame and applies the framing reasons of
// wiegand.md §3 (trailing, both lines low, irregular), leaving it open.
func (d *Decoder) judge() Frame {
	f := d.decode(d.bits, d.count)
	f.Start, f.End, f.Glitches = d.start, d.last, d.glitches
	bad := func(r Reason) {
		f = Frame{Status: Bad, Reason: r, Bits: f.Bits, Count: f.Count, Start: f.Start, End: f.End, Glitches: f.Glitches}
	}
	switch {
	case d.trailing:
		bad(ReasonTrailing)
	case f.Status == Bad:
	case d.bothLow:
		bad(ReasonBothLow)
	case !regular(d.times):
		bad(ReasonIrregular)
	}
	f.cred.Time = f.End
	return f
}

// close closes the open frame as f, its judgement, and counts it. The
// frame's buffers are kept for the next one (decode copied the bits).
func (d *Decoder) close(f Frame, early bool) Frame {
	f.Early = early
	d.closed, d.closedEnd, d.closedEarly = true, f.End, early
	d.bits, d.times, d.count = d.bits[:0], d.times[:0], 0
	d.bothLow, d.unknownWidth, d.trailing, d.glitches = false, false, false, 0
	d.lastOf = [2]Pulse{}
	d.stats.Frames++
	if early {
		d.stats.Early++
	}
	switch f.Status {
	case Good:
		d.stats.Good++
	case Raw:
		d.stats.Raw++
	case Bad:
		d.stats.Bad++
		switch f.Reason {
		case ReasonParity:
			d.stats.Parity++
		case ReasonTooShort:
			d.stats.TooShort++
		case ReasonTooLong:
			d.stats.TooLong++
		case ReasonBothLow:
			d.stats.BothLow++
		case ReasonIrregular:
			d.stats.Irregular++
		case ReasonTrailing:
			d.stats.Trailing++
		}
	}
	return f
}

// Decode classifies a whole frame's bits (first on the wire first) with
// cfg's bounds and raw lengths; times and glitch counts are left zero. It
// panics on nothing; an invalid cfg is treated field by field as its
// default.
func Decode(bits []bool, cfg Config) Frame {
	c, err := cfg.withDefaults()
	if err != nil {
		c, _ = Config{Reader: cfg.Reader}.withDefaults() // the defaults always validate
	}
	d := Decoder{cfg: c}
	return d.decode(bits, len(bits))
}

// format is a facility-code layout (wiegand.md §4.1–4.3).
type format struct {
	encoding           string
	fcBits, cardBits   int
	evenEnd, oddStart  int // parity ranges: [0, evenEnd] and [oddStart, n-1]
	fcWidth, cardWidth int // decimal digits in Number
}

var formats = map[int]format{
	26: {"H10301", 8, 16, 12, 13, 3, 5},
	34: {"34bit", 16, 16, 16, 17, 5, 5},
	37: {"H10304", 16, 19, 18, 18, 5, 6},
}

func (d *Decoder) decode(bits []bool, count int) Frame {
	f := Frame{Bits: slices.Clone(bits), Count: count}
	switch {
	case count > d.cfg.MaxBits || d.cfg.CompleteAt > 0 && count > d.cfg.CompleteAt:
		f.Status, f.Reason = Bad, ReasonTooLong
		return f
	case slices.Contains(d.cfg.RawBits, count) && formats[count].encoding == "":
		f.Status, f.Encoding = Good, "raw"
		f.cred = d.credential("raw", bits, fmt.Sprintf("%d:%s", count, hexBits(bits)))
		return f
	case count < d.cfg.MinBits:
		f.Status, f.Reason = Bad, ReasonTooShort
		return f
	}
	fm, ok := formats[count]
	if !ok {
		f.Status = Raw
		return f
	}
	if ones(bits[:fm.evenEnd+1])%2 != 0 || ones(bits[fm.oddStart:])%2 != 1 {
		f.Status, f.Reason = Bad, ReasonParity
		return f
	}
	fc := value(bits[1 : 1+fm.fcBits])
	card := value(bits[1+fm.fcBits : 1+fm.fcBits+fm.cardBits])
	f.Status, f.Encoding, f.Facility, f.Card = Good, fm.encoding, uint32(fc), uint32(card)
	f.cred = d.credential(fm.encoding, bits, fm.number(fc, card))
	return f
}

// number is a credential's Number: facility and card zero-padded to the
// format's widths (wiegand.md §4).
func (fm format) number(fc, card uint64) string {
	return fmt.Sprintf("%0*d-%0*d", fm.fcWidth, fc, fm.cardWidth, card)
}

func (d *Decoder) credential(enc string, bits []bool, number string) credential.Credential {
	return credential.Credential{
		Kind:     credential.Wiegand,
		Reader:   d.cfg.Reader,
		Encoding: enc,
		Bits:     len(bits),
		Raw:      pack(bits),
		Number:   number,
	}
}

func ones(b []bool) int {
	n := 0
	for _, x := range b {
		if x {
			n++
		}
	}
	return n
}

func value(b []bool) uint64 {
	var v uint64
	for _, x := range b {
		v <<= 1
		if x {
			v |= 1
		}
	}
	return v
}

// pack returns the bits MSB first, the last byte padded with zero bits.
func pack(bits []bool) []byte {
	out := make([]byte, (len(bits)+7)/8)
	for i, b := range bits {
		if b {
			out[i/8] |= 0x80 >> (i % 8)
		}
	}
	return out
}

// hexBits returns the bits as upper-case hex, left-padded with zero bits to
// whole nibbles (wiegand.md §4.4).
func hexBits(bits []bool) string {
	pad := (4 - len(bits)%4) % 4
	padded := append(make([]bool, pad), bits...)
	var sb strings.Builder
	for i := 0; i < len(padded); i += 4 {
		sb.WriteByte("0123456789ABCDEF"[value(padded[i:i+4])])
	}
	return sb.String()
}
