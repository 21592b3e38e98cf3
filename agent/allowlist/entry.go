package allowlist

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Limits of the encoding (firmware-specs/allowlist.md §2, §3).
const (
	MaxDoorGroups = 64
	MaxWindows    = 64
	MaxHolidays   = 1024
	entryFormat   = 1
	flagStaff     = 1 << 0
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("allowlist: malformed encoding")

// Key is the keyed hash of a normalised credential: the 16 bytes that
// privacy.KeyedHash writes as 32 hex digits.
type Key [16]byte

// ParseKey decodes the 32 hex digits of privacy.KeyedHash. It fails with an
// error wrapping ErrMalformed on any other length or a non-hex digit.
func ParseKey(s string) (Key, error) {
	var k Key
	if len(s) != 32 {
		return k, fmt.Errorf("%w: key %d hex digits, want 32", ErrMalformed, len(s))
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		return k, fmt.Errorf("%w: key: %v", ErrMalformed, err)
	}
	return k, nil
}

// String returns the key as 32 lowercase hex digits.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// Entry is one allowed credential. Evaluating validity, schedule, door
// groups, lockdown and anti-passback is the decision engine's job; the
// store only keeps the fields.
type Entry struct {
	Key Key
	// ValidFrom and ValidTo bound validity; the zero time means unbounded.
	// They are stored with second precision.
	ValidFrom, ValidTo time.Time
	// DoorGroups are the door groups the credential opens, ascending.
	DoorGroups []uint32
	// Schedule names a Schedule of the same list; 0 means no schedule
	// restriction.
	Schedule uint32
	// Staff entries are the only ones admitted in lockdown mode.
	Staff bool
	// AntiPassback is the anti-passback group; 0 means none.
	AntiPassback uint32
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func timeOrZero(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// AppendEntryValue appends the value encoding of e (without its key,
// firmware-specs/allowlist.md §2) to b. It returns an error wrapping
// ErrMalformed when e breaks a limit of the encoding (too many door groups,
// groups not strictly ascending).
func AppendEntryValue(b []byte, e *Entry) ([]byte, error) {
	if len(e.DoorGroups) > MaxDoorGroups {
		return b, fmt.Errorf("%w: %d door groups, at most %d", ErrMalformed, len(e.DoorGroups), MaxDoorGroups)
	}
	for i := 1; i < len(e.DoorGroups); i++ {
		if e.DoorGroups[i] <= e.DoorGroups[i-1] {
			return b, fmt.Errorf("%w: door groups not strictly ascending", ErrMalformed)
		}
	}
	var flags byte
	if e.Staff {
		flags |= flagStaff
	}
	b = append(b, entryFormat, flags)
	b = binary.AppendVarint(b, unixOrZero(e.ValidFrom))
	b = binary.AppendVarint(b, unixOrZero(e.ValidTo))
	b = binary.AppendUvarint(b, uint64(e.Schedule))
	b = binary.AppendUvarint(b, uint64(len(e.DoorGroups)))
	for _, g := range e.DoorGroups {
		b = binary.AppendUvarint(b, uint64(g))
	}
	b = binary.AppendUvarint(b, uint64(e.AntiPassback))
	return b, nil
}

// reader walks an encoding; the first failure sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrMalformed, what)
	}
}

func (r *reader) byte(what string) byte {
	if r.err != nil || len(r.b) == 0 {
		r.fail("truncated " + what)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint(what string, max uint64) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad " + what)
		return 0
	}
	if v > max {
		r.fail(what + " out of range")
		return 0
	}
	// A value must use its shortest form, so an encoding is unique.
	if n != uvarintLen(v) {
		r.fail("non-minimal " + what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad " + what)
		return 0
	}
	if n != len(binary.AppendVarint(nil, v)) {
		r.fail("non-minimal " + what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// DecodeEntryValue decodes the value encoding of an entry (without its key)
// into e, reusing e.DoorGroups' capacity; e.Key is left as is. It returns
// an error wrapping ErrMalformed when b is not exactly one valid encoding.
func DecodeEntryValue(b []byte, e *Entry) error {
	r := reader{b: b}
	if f := r.byte("format"); r.err == nil && f != entryFormat {
		r.fail(fmt.Sprintf("entry format %d", f))
	}
	flags := r.byte("flags")
	if r.err == nil && flags&^flagStaff != 0 {
		r.fail("unknown flags")
	}
	from := r.varint("valid_from")
	to := r.varint("valid_to")
	sched := r.uvarint("schedule", 1<<32-1)
	n := r.uvarint("door group count", MaxDoorGroups)
	groups := e.DoorGroups[:0]
	for i := uint64(0); i < n && r.err == nil; i++ {
		g := uint32(r.uvarint("door group", 1<<32-1))
		if r.err == nil && i > 0 && g <= groups[len(groups)-1] {
			r.fail("door groups not strictly ascending")
		}
		groups = append(groups, g)
	}
	apb := r.uvarint("anti-passback group", 1<<32-1)
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return r.err
	}
	if len(groups) == 0 {
		groups = nil
	}
	*e = Entry{Key: e.Key, ValidFrom: timeOrZero(from), ValidTo: timeOrZero(to), DoorGroups: groups,
		Schedule: uint32(sched), Staff: flags&flagStaff != 0, AntiPassback: uint32(apb)}
	return nil
}
