package allowlist

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Chunk format (firmware-specs/allowlist.md §4).
const (
	chunkMagic       = "KAC1"
	recordEntry      = 1
	recordSchedule   = 2
	MaxChunkBytes    = 4 << 20
	maxScheduleBody  = 5 + 1 + MaxWindows*7 + 2 + MaxHolidays*5
	defaultChunkRecs = 10000
)

// Chunk is the decoded content of one snapshot chunk.
type Chunk struct {
	Entries   []Entry // keys strictly ascending
	Schedules []Schedule
}

// AppendChunk appends the encoding of c to b. Entries must be in strictly
// ascending key order; it returns an error wrapping ErrMalformed otherwise,
// or when an entry or schedule breaks a rule of the encoding.
func AppendChunk(b []byte, c *Chunk) ([]byte, error) {
	b = append(b, chunkMagic...)
	b = binary.AppendUvarint(b, uint64(len(c.Entries)+len(c.Schedules)))
	var body []byte
	var err error
	for i := range c.Schedules {
		if body, err = AppendSchedule(body[:0], &c.Schedules[i]); err != nil {
			return b, err
		}
		b = append(b, recordSchedule)
		b = binary.AppendUvarint(b, uint64(len(body)))
		b = append(b, body...)
	}
	for i := range c.Entries {
		e := &c.Entries[i]
		if i > 0 && bytes.Compare(e.Key[:], c.Entries[i-1].Key[:]) <= 0 {
			return b, fmt.Errorf("%w: entry keys not strictly ascending", ErrMalformed)
		}
		body = append(body[:0], e.Key[:]...)
		if body, err = AppendEntryValue(body, e); err != nil {
			return b, err
		}
		b = append(b, recordEntry)
		b = binary.AppendUvarint(b, uint64(len(body)))
		b = append(b, body...)
	}
	return b, nil
}

// chunkVisitor receives the records of a chunk in order; value aliases the
// chunk and is valid only during the call.
type chunkVisitor struct {
	entry    func(key Key, value []byte, e *Entry) error
	schedule func(s Schedule, encoded []byte) error
}

// walkChunk checks and decodes a chunk, calling v for each record. Entry
// keys must be strictly ascending and above *last (when last is non-nil),
// which is updated.
func walkChunk(b []byte, last *Key, haveLast bool, v chunkVisitor) (bool, error) {
	if len(b) > MaxChunkBytes {
		return haveLast, fmt.Errorf("%w: chunk of %d bytes, at most %d", ErrMalformed, len(b), MaxChunkBytes)
	}
	if !bytes.HasPrefix(b, []byte(chunkMagic)) {
		return haveLast, fmt.Errorf("%w: chunk magic", ErrMalformed)
	}
	r := reader{b: b[len(chunkMagic):]}
	n := r.uvarint("record count", uint64(len(b)))
	var e Entry
	for i := uint64(0); i < n; i++ {
		typ := r.byte("record type")
		size := r.uvarint("record length", maxScheduleBody)
		if r.err != nil {
			return haveLast, r.err
		}
		if uint64(len(r.b)) < size {
			return haveLast, fmt.Errorf("%w: truncated record", ErrMalformed)
		}
		body := r.b[:size]
		r.b = r.b[size:]
		switch typ {
		case recordEntry:
			if len(body) < 16 {
				return haveLast, fmt.Errorf("%w: entry record of %d bytes", ErrMalformed, len(body))
			}
			var k Key
			copy(k[:], body)
			if haveLast && bytes.Compare(k[:], last[:]) <= 0 {
				return haveLast, fmt.Errorf("%w: entry keys not strictly ascending", ErrMalformed)
			}
			*last, haveLast = k, true
			e.Key = k
			if err := DecodeEntryValue(body[16:], &e); err != nil {
				return haveLast, err
			}
			if v.entry != nil {
				if err := v.entry(k, body[16:], &e); err != nil {
					return haveLast, err
				}
			}
		case recordSchedule:
			s, err := DecodeSchedule(body)
			if err != nil {
				return haveLast, err
			}
			if v.schedule != nil {
				if err := v.schedule(s, body); err != nil {
					return haveLast, err
				}
			}
		default:
			return haveLast, fmt.Errorf("%w: record type %d", ErrMalformed, typ)
		}
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes after chunk")
	}
	return haveLast, r.err
}

// DecodeChunk decodes a whole chunk. It returns an error wrapping
// ErrMalformed when b is not exactly one valid chunk.
func DecodeChunk(b []byte) (Chunk, error) {
	var c Chunk
	var last Key
	_, err := walkChunk(b, &last, false, chunkVisitor{
		entry: func(_ Key, _ []byte, e *Entry) error {
			c.Entries = append(c.Entries, *e)
			e.DoorGroups = nil // the next decode must not reuse the stored slice
			return nil
		},
		schedule: func(s Schedule, _ []byte) error { c.Schedules = append(c.Schedules, s); return nil },
	})
	if err != nil {
		return Chunk{}, err
	}
	return c, nil
}

// EncodeSnapshot splits a whole list into chunks of at most perChunk
// records (10,000 when perChunk <= 0), schedules first; entries must be in
// strictly ascending key order. It is what a publisher sends; the SHA-256
// of the concatenated chunks is the snapshot checksum.
func EncodeSnapshot(entries []Entry, schedules []Schedule, perChunk int) ([][]byte, error) {
	if perChunk <= 0 {
		perChunk = defaultChunkRecs
	}
	var chunks [][]byte
	var c Chunk
	flush := func() error {
		b, err := AppendChunk(nil, &c)
		if err != nil {
			return err
		}
		chunks = append(chunks, b)
		c = Chunk{}
		return nil
	}
	for i := range schedules {
		c.Schedules = append(c.Schedules, schedules[i])
		if len(c.Schedules) == perChunk {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	for i := range entries {
		if i > 0 && bytes.Compare(entries[i].Key[:], entries[i-1].Key[:]) <= 0 {
			return nil, fmt.Errorf("%w: entry keys not strictly ascending", ErrMalformed)
		}
		c.Entries = append(c.Entries, entries[i])
		if len(c.Entries)+len(c.Schedules) >= perChunk {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if len(c.Entries)+len(c.Schedules) > 0 || len(chunks) == 0 {
		if err := flush(); err != nil {
			return nil, err
		}
	}
	return chunks, nil
}
