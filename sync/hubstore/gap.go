package hubstore

import (
	"encoding/binary"
	"encoding/json"

	"github.com/kioskedge/kioskedge/sync/wire"
)

// gapBody is the JSON body of a wire.KindGap record (hub-protocol.md §4).
type gapBody struct {
	Reason string      `json:"reason"`
	Class  any         `json:"class"`
	Ranges [][2]uint64 `json:"ranges"`
	Count  uint64      `json:"count"`
	Bytes  uint64      `json:"bytes"`
}

// GapCount reports whether raw (a stored record) is a gap record and, if
// so, how many records it declares dropped: its "count", or the size of its
// "ranges" when count is absent. It looks at the kind without allocating,
// so calling it on every record is cheap. A gap record with an unreadable
// body returns (0, true).
func GapCount(raw []byte) (uint64, bool) {
	if len(raw) < 3 || raw[0] != 1 {
		return 0, false
	}
	n, k := binary.Uvarint(raw[2:])
	if k <= 0 || n != uint64(len(wire.KindGap)) || len(raw)-2-k < int(n) ||
		string(raw[2+k:2+k+int(n)]) != wire.KindGap {
		return 0, false
	}
	r, err := wire.UnmarshalRecord(0, "", raw)
	if err != nil {
		return 0, true
	}
	var g gapBody
	if err := json.Unmarshal(r.Body, &g); err != nil {
		return 0, true
	}
	if g.Count != 0 {
		return g.Count, true
	}
	var sum uint64
	for _, rg := range g.Ranges {
		if rg[1] >= rg[0] {
			sum += rg[1] - rg[0] + 1
		}
	}
	return sum, true
}
