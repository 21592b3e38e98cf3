package wire

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/klauspost/compress/zstd"
)

// Batch envelope constants (hub-protocol.md §5).
const (
	batchMagic0, batchMagic1 = 'K', 'B'
	batchVersion             = 1
	maxBootID                = 256     // bytes
	maxPrealloc              = 1 << 20 // bytes of payload buffer sized up front

	CompressionNone byte = 0
	CompressionZstd byte = 1
)

// Limits bound what DecodeBatch accepts; zero fields take the defaults.
type Limits struct {
	MaxMessage int // compressed envelope size, default 4 MiB
	MaxRaw     int // uncompressed payload size, default 32 MiB
	MaxRecords int // records per batch, default 100,000
}

func (l Limits) withDefaults() Limits {
	if l.MaxMessage <= 0 {
		l.MaxMessage = 4 << 20
	}
	if l.MaxRaw <= 0 {
		l.MaxRaw = 32 << 20
	}
	if l.MaxRecords <= 0 {
		l.MaxRecords = 100_000
	}
	return l
}

// Errors returned by the batch codec. Every decoding failure wraps one.
var (
	ErrBadBatch     = errors.New("wire: malformed batch")
	ErrBatchTooBig  = errors.New("wire: batch over limit")
	ErrEmptyBatch   = errors.New("wire: batch has no records")
	ErrBatchVersion = errors.New("wire: unknown batch version")
)

// Batch is a decoded event batch. Entries alias the decoder's buffer.
type Batch struct {
	Agent       string
	BootID      string
	First, Last uint64 // the covered range, inclusive
	Compression byte
	Entries     []Entry
}

// Codec encodes and decodes batches. It is safe for concurrent use; make
// one per process and share it (the zstd state is costly to build).
type Codec struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
	lim Limits
}

// NewCodec builds a codec using zstd at its fastest level (hub-protocol.md
// §5 says why) and the given decoding limits.
func NewCodec(lim Limits) (*Codec, error) {
	lim = lim.withDefaults()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, fmt.Errorf("wire: zstd encoder: %w", err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(uint64(lim.MaxRaw)), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, fmt.Errorf("wire: zstd decoder: %w", err)
	}
	return &Codec{enc: enc, dec: dec, lim: lim}, nil
}

// Close releases the decoder's goroutines. The codec must not be used after.
func (c *Codec) Close() { c.dec.Close() }

// EncodeBatch builds the envelope for agent's entries covering [first, last].
// Entries must be in strictly increasing sequence order within the range;
// agent must pass ValidateID and bootID be at most 256 bytes.
// raw is scratch space reused between calls (may be nil); the returned
// message does not alias it.
func (c *Codec) EncodeBatch(agent, bootID string, first, last uint64, entries []Entry, raw []byte) (msg, scratch []byte, err error) {
	if len(entries) == 0 {
		return nil, raw, ErrEmptyBatch
	}
	if first == 0 {
		return nil, raw, fmt.Errorf("%w: sequence numbers start at 1", ErrBadBatch)
	}
	// The decoder refuses these; refuse them here rather than send them.
	if err := ValidateID("agent", agent); err != nil {
		return nil, raw, fmt.Errorf("%w: %v", ErrBadBatch, err)
	}
	if len(bootID) > maxBootID {
		return nil, raw, fmt.Errorf("%w: boot id longer than %d bytes", ErrBadBatch, maxBootID)
	}
	if first > entries[0].Seq || last < entries[len(entries)-1].Seq {
		return nil, raw, fmt.Errorf("%w: entries %d..%d outside range %d..%d", ErrBadBatch,
			entries[0].Seq, entries[len(entries)-1].Seq, first, last)
	}
	raw = raw[:0]
	prev := first - 1
	for _, e := range entries {
		if e.Seq <= prev {
			return nil, raw, fmt.Errorf("%w: sequence %d not increasing", ErrBadBatch, e.Seq)
		}
		raw = binary.AppendUvarint(raw, e.Seq-prev)
		raw = binary.AppendUvarint(raw, uint64(len(e.Raw)))
		raw = append(raw, e.Raw...)
		prev = e.Seq
	}
	msg = make([]byte, 0, 64+len(agent)+len(bootID)+len(raw)/3)
	msg = append(msg, batchMagic0, batchMagic1, batchVersion, CompressionZstd)
	msg = appendString(msg, agent)
	msg = appendString(msg, bootID)
	msg = binary.AppendUvarint(msg, first)
	msg = binary.AppendUvarint(msg, last)
	msg = binary.AppendUvarint(msg, uint64(len(entries)))
	msg = binary.AppendUvarint(msg, uint64(len(raw)))
	msg = c.enc.EncodeAll(raw, msg)
	return msg, raw, nil
}

