package gpioline

import "errors"

// Sentinel errors; the errors Open and the Line methods return wrap one of
// them with what was asked for and, where there is one, what to do.
var (
	// ErrSpec: a line address is malformed.
	ErrSpec = errors.New("gpioline: bad line spec")
	// ErrOptions: an Options field or an In argument is out of range.
	ErrOptions = errors.New("gpioline: bad options")
	// ErrNoChips: the machine shows no usable GPIO chip at all.
	ErrNoChips = errors.New("gpioline: no GPIO chips found")
	// ErrNotFound: no chip or line matches the Spec.
	ErrNotFound = errors.New("gpioline: no such GPIO line")
	// ErrAmbiguous: a chip label or line name matches more than one.
	ErrAmbiguous = errors.New("gpioline: ambiguous GPIO line")
	// ErrPermission: the chip's device node cannot be opened by this user.
	ErrPermission = errors.New("gpioline: permission denied")
	// ErrBusy: another consumer (a program, a kernel driver) holds the line.
	ErrBusy = errors.New("gpioline: line in use")
	// ErrClosed: the Line was closed.
	ErrClosed = errors.New("gpioline: line closed")
	// ErrUnsupported: the GPIO character device exists only on Linux.
	ErrUnsupported = errors.New("gpioline: GPIO character device lines need Linux")
	// ErrPWM: lines have no PWM through the character device.
	ErrPWM = errors.New("gpioline: PWM not supported")
)
