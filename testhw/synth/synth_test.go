package synth

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/sync/wire"
)

func TestCommunityIsDeterministicAndValid(t *testing.T) {
	start := time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC)
	a, b := NewCommunity(7, 100, 3, start), NewCommunity(7, 100, 3, start)
	classes := map[wire.Class]int{}
	var prev time.Time
	for i := range 2000 {
		ra, rb := a.Next(), b.Next()
		if ra.Kind != rb.Kind || !bytes.Equal(ra.Body, rb.Body) || !ra.Time.Equal(rb.Time) {
			t.Fatalf("record %d differs between two communities with one seed", i)
		}
		if !json.Valid(ra.Body) {
			t.Fatalf("record %d body is not JSON: %s", i, ra.Body)
		}
		if _, err := wire.MarshalRecord(ra); err != nil {
			t.Fatalf("record %d does not encode: %v", i, err)
		}
		if !ra.Time.After(prev) {
			t.Fatalf("record %d time %v not after %v", i, ra.Time, prev)
		}
		prev = ra.Time
		classes[ra.Class]++
	}
	for _, c := range []wire.Class{wire.ClassHealth, wire.ClassEvent, wire.ClassCritical} {
		if classes[c] == 0 {
			t.Errorf("no %v records in 2000", c)
		}
	}
	if classes[wire.ClassCritical] < 1500 {
		t.Errorf("only %d access records in 2000; the mix should be mostly access", classes[wire.ClassCritical])
	}
}

func TestBodiesDoNotAlias(t *testing.T) {
	c := NewCommunity(1, 10, 1, time.Unix(0, 0))
	r1 := c.Next()
	saved := string(r1.Body)
	c.Next()
	if string(r1.Body) != saved {
		t.Fatal("a later Next changed an earlier record's body")
	}
}
