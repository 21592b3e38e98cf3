package outbox

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"maps"

	"github.com/kioskedge/kioskedge/sync/wire"
)

// Layout constants; doc.go describes the file.
const (
	segSpan      = 10_000 // sequences per segment bucket
	recOverhead  = 8 + 16 // key bytes + bbolt leaf element header, counted per record
	numClasses   = 4      // index 1..3 used (wire.ClassHealth..wire.ClassCritical)
	stateVersion = 1
	stateLen     = 1 + 5*8 + 4
	segStatsLen  = 6 * 8
)

var (
	metaBucket = []byte("meta")
	stateKey   = []byte("state")
)

// segStats counts the live (not acked, not evicted) records of one segment
// per class.
type segStats struct {
	n [numClasses]uint64
	b [numClasses]int64
}

func (s *segStats) live() uint64 { return s.n[1] + s.n[2] + s.n[3] }

// state is the durable bookkeeping kept in the meta bucket. The committer
// works on a clone and publishes it only after the transaction committed.
type state struct {
	nextSeq     uint64
	acked       uint64
	evicted     uint64
	gapRecords  uint64
	corruptions uint64
	segs        map[uint64]*segStats
	// totals over segs
	n [numClasses]uint64
	b [numClasses]int64
}

func newState() *state { return &state{nextSeq: 1, segs: map[uint64]*segStats{}} }

func (s *state) clone() *state {
	c := *s
	c.segs = maps.Clone(s.segs)
	return &c
}

func (s *state) depth() uint64 { return s.n[1] + s.n[2] + s.n[3] }
func (s *state) bytes() int64  { return s.b[1] + s.b[2] + s.b[3] }

// seg returns a private (copy-on-write) stats entry for segment g.
func (s *state) seg(g uint64, owned map[uint64]bool) *segStats {
	cur := s.segs[g]
	if owned[g] && cur != nil {
		return cur
	}
	n := &segStats{}
	if cur != nil {
		*n = *cur
	}
	s.segs[g] = n
	owned[g] = true
	return n
}

func recSize(v []byte) int64 { return int64(len(v)) + recOverhead }

func segOf(seq uint64) uint64 { return seq / segSpan }

func segName(g uint64) []byte {
	k := make([]byte, 9)
	k[0] = 's'
	binary.BigEndian.PutUint64(k[1:], g)
	return k
}

func isSegName(name []byte) bool { return len(name) == 9 && name[0] == 's' }

func segStatsKey(g uint64) []byte {
	k := make([]byte, 9)
	k[0] = 'g'
	binary.BigEndian.PutUint64(k[1:], g)
	return k
}

func seqKey(seq uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, seq)
	return k
}

func encodeState(s *state) []byte {
	b := make([]byte, 0, stateLen)
	b = append(b, stateVersion)
	for _, v := range []uint64{s.nextSeq, s.acked, s.evicted, s.gapRecords, s.corruptions} {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}

// decodeState parses the state value; any damage is an error wrapping
// ErrCorrupt. It never panics.
func decodeState(b []byte) (*state, error) {
	if len(b) != stateLen {
		return nil, fmt.Errorf("%w: state is %d bytes, want %d", ErrCorrupt, len(b), stateLen)
	}
	if b[0] != stateVersion {
		return nil, fmt.Errorf("%w: state version %d", ErrCorrupt, b[0])
	}
	if crc32.ChecksumIEEE(b[:stateLen-4]) != binary.BigEndian.Uint32(b[stateLen-4:]) {
		return nil, fmt.Errorf("%w: state checksum", ErrCorrupt)
	}
	s := newState()
	p := b[1:]
	for _, f := range []*uint64{&s.nextSeq, &s.acked, &s.evicted, &s.gapRecords, &s.corruptions} {
		*f = binary.BigEndian.Uint64(p)
		p = p[8:]
	}
	if s.nextSeq == 0 || s.acked >= s.nextSeq {
		return nil, fmt.Errorf("%w: state next %d acked %d", ErrCorrupt, s.nextSeq, s.acked)
	}
	return s, nil
}

func encodeSegStats(s *segStats) []byte {
	b := make([]byte, 0, segStatsLen)
	for c := 1; c < numClasses; c++ {
		b = binary.BigEndian.AppendUint64(b, s.n[c])
		b = binary.BigEndian.AppendUint64(b, uint64(s.b[c]))
	}
	return b
}

// decodeSegStats parses one segment's counters; it never panics.
func decodeSegStats(b []byte) (*segStats, error) {
	if len(b) != segStatsLen {
		return nil, fmt.Errorf("%w: segment stats %d bytes", ErrCorrupt, len(b))
	}
	s := &segStats{}
	for c := 1; c < numClasses; c++ {
		s.n[c] = binary.BigEndian.Uint64(b)
		s.b[c] = int64(binary.BigEndian.Uint64(b[8:]))
		if s.b[c] < 0 || (s.n[c] == 0) != (s.b[c] == 0) || s.b[c] < int64(s.n[c])*recOverhead {
			return nil, fmt.Errorf("%w: segment stats class %d: %d records, %d bytes", ErrCorrupt, c, s.n[c], s.b[c])
		}
		b = b[16:]
	}
	return s, nil
}

// classOf returns the class of a stored value, or 0 if it is unreadable.
func classOf(v []byte) wire.Class {
	c, err := wire.RecordClass(v)
	if err != nil {
		return 0
	}
	return c
}
