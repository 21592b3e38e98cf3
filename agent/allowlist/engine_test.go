package allowlist

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/agent/access"
	"github.com/kioskedge/kioskedge/drivers/credential"
)

func TestGroupIDStableAndNonZero(t *testing.T) {
	// The hub and the agent both derive ids from names: pin a value so a
	// change to the derivation cannot slip through.
	if got := GroupID("north"); got != GroupID("north") || got == 0 {
		t.Fatalf("GroupID(north) = %d", got)
	}
	seen := map[uint32]string{}
	for _, n := range []string{"north", "south", "staff", "block-3", "", "1"} {
		id := GroupID(n)
		if other, dup := seen[id]; dup {
			t.Fatalf("GroupID(%q) == GroupID(%q)", n, other)
		}
		seen[id] = n
	}
}

// TestEngineOverStore decides through the engine over a real store file:
// groups by name, schedule and holiday from the list, unknown hashes.
func TestEngineOverStore(t *testing.T) {
	a, _ := openTemp(t)
	hasher := access.SiteKeyHasher(make([]byte, 32))
	cred := func(n string) credential.Credential {
		return credential.Credential{Kind: credential.Wiegand, Reader: "in", Encoding: "H10301", Number: n}
	}
	key := func(n string) Key { return Key(hasher.Hash(cred(n))) }
	es := []Entry{
		{Key: key("1-100"), DoorGroups: []uint32{GroupID("north")}},
		{Key: key("1-101"), DoorGroups: []uint32{GroupID("south")}},
		{Key: key("1-102"), DoorGroups: []uint32{GroupID("north"), GroupID("elsewhere")}, Schedule: 1},
	}
	for i := range es {
		slices.Sort(es[i].DoorGroups)
	}
	sortEntries(es)
	loadSnapshot(t, a, 1, es, 2)

	view := NewEngineView(a, []string{"north", "south"})
	eng, err := access.New(access.Config{Hasher: hasher, Allowlist: view,
		Doors: []access.Door{{ID: "gate", Groups: []string{"north"}}}})
	if err != nil {
		t.Fatal(err)
	}
	// testSchedules[0]: Mon–Fri 07:00–19:00, holidays on days 20454, 20455.
	monday := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	holiday := time.Unix(20454*86400+10*3600, 0).UTC()
	for _, c := range []struct {
		number string
		at     time.Time
		want   access.Code
	}{
		{"1-100", monday, access.Granted},
		{"1-101", monday, access.WrongDoor},
		{"1-102", monday, access.Granted},
		{"1-102", monday.Add(11 * time.Hour), access.OutsideSchedule},
		{"1-102", holiday, access.Holiday},
		{"9-999", monday, access.Unknown},
	} {
		if holiday.Weekday() == time.Saturday || holiday.Weekday() == time.Sunday {
			t.Fatalf("test holiday %v falls on a weekend; pick a weekday", holiday)
		}
		d := eng.Decide("gate", cred(c.number), true, c.at)
		if d.Reason != c.want {
			t.Errorf("card %s at %v: %s, want %s", c.number, c.at, d.Reason, c.want)
		}
	}
}

func sortEntries(es []Entry) {
	slices.SortFunc(es, func(a, b Entry) int { return bytes.Compare(a.Key[:], b.Key[:]) })
}
