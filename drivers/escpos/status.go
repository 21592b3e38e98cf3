package escpos

import (
	"errors"
	"fmt"
)

// ErrStatusByte: a status reply's fixed bits are wrong (bits 0 and 7 must be
// 0, bits 1 and 4 must be 1): noise on the line, not a status.
var ErrStatusByte = errors.New("escpos: bad status byte")

// Status is the printer's state from the four DLE EOT replies (§5).
type Status struct {
	Offline         bool // n=1 bit 3
	CoverOpen       bool // n=2 bit 2
	FeedButton      bool // n=2 bit 3: paper being fed by the feed button
	PaperOut        bool // n=2 bit 5 or n=4 bits 5–6
	Error           bool // n=2 bit 6: an error occurred
	CutterError     bool // n=3 bit 3
	Unrecoverable   bool // n=3 bit 5
	AutoRecoverable bool // n=3 bit 6
	PaperNearEnd    bool // n=4 bits 2–3
}

// StatusOK reports whether b has the fixed bits of a status reply.
func StatusOK(b byte) bool { return b&0x93 == 0x12 }

// DecodeStatus merges the reply b to DLE EOT n into s. It returns an error
// wrapping ErrStatusByte when b's fixed bits are wrong, and one wrapping
// ErrEncode when n is not 1–4; s is unchanged then.
func DecodeStatus(s *Status, n, b byte) error {
	if n < 1 || n > 4 {
		return fmt.Errorf("%w: DLE EOT %d", ErrEncode, n)
	}
	if !StatusOK(b) {
		return fmt.Errorf("%w: %02x for DLE EOT %d", ErrStatusByte, b, n)
	}
	bit := func(i uint) bool { return b&(1<<i) != 0 }
	switch n {
	case 1:
		s.Offline = bit(3)
	case 2:
		s.CoverOpen = bit(2)
		s.FeedButton = bit(3)
		s.PaperOut = s.PaperOut || bit(5)
		s.Error = bit(6)
	case 3:
		s.CutterError = bit(3)
		s.Unrecoverable = bit(5)
		s.AutoRecoverable = bit(6)
	case 4:
		s.PaperNearEnd = b&0x0C != 0
		s.PaperOut = s.PaperOut || b&0x60 != 0
	}
	return nil
}

// String lists the set conditions, "ok" when none.
func (s Status) String() string {
	out := ""
	add := func(c bool, name string) {
		if c {
			if out != "" {
				out += ","
			}
			out += name
		}
	}
	add(s.Offline, "offline")
	add(s.CoverOpen, "cover open")
	add(s.FeedButton, "feeding")
	add(s.PaperOut, "paper out")
	add(s.Error, "error")
	add(s.CutterError, "cutter error")
	add(s.Unrecoverable, "unrecoverable")
	add(s.AutoRecoverable, "auto-recoverable")
	add(s.PaperNearEnd, "paper near end")
	if out == "" {
		return "ok"
	}
	return out
}
