package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Allowlist distribution (firmware-specs/hub-allowlist.md).

// LeafAllowlistRequest is the leaf agents publish allowlist requests on.
const LeafAllowlistRequest = "allowlist/req"

// AllowlistRequest is the topic an agent asks the hub for allowlist
// updates on (hub-allowlist.md §2).
func (t Topics) AllowlistRequest() string { return t.leaf(LeafAllowlistRequest) }

// GroupLevel is the topic level under <root>/v1/ that group topics live
// under; '$' never starts an agent id, so no agent's topics collide.
const GroupLevel = "$group"

// GroupAllowlistTopic is the topic a list is published on to every agent
// subscribed as a member of group (hub-allowlist.md §2). The caller
// validates group with ValidateID.
func GroupAllowlistTopic(root, group string) string {
	return root + "/" + Version + "/" + GroupLevel + "/" + group + "/" + LeafAllowlist
}

// Allowlist message types (hub-allowlist.md §3).
const (
	AllowlistChunk byte = 1 // one chunk of a snapshot
	AllowlistDelta byte = 2 // a delta (allowlist.md §6)
)

// Limits of allowlist messages (hub-allowlist.md §3).
const (
	// MaxAllowlistMessage bounds a whole allowlist message; it fits the
	// uplink's default incoming limit.
	MaxAllowlistMessage = 4 << 20
	// MaxAllowlistChunks bounds a snapshot's chunk count.
	MaxAllowlistChunks = 1 << 16
	// AllowlistHeaderLen is the snapshot chunk header's length.
	AllowlistHeaderLen = 4 + 1 + 8 + 4 + 4 + 32
	// MaxDeltaValue bounds one upsert's entry value.
	MaxDeltaValue = 1024
)

const (
	allowlistMagic = "KAL1"
	deltaMagic     = "KAD1"
)

// ErrBadAllowlist wraps every allowlist message and request decoding
// failure.
var ErrBadAllowlist = errors.New("wire: malformed allowlist message")

// AllowlistMessage is one decoded allowlist message: a snapshot chunk
// (Type AllowlistChunk: Version, Index, Total, Sum, Chunk) or a delta
// (Type AllowlistDelta: Delta).
type AllowlistMessage struct {
	Type    byte
	Version uint64   // snapshot version
	Index   uint32   // chunk index, 0 … Total-1
	Total   uint32   // chunks in the snapshot, ≥ 1
	Sum     [32]byte // SHA-256 of the snapshot's concatenated chunks
	Chunk   []byte   // allowlist.md §4 chunk, aliasing the payload
	Delta   Delta
}

// DeltaKey is an entry key: the 16-byte keyed credential hash.
type DeltaKey [16]byte

// DeltaUpsert is one upserted entry: its key and its entry value encoding
// (allowlist.md §2), opaque here; the agent's store checks it.
type DeltaUpsert struct {
	Key   DeltaKey
	Value []byte
}

// Delta is the allowlist.md §6 delta from version From to To.
type Delta struct {
	From, To uint64
	Upserts  []DeltaUpsert // keys strictly ascending
	Deletes  []DeltaKey    // strictly ascending, none also upserted
}

// AppendChunkMessage appends the message carrying chunk index of total of
// snapshot version with checksum sum to b. It returns an error wrapping
// ErrBadAllowlist when the fields break a rule of hub-allowlist.md §3.
func AppendChunkMessage(b []byte, version uint64, index, total uint32, sum [32]byte, chunk []byte) ([]byte, error) {
	if total == 0 || total > MaxAllowlistChunks || index >= total || len(chunk) == 0 ||
		AllowlistHeaderLen+len(chunk) > MaxAllowlistMessage {
		return b, fmt.Errorf("%w: chunk %d of %d, %d bytes", ErrBadAllowlist, index, total, len(chunk))
	}
	b = append(b, allowlistMagic...)
	b = append(b, AllowlistChunk)
	b = binary.BigEndian.AppendUint64(b, version)
	b = binary.BigEndian.AppendUint32(b, index)
	b = binary.BigEndian.AppendUint32(b, total)
	b = append(b, sum[:]...)
	return append(b, chunk...), nil
}

