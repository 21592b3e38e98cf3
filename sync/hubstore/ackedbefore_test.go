package hubstore

import "testing"

// A state written before the acked-before counter existed still opens.
func TestDecodeStateVersion1(t *testing.T) {
	a := &State{Received: 10, Duplicates: 2, Declared: 3, AckedBefore: 99, HasStatus: true, Online: true, BdSeq: 7}
	a.Coverage.Add(1, 10)
	v2 := encodeState(nil, a)
	// Version 1 is version 2 without the fifth uvarint (one byte here).
	v1 := append([]byte{1}, v2[1:4]...)
	v1 = append(v1, v2[5:]...)
	var got State
	if err := decodeState(v1, &got); err != nil {
		t.Fatal(err)
	}
	if got.Received != 10 || got.Duplicates != 2 || got.Declared != 3 || got.AckedBefore != 0 ||
		!got.Online || got.BdSeq != 7 || got.Coverage.Contiguous() != 10 {
		t.Fatalf("decoded %+v", got)
	}
	if err := decodeState(v2, &got); err != nil || got.AckedBefore != 99 {
		t.Fatalf("version 2: %+v, %v", got, err)
	}
}
