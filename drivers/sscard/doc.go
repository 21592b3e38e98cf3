// Package sscard reads Chinese social security cards (社会保障卡) through a
// serial contact-card reader. The wire contract is
// firmware-specs/sscard.md; comments here point at its sections.
//
// Two layers:
//
//   - The reader transport (§1): frames STX | LEN | payload | BCC | ETX that
//     carry reader commands (card status, power on, power off, transmit
//     APDU). [AppendFrame] and [ParseFrame] are the pure codec;
//     [FrameTransport] is the thin exchange loop over a [serialport.Port].
//     Another vendor's framing is one new [Transport].
//   - The card (§2): ISO 7816-4 APDUs ([Command], [ParseResponse],
//     [CheckSW]), the social security application (SSSE) and its files
//     EF05 (issuer data) and EF06 (holder data), whose records are TLVs
//     ([ParseTLV]).
//
// [Reader.ReadCard] does one read and returns a [Card]; [Reader.Run] watches
// the slot and reports insert/remove, reads and health changes. Health
// (connected, last seen, framing/checksum/timeout/io counters, reconnects,
// down) is a devstatus tracker, see [Reader.Health]. [Open] wraps
// serialport.OpenReconnecting so the reader survives being unplugged.
//
// Errors are the package's sentinels ([ErrNoCard], [ErrCardRemoved],
// [ErrWrongApplication], [ErrLocked], [ErrTimeout], [ErrOffline],
// [ErrChecksum], [ErrMalformed], …) and [*StatusError] carrying the card's
// status word; errors.Is maps status words to sentinels (§2.2).
//
// The card number, card identification code, social security number, name
// and birth date are personal data (DESIGN.md §7). [Card] formats masked in
// fmt and slog, error texts never contain them, and the package logs only
// masked values. [Card.Credential] carries the social security number for
// the access engine to hash.
package sscard
