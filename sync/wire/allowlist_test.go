package wire

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"reflect"
	"testing"
)

func key(b byte) DeltaKey { var k DeltaKey; k[0] = b; return k }

func sampleDelta() Delta {
	return Delta{From: 3, To: 4,
		Upserts: []DeltaUpsert{{Key: key(1), Value: []byte{1, 0, 0, 0, 0, 0, 0}}, {Key: key(5), Value: []byte{1, 1, 2, 0, 0, 1, 7, 0}}},
		Deletes: []DeltaKey{key(2), key(9)},
	}
}

func TestAllowlistChunkRoundTrip(t *testing.T) {
	chunk := []byte("KAC1\x00")
	sum := sha256.Sum256(chunk)
	b, err := AppendChunkMessage(nil, 7, 1, 3, sum, chunk)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != AllowlistHeaderLen+len(chunk) {
		t.Fatalf("length %d", len(b))
	}
	m, err := DecodeAllowlistMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != AllowlistChunk || m.Version != 7 || m.Index != 1 || m.Total != 3 || m.Sum != sum || !bytes.Equal(m.Chunk, chunk) {
		t.Fatalf("decoded %+v", m)
	}
}

func TestAllowlistDeltaRoundTrip(t *testing.T) {
	for _, d := range []Delta{sampleDelta(), {From: 0, To: 1}, {From: 1 << 40, To: 1<<40 + 9, Deletes: []DeltaKey{key(3)}}} {
		b, err := AppendDeltaMessage(nil, &d)
		if err != nil {
			t.Fatal(err)
		}
		m, err := DecodeAllowlistMessage(b)
		if err != nil {
			t.Fatal(err)
		}
		if m.Type != AllowlistDelta || !reflect.DeepEqual(m.Delta, d) {
			t.Fatalf("decoded %+v, want %+v", m.Delta, d)
		}
	}
}

// The §6 example of firmware-specs/allowlist.md.
func TestDeltaSpecExample(t *testing.T) {
	d := Delta{From: 1, To: 2,
		Upserts: []DeltaUpsert{{Key: key(0xaa), Value: []byte{1, 0, 0, 0, 0, 0, 0}}},
		Deletes: []DeltaKey{key(0xbb)}}
	b, err := AppendDelta(nil, &d)
	if err != nil {
		t.Fatal(err)
	}
	want := "4b414431" + "01" + "02" + "01" + "07" + "aa000000000000000000000000000000" + "01000000000000" + "01" + "bb000000000000000000000000000000"
	if got := hexs(b); got != want {
		t.Fatalf("encoding\n got %s\nwant %s", got, want)
	}
}

