// Package idcard drives a resident ID-card reader: a SAM module speaking the
// public frame protocol with the preamble AA AA AA 96 69 over a serial port.
// The wire format, the status codes, the text layout and the reader's
// quirks are specified in firmware-specs/idcard.md; comments here point to
// its sections rather than restating them.
//
// The package has a pure core and a thin shell:
//
//   - The codec ([AppendRequest], [Split], [DecodeResponse], [ParseBaseInfo],
//     [ValidNumber]) is functions of bytes: table-tested against
//     firmware-specs/idcardvectors and fuzzed.
//   - The [Reader] runs exchanges over a serialport.Port: [Reader.ReadCard]
//     does find → select → read base info once, and [Reader.Run] polls for
//     cards, reports [Event]s (inserted with the card, removed) and keeps the
//     reader's health in a devstatus.Tracker. Give it a port from
//     serialport.OpenReconnecting (or use [Open]) and it survives the reader
//     being unplugged and plugged back.
//
// Errors callers branch on are sentinels: [ErrNoCard], [ErrCardRemoved],
// [ErrTimeout], [ErrOffline], [ErrChecksum], [ErrProtocol] (with a
// [*StatusError] carrying SW1 SW2 SW3), [ErrMalformed] and [ErrBadField]
// (with a [*FieldError] naming the field, never its value).
//
// Personal data: a [Card] holds a resident's name, ID number, address and
// birth date. It formats itself masked for fmt and slog, errors never carry
// field values, and the reader logs only masked values.
package idcard
