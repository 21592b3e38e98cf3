package hubstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// Range is an inclusive range of sequence numbers [First, Last].
type Range struct {
	First, Last uint64
}

// Coverage is a set of sequence numbers held as sorted, disjoint,
// non-adjacent inclusive ranges. The zero value is the empty set. Sequence
// 0 is never a member (sequences start at 1).
type Coverage struct {
	r []Range
}

// Ranges returns a copy of the ranges, in order.
func (c *Coverage) Ranges() []Range { return append([]Range(nil), c.r...) }

// Len returns the number of disjoint ranges.
func (c *Coverage) Len() int { return len(c.r) }

// Clone returns an independent copy.
func (c *Coverage) Clone() Coverage {
	return Coverage{r: append(make([]Range, 0, len(c.r)+1), c.r...)}
}

// Contains reports whether seq is in the set.
func (c *Coverage) Contains(seq uint64) bool {
	i := c.search(seq)
	return i < len(c.r) && c.r[i].First <= seq
}

// search returns the index of the first range whose Last >= seq.
func (c *Coverage) search(seq uint64) int {
	n := len(c.r)
	// Fast path: most lookups are at or past the end.
	if n == 0 || c.r[n-1].Last < seq {
		return n
	}
	return sort.Search(n, func(i int) bool { return c.r[i].Last >= seq })
}

// ContainsAll reports whether every sequence in [first, last] is in the set.
func (c *Coverage) ContainsAll(first, last uint64) bool {
	i := c.search(first)
	return i < len(c.r) && c.r[i].First <= first && c.r[i].Last >= last
}

// Overlaps reports whether any sequence in [first, last] is in the set.
func (c *Coverage) Overlaps(first, last uint64) bool {
	i := c.search(first)
	return i < len(c.r) && c.r[i].First <= last
}

// Add inserts [first, last] into the set, merging overlapping and adjacent
// ranges. first == 0 is raised to 1; an empty range (last < first) is
// ignored.
func (c *Coverage) Add(first, last uint64) {
	if first == 0 {
		first = 1
	}
	if last < first {
		return
	}
	n := len(c.r)
	// Fast path: appending at or right after the end (in-order delivery).
	if n == 0 || c.r[n-1].Last < first-1 {
		c.r = append(c.r, Range{first, last})
		return
	}
	if c.r[n-1].First <= first {
		if last > c.r[n-1].Last {
			c.r[n-1].Last = last
		}
		return
	}
	// General case: ranges i..j-1 touch [first-1, last+1] and merge.
	i := sort.Search(n, func(k int) bool { return c.r[k].Last >= first-1 })
	j := i
	for j < n && (last == ^uint64(0) || c.r[j].First <= last+1) {
		j++
	}
	merged := Range{first, last}
	if i < j {
		merged.First = min(merged.First, c.r[i].First)
		merged.Last = max(merged.Last, c.r[j-1].Last)
	}
	switch {
	case i == j: // insert
		c.r = append(c.r, Range{})
		copy(c.r[i+1:], c.r[i:])
		c.r[i] = merged
	default: // replace i..j-1 with one
		c.r[i] = merged
		c.r = append(c.r[:i+1], c.r[j:]...)
	}
}

// Contiguous returns N such that every sequence in [1, N] is in the set and
// N+1 is not; 0 when 1 is not in the set. It is what the hub acks.
func (c *Coverage) Contiguous() uint64 {
	if len(c.r) == 0 || c.r[0].First != 1 {
		return 0
	}
	return c.r[0].Last
}

// Highest returns the highest sequence in the set, or 0 if it is empty.
func (c *Coverage) Highest() uint64 {
	if len(c.r) == 0 {
		return 0
	}
	return c.r[len(c.r)-1].Last
}

// Missing returns the ranges between 1 and Highest that are not in the set,
// in order; nil when there are none.
func (c *Coverage) Missing() []Range {
	var out []Range
	next := uint64(1)
	for _, r := range c.r {
		if r.First > next {
			out = append(out, Range{next, r.First - 1})
		}
		next = r.Last + 1
	}
	return out
}

// Count returns the number of sequences in the set.
func (c *Coverage) Count() uint64 {
	var n uint64
	for _, r := range c.r {
		n += r.Last - r.First + 1
	}
	return n
}

// errBadCoverage is wrapped by decodeCoverage failures.
var errBadCoverage = errors.New("hubstore: malformed coverage")

// AppendEncoded appends the coverage's compact encoding (see
// appendCoverage) to dst; DecodeCoverage reads it back.
func (c *Coverage) AppendEncoded(dst []byte) []byte { return appendCoverage(dst, c) }

// DecodeCoverage parses what AppendEncoded wrote, all of p. It returns an
// error wrapping ErrCorrupt for malformed or trailing bytes.
func DecodeCoverage(p []byte) (Coverage, error) {
	c, rest, err := decodeCoverage(p)
	if err != nil {
		return Coverage{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if len(rest) != 0 {
		return Coverage{}, fmt.Errorf("%w: %d trailing bytes after coverage", ErrCorrupt, len(rest))
	}
	return c, nil
}

// appendCoverage encodes the ranges as uvarint(count) then, per range,
// uvarint(First - previous Last) and uvarint(Last - First), with
// "previous Last" starting at 0. The deltas keep it small.
func appendCoverage(dst []byte, c *Coverage) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(c.r)))
	prev := uint64(0)
	for _, r := range c.r {
		dst = binary.AppendUvarint(dst, r.First-prev)
		dst = binary.AppendUvarint(dst, r.Last-r.First)
		prev = r.Last
	}
	return dst
}

// decodeCoverage parses what appendCoverage wrote and returns the rest of
// p. It checks that ranges are in order, disjoint, non-adjacent, start at 1
// or later and do not overflow.
func decodeCoverage(p []byte) (Coverage, []byte, error) {
	n, k := binary.Uvarint(p)
	if k <= 0 {
		return Coverage{}, p, fmt.Errorf("%w: count", errBadCoverage)
	}
	p = p[k:]
	// Every range takes at least two bytes: bound the allocation by input.
	if n > uint64(len(p)/2) {
		return Coverage{}, p, fmt.Errorf("%w: %d ranges in %d bytes", errBadCoverage, n, len(p))
	}
	c := Coverage{r: make([]Range, 0, n)}
	prev := uint64(0)
	for i := uint64(0); i < n; i++ {
		d, k := binary.Uvarint(p)
		if k <= 0 {
			return Coverage{}, p, fmt.Errorf("%w: range %d", errBadCoverage, i)
		}
		p = p[k:]
		w, k := binary.Uvarint(p)
		if k <= 0 {
			return Coverage{}, p, fmt.Errorf("%w: range %d", errBadCoverage, i)
		}
		p = p[k:]
		// The first range may start at 1 (d >= 1); later ones must leave a
		// hole (d >= 2) so that ranges stay non-adjacent.
		minGap := uint64(2)
		if i == 0 {
			minGap = 1
		}
		if d < minGap || d > ^uint64(0)-prev || w > ^uint64(0)-(prev+d) {
			return Coverage{}, p, fmt.Errorf("%w: range %d out of order or overflowing", errBadCoverage, i)
		}
		first := prev + d
		c.r = append(c.r, Range{first, first + w})
		prev = first + w
	}
	return c, p, nil
}