// AppendDelta appends the allowlist.md §6 encoding of d to b. It returns an
// error wrapping ErrBadAllowlist when d breaks a rule of the encoding.
func AppendDelta(b []byte, d *Delta) ([]byte, error) {
	if err := d.check(); err != nil {
		return b, err
	}
	b = append(b, deltaMagic...)
	b = binary.AppendUvarint(b, d.From)
	b = binary.AppendUvarint(b, d.To)
	b = binary.AppendUvarint(b, uint64(len(d.Upserts)))
	for _, u := range d.Upserts {
		b = binary.AppendUvarint(b, uint64(len(u.Value)))
		b = append(b, u.Key[:]...)
		b = append(b, u.Value...)
	}
	b = binary.AppendUvarint(b, uint64(len(d.Deletes)))
	for _, k := range d.Deletes {
		b = append(b, k[:]...)
	}
	return b, nil
}

func (d *Delta) check() error {
	bad := func(what string) error { return fmt.Errorf("%w: delta: %s", ErrBadAllowlist, what) }
	if d.To <= d.From {
		return bad("to not above from")
	}
	for i, u := range d.Upserts {
		if len(u.Value) == 0 || len(u.Value) > MaxDeltaValue {
			return bad("entry value length")
		}
		if i > 0 && bytes.Compare(u.Key[:], d.Upserts[i-1].Key[:]) <= 0 {
			return bad("upsert keys not strictly ascending")
		}
	}
	for i, k := range d.Deletes {
		if i > 0 && bytes.Compare(k[:], d.Deletes[i-1][:]) <= 0 {
			return bad("deleted keys not strictly ascending")
		}
	}
	// Both lists are sorted: merge to find a key in both.
	for i, j := 0, 0; i < len(d.Upserts) && j < len(d.Deletes); {
		switch c := bytes.Compare(d.Upserts[i].Key[:], d.Deletes[j][:]); {
		case c == 0:
			return bad("key both upserted and deleted")
		case c < 0:
			i++
		default:
			j++
		}
	}
	return nil
}

// AppendDeltaMessage appends the message carrying delta d to b. It returns
// an error wrapping ErrBadAllowlist when d breaks a rule of the encoding or
// the message would exceed MaxAllowlistMessage.
func AppendDeltaMessage(b []byte, d *Delta) ([]byte, error) {
	start := len(b)
	b = append(b, allowlistMagic...)
	b = append(b, AllowlistDelta)
	b, err := AppendDelta(b, d)
	if err != nil {
		return b[:start], err
	}
	if len(b)-start > MaxAllowlistMessage {
		return b[:start], fmt.Errorf("%w: delta message of %d bytes, at most %d", ErrBadAllowlist, len(b)-start, MaxAllowlistMessage)
	}
	return b, nil
}

// DecodeAllowlistMessage decodes one allowlist message. Chunk and upsert
// values alias b. It returns an error wrapping ErrBadAllowlist when b is
// not exactly one valid message (hub-allowlist.md §3); it does not decode
// the chunk (the store does) nor the entry values.
func DecodeAllowlistMessage(b []byte) (AllowlistMessage, error) {
	var m AllowlistMessage
	if len(b) > MaxAllowlistMessage {
		return m, fmt.Errorf("%w: %d bytes, at most %d", ErrBadAllowlist, len(b), MaxAllowlistMessage)
	}
	if len(b) < len(allowlistMagic)+1 || string(b[:4]) != allowlistMagic {
		return m, fmt.Errorf("%w: magic", ErrBadAllowlist)
	}
	m.Type = b[4]
	switch m.Type {
	case AllowlistChunk:
		if len(b) <= AllowlistHeaderLen {
			return m, fmt.Errorf("%w: chunk message of %d bytes", ErrBadAllowlist, len(b))
		}
		m.Version = binary.BigEndian.Uint64(b[5:])
		m.Index = binary.BigEndian.Uint32(b[13:])
		m.Total = binary.BigEndian.Uint32(b[17:])
		copy(m.Sum[:], b[21:53])
		m.Chunk = b[AllowlistHeaderLen:]
		if m.Total == 0 || m.Total > MaxAllowlistChunks || m.Index >= m.Total {
			return AllowlistMessage{}, fmt.Errorf("%w: chunk %d of %d", ErrBadAllowlist, m.Index, m.Total)
		}
		return m, nil
	case AllowlistDelta:
		d, err := DecodeDelta(b[5:])
		if err != nil {
			return AllowlistMessage{}, err
		}
		m.Delta = d
		return m, nil
	default:
		return m, fmt.Errorf("%w: message type %d", ErrBadAllowlist, m.Type)
	}
}

