// Package sscardsim is a social security card reader with a card in it, on
// the device side of a serial line: it reads the reader framing of
// firmware-specs/sscard.md §1 from an io.ReadWriter (the master of a
// testhw/pty pair) and answers like a reader would, passing APDUs to a
// simulated card that holds the SSSE application with its EF05 and EF06
// record files (§2).
//
// It is written from the spec, independently of drivers/sscard (it does not
// import it), so a test of the driver against it checks both against the
// spec. Faults are injected at run time: garbage, truncated frames and frames
// with a bad BCC before a reply, silence, a card removed after a number of
// APDUs, a locked application, a card without the application, and T=0
// behaviour (61xx/6Cxx).
//
// The card's data is personal data in real life; the cards built here are
// fake (see NewCard, VectorCard).
package sscardsim
