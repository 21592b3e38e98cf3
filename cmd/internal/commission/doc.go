// Package commission holds the checks behind kioskctl test and kioskctl
// selftest (issue 6): exercising one configured device, probing every
// device without waiting for a person, the box's clock against the hub,
// disk space, the outbox, the hub link and its TLS, the allowlist, and the
// commissioning report they add up to (firmware-specs/commissioning-report.md).
//
// Concepts:
//
//   - A Check is one line of the report: a name, whether it passed, what
//     was seen (Detail) and, when it failed, why and what to do (Reason).
//     No check ever carries a raw card number, ID number or name: cards are
//     shown through credential.Mask.
//   - Tester opens the drivers of the config's [[device]], [[door]] and
//     [[wiegand]] entries itself, one device at a time, and closes them
//     after. A port or line another process holds (kioskd) is ErrBusy: it
//     is never fought over. GPIO lines are resolved through Options.Lines,
//     so tests hand it simulated lines (testhw/gatesim).
//   - Test is interactive (it waits for a card, a scan, a Wiegand frame, a
//     person opening the door); Probe is not, except that a door's relay is
//     pulsed and its contact must follow unless Options.NoActuate.
//   - Report gathers the checks with the box's identity; it renders as
//     JSON, as text, and as a short receipt.
//
// It lives under cmd/ because it wires concrete drivers (DESIGN.md §3).
package commission
