package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Class orders records by how long they may be kept under a disk budget.
// Lower classes are evicted first (hub-protocol.md §4, DESIGN.md §5).
type Class uint8

const (
	// ClassHealth is for periodic health samples: evicted first.
	ClassHealth Class = 1
	// ClassEvent is for device and door events (door opened, tamper, paper low).
	ClassEvent Class = 2
	// ClassCritical is for access decisions, kiosk transactions, gap and
	// alarm records: evicted only when nothing else is left.
	ClassCritical Class = 3
)

func (c Class) String() string {
	switch c {
	case ClassHealth:
		return "health"
	case ClassEvent:
		return "event"
	case ClassCritical:
		return "critical"
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// Valid reports whether c is one of the defined classes.
func (c Class) Valid() bool { return c >= ClassHealth && c <= ClassCritical }

// Record kinds written by the platform itself. Drivers and the agent add
// their own ("access.decision", "door.opened", …); see hub-protocol.md §4.
const (
	KindGap          = "outbox.gap"   // records dropped under the disk budget
	KindOutboxAlarm  = "outbox.alarm" // the outbox file was corrupt and replaced
	KindAccess       = "access.decision"
	KindHealthSample = "health.sample"
	KindClockSkew    = "clock.skew" // the clock crossed the agent's skew bound (either way)
)

// Record is one self-describing fact from an agent.
type Record struct {
	Seq   uint64    // per-agent sequence number, given by the outbox
	Agent string    // the agent id; carried by the batch envelope, not per record
	Kind  string    // dotted name, e.g. "access.decision"
	Class Class     // eviction class
	Time  time.Time // when it happened, with the agent's zone offset
	Body  []byte    // a JSON object; its shape is defined per kind
}

// Record encoding limits.
const (
	recordVersion = 1
	MaxKindLen    = 64
	MaxBodyLen    = 64 << 10
	maxZoneOffset = 18 * 3600 // seconds, either side of UTC
)

// Errors returned by the record codec.
var (
	ErrShortRecord   = errors.New("wire: record truncated")
	ErrRecordVersion = errors.New("wire: unknown record version")
	ErrBadRecord     = errors.New("wire: malformed record")
)

// AppendRecord appends the stored form of r (without Seq and Agent, which
// live in the outbox key and the batch envelope) to dst:
//
//	version(1) class(1) uvarint(len kind) kind varint(unix ms) varint(zone offset s) uvarint(len body) body
//
// It returns an error for an invalid class, an empty or long kind, a body
// over MaxBodyLen, or a zone offset beyond ±18 h (which the decoder refuses).
func AppendRecord(dst []byte, r Record) ([]byte, error) {
	if !r.Class.Valid() {
		return dst, fmt.Errorf("%w: class %d", ErrBadRecord, r.Class)
	}
	if r.Kind == "" || len(r.Kind) > MaxKindLen {
		return dst, fmt.Errorf("%w: kind length %d (1..%d)", ErrBadRecord, len(r.Kind), MaxKindLen)
	}
	if len(r.Body) > MaxBodyLen {
		return dst, fmt.Errorf("%w: body %d bytes over %d", ErrBadRecord, len(r.Body), MaxBodyLen)
	}
	_, off := r.Time.Zone()
	if off < -maxZoneOffset || off > maxZoneOffset {
		return dst, fmt.Errorf("%w: zone offset %d s beyond ±18 h", ErrBadRecord, off)
	}
	dst = append(dst, recordVersion, byte(r.Class))
	dst = binary.AppendUvarint(dst, uint64(len(r.Kind)))
	dst = append(dst, r.Kind...)
	dst = binary.AppendVarint(dst, r.Time.UnixMilli())
	dst = binary.AppendVarint(dst, int64(off))
	dst = binary.AppendUvarint(dst, uint64(len(r.Body)))
	dst = append(dst, r.Body...)
	return dst, nil
}

// MarshalRecord returns the stored form of r; see AppendRecord.
func MarshalRecord(r Record) ([]byte, error) { return AppendRecord(nil, r) }

// RecordClass returns the class byte of a stored record without decoding
// the rest, or an error if b is too short or of another version.
func RecordClass(b []byte) (Class, error) {
	if len(b) < 2 {
		return 0, ErrShortRecord
	}
	if b[0] != recordVersion {
		return 0, ErrRecordVersion
	}
	c := Class(b[1])
	if !c.Valid() {
		return 0, fmt.Errorf("%w: class %d", ErrBadRecord, b[1])
	}
	return c, nil
}

// UnmarshalRecord decodes a stored record, filling in seq and agent. Body
// aliases b. Every malformed input returns an error wrapping ErrShortRecord,
// ErrRecordVersion or ErrBadRecord; it never panics.
func UnmarshalRecord(seq uint64, agent string, b []byte) (Record, error) {
	c, err := RecordClass(b)
	if err != nil {
		return Record{}, err
	}
	r := Record{Seq: seq, Agent: agent, Class: c}
	p := b[2:]
	n, k := binary.Uvarint(p)
	if k <= 0 || n == 0 || n > MaxKindLen || uint64(len(p)-k) < n {
		return Record{}, fmt.Errorf("%w: kind", ErrBadRecord)
	}
	r.Kind = string(p[k : k+int(n)])
	p = p[k+int(n):]
	ms, k := binary.Varint(p)
	if k <= 0 {
		return Record{}, fmt.Errorf("%w: time", ErrBadRecord)
	}
	p = p[k:]
	off, k := binary.Varint(p)
	if k <= 0 || off < -maxZoneOffset || off > maxZoneOffset {
		return Record{}, fmt.Errorf("%w: zone offset", ErrBadRecord)
	}
	p = p[k:]
	n, k = binary.Uvarint(p)
	if k <= 0 || n > MaxBodyLen || uint64(len(p)-k) != n {
		return Record{}, fmt.Errorf("%w: body length", ErrBadRecord)
	}
	r.Body = p[k:]
	r.Time = time.UnixMilli(ms).In(zone(int(off)))
	return r, nil
}

func zone(off int) *time.Location {
	if off == 0 {
		return time.UTC
	}
	return time.FixedZone("", off)
}

// Entry is a stored record as the outbox hands it to the uplink: its
// sequence number and its stored form.
type Entry struct {
	Seq uint64
	Raw []byte
}
