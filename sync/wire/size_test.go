package wire_test

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/wire"
)

// standardAccessBody is the access.decision body of hub-protocol.md §4.
func standardAccessBody(rng *rand.Rand, creds []string) []byte {
	doors := []struct{ door, reader string }{
		{"main-gate", "in"}, {"main-gate", "out"}, {"side-gate", "in"}, {"side-gate", "out"},
		{"garage", "in"}, {"garage", "out"}, {"lobby", "in"}, {"gym", "in"},
	}
	d := doors[rng.IntN(len(doors))]
	result, reason := "granted", "allowlist"
	switch n := rng.IntN(100); {
	case n < 4:
		result, reason = "denied", "unknown"
	case n < 6:
		result, reason = "denied", "expired"
	case n < 7:
		result, reason = "denied", "schedule"
	}
	return fmt.Appendf(nil, `{"door":%q,"reader":%q,"cred":%q,"result":%q,"reason":%q,"latency_us":%d}`,
		d.door, d.reader, creds[rng.IntN(len(creds))], result, reason, 300+rng.IntN(9000))
}

// TestStandardAccessRecordWireSize checks the ≤ 70 wire bytes per standard
// access record target (issue 2, hub-protocol.md §4/§5): 2000 records in
// one zstd batch, envelope included. It is a size, so it is asserted.
func TestStandardAccessRecordWireSize(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 7))
	creds := make([]string, 5000) // keyed hashes of the residents' credentials
	for i := range creds {
		var h [16]byte
		for j := range h {
			h[j] = byte(rng.Uint32())
		}
		creds[i] = hex.EncodeToString(h[:])
	}
	const n = 2000
	at := time.Date(2024, 5, 1, 7, 0, 0, 0, time.FixedZone("TRT", 3*3600))
	first := uint64(1_234_567)
	entries := make([]wire.Entry, n)
	stored := 0
	for i := range entries {
		at = at.Add(time.Duration(1+rng.IntN(4000)) * time.Millisecond)
		raw, err := wire.MarshalRecord(wire.Record{
			Kind: wire.KindAccess, Class: wire.ClassCritical, Time: at, Body: standardAccessBody(rng, creds),
		})
		if err != nil {
			t.Fatal(err)
		}
		entries[i] = wire.Entry{Seq: first + uint64(i), Raw: raw}
		stored += len(raw)
	}
	c := newCodec(t, wire.Limits{})
	msg, _, err := c.EncodeBatch("gate-0042", "7f3c2a9e-5b1d-4e8a-9c0f-2d6b8e1a4c37", first, first+n-1, entries, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := c.DecodeBatch(msg); err != nil || len(b.Entries) != n {
		t.Fatalf("decoding the batch: %v", err)
	}
	perRecord := float64(len(msg)) / n
	t.Logf("standard access record: %.1f stored bytes, %.1f wire bytes per record (%d-record batch, %d bytes)",
		float64(stored)/n, perRecord, n, len(msg))
	if perRecord > 70 {
		t.Errorf("%.1f wire bytes per record, target ≤ 70", perRecord)
	}
}
