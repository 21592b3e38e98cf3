// Package door drives one door's I/O (firmware-specs/door.md): the lock
// relay, and the door contact, request-to-exit button, fire-alarm input
// and tamper switch. It takes periph gpio pins and never looks them up.
//
// The relay has a safe state, Halt: de-energised, which releases a
// fail-safe door (a maglock on an escape route) and locks a fail-secure
// one (a strike). Release and Secure energise or de-energise it according
// to the fail mode and the relay's polarity, so callers think only in
// "released" and "secured".
//
// Run watches the fitted inputs: it reports each one's level once at the
// start (so a fire alarm already on releases doors), then every stable
// change. A change is stable once the line has held its new level for the
// input's Debounce; it is reported with the time of its first edge, taken
// from the pin's own edge timestamps when it has them (EdgeStamper).
// Debounce timers run on an injected Clock, so tests drive them with a
// fake one (testhw/fakeclock.Clock).
//
// The door decides nothing: what a request-to-exit, a fire alarm, a
// forced or held-open door means is the gate's policy.
package door