// DecodeBatch parses and checks an envelope: magic, version, limits, the
// range, strictly increasing sequences inside it, and a record count and
// payload length that match the header. It never panics on any input.
func (c *Codec) DecodeBatch(msg []byte) (Batch, error) {
	var b Batch
	if len(msg) > c.lim.MaxMessage {
		return b, fmt.Errorf("%w: message %d bytes > %d", ErrBatchTooBig, len(msg), c.lim.MaxMessage)
	}
	if len(msg) < 4 || msg[0] != batchMagic0 || msg[1] != batchMagic1 {
		return b, fmt.Errorf("%w: bad magic", ErrBadBatch)
	}
	if msg[2] != batchVersion {
		return b, fmt.Errorf("%w: %d", ErrBatchVersion, msg[2])
	}
	b.Compression = msg[3]
	p := msg[4:]
	var ok bool
	if b.Agent, p, ok = readString(p); !ok || ValidateID("agent", b.Agent) != nil {
		return b, fmt.Errorf("%w: agent", ErrBadBatch)
	}
	if b.BootID, p, ok = readString(p); !ok {
		return b, fmt.Errorf("%w: boot id", ErrBadBatch)
	}
	var count, rawLen uint64
	for _, f := range []*uint64{&b.First, &b.Last, &count, &rawLen} {
		v, k := binary.Uvarint(p)
		if k <= 0 {
			return b, fmt.Errorf("%w: header", ErrBadBatch)
		}
		*f, p = v, p[k:]
	}
	switch {
	case b.First == 0 || b.Last < b.First:
		return b, fmt.Errorf("%w: range %d..%d", ErrBadBatch, b.First, b.Last)
	case count == 0:
		return b, ErrEmptyBatch
	case count > uint64(c.lim.MaxRecords) || count > b.Last-b.First+1:
		return b, fmt.Errorf("%w: %d records", ErrBatchTooBig, count)
	case rawLen > uint64(c.lim.MaxRaw):
		return b, fmt.Errorf("%w: payload %d bytes", ErrBatchTooBig, rawLen)
	}
	var raw []byte
	switch b.Compression {
	case CompressionNone:
		raw = p
	case CompressionZstd:
		var err error
		// Size the buffer from the header's claim only up to a bound:
		// a few bytes must not make the hub allocate MaxRaw.
		raw, err = c.dec.DecodeAll(p, make([]byte, 0, min(rawLen, maxPrealloc)))
		if err != nil {
			return b, fmt.Errorf("%w: zstd: %v", ErrBadBatch, err)
		}
	default:
		return b, fmt.Errorf("%w: compression %d", ErrBadBatch, b.Compression)
	}
	if uint64(len(raw)) != rawLen {
		return b, fmt.Errorf("%w: payload %d bytes, header says %d", ErrBadBatch, len(raw), rawLen)
	}
	b.Entries = make([]Entry, 0, count)
	seq := b.First - 1
	for len(raw) > 0 {
		d, k := binary.Uvarint(raw)
		if k <= 0 || d == 0 || d > b.Last-seq {
			return b, fmt.Errorf("%w: sequence delta", ErrBadBatch)
		}
		seq += d
		raw = raw[k:]
		n, k := binary.Uvarint(raw)
		if k <= 0 || n > uint64(len(raw)-k) {
			return b, fmt.Errorf("%w: record length", ErrBadBatch)
		}
		b.Entries = append(b.Entries, Entry{Seq: seq, Raw: raw[k : k+int(n) : k+int(n)]})
		raw = raw[k+int(n):]
		if uint64(len(b.Entries)) > count {
			break
		}
	}
	if uint64(len(b.Entries)) != count {
		return b, fmt.Errorf("%w: %d records, header says %d", ErrBadBatch, len(b.Entries), count)
	}
	return b, nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func readString(p []byte) (string, []byte, bool) {
	n, k := binary.Uvarint(p)
	if k <= 0 || n > maxBootID || n > uint64(len(p)-k) {
		return "", p, false
	}
	return string(p[k : k+int(n)]), p[k+int(n):], true
}