// DecodeDelta decodes the allowlist.md §6 encoding of a delta; upsert
// values alias b. It returns an error wrapping ErrBadAllowlist when b is
// not exactly one valid encoding.
func DecodeDelta(b []byte) (Delta, error) {
	var d Delta
	bad := func(what string) (Delta, error) { return Delta{}, fmt.Errorf("%w: delta: %s", ErrBadAllowlist, what) }
	if !bytes.HasPrefix(b, []byte(deltaMagic)) {
		return bad("magic")
	}
	r := b[len(deltaMagic):]
	uv := func(max uint64) (uint64, bool) {
		v, n := binary.Uvarint(r)
		if n <= 0 || v > max || n != len(binary.AppendUvarint(nil, v)) {
			return 0, false
		}
		r = r[n:]
		return v, true
	}
	var ok bool
	if d.From, ok = uv(1<<64 - 1); !ok {
		return bad("from")
	}
	if d.To, ok = uv(1<<64 - 1); !ok {
		return bad("to")
	}
	// Every upsert takes at least 18 bytes, every delete 16: bound the
	// counts by what is left before allocating.
	n, ok := uv(uint64(len(r)) / 18)
	if !ok {
		return bad("upsert count")
	}
	if n > 0 {
		d.Upserts = make([]DeltaUpsert, 0, n)
	}
	for range n {
		size, ok := uv(MaxDeltaValue)
		if !ok || size == 0 || uint64(len(r)) < 16+size {
			return bad("upsert")
		}
		var u DeltaUpsert
		copy(u.Key[:], r)
		u.Value = r[16 : 16+size : 16+size]
		r = r[16+size:]
		d.Upserts = append(d.Upserts, u)
	}
	n, ok = uv(uint64(len(r)) / 16)
	if !ok || n*16 > uint64(len(r)) {
		return bad("delete count")
	}
	if n > 0 {
		d.Deletes = make([]DeltaKey, n)
	}
	for i := range d.Deletes {
		copy(d.Deletes[i][:], r)
		r = r[16:]
	}
	if len(r) != 0 {
		return bad("trailing bytes")
	}
	if err := d.check(); err != nil {
		return Delta{}, err
	}
	return d, nil
}

// Allowlist request values (hub-allowlist.md §4).
const (
	WantSnapshot = "snapshot"
	WantCatchUp  = "catchup"

	ReasonStart      = "start"
	ReasonGap        = "gap"
	ReasonIncomplete = "incomplete"
	ReasonChecksum   = "checksum"
	ReasonCorrupt    = "corrupt"
	ReasonOverflow   = "overflow"
)

// AllowlistRequest is an agent's request for allowlist updates, JSON on
// Topics.AllowlistRequest (hub-allowlist.md §4).
type AllowlistRequest struct {
	Have   uint64 `json:"have"`   // the version in effect, 0 for none
	Want   string `json:"want"`   // WantSnapshot or WantCatchUp
	Reason string `json:"reason"` // why; informative, any string of at most 32 bytes
}

// DecodeAllowlistRequest parses a request. It returns an error wrapping
// ErrBadMessage for oversized or malformed JSON, an unknown want, or a
// reason over 32 bytes.
func DecodeAllowlistRequest(b []byte) (AllowlistRequest, error) {
	var r AllowlistRequest
	if err := decodeJSON(b, &r); err != nil {
		return r, err
	}
	if r.Want != WantSnapshot && r.Want != WantCatchUp {
		return AllowlistRequest{}, fmt.Errorf("%w: want %q", ErrBadMessage, r.Want)
	}
	if len(r.Reason) > 32 {
		return AllowlistRequest{}, fmt.Errorf("%w: reason of %d bytes", ErrBadMessage, len(r.Reason))
	}
	return r, nil
}
