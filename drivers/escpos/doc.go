// Package escpos drives an ESC/POS receipt printer on a serial port: the
// subset in firmware-specs/escpos.md (initialise, Chinese mode with GB18030
// text, bold, double size, alignment, feeds, QR codes via GS ( k, cut) and
// the real-time status query DLE EOT n.
//
// Concepts:
//
//   - The encoder functions ([Initialize], [Text], [QRCode], [Cut], …,
//     [EncodeReceipt]) and the status decoder ([DecodeStatus]) are pure:
//     bytes in, bytes or a [Status] out. They are tested against
//     firmware-specs/escposvectors and fuzzed.
//   - [Printer] is the thin shell: [Printer.Status] queries DLE EOT 1–4,
//     [Printer.Print] checks the status, sends a [Receipt] and checks again;
//     conditions that stop printing (paper out, cover open, error, offline)
//     and link failures (no reply, bad reply, disconnected) are [*Error]
//     values with a [Code]. [Printer.Run] polls the status so health stays
//     current and a down printer is probed again. [Open] uses
//     serialport.OpenReconnecting so an unplugged printer comes back.
//
// Receipt text is never logged (it may carry names).
package escpos
