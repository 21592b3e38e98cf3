package serialport

import (
	"errors"
	"fmt"
)

// Code classifies an [*Error] so callers can branch without string matching.
type Code int

// Error codes. The zero value is Other.
const (
	// Other is any failure not covered by a more specific code.
	Other Code = iota
	// NotFound: the path does not exist (or no device behind it).
	NotFound
	// Busy: the port is already open (locked) by this or another process.
	Busy
	// Permission: the process may not open the device.
	Permission
	// Closed: the Port was closed by its owner.
	Closed
	// Timeout: the read timeout elapsed with no data.
	Timeout
	// Disconnected: the device went away (USB adapter unplugged, pty master
	// closed) or, for a [Reconnecting] port, is currently away.
	Disconnected
	// Invalid: the path is not a serial port (not a tty, a directory) or the
	// mode or argument is not supported.
	Invalid
)

var codeNames = [...]string{
	Other:        "error",
	NotFound:     "not found",
	Busy:         "busy",
	Permission:   "permission denied",
	Closed:       "closed",
	Timeout:      "timeout",
	Disconnected: "disconnected",
	Invalid:      "invalid",
}

// String returns a short lowercase name for the code.
func (c Code) String() string {
	if c >= 0 && int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("code(%d)", int(c))
}

// Error is the error type returned by every function and method of this
// package. Err, when not nil, is the underlying cause (an errno, a
// go.bug.st/serial error) and is reachable with errors.Is/As.
type Error struct {
	Code Code   // what kind of failure
	Path string // the port's path, may be empty
	Op   string // "open", "read", "write", "close", "list", ...
	Err  error  // underlying cause, may be nil
}

// Error formats as "serialport: <op> <path>: <code>[: <cause>]".
func (e *Error) Error() string {
	s := "serialport: " + e.Op
	if e.Path != "" {
		s += " " + e.Path
	}
	s += ": " + e.Code.String()
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// CodeOf returns the Code of the first [*Error] in err's chain, and false when
// there is none (err is nil or not from this package).
func CodeOf(err error) (Code, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Code, true
	}
	return Other, false
}

// Is reports whether err's chain holds an [*Error] with the given code.
func Is(err error, code Code) bool {
	c, ok := CodeOf(err)
	return ok && c == code
}

// IsTimeout reports whether err is a read timeout (no data within the read timeout).
func IsTimeout(err error) bool { return Is(err, Timeout) }

// IsDisconnected reports whether err means the device is (or went) away.
func IsDisconnected(err error) bool { return Is(err, Disconnected) }

// IsClosed reports whether err means the Port was closed by its owner.
func IsClosed(err error) bool { return Is(err, Closed) }

// IsNotFound reports whether err means the path does not exist.
func IsNotFound(err error) bool { return Is(err, NotFound) }
