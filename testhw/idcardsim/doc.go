// Package idcardsim is a simulated resident ID-card reader: it speaks the
// device side of the SAM module frame protocol (firmware-specs/idcard.md)
// over an io.ReadWriter, normally the master end of a testhw/pty pair, so a
// driver under test opens a real tty.
//
// It is written from the spec, independently of drivers/idcard (which it
// must not import), so tests of the driver against it test both against the
// document.
//
// The simulated module answers reset, SAM status, find, select and read base
// info with the card that is "in the field" ([Sim.Insert], [Sim.Remove]) and
// enforces find → select → read. Faults are injected per command with
// [Sim.Inject] (garbage before the reply, a truncated copy first, a bad
// checksum, no reply, an error status, the card pulled out mid-read) or for
// all requests with [Sim.SetSilent].
//
// The people it carries are fake (see [Fake]); the simulator never logs.
package idcardsim
