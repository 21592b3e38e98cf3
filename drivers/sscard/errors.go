package sscard

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of them (or are
// a *StatusError / *ReaderError); branch with errors.Is.
var (
	// ErrNoCard: the reader reports no card in the slot (sscard.md §1.3).
	ErrNoCard = errors.New("sscard: no card")
	// ErrCardRemoved: the card went away (or went mute) after it had been
	// powered, in the middle of a read.
	ErrCardRemoved = errors.New("sscard: card removed during the read")
	// ErrWrongApplication: the card has no social security application
	// (SW 6A82, 6A81, 6D00, 6E00; §2.2); it is some other card.
	ErrWrongApplication = errors.New("sscard: not a social security card")
	// ErrLocked: the application is blocked (SW 6283, 6983).
	ErrLocked = errors.New("sscard: card application locked")
	// ErrTimeout: no valid reply from the reader within the response timeout.
	ErrTimeout = errors.New("sscard: reader did not answer in time")
	// ErrOffline: the serial port is gone (unplugged, closed).
	ErrOffline = errors.New("sscard: reader offline")
	// ErrChecksum: a frame with a bad BCC; also the reader's status 05 (it
	// received one from us) when the retry failed too.
	ErrChecksum = errors.New("sscard: bad frame checksum")
	// ErrFraming: bytes that are not a frame (garbage, bad length, no ETX).
	ErrFraming = errors.New("sscard: bad frame")
	// ErrShortFrame: ParseFrame needs more bytes.
	ErrShortFrame = errors.New("sscard: incomplete frame")
	// ErrMalformed: a response APDU, TLV or data item that does not follow
	// the layout of sscard.md §2.
	ErrMalformed = errors.New("sscard: malformed card data")
	// ErrClosed: the Reader was closed.
	ErrClosed = errors.New("sscard: reader closed")
)

// StatusError is a card status word other than 9000 (sscard.md §2.2). Cmd
// names the command that got it ("select SSSE", "read record 09", …).
// errors.Is(err, ErrWrongApplication) or errors.Is(err, ErrLocked) is true
// for the status words the spec maps to them.
type StatusError struct {
	Cmd string
	SW  uint16
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("sscard: %s: status word %04X", e.Cmd, e.SW)
}

// Is maps the status word to its sentinel.
func (e *StatusError) Is(target error) bool {
	s := swSentinel(e.SW)
	return s != nil && target == s
}

func swSentinel(sw uint16) error {
	switch sw {
	case 0x6A82, 0x6A81, 0x6D00, 0x6E00:
		return ErrWrongApplication
	case 0x6283, 0x6983:
		return ErrLocked
	}
	return nil
}

// ReaderError is a reader status byte with no sentinel of its own
// (sscard.md §1.3: 03 card not powered, 04 unknown command, others).
type ReaderError struct {
	Cmd    byte // the reader command answered
	Status byte
}

func (e *ReaderError) Error() string {
	return fmt.Sprintf("sscard: reader command %02X: status %02X", e.Cmd, e.Status)
}

// CheckSW returns nil for 9000 and a *StatusError naming cmd for any other
// status word, including 61xx and 6Cxx, which the Reader handles itself
// before it would get here.
func CheckSW(cmd string, sw uint16) error {
	if sw == 0x9000 {
		return nil
	}
	return &StatusError{Cmd: cmd, SW: sw}
}
