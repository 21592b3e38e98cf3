package access

import (
	"errors"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/drivers/credential"
)

// With random entries, schedules, modes and times, the engine never grants
// a bad frame, an unknown credential, an entry outside its validity, a
// non-staff entry at a locked-down door or anything when the store fails;
// and every grant outside free passage satisfies every rule.
func TestDecideNeverGrantsWrongly(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	groups := []string{"a", "b", "c"}
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	randTime := func() time.Time { return base.Add(time.Duration(rng.Int64N(int64(21 * 24 * time.Hour)))) }
	reasons := map[Code]int{}
	for round := range 50 {
		al := &mapAllowlist{entries: map[[16]byte]Entry{}, schedules: map[uint32]Schedule{}}
		for id := uint32(1); id <= 5; id++ {
			var s Schedule
			for range rng.IntN(4) {
				s.Windows = append(s.Windows, Window{time.Weekday(rng.IntN(7)),
					time.Duration(rng.IntN(24*60)) * time.Minute, time.Duration(rng.IntN(24*60+1)) * time.Minute})
			}
			for range rng.IntN(8) {
				y, m, d := randTime().Date()
				s.Holidays = append(s.Holidays, Date{y, m, d})
			}
			al.schedules[id] = s
		}
		const nCards = 200
		for i := range nCards / 2 { // the other half is unknown
			var e Entry
			if rng.IntN(4) > 0 {
				e.ValidFrom = randTime()
			}
			if rng.IntN(4) > 0 {
				e.ValidTo = randTime()
			}
			for _, g := range groups {
				if rng.IntN(2) == 0 {
					e.DoorGroups = append(e.DoorGroups, g)
				}
			}
			e.ScheduleID = uint32(rng.IntN(7)) // 6 is missing
			e.Staff = rng.IntN(5) == 0
			if rng.IntN(3) == 0 {
				e.AntiPassbackGroup = "apb"
			}
			al.entries[hashOf(card(strconv.Itoa(i)))] = e
		}
		var doors []Door
		for i := range 6 {
			doors = append(doors, Door{ID: strconv.Itoa(i), Groups: []string{groups[rng.IntN(3)]},
				Mode: Mode(rng.IntN(3)), Location: time.FixedZone("z", (rng.IntN(27)-12)*3600),
				AntiPassbackGroup: "apb", Direction: Direction(rng.IntN(3))})
		}
		e, err := New(Config{Hasher: SiteKeyHasher(siteKey), Allowlist: al, Doors: doors})
		if err != nil {
			t.Fatal(err)
		}
		storeFails := round%10 == 9
		if storeFails {
			al.err = errors.New("broken")
		}
		for range 2000 {
			door := doors[rng.IntN(len(doors))]
			c := credential.Credential{Kind: credential.Wiegand, Encoding: "H10301", Reader: "r", Number: strconv.Itoa(rng.IntN(nCards))}
			frameOK := rng.IntN(5) > 0
			now := randTime()
			d := e.Decide(door.ID, c, frameOK, now)
			reasons[d.Reason]++
			if !d.Granted {
				if d.Reason == Granted || d.Reason == FreePassage {
					t.Fatalf("denied with reason %s", d.Reason)
				}
				continue
			}
			mode, _ := e.Mode(door.ID)
			ent, known := al.entries[hashOf(c)]
			switch {
			case !frameOK:
				t.Fatalf("granted a bad frame: %+v", d)
			case mode == FreePassageMode:
				if d.Reason != FreePassage {
					t.Fatalf("free passage granted as %s", d.Reason)
				}
				continue
			case d.Reason != Granted:
				t.Fatalf("granted with reason %s", d.Reason)
			case storeFails:
				t.Fatal("granted while the store fails")
			case !known:
				t.Fatal("granted an unknown credential")
			case !ent.ValidFrom.IsZero() && now.Before(ent.ValidFrom), !ent.ValidTo.IsZero() && now.After(ent.ValidTo):
				t.Fatalf("granted outside validity %v..%v at %v", ent.ValidFrom, ent.ValidTo, now)
			case mode == LockedDownMode && !ent.Staff:
				t.Fatal("granted a non-staff entry at a locked-down door")
			case !shareGroup(door.Groups, ent.DoorGroups):
				t.Fatal("granted at a wrong door")
			case ent.ScheduleID == 6:
				t.Fatal("granted with a missing schedule")
			case ent.ScheduleID != 0 && !inWindowNaive(al.schedules[ent.ScheduleID], now.In(door.Location)):
				t.Fatalf("granted outside schedule %+v at %v", al.schedules[ent.ScheduleID], now.In(door.Location))
			}
		}
	}
	// The generator must reach every path, or the property says little.
	for _, c := range []Code{Granted, FreePassage, BadFrame, LookupError, Unknown, LockedDown, NotYetValid,
		Expired, WrongDoor, UnknownSchedule, OutsideSchedule, Holiday, AntiPassback} {
		if reasons[c] == 0 {
			t.Errorf("no decision with reason %s: %v", c, reasons)
		}
	}
}

// inWindowNaive is an independent statement of the schedule rule: some
// window, opened on a date that is not a holiday, contains local, found by
// trying the window's opening on today and on yesterday.
func inWindowNaive(s Schedule, local time.Time) bool {
	midnight := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, local.Location())
	for _, w := range s.Windows {
		for back := 0; back <= 1; back++ {
			day := midnight.AddDate(0, 0, -back)
			if day.Weekday() != w.Day {
				continue
			}
			y, m, d := day.Date()
			if s.isHoliday(Date{y, m, d}) {
				continue
			}
			length := w.End - w.Start
			if w.End <= w.Start {
				length += 24 * time.Hour
			}
			open := day.Add(w.Start)
			if !local.Before(open) && local.Before(open.Add(length)) {
				return true
			}
		}
	}
	return false
}

// mapAllowlist with a million entries; Decide includes the HMAC of the
// credential.
func BenchmarkDecide1M(b *testing.B) {
	const n = 1_000_000
	al := &mapAllowlist{entries: make(map[[16]byte]Entry, n), schedules: map[uint32]Schedule{
		1: {Windows: []Window{{time.Monday, 0, 0}}, Holidays: []Date{{2026, 1, 1}}},
	}}
	var h [16]byte
	for i := range n {
		h[0], h[1], h[2], h[3] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
		al.entries[h] = Entry{DoorGroups: []string{"main"}, ScheduleID: 1, ValidTo: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	}
	resident := card("123-45678")
	al.entries[hashOf(resident)] = Entry{DoorGroups: []string{"main"}, ScheduleID: 1, ValidTo: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	e, err := New(Config{Hasher: SiteKeyHasher(siteKey), Allowlist: al,
		Doors: []Door{{ID: "gate", Groups: []string{"east", "main"}, Location: cst}}})
	if err != nil {
		b.Fatal(err)
	}
	now := at(1, 12, 0, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if d := e.Decide("gate", resident, true, now); !d.Granted {
			b.Fatal(d.Reason)
		}
	}
}
