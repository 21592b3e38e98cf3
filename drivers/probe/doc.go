// Package probe finds out which KioskEdge device answers on a serial port,
// for technicians commissioning a box (kioskctl ports). It sends only
// read-only status queries, built with each driver's own codec, and
// recognises a reply with that codec's decoder:
//
//   - ESC/POS receipt printer: DLE EOT 1 (escpos.md §5), then DLE EOT 2–4
//     once a printer answered, at 9600–115200 baud. Printers print whatever
//     else they receive, so this query goes first, at every baud, and
//     nothing else is sent to a port where a printer answered.
//   - OSDP reader: osdp_ID (SQN 0) to the configuration address 0x7F at
//     9600–115200 baud (osdp.md §4.1); the reply names the reader's own
//     address, vendor, model and serial. osdp_POLL is not used: it would
//     take a queued card read from the reader.
//   - Resident ID-card reader: SAM status (idcard.md §3) at 115200 down to
//     9600 baud.
//   - Social-security-card reader: CARD STATUS (sscard.md §1.2) at 115200
//     and 9600 baud.
//   - QR scanner: nothing is sent for it. A scanner speaks only when a code
//     is scanned, so a port where no query is answered is reported
//     [Silent]: a QR scanner, or nothing at all. When what arrived unasked
//     is nothing but text lines (a technician scanned a code while the
//     probe ran) the port is reported [QRScan]; other unasked bytes make it
//     [Unknown].
//
// No query changes a device: no LED, buzzer, text, key, power, print or cut
// command is ever sent, and after a device is identified nothing more is
// written to its port. [Queries] lists every byte sequence the package may
// send. A port already open elsewhere (kioskd holds its ports with a lock)
// is reported [Busy] without being touched.
//
// A probe of one port is sequential: one query at a time, each waiting at
// most Options.Timeout for its reply, so a silent port takes about
// [SilentQueries] timeouts. A reply that comes late, while a later query at
// the same rate waits, still identifies its device. [Ports] probes several
// ports concurrently.
package probe
