// Package qrscansim simulates a serial QR / barcode scanner: the device side
// of firmware-specs/qrscan.md, written from the spec and independent of
// drivers/qrscan (it must not import it).
//
// A [Scanner] is attached to one device link at a time with [Scanner.Serve]
// (a testhw/pty master, or any io.ReadWriter); while attached it answers
// liveness probes and the test makes it "scan". Fault injection:
// [Scanner.Garbage] (noise closed by a terminator), [Scanner.Truncated] (a
// partial line, then silence), [Scanner.Overlong] (a line over the driver's
// limit), [Scanner.SetSilent] (probes go unanswered), and unplugging, which
// is the pty pair's Unplug: Serve returns when its link fails, and is
// called again with the new link after Replug.
package qrscansim
