package idcard

import (
	"errors"
	"fmt"
)

// Errors of the frame codec (firmware-specs/idcard.md §7).
var (
	// ErrShort: fewer bytes than the header or the length field needs.
	ErrShort = errors.New("idcard: short frame")
	// ErrPreamble: a frame that does not start with AA AA AA 96 69.
	ErrPreamble = errors.New("idcard: bad preamble")
	// ErrLength: a length field out of range or disagreeing with the frame.
	ErrLength = errors.New("idcard: bad length")
	// ErrChecksum: the XOR checksum does not match. The Reader also returns
	// it when an exchange got only damaged replies (or the module kept
	// reporting our requests damaged) through all its retries.
	ErrChecksum = errors.New("idcard: bad checksum")
	// ErrFraming: garbage or a truncated frame was skipped in the byte stream.
	ErrFraming = errors.New("idcard: framing")
)

// Errors of the base-info decoder (§5).
var (
	// ErrMalformed: base-info data whose lengths do not add up.
	ErrMalformed = errors.New("idcard: malformed base info")
	// ErrBadField: a text field failed validation; the error is a
	// *FieldError naming the field.
	ErrBadField = errors.New("idcard: bad field")
)

// Errors of the Reader.
var (
	// ErrNoCard: find card answered that there is no card (SW3 80).
	ErrNoCard = errors.New("idcard: no card")
	// ErrCardRemoved: the card was found but select or read then failed
	// (SW3 81 or 41, or 80 after a find): it left the field mid-read.
	ErrCardRemoved = errors.New("idcard: card removed during read")
	// ErrTimeout: no valid reply within the reply timeout, after retries.
	ErrTimeout = errors.New("idcard: reader timeout")
	// ErrOffline: the port is disconnected (the reader is unplugged) or
	// closed.
	ErrOffline = errors.New("idcard: reader offline")
	// ErrProtocol: the module answered with an unexpected status; the error
	// is a *StatusError.
	ErrProtocol = errors.New("idcard: protocol error")
	// ErrClosed: the Reader was closed.
	ErrClosed = errors.New("idcard: reader closed")
)

// StatusError is a reply whose status was not the success the command
// expects. errors.Is(err, ErrProtocol) holds for every StatusError, and in
// addition ErrNoCard for SW3 80 and ErrChecksum for SW3 10.
type StatusError struct {
	Cmd           Command
	SW1, SW2, SW3 byte
}

// Error formats as "idcard: find card: status 00 00 80 (no card)".
func (e *StatusError) Error() string {
	return fmt.Sprintf("idcard: %s: status %02X %02X %02X (%s)", e.Cmd, e.SW1, e.SW2, e.SW3, StatusText(e.SW3))
}

// Is matches ErrProtocol always, ErrNoCard for SW3 80, ErrChecksum for SW3 10.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrProtocol:
		return true
	case ErrNoCard:
		return e.SW3 == StatusNoCard
	case ErrChecksum:
		return e.SW3 == StatusChecksum
	}
	return false
}

// FieldError names a base-info field that failed validation and why. It
// never carries the field's value (personal data).
type FieldError struct {
	Field  string // "name", "sex", "ethnicity", "birth_date", "address", "number", "issuer", "valid_from", "valid_until"
	Reason string // e.g. "empty", "bad check digit", "not a date"
}

// Error formats as "idcard: bad field: number: bad check digit".
func (e *FieldError) Error() string { return "idcard: bad field: " + e.Field + ": " + e.Reason }

// Unwrap returns ErrBadField.
func (e *FieldError) Unwrap() error { return ErrBadField }
