// Package gpioline gives KioskEdge real GPIO lines: a [Line] is one line of
// the Linux GPIO character device (/dev/gpiochipN, uAPI v2, kernel 5.10 or
// later), requested through [Open] and used through periph's
// periph.io/x/conn/v3/gpio interfaces. It is the only package that imports
// periph.io/x/host (deps_test.go enforces it); drivers such as the Wiegand
// reader and the door I/O take gpio.PinIn / gpio.PinIO values and never
// look a line up themselves: cmd/ opens the lines the configuration names
// and hands them over.
//
// # Addressing
//
// A [Spec] names a line by chip and offset, or by name; [ParseSpec] reads
// the configuration forms "gpiochip0:17", "/dev/gpiochip0:17",
// "pinctrl-bcm2711:17" (the chip's label, which must then be unique) and
// "name:DOOR_RELAY". Offsets count a chip's lines from 0 as gpioinfo lists
// them; they are not header pin numbers. Names are the kernel's (device
// tree gpio-line-names); a name must be unique across all chips, else
// Open fails with [ErrAmbiguous] listing the chip:offset of each candidate.
// (periph renames a duplicate "X" on gpiochip1 to "gpiochip1-X"; this
// package undoes that so the duplicate is reported, not silently chosen.)
// Chips are discovered once per process, through periph's gpioioctl
// driver; a chip that appears later is seen after a restart.
//
// # Lifecycle
//
// Open requests the line as it is: nothing about it changes until In or
// Out, so opening a relay line does not pulse the relay. Out sets the
// direction and the level in one ioctl. Halt only makes a WaitForEdge in
// progress return false; it never drives a line (a relay's safe state is
// its driver's decision). Close releases the line to the kernel.
//
// # Edge timestamps
//
// With edge detection on (In with an edge), the kernel timestamps each
// edge in its interrupt handler and queues it in a per-line buffer
// ([Options].EventBuffer, default 256 events). WaitForEdge reports the
// queued edges one per call, oldest first, and [Line.LastEdge] returns the
// reported edge's level and kernel time: this is the Wiegand reader's
// EdgeStamper, so pulse widths and bit order come from the kernel's clock,
// not from when a goroutine got to run. If the buffer overflows the kernel
// drops events; the gap in the events' line_seqno shows it, and
// [Line.Stats] counts the lost events (Dropped) and the overflows.
//
// # Which clock
//
// Events are stamped on CLOCK_MONOTONIC (the kernel default), not on
// CLOCK_REALTIME (GPIO_V2_LINE_FLAG_EVENT_CLOCK_REALTIME, kernel 5.11+).
// Open pairs a time.Now() reading with a CLOCK_MONOTONIC reading, and an
// event at t ns becomes that time.Now() value plus (t - the pair's
// CLOCK_MONOTONIC). Go's time.Time carries a monotonic reading, which on
// Linux is CLOCK_MONOTONIC too, and Add keeps it: so two edges subtract to
// the exact kernel interval, and an edge compares with a later time.Now()
// (the Wiegand reader's gap timer) on the monotonic clock, which no NTP
// step moves. Realtime stamps would be wall-clock values without that
// reading: an NTP step in the middle of a frame would stretch or shrink a
// pulse. Printed, an edge time shows the wall clock of Open plus the
// monotonic time since, like any time.Now() value.
//
// # Why this package reads events itself
//
// periph's gpioioctl.GPIOLine.WaitForEdge (periph.io/x/host/v3 v3.8.5,
// gpioioctl/gpio.go) reads each struct gpio_v2_line_event and discards
// it, timestamp and edge kind included; its Read turns a line that is not
// an input into a pulled-up input, and its Out requests a line before
// making it an output, which can glitch a relay. So periph is used to find
// the chips and their line names only; requesting the line, configuring
// it, reading and setting its value and reading its events are this
// package's own ioctls on the kernel ABI, restated in one file (abi.go)
// whose sizes and ioctl numbers are tested against the kernel header.
//
// # Permissions
//
// The agent's user must be able to open /dev/gpiochip*: on Raspberry Pi OS
// add it to group gpio; elsewhere install a udev rule such as
//
//	SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"
//
// and, in a container, pass the devices through. Open's errors say which
// of these is missing ([ErrNoChips], [ErrPermission]), and name the holder
// of a line already in use ([ErrBusy]); gpiodetect and gpioinfo (libgpiod)
// list the chips, lines, names and holders.
//
// # What is tested where
//
// Spec parsing, line resolution over chip lists, error messages, event
// decoding, drop counting, the clock conversion, the line configurations
// and the whole Line logic (waits, Halt, In, Out, Close, stats) are tested
// without hardware, the last through a fake request descriptor, including
// a Wiegand reader decoding a frame from kernel event records. The ioctl
// shell (sys_linux.go, discover_linux.go) is not: the development and CI
// machines have no /dev/gpiochip* and no gpio-sim (configfs), so there
// Open is only tested to fail with ErrNoChips and a message saying what
// to check. It must be tried on a real box (or a kernel with gpio-sim)
// before it is trusted. On other operating systems the package compiles
// and Open returns [ErrUnsupported].
package gpioline
