// Package escposvectors holds machine-readable test vectors for the ESC/POS
// receipt printer subset in firmware-specs/escpos.md: the byte sequence of
// each command KioskEdge sends, and status reply bytes with the conditions
// they mean (and bytes that are not status replies).
//
// The vectors were written from the spec, not produced by drivers/escpos;
// the driver's tests, fuzz seeds and testhw/escpossim use them. This package
// has no dependency on the code it describes. Byte strings are hex; spaces
// are for readability only.
package escposvectors
