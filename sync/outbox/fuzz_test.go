package outbox

import (
	"testing"
)

func FuzzDecodeState(f *testing.F) {
	st := newState()
	st.nextSeq, st.acked = 42, 7
	f.Add(encodeState(st))
	f.Add(encodeSegStats(&segStats{n: [4]uint64{0, 1, 2, 3}, b: [4]int64{0, 100, 200, 300}}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := decodeState(b); err == nil {
			if got := encodeState(s); string(got) != string(b) {
				t.Fatalf("state does not round-trip")
			}
		}
		if s, err := decodeSegStats(b); err == nil {
			if got := encodeSegStats(s); string(got) != string(b) {
				t.Fatalf("segment stats do not round-trip")
			}
		}
		if n, err := decodeReservation(b); err == nil && string(encodeReservation(n)) != string(b) {
			t.Fatalf("reservation does not round-trip")
		}
	})
}

func FuzzDecodeGapBody(f *testing.F) {
	f.Add([]byte(`{"reason":"disk_budget","class":"health","ranges":[[1,3],[5,5]],"count":4,"bytes":400}`))
	f.Add([]byte(`{"ranges":[[3,1]],"count":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := DecodeGapBody(b)
		if err != nil {
			return
		}
		var n uint64
		for _, r := range g.Ranges {
			n += r[1] - r[0] + 1
		}
		if n != g.Count {
			t.Fatalf("accepted count %d for %d sequences", g.Count, n)
		}
	})
}

// FuzzScanLeaf checks the raw page parser never panics on any page image.
func FuzzScanLeaf(f *testing.F) {
	page := make([]byte, 64)
	page[8] = leafPageFlag
	page[10] = 1
	f.Add(page)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, e := range scanLeaf(b, nil, 0, 0) {
			if e.seq == 0 {
				t.Fatal("salvaged seq 0")
			}
		}
	})
}
