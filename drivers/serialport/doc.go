// Package serialport is KioskEdge's only door to serial hardware and the only
// importer of go.bug.st/serial: every serial driver (OSDP, ID card,
// social-security card, QR scanner, receipt printer) and every simulator talks
// to a [Port], never to the library.
//
// Concepts:
//
//   - [Port] is the small interface drivers take. [Open] returns one backed by a
//     real device node (a USB adapter, a UART, or a pty from testhw/pty).
//   - Errors are [*Error] values with a [Code] the caller branches on: a read
//     that times out with no data returns Code [Timeout] (go.bug.st/serial
//     returns (0, nil) there); a device that went away returns [Disconnected];
//     use after Close returns [Closed]. See [IsTimeout], [IsDisconnected],
//     [IsClosed].
//   - [Reconnecting] is a [Port] that survives a USB adapter being unplugged and
//     plugged back at the same path: it reopens the path with capped
//     exponential back-off (full jitter) and reports up/down transitions.
//   - [List] enumerates ports with USB VID/PID for technicians.
//
// Close of any Port unblocks a Read pending on it.
package serialport
