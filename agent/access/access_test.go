package access

import (
	"errors"
	"testing"
	"time"

	"github.com/kioskedge/kioskedge/agent/privacy"
	"github.com/kioskedge/kioskedge/drivers/credential"
)

// mapAllowlist is an in-memory Allowlist.
type mapAllowlist struct {
	entries   map[[16]byte]Entry
	schedules map[uint32]Schedule
	err       error
}

func (m *mapAllowlist) Lookup(h [16]byte) (Entry, bool, error) {
	if m.err != nil {
		return Entry{}, false, m.err
	}
	e, ok := m.entries[h]
	return e, ok, nil
}

func (m *mapAllowlist) Schedule(id uint32) (Schedule, bool) {
	s, ok := m.schedules[id]
	return s, ok
}

var siteKey = []byte("0123456789abcdef0123456789abcdef")

func card(n string) credential.Credential {
	return credential.Credential{Kind: credential.Wiegand, Encoding: "H10301", Reader: "r1", Number: n}
}

// Shanghai: a fixed zone without daylight saving.
var cst = time.FixedZone("CST", 8*3600)

// at returns a time in CST; 2026-06-01 is a Monday.
func at(day, h, m, s int) time.Time { return time.Date(2026, 6, day, h, m, s, 0, cst) }

func hashOf(c credential.Credential) [16]byte { return SiteKeyHasher(siteKey).Hash(c) }

func TestSiteKeyHasherMatchesPrivacy(t *testing.T) {
	c := card(" 123-45678 ")
	h := hashOf(c)
	if got, want := hexOf(h), privacy.KeyedHash(siteKey, c); got != want {
		t.Fatalf("hash %s, privacy.KeyedHash %s", got, want)
	}
	if hashOf(card("123-45679")) == h {
		t.Fatal("two cards hash alike")
	}
}

func hexOf(h [16]byte) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 32)
	for i, x := range h {
		b[2*i], b[2*i+1] = digits[x>>4], digits[x&15]
	}
	return string(b)
}

const (
	schedWeekdayDay   = 1 // Mon-Fri 08:00-18:00
	schedNight        = 2 // Fri 22:00 - Sat 02:00, crossing midnight
	schedHoliday      = 3 // Mon-Fri 08:00-18:00, 2026-06-03 a holiday
	schedMissing      = 9
	schedHolidayNight = 4 // Tue 22:00-02:00 and Wed 22:00-02:00, Wed 2026-06-03 a holiday
)