func hexs(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestAllowlistEncodeRejects(t *testing.T) {
	var sum [32]byte
	for _, c := range []struct {
		name         string
		index, total uint32
		chunk        []byte
	}{
		{"total 0", 0, 0, []byte("x")},
		{"index past total", 3, 3, []byte("x")},
		{"too many chunks", 0, MaxAllowlistChunks + 1, []byte("x")},
		{"empty chunk", 0, 1, nil},
		{"too big", 0, 1, make([]byte, MaxAllowlistMessage)},
	} {
		if _, err := AppendChunkMessage(nil, 1, c.index, c.total, sum, c.chunk); !errors.Is(err, ErrBadAllowlist) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	for name, d := range map[string]Delta{
		"to not above from": {From: 2, To: 2},
		"unsorted upserts":  {From: 1, To: 2, Upserts: []DeltaUpsert{{key(2), []byte{1}}, {key(1), []byte{1}}}},
		"duplicate delete":  {From: 1, To: 2, Deletes: []DeltaKey{key(1), key(1)}},
		"both":              {From: 1, To: 2, Upserts: []DeltaUpsert{{key(1), []byte{1}}}, Deletes: []DeltaKey{key(1)}},
		"empty value":       {From: 1, To: 2, Upserts: []DeltaUpsert{{key(1), nil}}},
		"huge value":        {From: 1, To: 2, Upserts: []DeltaUpsert{{key(1), make([]byte, MaxDeltaValue+1)}}},
	} {
		if _, err := AppendDeltaMessage(nil, &d); !errors.Is(err, ErrBadAllowlist) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestAllowlistDecodeRejects(t *testing.T) {
	d := sampleDelta()
	good, err := AppendDeltaMessage(nil, &d)
	if err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	chunk, _ := AppendChunkMessage(nil, 1, 0, 1, sum, []byte("KAC1\x00"))
	mut := func(b []byte, i int, v byte) []byte { c := bytes.Clone(b); c[i] = v; return c }
	for name, b := range map[string][]byte{
		"empty":           nil,
		"magic":           mut(good, 0, 'X'),
		"type":            mut(good, 4, 9),
		"truncated delta": good[:len(good)-1],
		"trailing":        append(bytes.Clone(good), 0),
		"delta magic":     mut(good, 5, 'X'),
		"non-minimal":     append(append([]byte("KAL1\x02KAD1"), 0x81, 0x00), 2, 0, 0),
		"header only":     chunk[:AllowlistHeaderLen],
		"index=total":     mut(chunk, 16, 1),
		"total 0":         mut(chunk, 20, 0),
		"huge count":      []byte("KAL1\x02KAD1\x01\x02\xff\xff\xff\xff\x0f"),
		"too big":         make([]byte, MaxAllowlistMessage+1),
	} {
		if _, err := DecodeAllowlistMessage(b); !errors.Is(err, ErrBadAllowlist) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestAllowlistRequest(t *testing.T) {
	r, err := DecodeAllowlistRequest([]byte(`{"have":5,"want":"catchup","reason":"start","extra":1}`))
	if err != nil || r != (AllowlistRequest{Have: 5, Want: WantCatchUp, Reason: ReasonStart}) {
		t.Fatalf("%+v %v", r, err)
	}
	for _, s := range []string{`{"have":5,"want":"all"}`, `{"have":-1,"want":"snapshot"}`, `[`, `{"want":"snapshot","reason":"` + string(bytes.Repeat([]byte("x"), 33)) + `"}`} {
		if _, err := DecodeAllowlistRequest([]byte(s)); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: %v", s, err)
		}
	}
	if got := (Topics{Root: "r", Agent: "a"}).AllowlistRequest(); got != "r/v1/a/allowlist/req" {
		t.Error(got)
	}
	if got := GroupAllowlistTopic("r", "all"); got != "r/v1/$group/all/allowlist" {
		t.Error(got)
	}
	if _, _, err := ParseTopic("r", GroupAllowlistTopic("r", "all")); err == nil {
		t.Error("a group topic parses as an agent's")
	}
	if a, leaf, err := ParseTopic("r", "r/v1/a/allowlist/req"); err != nil || a != "a" || leaf != LeafAllowlistRequest {
		t.Error(a, leaf, err)
	}
}

func FuzzDecodeAllowlistMessage(f *testing.F) {
	d := sampleDelta()
	good, _ := AppendDeltaMessage(nil, &d)
	f.Add(good)
	var sum [32]byte
	chunk, _ := AppendChunkMessage(nil, 1, 0, 2, sum, []byte("KAC1\x00"))
	f.Add(chunk)
	f.Add([]byte("KAL1\x02KAD1\x00\x01\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeAllowlistMessage(b)
		if err != nil {
			if !errors.Is(err, ErrBadAllowlist) {
				t.Fatalf("error %v does not wrap ErrBadAllowlist", err)
			}
			return
		}
		// A decoded message re-encodes to the same bytes: encodings are unique.
		var again []byte
		switch m.Type {
		case AllowlistChunk:
			again, err = AppendChunkMessage(nil, m.Version, m.Index, m.Total, m.Sum, m.Chunk)
		case AllowlistDelta:
			again, err = AppendDeltaMessage(nil, &m.Delta)
		}
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding: %v\n got %x\nwant %x", err, again, b)
		}
	})
}
