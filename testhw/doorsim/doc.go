// Package doorsim simulates a door's I/O for tests: a lock driven by a
// relay line, and the door contact, request-to-exit button, fire-alarm
// input and tamper switch on input lines, all gpiosim lines to hand to
// the door driver. It follows firmware-specs/door.md and is written
// independently of drivers/door (it must not import it).
//
// The physics: the lock state follows the relay line's level and the fail
// mode (a fail-safe maglock holds while energised, a fail-secure strike
// while de-energised). Push opens the door only when the lock is released;
// Force opens it regardless (a forced opening); a door held open is one
// nobody Closes. The relay's edge log gives the times the lock was driven,
// for latency measurements.
//
// Its timer tests, and the door's and the gate's, use testhw/fakeclock.
package doorsim
