package hubstore

import (
	"math"
	"slices"
	"testing"
)

func rs(pairs ...uint64) []Range {
	var out []Range
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, Range{pairs[i], pairs[i+1]})
	}
	return out
}

func TestCoverageAdd(t *testing.T) {
	tests := []struct {
		name       string
		add        [][2]uint64
		want       []Range
		contiguous uint64
		missing    []Range
	}{
		{"empty", nil, nil, 0, nil},
		{"one", [][2]uint64{{1, 10}}, rs(1, 10), 10, nil},
		{"in order adjacent", [][2]uint64{{1, 10}, {11, 20}}, rs(1, 20), 20, nil},
		{"hole", [][2]uint64{{1, 10}, {21, 30}}, rs(1, 10, 21, 30), 10, rs(11, 20)},
		{"fill hole", [][2]uint64{{1, 10}, {21, 30}, {11, 20}}, rs(1, 30), 30, nil},
		{"out of order start", [][2]uint64{{5, 9}}, rs(5, 9), 0, rs(1, 4)},
		{"insert before", [][2]uint64{{20, 30}, {5, 9}}, rs(5, 9, 20, 30), 0, rs(1, 4, 10, 19)},
		{"merge many", [][2]uint64{{1, 2}, {5, 6}, {9, 10}, {13, 14}, {3, 12}}, rs(1, 14), 14, nil},
		{"duplicate", [][2]uint64{{1, 10}, {1, 10}, {3, 4}}, rs(1, 10), 10, nil},
		{"overlap tail", [][2]uint64{{1, 10}, {5, 15}}, rs(1, 15), 15, nil},
		{"overlap head", [][2]uint64{{10, 20}, {5, 12}}, rs(5, 20), 0, rs(1, 4)},
		{"adjacent before", [][2]uint64{{10, 20}, {30, 40}, {5, 9}}, rs(5, 20, 30, 40), 0, rs(1, 4, 21, 29)},
		{"zero raised", [][2]uint64{{0, 3}}, rs(1, 3), 3, nil},
		{"empty ignored", [][2]uint64{{5, 4}}, nil, 0, nil},
		{"max", [][2]uint64{{1, 2}, {math.MaxUint64 - 1, math.MaxUint64}, {3, math.MaxUint64}}, rs(1, math.MaxUint64), math.MaxUint64, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Coverage
			for _, a := range tt.add {
				c.Add(a[0], a[1])
			}
			if got := c.Ranges(); !slices.Equal(got, tt.want) {
				t.Errorf("ranges = %v, want %v", got, tt.want)
			}
			if got := c.Contiguous(); got != tt.contiguous {
				t.Errorf("contiguous = %d, want %d", got, tt.contiguous)
			}
			if got := c.Missing(); !slices.Equal(got, tt.missing) {
				t.Errorf("missing = %v, want %v", got, tt.missing)
			}
			enc := appendCoverage(nil, &c)
			dec, rest, err := decodeCoverage(enc)
			if err != nil || len(rest) != 0 || !slices.Equal(dec.Ranges(), c.Ranges()) {
				t.Errorf("round trip: %v %v rest %d, err %v", dec.Ranges(), c.Ranges(), len(rest), err)
			}
		})
	}
}

func TestCoverageQueries(t *testing.T) {
	var c Coverage
	c.Add(1, 10)
	c.Add(20, 30)
	for _, tt := range []struct {
		first, last   uint64
		all, overlaps bool
	}{
		{1, 1, true, true}, {1, 10, true, true}, {1, 11, false, true}, {11, 19, false, false},
		{15, 25, false, true}, {20, 30, true, true}, {31, 40, false, false}, {0, 0, false, false},
	} {
		if got := c.ContainsAll(tt.first, tt.last); got != tt.all {
			t.Errorf("ContainsAll(%d,%d) = %v", tt.first, tt.last, got)
		}
		if got := c.Overlaps(tt.first, tt.last); got != tt.overlaps {
			t.Errorf("Overlaps(%d,%d) = %v", tt.first, tt.last, got)
		}
	}
	if c.Count() != 21 || c.Highest() != 30 {
		t.Errorf("count %d highest %d", c.Count(), c.Highest())
	}
}

func TestDecodeCoverageRejects(t *testing.T) {
	for name, in := range map[string][]byte{
		"empty":       {},
		"count only":  {1},
		"starts at 0": {1, 0, 0},
		"adjacent":    {2, 1, 1, 1, 0},
		"huge count":  {0xff, 0xff, 0x03, 1, 1},
		"overflowing": {1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 2},
	} {
		if _, _, err := decodeCoverage(in); err == nil {
			t.Errorf("%s: accepted %x", name, in)
		}
	}
}

// FuzzCoverage checks Add, Contains, Missing and the encoding against a
// plain bitmap over a small sequence space.
func FuzzCoverage(f *testing.F) {
	f.Add([]byte{1, 5, 10, 3, 0, 2})
	f.Add([]byte{60, 62, 1, 1, 30, 40, 2, 59})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const space = 64
		var c Coverage
		var ref [space + 2]bool
		for i := 0; i+1 < len(ops); i += 2 {
			a, b := uint64(ops[i]%space), uint64(ops[i+1]%space)
			c.Add(a, b)
			for s := max(a, 1); s <= b; s++ {
				ref[s] = true
			}
		}
		contig := uint64(0)
		for contig+1 <= space && ref[contig+1] {
			contig++
		}
		if c.Contiguous() != contig {
			t.Fatalf("contiguous %d, want %d (%v)", c.Contiguous(), contig, c.Ranges())
		}
		for s := uint64(0); s <= space; s++ {
			if c.Contains(s) != ref[s] {
				t.Fatalf("Contains(%d) = %v (%v)", s, c.Contains(s), c.Ranges())
			}
		}
		var missing uint64
		for _, r := range c.Missing() {
			for s := r.First; s <= r.Last; s++ {
				if ref[s] {
					t.Fatalf("missing %d is covered", s)
				}
				missing++
			}
		}
		if missing+c.Count() != c.Highest() {
			t.Fatalf("missing %d + count %d != highest %d", missing, c.Count(), c.Highest())
		}
		dec, rest, err := decodeCoverage(appendCoverage(nil, &c))
		if err != nil || len(rest) != 0 || !slices.Equal(dec.Ranges(), c.Ranges()) {
			t.Fatalf("round trip failed: %v", err)
		}
	})
}

// FuzzDecodeState checks that decoding arbitrary bytes never panics and
// that whatever decodes re-encodes to the same bytes.
func FuzzDecodeState(f *testing.F) {
	a := &State{Received: 10, Duplicates: 2, Declared: 3, AckedBefore: 4, HasStatus: true, Online: true, BdSeq: 7}
	a.Coverage.Add(1, 10)
	a.Coverage.Add(15, 20)
	f.Add(encodeState(nil, a))
	f.Add(encodeState(nil, &State{}))
	f.Add([]byte{1, 0, 0, 0, 4, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		var got State
		if err := decodeState(in, &got); err != nil {
			return
		}
		if re := encodeState(nil, &got); string(re) != string(in) {
			// Uvarints have non-minimal encodings; compare decoded forms.
			var again State
			if err := decodeState(re, &again); err != nil {
				t.Fatalf("re-encoded state does not decode: %v", err)
			}
			if !slices.Equal(again.Coverage.Ranges(), got.Coverage.Ranges()) || again.Received != got.Received ||
				again.AckedBefore != got.AckedBefore || again.BdSeq != got.BdSeq || again.Online != got.Online {
				t.Fatalf("round trip changed the state")
			}
		}
	})
}