func fixture(t testing.TB) (*Engine, *mapAllowlist) {
	t.Helper()
	var weekdays []Window
	for d := time.Monday; d <= time.Friday; d++ {
		weekdays = append(weekdays, Window{d, 8 * time.Hour, 18 * time.Hour})
	}
	al := &mapAllowlist{
		entries: map[[16]byte]Entry{
			hashOf(card("ok")):       {DoorGroups: []string{"main"}},
			hashOf(card("staff")):    {DoorGroups: []string{"main"}, Staff: true},
			hashOf(card("staffexp")): {DoorGroups: []string{"main"}, Staff: true, ValidTo: at(1, 0, 0, 0)},
			hashOf(card("valid")): {DoorGroups: []string{"main"},
				ValidFrom: at(1, 9, 0, 0), ValidTo: at(1, 17, 0, 0)},
			hashOf(card("inverted")): {DoorGroups: []string{"main"}, ValidFrom: at(2, 0, 0, 0), ValidTo: at(1, 0, 0, 0)},
			hashOf(card("garage")):   {DoorGroups: []string{"garage"}},
			hashOf(card("nogroup")):  {},
			hashOf(card("day")):      {DoorGroups: []string{"main"}, ScheduleID: schedWeekdayDay},
			hashOf(card("night")):    {DoorGroups: []string{"main"}, ScheduleID: schedNight},
			hashOf(card("hol")):      {DoorGroups: []string{"main"}, ScheduleID: schedHoliday},
			hashOf(card("holnight")): {DoorGroups: []string{"main"}, ScheduleID: schedHolidayNight},
			hashOf(card("nosched")):  {DoorGroups: []string{"main"}, ScheduleID: schedMissing},
			hashOf(card("apb")):      {DoorGroups: []string{"main"}, AntiPassbackGroup: "lobby"},
		},
		schedules: map[uint32]Schedule{
			schedWeekdayDay: {Windows: weekdays},
			schedNight:      {Windows: []Window{{time.Friday, 22 * time.Hour, 2 * time.Hour}}},
			schedHoliday:    {Windows: weekdays, Holidays: []Date{{2026, time.June, 3}}},
			schedHolidayNight: {Windows: []Window{
				{time.Tuesday, 22 * time.Hour, 2 * time.Hour},
				{time.Wednesday, 22 * time.Hour, 2 * time.Hour},
			}, Holidays: []Date{{2026, time.June, 3}}},
		},
	}
	e, err := New(Config{
		Hasher: SiteKeyHasher(siteKey), Allowlist: al,
		AntiPassbackTimeout: 10 * time.Minute,
		Doors: []Door{
			{ID: "gate", Groups: []string{"main", "east"}, Location: cst},
			{ID: "lobby-in", Groups: []string{"main"}, Location: cst, AntiPassbackGroup: "lobby", Direction: In},
			{ID: "lobby-out", Groups: []string{"main"}, Location: cst, AntiPassbackGroup: "lobby", Direction: Out},
			{ID: "locked", Groups: []string{"main"}, Mode: LockedDownMode, Location: cst},
			{ID: "fire", Groups: []string{"main"}, Mode: FreePassageMode, Location: cst},
			{ID: "utc", Groups: []string{"main"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e, al
}

func TestDecideTable(t *testing.T) {
	mon := at(1, 12, 0, 0)
	for _, tc := range []struct {
		name    string
		door    string
		number  string
		frameOK bool
		now     time.Time
		want    Code
	}{
		{"granted", "gate", "ok", true, mon, Granted},
		{"bad frame of a valid card", "gate", "ok", false, mon, BadFrame},
		{"bad frame in free passage", "fire", "ok", false, mon, BadFrame},
		{"unknown door", "nowhere", "ok", true, mon, UnknownDoor},
		{"unknown card", "gate", "nobody", true, mon, Unknown},
		{"free passage without lookup", "fire", "nobody", true, mon, FreePassage},
		{"locked down, resident", "locked", "ok", true, mon, LockedDown},
		{"locked down, staff", "locked", "staff", true, mon, Granted},
		{"locked down, unknown", "locked", "nobody", true, mon, Unknown},
		{"locked down, expired staff", "locked", "staffexp", true, mon, Expired},
		{"before ValidFrom by 1ns", "gate", "valid", true, at(1, 9, 0, 0).Add(-1), NotYetValid},
		{"at ValidFrom (inclusive)", "gate", "valid", true, at(1, 9, 0, 0), Granted},
		{"at ValidTo (inclusive)", "gate", "valid", true, at(1, 17, 0, 0), Granted},
		{"after ValidTo by 1ns", "gate", "valid", true, at(1, 17, 0, 0).Add(1), Expired},
		{"ValidTo in another zone", "gate", "valid", true, at(1, 17, 0, 0).UTC(), Granted},
		{"inverted validity", "gate", "inverted", true, at(2, 12, 0, 0), Expired},
		{"inverted validity early", "gate", "inverted", true, at(1, 0, 0, 0).Add(-time.Hour), NotYetValid},
		{"wrong door", "gate", "garage", true, mon, WrongDoor},
		{"no door groups", "gate", "nogroup", true, mon, WrongDoor},
		{"missing schedule", "gate", "nosched", true, mon, UnknownSchedule},
		{"window start inclusive", "gate", "day", true, at(1, 8, 0, 0), Granted},
		{"before window start", "gate", "day", true, at(1, 8, 0, 0).Add(-1), OutsideSchedule},
		{"window end exclusive", "gate", "day", true, at(1, 18, 0, 0), OutsideSchedule},
		{"just before window end", "gate", "day", true, at(1, 18, 0, 0).Add(-1), Granted},
		{"weekend", "gate", "day", true, at(6, 12, 0, 0), OutsideSchedule},
		{"window read in door's zone", "gate", "day", true, time.Date(2026, 6, 1, 1, 0, 0, 0, time.UTC), Granted},
		{"same instant at a UTC door", "utc", "day", true, time.Date(2026, 6, 1, 1, 0, 0, 0, time.UTC), OutsideSchedule},
		{"midnight crossing: Fri 21:59:59", "gate", "night", true, at(5, 21, 59, 59), OutsideSchedule},
		{"midnight crossing: Fri 22:00", "gate", "night", true, at(5, 22, 0, 0), Granted},
		{"midnight crossing: Fri 23:59:59", "gate", "night", true, at(5, 23, 59, 59), Granted},
		{"midnight crossing: Sat 00:00", "gate", "night", true, at(6, 0, 0, 0), Granted},
		{"midnight crossing: Sat 01:59:59", "gate", "night", true, at(6, 1, 59, 59), Granted},
		{"midnight crossing: Sat 02:00", "gate", "night", true, at(6, 2, 0, 0), OutsideSchedule},
		{"midnight crossing: Thu 23:00", "gate", "night", true, at(4, 23, 0, 0), OutsideSchedule},
		{"midnight crossing: Fri 01:00", "gate", "night", true, at(5, 1, 0, 0), OutsideSchedule},
		{"holiday closes window", "gate", "hol", true, at(3, 12, 0, 0), Holiday},
		{"day before holiday", "gate", "hol", true, at(2, 12, 0, 0), Granted},
		{"day after holiday", "gate", "hol", true, at(4, 12, 0, 0), Granted},
		{"holiday outside any window", "gate", "hol", true, at(3, 20, 0, 0), OutsideSchedule},
		{"eve of holiday crosses into it", "gate", "holnight", true, at(3, 1, 0, 0), Granted},
		{"window opening on holiday", "gate", "holnight", true, at(3, 23, 0, 0), Holiday},
		{"that window past midnight", "gate", "holnight", true, at(4, 1, 0, 0), Holiday},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := fixture(t)
			c := card(tc.number)
			c.Time = tc.now.Add(-time.Millisecond)
			d := e.Decide(tc.door, c, tc.frameOK, tc.now)
			if d.Reason != tc.want {
				t.Fatalf("reason %s, want %s", d.Reason, tc.want)
			}
			if d.Granted != (tc.want == Granted || tc.want == FreePassage) {
				t.Fatalf("granted %v with reason %s", d.Granted, d.Reason)
			}
			if d.Door != tc.door || d.Reader != "r1" || !d.Time.Equal(tc.now) || !d.ReadAt.Equal(c.Time) || d.Kind != credential.Wiegand {
				t.Fatalf("decision fields %+v", d)
			}
			wantHashed := tc.want != BadFrame && tc.want != UnknownDoor
			if d.Hashed != wantHashed || (wantHashed && d.CredentialHash != hashOf(c)) {
				t.Fatalf("hashed %v hash %x", d.Hashed, d.CredentialHash)
			}
		})
	}
}

func TestLookupErrorFailsClosed(t *testing.T) {
	e, al := fixture(t)
	al.err = errors.New("disk on fire")
	for _, door := range []string{"gate", "locked"} {
		for _, n := range []string{"ok", "staff", "nobody"} {
			d := e.Decide(door, card(n), true, at(1, 12, 0, 0))
			if d.Granted || d.Reason != LookupError {
				t.Errorf("%s at %s: %+v", n, door, d)
			}
		}
	}
	if d := e.Decide("fire", card("ok"), true, at(1, 12, 0, 0)); !d.Granted || d.Reason != FreePassage {
		t.Errorf("free passage needs the store: %+v", d)
	}
}

func TestSetMode(t *testing.T) {
	e, _ := fixture(t)
	now := at(1, 12, 0, 0)
	if err := e.SetMode("gate", LockedDownMode); err != nil {
		t.Fatal(err)
	}
	if m, _ := e.Mode("gate"); m != LockedDownMode {
		t.Fatalf("mode %v", m)
	}
	if d := e.Decide("gate", card("ok"), true, now); d.Reason != LockedDown || d.Mode != LockedDownMode {
		t.Fatalf("%+v", d)
	}
	if err := e.SetMode("gate", FreePassageMode); err != nil {
		t.Fatal(err)
	}
	if d := e.Decide("gate", card("nobody"), true, now); d.Reason != FreePassage || !d.Granted {
		t.Fatalf("%+v", d)
	}
	if err := e.SetMode("gate", Normal); err != nil {
		t.Fatal(err)
	}
	if d := e.Decide("gate", card("ok"), true, now); d.Reason != Granted {
		t.Fatalf("%+v", d)
	}
	if err := e.SetMode("nowhere", Normal); !errors.Is(err, ErrUnknownDoor) {
		t.Fatalf("unknown door: %v", err)
	}
	if err := e.SetMode("gate", Mode(7)); !errors.Is(err, ErrConfig) {
		t.Fatalf("bad mode: %v", err)
	}
	if _, ok := e.Mode("nowhere"); ok {
		t.Fatal("mode of unknown door")
	}
}

func TestAntiPassback(t *testing.T) {
	e, _ := fixture(t)
	t0 := at(1, 12, 0, 0)
	step := func(door, n string, now time.Time, want Code) {
		t.Helper()
		if d := e.Decide(door, card(n), true, now); d.Reason != want {
			t.Fatalf("%s at %s %v: %s, want %s", n, door, now.Format(time.TimeOnly), d.Reason, want)
		}
	}
	step("lobby-in", "apb", t0, Granted)
	step("lobby-in", "apb", t0.Add(time.Minute), AntiPassback)
	step("gate", "apb", t0.Add(time.Minute), Granted)    // not an anti-passback door
	step("lobby-in", "ok", t0.Add(time.Minute), Granted) // no anti-passback group
	step("lobby-in", "ok", t0.Add(time.Minute), Granted)
	step("lobby-out", "apb", t0.Add(2*time.Minute), Granted)
	step("lobby-in", "apb", t0.Add(3*time.Minute), Granted)
	step("lobby-in", "apb", t0.Add(13*time.Minute-1), AntiPassback)
	step("lobby-in", "apb", t0.Add(13*time.Minute), Granted) // timed out
	step("lobby-in", "apb", t0.Add(14*time.Minute), AntiPassback)
	// A denial elsewhere does not count as going out.
	step("lobby-out", "apb", t0.Add(15*time.Minute), Granted)
	step("lobby-out", "apb", t0.Add(15*time.Minute), Granted) // out twice is fine
}

func TestAntiPassbackMemoryBounded(t *testing.T) {
	al := &mapAllowlist{entries: map[[16]byte]Entry{}}
	const n = 1000
	for i := range n {
		al.entries[hashOf(card(itoa(i)))] = Entry{DoorGroups: []string{"g"}, AntiPassbackGroup: "a"}
	}
	e, err := New(Config{Hasher: SiteKeyHasher(siteKey), Allowlist: al, AntiPassbackMax: 100, AntiPassbackTimeout: time.Hour,
		Doors: []Door{{ID: "in", Groups: []string{"g"}, AntiPassbackGroup: "a", Direction: In},
			{ID: "out", Groups: []string{"g"}, AntiPassbackGroup: "a", Direction: Out}}})
	if err != nil {
		t.Fatal(err)
	}
	t0 := at(1, 0, 0, 0)
	for round := range 5 {
		for i := range n {
			now := t0.Add(time.Duration(round*n+i) * time.Second)
			if d := e.Decide("in", card(itoa(i)), true, now); !d.Granted {
				t.Fatalf("round %d card %d: %s", round, i, d.Reason)
			}
			if i%3 == 0 {
				e.Decide("out", card(itoa(i)), true, now)
			}
			if m, q := e.antiPassbackLen(); m > 100 || q > 200 {
				t.Fatalf("memory %d, queue %d", m, q)
			}
		}
	}
	// The most recent passage is remembered.
	if d := e.Decide("in", card(itoa(n-2)), true, t0.Add(5*n*time.Second)); d.Reason != AntiPassback {
		t.Fatalf("latest passage forgotten: %s", d.Reason)
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func TestRepeatedDenialsAlarm(t *testing.T) {
	al := &mapAllowlist{entries: map[[16]byte]Entry{hashOf(card("ok")): {DoorGroups: []string{"g"}, ScheduleID: 1}},
		schedules: map[uint32]Schedule{1: {}}}
	e, err := New(Config{Hasher: SiteKeyHasher(siteKey), Allowlist: al, DenialThreshold: 3, DenialWindow: time.Minute,
		Doors: []Door{{ID: "d", Groups: []string{"g"}}}})
	if err != nil {
		t.Fatal(err)
	}
	t0 := at(1, 12, 0, 0)
	dec := func(n string, frameOK bool, dt time.Duration, reader string) Decision {
		c := card(n)
		c.Reader = reader
		return e.Decide("d", c, frameOK, t0.Add(dt))
	}
	check := func(d Decision, count int, alarm Alarm) {
		t.Helper()
		if d.Denials != count || d.Alarm != alarm {
			t.Fatalf("%s: denials %d alarm %q, want %d %q", d.Reason, d.Denials, d.Alarm, count, alarm)
		}
	}
	check(dec("x", true, 0, "r1"), 1, NoAlarm)
	check(dec("x", false, time.Second, "r1"), 2, NoAlarm)
	check(dec("x", true, 0, "r2"), 1, NoAlarm)              // another reader
	check(dec("ok", true, 2*time.Second, "r1"), 0, NoAlarm) // outside_schedule is not a wrong credential
	check(dec("x", true, 3*time.Second, "r1"), 3, RepeatedDenials)
	check(dec("x", true, 4*time.Second, "r1"), 1, NoAlarm) // count starts again
	// Denials older than the window drop out.
	check(dec("x", true, 70*time.Second, "r1"), 1, NoAlarm)
	check(dec("x", true, 100*time.Second, "r1"), 2, NoAlarm)
	check(dec("x", true, 129*time.Second, "r1"), 3, RepeatedDenials)
	// An unknown door is not counted (no reader state for unconfigured doors).
	if d := e.Decide("nowhere", card("x"), true, t0); d.Denials != 0 || d.Alarm != NoAlarm {
		t.Fatalf("%+v", d)
	}
}

func TestNewValidates(t *testing.T) {
	al := &mapAllowlist{}
	h := SiteKeyHasher(siteKey)
	for _, cfg := range []Config{
		{Allowlist: al},
		{Hasher: h},
		{Hasher: h, Allowlist: al, DenialThreshold: 6},
		{Hasher: h, Allowlist: al, DenialThreshold: -1},
		{Hasher: h, Allowlist: al, AntiPassbackTimeout: -1},
		{Hasher: h, Allowlist: al, Doors: []Door{{}}},
		{Hasher: h, Allowlist: al, Doors: []Door{{ID: "a"}, {ID: "a"}}},
		{Hasher: h, Allowlist: al, Doors: []Door{{ID: "a", Mode: 9}}},
	} {
		if _, err := New(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
}

func TestModeString(t *testing.T) {
	for m, s := range map[Mode]string{Normal: "normal", LockedDownMode: "locked_down", FreePassageMode: "free_passage", 9: "mode(9)"} {
		if m.String() != s {
			t.Errorf("%d: %s", m, m.String())
		}
	}
}

// Doors decide concurrently while modes change; run with -race.
func TestDecideConcurrent(t *testing.T) {
	e, _ := fixture(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			if err := e.SetMode("gate", Mode(i%3)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := range 200 {
		door := []string{"gate", "lobby-in", "lobby-out"}[i%3]
		d := e.Decide(door, card("nobody"), true, at(1, 12, 0, i%60))
		if d.Granted && d.Reason != FreePassage {
			t.Fatalf("%+v", d)
		}
	}
	<-done
}
