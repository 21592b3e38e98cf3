package allowlist

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Days is a set of weekdays: bit d is time.Weekday d (bit 0 Sunday).
type Days uint8

// AllDays is every day of the week.
const AllDays Days = 0x7f

// Has reports whether d contains w.
func (d Days) Has(w time.Weekday) bool { return d&(1<<uint(w)) != 0 }

// TimeOfDay is minutes since local midnight, 0 to 1440 (1440 is "24:00",
// allowed only as the end of a window).
type TimeOfDay uint16

// ParseTimeOfDay parses "HH:MM" (00:00 to 24:00). It returns an error
// wrapping ErrMalformed for anything else.
func ParseTimeOfDay(s string) (TimeOfDay, error) {
	if len(s) != 5 || s[2] != ':' {
		return 0, fmt.Errorf("%w: time of day %q, want HH:MM", ErrMalformed, s)
	}
	d := func(c byte) int { return int(c) - '0' }
	for _, i := range []int{0, 1, 3, 4} {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%w: time of day %q, want HH:MM", ErrMalformed, s)
		}
	}
	h, m := d(s[0])*10+d(s[1]), d(s[3])*10+d(s[4])
	if m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("%w: time of day %q out of range", ErrMalformed, s)
	}
	return TimeOfDay(h*60 + m), nil
}

// String returns t as "HH:MM".
func (t TimeOfDay) String() string { return fmt.Sprintf("%02d:%02d", t/60, t%60) }

// Window is a weekly time window: on each of Days, from From (inclusive)
// to To (exclusive). A window over midnight is written as two windows.
type Window struct {
	Days     Days
	From, To TimeOfDay
}

// Date is a calendar day as days since 1970-01-01.
type Date uint32

// DateOf returns the calendar day of t in t's location.
func DateOf(t time.Time) Date {
	y, m, d := t.Date()
	return Date(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

// String returns d as "YYYY-MM-DD".
func (d Date) String() string { return time.Unix(int64(d)*86400, 0).UTC().Format(time.DateOnly) }

// Schedule is a set of weekly windows plus holidays (on which the
// decision engine denies entries bound to the schedule).
type Schedule struct {
	ID       uint32 // 1 or more; entries name it
	Windows  []Window
	Holidays []Date // strictly ascending
}

// AppendSchedule appends the encoding of s (firmware-specs/allowlist.md
// §3) to b. It returns an error wrapping ErrMalformed when s breaks a rule
// of the encoding.
func AppendSchedule(b []byte, s *Schedule) ([]byte, error) {
	if err := s.check(); err != nil {
		return b, err
	}
	b = binary.AppendUvarint(b, uint64(s.ID))
	b = binary.AppendUvarint(b, uint64(len(s.Windows)))
	for _, w := range s.Windows {
		b = append(b, byte(w.Days))
		b = binary.AppendUvarint(b, uint64(w.From))
		b = binary.AppendUvarint(b, uint64(w.To))
	}
	b = binary.AppendUvarint(b, uint64(len(s.Holidays)))
	for _, h := range s.Holidays {
		b = binary.AppendUvarint(b, uint64(h))
	}
	return b, nil
}

func (s *Schedule) check() error {
	bad := func(what string) error { return fmt.Errorf("%w: schedule %d: %s", ErrMalformed, s.ID, what) }
	if s.ID == 0 {
		return bad("id 0")
	}
	if len(s.Windows) > MaxWindows || len(s.Holidays) > MaxHolidays {
		return bad("too many windows or holidays")
	}
	for _, w := range s.Windows {
		if w.Days == 0 || w.Days&^AllDays != 0 {
			return bad("bad days")
		}
		if w.From >= w.To || w.To > 1440 {
			return bad("window not within one day")
		}
	}
	for i := 1; i < len(s.Holidays); i++ {
		if s.Holidays[i] <= s.Holidays[i-1] {
			return bad("holidays not strictly ascending")
		}
	}
	return nil
}

// DecodeSchedule decodes one schedule encoding. It returns an error
// wrapping ErrMalformed when b is not exactly one valid encoding.
func DecodeSchedule(b []byte) (Schedule, error) {
	r := reader{b: b}
	var s Schedule
	s.ID = uint32(r.uvarint("schedule id", 1<<32-1))
	n := r.uvarint("window count", MaxWindows)
	for i := uint64(0); i < n && r.err == nil; i++ {
		var w Window
		w.Days = Days(r.byte("days"))
		w.From = TimeOfDay(r.uvarint("from", 1440))
		w.To = TimeOfDay(r.uvarint("to", 1440))
		s.Windows = append(s.Windows, w)
	}
	n = r.uvarint("holiday count", MaxHolidays)
	for i := uint64(0); i < n && r.err == nil; i++ {
		s.Holidays = append(s.Holidays, Date(r.uvarint("holiday", 1<<32-1)))
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return Schedule{}, r.err
	}
	if err := s.check(); err != nil {
		return Schedule{}, err
	}
	return s, nil
}
